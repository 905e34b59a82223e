"""
Property-based run of the whole API: Schemathesis generates requests from
GET /api/openapi.json (valid and invalid bodies, and calls reached through makecall's OpenAPI
links) against a real server process with its simulator, and checks that no response is a
5xx and every response matches the document.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_demo_process import free_port

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def wait_until_ready(base: str, process: subprocess.Popen, deadline: float) -> None:
    """GET /api/license answers 200 once licenses are loaded and the simulator is connected."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("the server exited early")
        try:
            if urllib.request.urlopen(f"{base}/api/license", timeout=2).status == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(tmp_path: Path):
    api, sim, media = free_port(), free_port(), free_port()
    (tmp_path / "sounds").mkdir()
    config = tmp_path / "iradialer.toml"
    config.write_text(
        f'[api]\nlisten = "tcp:{api}:interface=127.0.0.1"\nadmin_token = "admin-token-1"\n'
        f'[freeswitch]\nsimulate = true\nsimulator_listen = "tcp:{sim}:interface=127.0.0.1"\n'
        f'[media]\nport = {media}\nfreeswitch_ports = "43000-43999"\n'
        f'files_dir = "{tmp_path / "sounds"}"\n'
        f'[store]\npath = "{tmp_path / "var" / "s.sqlite"}"\n'
        '[[tenant]]\nid = "acme"\ntoken = "acme-token-1"\nlicenses = 500\n'
        'gateways = ["sofia/gateway/sim"]\nwebhook_secret = "s"\n'
        "allow_private_webhooks = true\n"
    )
    bin_dir = Path(sys.executable).parent
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(bin_dir / "twistd"), "--pidfile=", "-n", "iradialer", "--config", str(config)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{api}"
    try:
        wait_until_ready(base, server, time.monotonic() + 30)
        st = shutil.which("st", path=str(bin_dir))
        assert st is not None
        run = subprocess.run(
            [
                st,
                "run",
                f"{base}/api/openapi.json",
                "--checks",
                CHECKS,
                "-H",
                "Authorization: Bearer acme-token-1",
                "--max-examples",
                "25",
                "--seed",
                "20261127",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        assert run.returncode == 0, run.stdout[-6000:]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert "Unexpected error answering" not in text, text[-4000:]
    assert "Unhandled" not in text, text[-4000:]
