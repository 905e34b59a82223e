"""
`make run` in miniature: twistd starts the embedded demo, prints the demo token (here through
the JSON-lines logger), and GET /api/status answers with it over a real socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_serves_status_with_printed_token(tmp_path):
    port = free_port()
    twistd = Path(sys.executable).parent / "twistd"
    process = subprocess.Popen(
        [
            str(twistd),
            "--pidfile=",
            "-n",
            "--logger",
            "iradialer.logs.json_lines",
            "iradialer",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        token = None
        deadline = time.monotonic() + 30
        while token is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            assert "log_namespace" in event
            if event.get("log_namespace") == "iradialer.server.Announce":
                token = event["token"]
                assert f"127.0.0.1:{port}/api/status" in event["log_format"].format(**event)
        assert token, "the demo token was never printed"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"Bearer {token}"}
        )
        for _ in range(50):
            try:
                body = json.load(urllib.request.urlopen(request, timeout=5))
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        assert body["statusCode"] == 200 and body["tenants"][0]["id"] == "demo"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
