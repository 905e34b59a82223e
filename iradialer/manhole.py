"""
An SSH manhole: a Python prompt inside the running server, for live debugging.

Off unless configured; listens on loopback only; logs in by public key only (the
configured C{authorized_keys} file).  The host key is created on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.application.internet import StreamServerEndpointService
from twisted.conch import manhole_ssh
from twisted.conch.checkers import InMemorySSHKeyDB, SSHPublicKeyChecker
from twisted.conch.manhole_tap import chainedProtocolFactory
from twisted.conch.ssh import keys
from twisted.cred import portal
from twisted.internet.endpoints import serverFromString

from iradialer.config import ConfigError, ManholeConfig


def load_host_key(path: Path) -> keys.Key:
    """
    The manhole's host key, created (Ed25519, mode 0600) when the file does not exist yet.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    return keys.Key.fromFile(str(path))


def load_authorized_keys(path: Path, source: str) -> list[keys.Key]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise ConfigError(
            source, "manhole.authorized_keys", f"cannot be read: {e.strerror}"
        ) from None
    found = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            found.append(keys.Key.fromString(line))
        except keys.BadKeyError:
            continue
    if not found:
        raise ConfigError(source, "manhole.authorized_keys", f"{path} holds no public key")
    return found


def make_manhole_factory(
    config: ManholeConfig, namespace: dict[str, Any], source: str
) -> manhole_ssh.ConchFactory:
    """
    An SSH server factory whose only login is C{config.user} with a key from
    C{config.authorized_keys}, and whose shell is a Python prompt over C{namespace}.
    """
    assert config.authorized_keys is not None
    realm = manhole_ssh.TerminalRealm()
    realm.chainedProtocolFactory = chainedProtocolFactory(namespace)  # type: ignore[assignment]
    checker = SSHPublicKeyChecker(
        InMemorySSHKeyDB(
            {config.user.encode("ascii"): load_authorized_keys(config.authorized_keys, source)}
        )
    )
    factory = manhole_ssh.ConchFactory(portal.Portal(realm, [checker]))  # type: ignore[arg-type]
    host_key = load_host_key(config.host_key)
    factory.publicKeys = {host_key.sshType(): host_key.public()}
    factory.privateKeys = {host_key.sshType(): host_key}  # type: ignore[dict-item]
    return factory


def make_manhole_service(
    config: ManholeConfig, namespace: dict[str, Any], reactor: Any, source: str
) -> StreamServerEndpointService:
    assert config.listen is not None
    factory = make_manhole_factory(config, namespace, source)
    return StreamServerEndpointService(serverFromString(reactor, config.listen), factory)
