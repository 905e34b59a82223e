"""
C{python -m iradialer.sim --listen tcp:8021:interface=127.0.0.1 [--scenarios FILE]
[--password ClueCon]}: the simulator in a process of its own (load tests, dialer apps).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.python.failure import Failure

from iradialer.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iradialer.sim",
        description="A FreeSWITCH stand-in speaking the Event Socket protocol.",
    )
    parser.add_argument(
        "--listen",
        default="tcp:8021:interface=127.0.0.1",
        help="Twisted endpoint string for the Event Socket (default %(default)s)",
    )
    parser.add_argument(
        "--scenarios", type=Path, help="TOML scenario file (default: built-in plan)"
    )
    parser.add_argument("--password", default="ClueCon", help="Event Socket password")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    from iradialer.sim.server import SimulatorService, make_simulator_service

    service: SimulatorService
    try:
        service = make_simulator_service(args.listen, reactor, args.scenarios, args.password)
    except ConfigError as e:
        print(f"scenario error: {e}", file=sys.stderr)
        return 2
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    status = {"code": 0}

    def failed(failure: Failure) -> None:
        status["code"] = 1
        reactor.stop()

    def start() -> None:
        service.startService()
        service.when_listening().addErrback(failed)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
