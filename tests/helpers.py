"""
Small helpers shared by tests: configuration files and in-process HTTP.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock

TENANTS = """
[[tenant]]
id = "acme"
token = "acme-token-1"
licenses = 2
gateways = ["sofia/gateway/sim"]
webhook_secret = "acme-secret"

[[tenant]]
id = "globex"
token = "globex-token-1"
licenses = 1
gateways = ["sofia/gateway/sim"]
webhook_secret = "globex-secret"
"""


def write_config(directory: Path, extra: str = "", tenants: str = TENANTS) -> Path:
    path = directory / "iradialer.toml"
    path.write_text(
        '[api]\nlisten = "tcp:0:interface=127.0.0.1"\nadmin_token = "admin-token-1"\n'
        "[freeswitch]\nsimulate = true\n"
        f'[store]\npath = "{directory / "store.sqlite"}"\n' + extra + tenants
    )
    return path


async def call(
    stub: StubTreq,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    """
    One request; returns (HTTP status, decoded JSON body, response headers).
    """
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    response = await stub.request(method, "http://localhost" + path, data=data, headers=sent)
    raw = await response.content()
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = raw
    return response.code, decoded, response.headers


class ThreadedMemoryReactor(MemoryReactorClock):
    """
    A C{MemoryReactorClock} that also takes C{callFromThread}, as the store's thread hands its
    results back with it: a call from the main thread (a signal handler) runs at once, calls
    from other threads wait for L{run_thread_calls}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.udpServers: list[tuple[int, Any, str, int]] = []
        self.thread_calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple, dict]] = (
            queue.SimpleQueue()
        )

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            f(*args, **kwargs)
        else:
            self.thread_calls.put((f, args, kwargs))

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> Any:  # noqa: N802
        """Records the UDP listener (the media service's), like C{listenTCP} does."""
        self.udpServers.append((port, protocol, interface, maxPacketSize))
        return _MemoryUDPPort(interface or "0.0.0.0", port)

    def run_thread_calls(self) -> int:
        count = 0
        while not self.thread_calls.empty():
            f, args, kwargs = self.thread_calls.get()
            f(*args, **kwargs)
            count += 1
        return count


class _MemoryUDPPort:
    def __init__(self, host: str, port: int) -> None:
        from twisted.internet.address import IPv4Address

        self._address = IPv4Address("UDP", host, port)

    def getHost(self) -> Any:  # noqa: N802
        return self._address

    def stopListening(self) -> None:  # noqa: N802
        return None

    def write(self, datagram: bytes, addr: Any) -> None:
        return None
