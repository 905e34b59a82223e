"""
The server configuration: one TOML file, read into frozen dataclasses.

Every key is checked when the file is read; an unknown key, a wrong type or a value out of
range is a L{ConfigError} that names the file and the key, and the service refuses to start
rather than guess.  C{etc/iradialer.example.toml} documents every key.

Relative paths in the file are relative to the directory of the file; in the embedded
default (no C{--config}) they are relative to the working directory.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from twisted.internet.endpoints import serverFromString

_REQUIRED: Any = object()


class ConfigError(Exception):
    """
    The configuration is unusable; the message names the file and the key.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


@dataclass(frozen=True)
class TenantConfig:
    id: str
    token: str
    licenses: int
    gateways: tuple[str, ...]
    webhook_secrets: tuple[str, ...]
    allow_private_webhooks: bool = False
    fallback_url: str | None = None
    cps: float | None = None  # new calls per second this tenant may start; None: no limit


@dataclass(frozen=True)
class NodeConfig:
    name: str
    host: str
    port: int
    password: str
    max_sessions: int = 1000
    cps: int = 30


@dataclass(frozen=True)
class GatewayConfig:
    """
    Pacing limits of one gateway (as makecall's C{gateway} names it), shared by every tenant.
    """

    name: str
    cps: float | None = None  # new calls per second through it; None: no limit
    max_calls: int | None = None  # calls through it at once; None: no limit


@dataclass(frozen=True)
class FreeSwitchConfig:
    simulate: bool
    scenarios: Path | None
    nodes: tuple[NodeConfig, ...]
    simulator_listen: str = "tcp:8021:interface=127.0.0.1"
    simulator_password: str = "ClueCon"


@dataclass(frozen=True)
class MediaConfig:
    listen: str
    port: int
    freeswitch_ports: tuple[int, int]
    files_dir: Path


@dataclass(frozen=True)
class ApiConfig:
    listen: str
    admin_token: str


@dataclass(frozen=True)
class StoreConfig:
    path: Path


@dataclass(frozen=True)
class WebhookConfig:
    """
    Webhook delivery (C{[webhooks]}).  Times are seconds.  Retry C{n} (after the C{n}-th
    failed attempt) waits C{min(backoff_max, backoff_initial * backoff_multiplier ** (n - 1))},
    scaled by a random factor within C{1 +/- jitter}.
    """

    timeout: float = 10.0
    attempts: int = 5
    backoff_initial: float = 2.0
    backoff_multiplier: float = 4.0
    backoff_max: float = 300.0
    jitter: float = 0.2
    concurrency: int = 1000
    tenant_concurrency: int = 100
    sequence_retention_days: float = 7.0
    dead_letter_retention_days: float = 30.0


@dataclass(frozen=True)
class ManholeConfig:
    listen: str | None
    host_key: Path
    authorized_keys: Path | None
    user: str


@dataclass(frozen=True)
class PollyConfig:
    region: str
    access_key_id: str
    secret_access_key: str
    cache_dir: Path
    endpoint: str | None = None


@dataclass(frozen=True)
class Config:
    source: str
    api: ApiConfig
    freeswitch: FreeSwitchConfig
    media: MediaConfig
    store: StoreConfig
    manhole: ManholeConfig
    tenants: tuple[TenantConfig, ...]
    asr_applications: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    polly: PollyConfig | None = None
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    gateways: tuple[GatewayConfig, ...] = ()

    def with_overrides(
        self,
        listen: str | None = None,
        simulate: bool = False,
        manhole: str | None = None,
    ) -> Config:
        """
        Apply the command line's C{--listen}, C{--simulate} and C{--manhole}.
        """
        config = self
        if listen is not None:
            _check_endpoint(listen, "--listen", "command line")
            config = replace(config, api=replace(config.api, listen=listen))
        if simulate:
            config = replace(config, freeswitch=replace(config.freeswitch, simulate=True))
        if manhole is not None:
            _check_endpoint(manhole, "--manhole", "command line")
            if not _is_loopback_endpoint(manhole):
                raise ConfigError(
                    "command line", "--manhole", "the manhole listens on loopback only"
                )
            if config.manhole.authorized_keys is None:
                raise ConfigError(
                    config.source, "manhole.authorized_keys", "is required for --manhole"
                )
            config = replace(config, manhole=replace(config.manhole, listen=manhole))
        return config

    def masked(self) -> dict[str, Any]:
        """
        The configuration as plain data with every secret replaced by C{"***"}, for status.
        """
        return {
            "source": self.source,
            "api": {"listen": self.api.listen, "admin_token": "***"},
            "freeswitch": {
                "simulate": self.freeswitch.simulate,
                "scenarios": _str_or_none(self.freeswitch.scenarios),
                "nodes": [
                    {
                        "name": n.name,
                        "host": n.host,
                        "port": n.port,
                        "password": "***",
                        "max_sessions": n.max_sessions,
                        "cps": n.cps,
                    }
                    for n in self.freeswitch.nodes
                ],
            },
            "media": {
                "listen": self.media.listen,
                "port": self.media.port,
                "freeswitch_ports": "{}-{}".format(*self.media.freeswitch_ports),
                "files_dir": str(self.media.files_dir),
            },
            "store": {"path": str(self.store.path)},
            "manhole": {"listen": self.manhole.listen},
            "tenants": [
                {
                    "id": t.id,
                    "token": "***",
                    "licenses": t.licenses,
                    "gateways": list(t.gateways),
                    "webhook_secret": "***",
                    "allow_private_webhooks": t.allow_private_webhooks,
                    "fallback_url": t.fallback_url,
                    "cps": t.cps,
                }
                for t in self.tenants
            ],
            "asr": {"applications": sorted(self.asr_applications)},
            "tts": {
                "polly": None
                if self.polly is None
                else {
                    "region": self.polly.region,
                    "access_key_id": self.polly.access_key_id,
                    "secret_access_key": "***",
                    "cache_dir": str(self.polly.cache_dir),
                    "endpoint": self.polly.endpoint,
                }
            },
            "webhooks": asdict(self.webhooks),
            "gateways": [
                {"name": g.name, "cps": g.cps, "max_calls": g.max_calls} for g in self.gateways
            ],
        }


def _str_or_none(value: Path | None) -> str | None:
    return None if value is None else str(value)


def load(path: str | Path) -> Config:
    """
    Read and check the TOML file at C{path}.

    @raise ConfigError: the file cannot be read, is not TOML, or holds a bad key or value.
    """
    path = Path(path)
    return parse(read_file(path), str(path), base=path.resolve().parent)


def read_file(path: Path) -> str:
    """The text of a configuration file, or a L{ConfigError} naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), "(file)", f"cannot be read: {e.strerror}") from None


def parse(text: str, source: str, base: Path) -> Config:
    """
    Check the TOML C{text}; relative paths in it are taken relative to C{base}.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "(syntax)", str(e)) from None
    return _read_config(_Table(document, "", source, base))


def embedded_default(token: str | None = None, admin_token: str | None = None) -> Config:
    """
    The configuration of C{make run}: the simulator, one demo tenant allowed to send webhooks
    to this machine, data under C{./var}.  Tokens are random unless given.
    """
    tenant_token = token or secrets.token_urlsafe(18)
    admin = admin_token or secrets.token_urlsafe(18)
    text = f"""
        [api]
        listen = "tcp:8080:interface=127.0.0.1"
        admin_token = "{admin}"

        [freeswitch]
        simulate = true

        [[tenant]]
        id = "demo"
        token = "{tenant_token}"
        licenses = 100
        gateways = ["sofia/gateway/sim"]
        webhook_secret = "{secrets.token_urlsafe(24)}"
        allow_private_webhooks = true
    """
    return parse(text, "(embedded default)", base=Path.cwd())


class _Table:
    """
    One TOML table being read: every key taken is remembered, so L{done} can reject the rest.
    """

    def __init__(self, data: Any, where: str, source: str, base: Path) -> None:
        if not isinstance(data, dict):
            raise ConfigError(source, where or "(top level)", "must be a table")
        self.data = data
        self.where = where
        self.source = source
        self.base = base
        self._taken: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), problem)

    def _get(self, name: str, default: Any) -> Any:
        self._taken.add(name)
        if name in self.data:
            return self.data[name]
        if default is _REQUIRED:
            raise self.error(name, "is required")
        return default

    def string(self, name: str, default: Any = _REQUIRED, pattern: str | None = None) -> Any:
        value = self._get(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, not {_kind(value)}")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise self.error(name, f"{value!r} does not match {pattern}")
        return value

    def integer(
        self, name: str, default: Any = _REQUIRED, low: int | None = None, high: int | None = None
    ) -> Any:
        value = self._get(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, not {_kind(value)}")
        if low is not None and value < low:
            raise self.error(name, f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise self.error(name, f"must be at most {high}, got {value}")
        return value

    def number(self, name: str, default: Any = _REQUIRED, low: float | None = None) -> Any:
        value = self._get(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"must be a number, not {_kind(value)}")
        if low is not None and value < low:
            raise self.error(name, f"must be at least {low}, got {value}")
        return float(value)

    def boolean(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, not {_kind(value)}")
        return value

    def strings(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self._get(name, default)
        if value is default and default is not _REQUIRED:
            return value
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, "must be a string or a list of strings")
        return tuple(value)

    def path(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.string(name, default)
        if value is None:
            return None
        return (self.base / Path(value).expanduser()).resolve()

    def endpoint(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.string(name, default)
        if value is not None:
            _check_endpoint(value, self.key(name), self.source)
        return value

    def table(self, name: str, required: bool = False) -> _Table:
        value = self._get(name, _REQUIRED if required else {})
        return _Table(value, self.key(name), self.source, self.base)

    def tables(self, name: str) -> Iterator[_Table]:
        value = self._get(name, [])
        if not isinstance(value, list):
            raise self.error(name, "must be an array of tables ([[...]])")
        for i, item in enumerate(value):
            yield _Table(item, f"{self.key(name)}[{i}]", self.source, self.base)

    def raw(self, name: str) -> Any:
        return self._get(name, None)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._taken)
        if unknown:
            raise self.error(unknown[0], "is not a known key (see etc/iradialer.example.toml)")


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _check_endpoint(description: str, key: str, source: str) -> None:
    """
    Reject endpoint strings Twisted cannot parse, at start rather than at listen time.
    """
    try:
        serverFromString(None, description)  # parses only; nothing listens without a reactor
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise ConfigError(source, key, f"{description!r} is not a server endpoint: {e}") from None


def _is_loopback_endpoint(description: str) -> bool:
    if description.startswith("unix:"):
        return True
    match = re.search(r"(?:^|:)interface=((?:[^:\\]|\\.)+)", description)
    if match is None:
        return False
    try:
        return ipaddress.ip_address(match.group(1).replace("\\", "")).is_loopback
    except ValueError:
        return match.group(1) == "localhost"


def _read_config(top: _Table) -> Config:
    api = _read_api(top.table("api", required=True))
    freeswitch = _read_freeswitch(top.table("freeswitch"))
    media = _read_media(top.table("media"))
    store_table = top.table("store")
    store = StoreConfig(path=store_table.path("path", "var/iradialer.sqlite"))
    store_table.done()
    manhole = _read_manhole(top.table("manhole"))
    tenants = tuple(_read_tenant(t) for t in top.tables("tenant"))
    _check_unique(top, "tenant", [t.id for t in tenants], "id")
    _check_unique(top, "tenant", [t.token for t in tenants], "token")
    if api.admin_token in {t.token for t in tenants}:
        raise top.error("api.admin_token", "must differ from every tenant token")
    asr = _read_asr(top.table("asr"))
    polly = _read_tts(top.table("tts"), media.files_dir)
    webhooks = _read_webhooks(top.table("webhooks"))
    gateways = tuple(_read_gateway(g) for g in top.tables("gateway"))
    _check_unique(top, "gateway", [g.name for g in gateways], "name")
    top.done()
    return Config(
        source=top.source,
        api=api,
        freeswitch=freeswitch,
        media=media,
        store=store,
        manhole=manhole,
        tenants=tenants,
        asr_applications=asr,
        polly=polly,
        webhooks=webhooks,
        gateways=gateways,
    )


def _check_unique(table: _Table, name: str, values: list[str], what: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise table.error(f"{name}[{i}].{what}", "is used twice")
        seen.add(value)


_TOKEN = r"[A-Za-z0-9._~+/=-]{8,200}"


def _read_api(t: _Table) -> ApiConfig:
    config = ApiConfig(
        listen=t.endpoint("listen", "tcp:8080:interface=127.0.0.1"),
        admin_token=t.string("admin_token", pattern=_TOKEN),
    )
    t.done()
    return config


def _read_freeswitch(t: _Table) -> FreeSwitchConfig:
    simulate = t.boolean("simulate", False)
    scenarios = t.path("scenarios", None)
    nodes = tuple(_read_node(n) for n in t.tables("node"))
    _check_unique(t, "node", [n.name for n in nodes], "name")
    if not simulate and not nodes:
        raise t.error("node", "at least one [[freeswitch.node]] is needed unless simulate = true")
    simulator_listen = t.endpoint("simulator_listen", "tcp:8021:interface=127.0.0.1")
    simulator_password = t.string("simulator_password", "ClueCon", pattern=r"[^\s]{1,128}")
    t.done()
    return FreeSwitchConfig(
        simulate=simulate,
        scenarios=scenarios,
        nodes=nodes,
        simulator_listen=simulator_listen,
        simulator_password=simulator_password,
    )


def _read_node(t: _Table) -> NodeConfig:
    node = NodeConfig(
        name=t.string("name", pattern=r"[A-Za-z0-9_-]{1,64}"),
        host=t.string("host", "127.0.0.1"),
        port=t.integer("port", 8021, low=1, high=65535),
        password=t.string("password", "ClueCon"),
        max_sessions=t.integer("max_sessions", 1000, low=1),
        cps=t.integer("cps", 30, low=1),
    )
    t.done()
    return node


def _read_media(t: _Table) -> MediaConfig:
    listen = t.string("listen", "127.0.0.1")
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        raise t.error("listen", f"{listen!r} is not an IP address") from None
    port = t.integer("port", 9000, low=0, high=65535)
    ports = t.string("freeswitch_ports", "30000-39999", pattern=r"\d{1,5}-\d{1,5}")
    low, high = (int(p) for p in ports.split("-"))
    if not 1 <= low <= high <= 65535:
        raise t.error("freeswitch_ports", f"{ports!r} is not a port range low-high")
    files_dir = t.path("files_dir", "sounds")
    t.done()
    return MediaConfig(listen=listen, port=port, freeswitch_ports=(low, high), files_dir=files_dir)


def _read_manhole(t: _Table) -> ManholeConfig:
    config = ManholeConfig(
        listen=t.endpoint("listen", None),
        host_key=t.path("host_key", "var/manhole_host_key"),
        authorized_keys=t.path("authorized_keys", None),
        user=t.string("user", "admin", pattern=r"[A-Za-z0-9_-]{1,32}"),
    )
    if config.listen is not None:
        if config.authorized_keys is None:
            raise t.error("authorized_keys", "is required when the manhole listens")
        if not _is_loopback_endpoint(config.listen):
            raise t.error("listen", "the manhole listens on loopback only (interface=127.0.0.1)")
    t.done()
    return config


_GATEWAY = r"[A-Za-z0-9_./@:-]+"


def _rate(t: _Table, name: str) -> float | None:
    value = t.number(name, None)
    if value is not None and value <= 0:
        raise t.error(name, f"must be more than 0 calls per second, got {value}")
    return value


def _read_gateway(t: _Table) -> GatewayConfig:
    gateway = GatewayConfig(
        name=t.string("name", pattern=_GATEWAY),
        cps=_rate(t, "cps"),
        max_calls=t.integer("max_calls", None, low=1),
    )
    t.done()
    return gateway


def _read_tenant(t: _Table) -> TenantConfig:
    tenant = TenantConfig(
        id=t.string("id", pattern=r"[A-Za-z0-9_-]{1,64}"),
        token=t.string("token", pattern=_TOKEN),
        licenses=t.integer("licenses", low=0),
        gateways=t.strings("gateways"),
        webhook_secrets=t.strings("webhook_secret"),
        allow_private_webhooks=t.boolean("allow_private_webhooks", False),
        fallback_url=t.string("fallback_url", None, pattern=r"https?://\S+"),
        cps=_rate(t, "cps"),
    )
    if not 1 <= len(tenant.webhook_secrets) <= 2:
        raise t.error("webhook_secret", "must be one secret, or two while rotating")
    for gateway in tenant.gateways:
        if not re.fullmatch(_GATEWAY, gateway):
            raise t.error("gateways", f"{gateway!r} is not a plain gateway name")
    t.done()
    return tenant


def _read_asr(t: _Table) -> dict[str, Mapping[str, Any]]:
    applications = t.table("applications")
    result: dict[str, Mapping[str, Any]] = {}
    for name in list(applications.data):
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise applications.error(name, "is not a valid application name")
        app = applications.table(name)
        kind = app.string("type", pattern=r"[a-z_]+")
        settings: dict[str, Any] = {"type": kind}
        if kind == "http":
            settings["url"] = app.string("url", pattern=r"https?://\S+")
        elif kind == "lex":
            settings.update(
                region=app.string("region", pattern=r"[a-z]{2}(-[a-z]+)+-\d"),
                bot_id=app.string("bot_id", pattern=r"[0-9A-Za-z]{10}"),
                bot_alias_id=app.string("bot_alias_id", pattern=r"[0-9A-Za-z]{10}"),
                locale_id=app.string("locale_id", pattern=r"[a-z]{2}_[A-Z]{2}"),
                access_key_id=app.string("access_key_id"),
                secret_access_key=app.string("secret_access_key"),
                endpoint=app.string("endpoint", None, pattern=r"https?://\S+"),
            )
        else:
            raise app.error("type", f"{kind!r} is not a known ASR application type (http, lex)")
        settings["timeout"] = app.number("timeout", 10.0, low=0.1)
        app.done()
        result[name] = settings
    applications.done()
    t.done()
    return result


def _read_tts(t: _Table, files_dir: Path) -> PollyConfig | None:
    polly = None
    if "polly" in t.data:
        p = t.table("polly")
        cache = p.path("cache_dir", str(files_dir / "tts-cache"))
        if not cache.is_relative_to(files_dir):
            raise p.error(
                "cache_dir", "must be inside media.files_dir, where FreeSWITCH plays from"
            )
        polly = PollyConfig(
            region=p.string("region", pattern=r"[a-z]{2}(-[a-z]+)+-\d"),
            access_key_id=p.string("access_key_id"),
            secret_access_key=p.string("secret_access_key"),
            cache_dir=cache,
            endpoint=p.string("endpoint", None, pattern=r"https?://\S+"),
        )
        p.done()
    t.done()
    return polly


def _read_webhooks(t: _Table) -> WebhookConfig:
    default = WebhookConfig()
    config = WebhookConfig(
        timeout=t.number("timeout", default.timeout, low=0.1),
        attempts=t.integer("attempts", default.attempts, low=1, high=100),
        backoff_initial=t.number("backoff_initial", default.backoff_initial, low=0.0),
        backoff_multiplier=t.number("backoff_multiplier", default.backoff_multiplier, low=1.0),
        backoff_max=t.number("backoff_max", default.backoff_max, low=0.0),
        jitter=t.number("jitter", default.jitter, low=0.0),
        concurrency=t.integer("concurrency", default.concurrency, low=1, high=10000),
        tenant_concurrency=t.integer(
            "tenant_concurrency", default.tenant_concurrency, low=1, high=10000
        ),
        sequence_retention_days=t.number(
            "sequence_retention_days", default.sequence_retention_days, low=0.0
        ),
        dead_letter_retention_days=t.number(
            "dead_letter_retention_days", default.dead_letter_retention_days, low=0.0
        ),
    )
    if config.jitter >= 1.0:
        raise t.error("jitter", f"must be below 1, got {config.jitter}")
    t.done()
    return config
