"""
C{python -m iradialer.sim --listen tcp:8021:interface=127.0.0.1 [--scenarios FILE]
[--password ClueCon]}: the simulator in a process of its own (load tests, dialer apps).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from iradialer.config import ConfigError

log = Logger()


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

    from iradialer.sim.server import make_simulator_service

    try:
        service = make_simulator_service(args.listen, reactor, args.scenarios, args.password)
    except ConfigError as e:
        print(f"scenario error: {e}", file=sys.stderr)
        return 2
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    log.info("FreeSWITCH simulator listening on {listen}", listen=args.listen)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
