"""
The twistd plugin's options and service maker (C{twistd iradialer}).

Importing this module stays cheap (no numpy, no simulator): C{twistd iradialer --help} reads
L{Options} only; L{makeService} imports the server.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.python import usage

from iradialer import config as _config


class Options(usage.Options):
    synopsis = "[--config FILE] [--listen ENDPOINT] [--simulate] [--manhole ENDPOINT]"
    longdesc = (
        "Run the iradialer HTTP API server.  Without --config it runs the embedded demo setup: "
        "the API on tcp:8080:interface=127.0.0.1, the built-in FreeSWITCH simulator, and one "
        "demo tenant whose token is printed at start-up."
    )
    optParameters = [
        ["config", "c", None, "TOML configuration file (see etc/iradialer.example.toml)."],
        ["listen", "l", None, "API endpoint (Twisted endpoint string); overrides api.listen."],
        ["manhole", None, None, "SSH manhole endpoint on loopback; overrides manhole.listen."],
    ]
    optFlags = [["simulate", "s", "Use the built-in FreeSWITCH simulator instead of nodes."]]

    config: _config.Config

    def postOptions(self) -> None:
        try:
            if self["config"]:
                loaded = _config.load(self["config"])
            else:
                loaded = _config.embedded_default()
            self.config = loaded.with_overrides(
                listen=self["listen"], simulate=bool(self["simulate"]), manhole=self["manhole"]
            )
        except _config.ConfigError as e:
            raise usage.UsageError(f"configuration error: {e}") from None


def makeService(options: Options, reactor: Any = None) -> MultiService:
    if reactor is None:
        from twisted.internet import reactor
    from iradialer.server import build_service

    return build_service(options.config, reactor, reload_path=options["config"])
