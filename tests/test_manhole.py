"""
The SSH manhole: a key in authorized_keys gets a Python prompt; any other key is refused.
"""

from __future__ import annotations

import time
from pathlib import Path

import paramiko
import pytest
import pytest_twisted
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import reactor, threads
from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactorClock

from iradialer.config import ManholeConfig
from iradialer.manhole import make_manhole_factory
from iradialer.tap import Options, makeService
from tests.helpers import write_config


def new_key(path: Path) -> str:
    """Write a private key to C{path}; return its public line for authorized_keys."""
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def evaluate_over_ssh(port: int, key_path: Path, expression: str) -> str:
    """Log in as admin, type an expression at the prompt, return what the shell printed."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        "127.0.0.1",
        port,
        username="admin",
        key_filename=str(key_path),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    try:
        channel = client.invoke_shell()
        channel.send(expression.encode() + b"\r")
        output = b""
        deadline = time.monotonic() + 10
        while b"4242" not in output and time.monotonic() < deadline:
            if channel.recv_ready():
                output += channel.recv(4096)
            else:
                time.sleep(0.02)
        return output.decode("utf-8", "replace")
    finally:
        client.close()


@pytest.fixture
def keys_dir(tmp_path):
    good = new_key(tmp_path / "good_key")
    new_key(tmp_path / "bad_key")
    (tmp_path / "authorized_keys").write_text(good + "\n")
    return tmp_path


@pytest_twisted.ensureDeferred
async def test_key_in_authorized_keys_gets_a_prompt(keys_dir):
    config = ManholeConfig(
        listen=None,
        host_key=keys_dir / "host_key",
        authorized_keys=keys_dir / "authorized_keys",
        user="admin",
    )
    factory = make_manhole_factory(config, {"answer": 4200}, "test.toml")
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
    try:
        output = await threads.deferToThread(
            evaluate_over_ssh, port.getHost().port, keys_dir / "good_key", "answer + 42"
        )
        assert "4242" in output
        with pytest.raises(paramiko.AuthenticationException):
            await threads.deferToThread(
                evaluate_over_ssh, port.getHost().port, keys_dir / "bad_key", "1"
            )
    finally:
        await port.stopListening()
    assert (keys_dir / "host_key").stat().st_mode & 0o077 == 0


def test_manhole_child_only_when_configured(tmp_path, keys_dir):
    options = Options()
    options.parseOptions(["--config", str(write_config(tmp_path))])
    assert "manhole" not in {s.name for s in makeService(options, MemoryReactorClock())}
    options = Options()
    options.parseOptions(
        [
            "--config",
            str(
                write_config(
                    tmp_path,
                    extra=(
                        f'[manhole]\nauthorized_keys = "{keys_dir}/authorized_keys"\n'
                        f'host_key = "{keys_dir}/hk"\n'
                    ),
                )
            ),
            "--manhole",
            "tcp:0:interface=127.0.0.1",
        ]
    )
    service = makeService(options, MemoryReactorClock())
    assert service.getServiceNamed("manhole") is not None
