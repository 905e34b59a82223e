"""
Composition: one L{MultiService} whose named children are the server's parts.

This is the only module that knows every part; each part takes its collaborators (and the
reactor, as its clock) as arguments.
"""

from __future__ import annotations

import re
import signal
from dataclasses import replace
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from iradialer import __version__
from iradialer.api.app import DialerAPI
from iradialer.api.site import ApiSite
from iradialer.config import Config, ConfigError, NodeConfig, load
from iradialer.dialer.core import Dialer
from iradialer.dialer.records import Records
from iradialer.domain.pacing import Pacer
from iradialer.domain.tenants import LicenseLedger, TenantDirectory
from iradialer.freeswitch.pool import NodePool
from iradialer.metrics import Metrics
from iradialer.status import CallRecorder, StatusBoard
from iradialer.store import Store
from iradialer.webhooks import WebhookService


class LiveConfig:
    """
    The configuration in force.  L{reload} re-reads the file and applies what can change
    without a restart: tenants (tokens, licenses, gateways, webhook secrets, cps), the admin
    token and the gateways' pacing limits.  Other changes are logged as needing a restart.
    """

    log = Logger()

    def __init__(self, config: Config, directory: TenantDirectory, path: str | None) -> None:
        self.current = config
        self.directory = directory
        self.path = path

    def reload(self) -> Config:
        if self.path is None:
            raise ConfigError(
                self.current.source, "(file)", "the embedded default has no file to reload"
            )
        new = load(self.path)
        self.directory.replace(new.tenants, new.api.admin_token)
        applied = replace(
            self.current,
            tenants=new.tenants,
            api=replace(self.current.api, admin_token=new.api.admin_token),
            gateways=new.gateways,
        )
        for section in ("freeswitch", "media", "store", "manhole", "asr_applications", "webhooks"):
            if getattr(new, section) != getattr(applied, section):
                self.log.warn(
                    "Configuration {section} changed in {path}; it takes effect on restart",
                    section=section,
                    path=self.path,
                )
        self.current = applied
        self.log.info(
            "Configuration reloaded from {path}: tenants {tenants}",
            path=self.path,
            tenants=[t.id for t in new.tenants],
        )
        return applied


class ReloadOnSighup(Service):
    """
    Reload the configuration when the process gets SIGHUP.
    """

    log = Logger()

    def __init__(self, live: LiveConfig, reactor: Any) -> None:
        self.live = live
        self.reactor = reactor
        self._previous: Any = None

    def _reload(self) -> None:
        try:
            self.live.reload()
        except ConfigError as e:
            self.log.error("Configuration not reloaded: {error}", error=str(e))

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self._reload)

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._on_signal)

    def stopService(self) -> Any:
        signal.signal(signal.SIGHUP, self._previous or signal.SIG_DFL)
        return super().stopService()


class Announce(Service):
    """
    Tell the person who ran C{make run} how to talk to the embedded demo.
    """

    log = Logger()

    def __init__(self, config: Config) -> None:
        self.config = config

    def startService(self) -> None:
        super().startService()
        tenant = self.config.tenants[0]
        host_port = _http_base(self.config.api.listen)
        self.log.info(
            "iradialer {version} demo ready.  Tenant {tenant} token: {token}\n"
            "  Admin token: {admin}\n"
            "  Try:  curl -s -H 'Authorization: Bearer {token}' {base}/api/status",
            version=__version__,
            tenant=tenant.id,
            token=tenant.token,
            admin=self.config.api.admin_token,
            base=host_port,
        )


#: Connections the API's socket holds before they are accepted.  Twisted's default of 50
#: overflows when a dialer opens a hundred connections at once, and each refused SYN costs
#: its request a one-second retransmission (measured by the load benchmark's drain).
API_BACKLOG = 1024


def with_backlog(description: str, backlog: int) -> str:
    """
    A listening endpoint description with C{backlog} added, unless it names one (or is not a
    kind that takes one: tcp, tcp6, ssl, unix).  Linux caps it at net.core.somaxconn.
    """
    kind = description.split(":", 1)[0].lower()
    if kind not in ("tcp", "tcp6", "ssl", "unix") or re.search(r"(^|:)backlog=", description):
        return description
    return f"{description}:backlog={backlog}"


def _http_base(listen: str) -> str:
    parts = listen.split(":")
    scheme = "https" if parts[0] == "ssl" else "http"
    port = parts[1] if len(parts) > 1 else "8080"
    host = "127.0.0.1"
    for part in parts[2:]:
        if part.startswith("interface="):
            host = part.partition("=")[2] or host
    return f"{scheme}://{host}:{port}"


def build_service(config: Config, reactor: Any, reload_path: str | None = None) -> MultiService:
    """
    The whole server for C{config}, its children named C{api}, C{manhole}, ...
    """
    root = MultiService()
    directory = TenantDirectory(config.tenants, config.api.admin_token)
    ledger = LicenseLedger(directory)
    live = LiveConfig(config, directory, reload_path)

    # Operations (issue 8): metrics, the call history, pacing, the status board.  The dialer
    # reports calls to `recorder` and asks `pacer` before each call; each running part adds
    # its section with status_board.add_source (docs/operations.md).
    metrics = Metrics(process_metrics=True)
    recorder = CallRecorder(metrics)
    pacer = Pacer(lambda: live.current)
    status_board = StatusBoard(
        directory=directory,
        ledger=ledger,
        clock=reactor,
        current_config=lambda: live.current,
        recorder=recorder,
    )
    status_board.add_source("pacing", pacer.status, scope="tenant")
    metrics.before_scrape(lambda: metrics.set_licenses(status_board.license_figures()))

    config.store.path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(config.store.path, reactor=reactor)
    _named(store, "store", root)
    webhooks = WebhookService(store, directory, reactor, settings=config.webhooks, metrics=metrics)
    _named(webhooks, "webhooks", root)
    status_board.add_source("webhooks", webhooks.status)
    metrics.before_scrape(lambda: metrics.webhook_outbox_depth.set(webhooks.outbox_depth))

    from iradialer.media import MediaService

    media = MediaService(config.media, reactor, metrics=metrics)
    _named(media, "media", root)
    status_board.add_source("cpa", media.status, scope="shared")

    nodes, connect = list(config.freeswitch.nodes), None
    if config.freeswitch.simulate:
        simulator, nodes, connect = _embedded_simulator(config, reactor)
        _named(simulator, "simulator", root)

    dialer = Dialer(
        config=config,
        pool=None,
        media=media,
        webhooks=webhooks,
        records=Records(store),
        directory=directory,
        ledger=ledger,
        pacer=pacer,
        recorder=recorder,
        clock=reactor,
        tts=_tts_engines(config, reactor),
        asr_applications=_asr_applications(config, reactor),
    )
    _named(dialer, "calls", root)
    pool = NodePool(nodes, reactor, dialer, connect, metrics=metrics)
    dialer.pool = pool
    _named(pool, "freeswitch", root)
    status_board.add_source("freeswitch", lambda: {"nodes": pool.status()}, scope="shared")
    status_board.add_source("dialer", dialer.status, scope="tenant")
    metrics.before_scrape(lambda: metrics.set_calls_in_state(dialer.calls_in_state()))
    status_board.add_health_check(
        "freeswitch",
        lambda: None if any(n.connected for n in pool.nodes) else "no FreeSWITCH node is connected",
    )

    api = DialerAPI(
        directory=directory,
        ledger=ledger,
        clock=reactor,
        current_config=lambda: live.current,
        reload=live.reload,
        status_board=status_board,
        dialer=dialer,
    )
    site = ApiSite(api, metrics, reactor)
    _named(
        StreamServerEndpointService(
            serverFromString(reactor, with_backlog(config.api.listen, API_BACKLOG)), site
        ),
        "api",
        root,
    )

    if config.manhole.listen is not None:
        from iradialer.manhole import make_manhole_service

        namespace = {"root": root, "api": api, "live": live, "ledger": ledger, "reactor": reactor}
        namespace.update(metrics=metrics, status_board=status_board, pacer=pacer)
        namespace.update(webhooks=webhooks, store=store, media=media, pool=pool, dialer=dialer)
        _named(
            make_manhole_service(config.manhole, namespace, reactor, config.source), "manhole", root
        )

    if reload_path is not None:
        _named(ReloadOnSighup(live, reactor), "reload", root)
    else:
        _named(Announce(config), "announce", root)
    return root


def _embedded_simulator(config: Config, reactor: Any) -> tuple[Service, list[NodeConfig], Any]:
    """
    The built-in simulator as a child service, and the one node that connects to it (once
    it listens, so C{simulator_listen} may use port 0).  The node's caps are generous: the
    simulator carries whatever the tenants' licenses and pacing allow.
    """
    from iradialer.sim import make_simulator_service

    simulator = make_simulator_service(
        config.freeswitch.simulator_listen,
        reactor,
        config.freeswitch.scenarios,
        password=config.freeswitch.simulator_password,
    )
    node = NodeConfig(
        name="sim",
        host="127.0.0.1",
        port=0,
        password=config.freeswitch.simulator_password,
        max_sessions=100_000,
        cps=10_000,
    )
    return simulator, [node], lambda _: _WhenListening(reactor, simulator)


@implementer(IStreamClientEndpoint)
class _WhenListening:
    """Connects to the embedded simulator once it listens, wherever that is."""

    def __init__(self, reactor: Any, simulator: Any) -> None:
        self.reactor = reactor
        self.simulator = simulator

    def connect(self, factory: Any) -> Deferred[Any]:
        d = self.simulator.when_listening()
        d.addCallback(
            lambda port: TCP4ClientEndpoint(self.reactor, "127.0.0.1", port.getHost().port).connect(
                factory
            )
        )
        return d


def _asr_applications(config: Config, reactor: Any) -> dict[str, Any]:
    if not config.asr_applications:
        return {}
    import treq

    from iradialer.asr.applications import build_applications

    return build_applications(config.asr_applications, treq, reactor)


def _tts_engines(config: Config, reactor: Any) -> dict[str, Any]:
    if config.polly is None:
        return {}
    import treq

    from iradialer.tts import Polly, PollySettings

    settings = PollySettings(
        region=config.polly.region,
        access_key_id=config.polly.access_key_id,
        secret_access_key=config.polly.secret_access_key,
        cache_dir=config.polly.cache_dir,
        endpoint=config.polly.endpoint,
    )
    return {"polly": Polly(settings, treq, reactor)}


def _named(service: Service, name: str, parent: MultiService) -> Service:
    service.setName(name)
    service.setServiceParent(parent)
    return service
