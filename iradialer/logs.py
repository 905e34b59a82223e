"""
Log observers for C{twistd --logger}.

C{twistd --logger iradialer.logs.json_lines} writes one JSON object per line to standard
output (or to the file named by C{IRADIALER_LOG_FILE}), with every structured field of the
event, for log shippers.
"""

from __future__ import annotations

import os
import sys

from twisted.logger import ILogObserver, jsonFileLogObserver


def json_lines() -> ILogObserver:
    path = os.environ.get("IRADIALER_LOG_FILE")
    out = open(path, "a", encoding="utf-8") if path else sys.stdout  # noqa: SIM115
    return jsonFileLogObserver(out, recordSeparator="")
