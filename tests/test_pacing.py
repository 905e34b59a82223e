"""
Pacing (issue 8): token buckets per tenant and per gateway, a cap of calls per gateway, and
the API's answer to a throttled call: 429, Retry-After, status_code 115.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet.task import Clock

from iradialer.api.app import DialerAPI
from iradialer.config import Config, parse
from iradialer.domain.errors import DialerError, Status
from iradialer.domain.pacing import Pacer, TokenBucket
from iradialer.domain.tenants import LicenseLedger, TenantDirectory
from tests.helpers import TENANTS, call

GATEWAY = "sofia/gateway/sim"
PACED = (
    '[api]\nadmin_token = "admin-token-1"\n[freeswitch]\nsimulate = true\n'
    + TENANTS.replace("licenses = 2\n", "licenses = 2\ncps = 2\n", 1)
    + f'[[gateway]]\nname = "{GATEWAY}"\ncps = 5\nmax_calls = 3\n'
)


def paced_config(text: str = PACED) -> Config:
    return parse(text, "test.toml", Path("/tmp"))


class Holder:
    """The configuration in force, which a test may swap as a reload would."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def __call__(self) -> Config:
        return self.config


def refusal(pacer: Pacer, tenant: str, gateway: str, now: float) -> DialerError:
    with pytest.raises(DialerError) as caught:
        pacer.admit(tenant, gateway, now)
    return caught.value


def test_token_bucket_refills_continuously():
    """A bucket holds a second's worth of calls and refills at its rate."""
    bucket = TokenBucket.full(4.0, now=100.0)
    for _ in range(4):
        assert bucket.wait(100.0) == 0.0
        bucket.take(100.0)
    assert bucket.wait(100.0) == pytest.approx(0.25)
    assert bucket.wait(100.1) == pytest.approx(0.15)
    assert bucket.wait(100.25) == 0.0


def test_slow_rate_bucket_holds_one_call():
    """Under one call a second, a burst is a single call, then one every 1/rate seconds."""
    bucket = TokenBucket.full(0.5, now=0.0)
    bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(2.0)
    assert bucket.wait(2.0) == 0.0


def test_tenant_rate_refuses_with_retry_after_then_admits_after_the_wait():
    """
    A tenant at cps = 2 starts two calls at once; the third is refused with status 115,
    HTTP 429 and the exact wait; after that wait on the clock, it is admitted.
    """
    clock = Clock()
    clock.advance(1_700_000_000)
    pacer = Pacer(Holder(paced_config()))
    pacer.admit("acme", GATEWAY, clock.seconds())
    pacer.admit("acme", GATEWAY, clock.seconds())
    error = refusal(pacer, "acme", GATEWAY, clock.seconds())
    assert (error.status, error.http_status) == (Status.ORIGINATE_THROTTLED, 429)
    assert error.retry_after == pytest.approx(0.5)
    assert "tenant acme may start 2 calls/s" in error.message
    clock.advance(error.retry_after)
    pacer.admit("acme", GATEWAY, clock.seconds())


def test_other_tenants_are_not_slowed_by_one_tenants_rate():
    """The tenant bucket is per tenant: globex (no cps of its own) still gets through."""
    pacer = Pacer(Holder(paced_config()))
    pacer.admit("acme", GATEWAY, 0.0)
    pacer.admit("acme", GATEWAY, 0.0)
    refusal(pacer, "acme", GATEWAY, 0.0)
    pacer.admit("globex", GATEWAY, 0.0)


def test_gateway_rate_is_shared_by_tenants():
    """The gateway's cps counts every tenant's calls through it."""
    text = PACED.replace("cps = 5\nmax_calls = 3", "cps = 2")
    pacer = Pacer(Holder(paced_config(text)))
    pacer.admit("acme", GATEWAY, 0.0)
    pacer.admit("globex", GATEWAY, 0.0)
    error = refusal(pacer, "globex", GATEWAY, 0.0)
    assert "gateway sofia/gateway/sim takes 2 calls/s" in error.message
    assert error.retry_after == pytest.approx(0.5)


def test_gateway_cap_refuses_until_a_call_ends():
    """At max_calls in progress a gateway refuses (retry after 1 s) until call_ended."""
    pacer = Pacer(Holder(paced_config()))
    pacer.admit("acme", GATEWAY, 0.0)
    pacer.admit("acme", GATEWAY, 0.0)
    pacer.admit("globex", GATEWAY, 10.0)
    assert pacer.in_progress(GATEWAY) == 3
    error = refusal(pacer, "globex", GATEWAY, 20.0)
    assert error.retry_after == 1.0
    assert "carries at most 3 calls at once" in error.message
    pacer.call_ended(GATEWAY)
    pacer.admit("globex", GATEWAY, 20.0)


def test_refused_call_costs_no_rate():
    """
    A call refused by one limit takes no token from the others, so the wait it is given is
    enough: the tenant's own tokens are not spent by refused attempts.
    """
    pacer = Pacer(Holder(paced_config()))
    for now in (0.0, 0.0, 0.0):
        pacer.admit("globex", GATEWAY, now)
    refusal(pacer, "acme", GATEWAY, 0.0)  # gateway full (max_calls 3)
    pacer.call_ended(GATEWAY)
    pacer.admit("acme", GATEWAY, 0.0)
    pacer.call_ended(GATEWAY)
    pacer.admit("acme", GATEWAY, 0.0)  # still the second of acme's two tokens


def test_call_ended_never_goes_below_zero():
    """An extra call_ended (or one for an unknown gateway) does not open a cap for later."""
    pacer = Pacer(Holder(paced_config()))
    pacer.call_ended(GATEWAY)
    pacer.call_ended("sofia/gateway/other")
    for _ in range(3):
        pacer.admit("globex", GATEWAY, 100.0 + _)
    refusal(pacer, "globex", GATEWAY, 200.0)


def test_reload_changes_limits():
    """A reloaded configuration's limits apply to the next call."""
    holder = Holder(paced_config())
    pacer = Pacer(holder)
    pacer.admit("acme", GATEWAY, 0.0)
    pacer.admit("acme", GATEWAY, 0.0)
    refusal(pacer, "acme", GATEWAY, 0.0)
    unlimited = [replace(t, cps=None) for t in holder.config.tenants]
    holder.config = replace(holder.config, tenants=tuple(unlimited), gateways=())
    for _ in range(10):
        pacer.admit("acme", GATEWAY, 0.0)


def test_status_is_scoped():
    """A tenant sees its own rate and its gateways' limits; the admin sees use and refusals."""
    pacer = Pacer(Holder(paced_config()))
    pacer.admit("acme", GATEWAY, 0.0)
    pacer.admit("acme", GATEWAY, 0.0)
    refusal(pacer, "acme", GATEWAY, 0.0)
    assert pacer.status("acme") == {
        "cps": 2.0,
        "gateways": {GATEWAY: {"cps": 5.0, "max_calls": 3}},
        "throttled": {"tenant_cps": 1},
    }
    assert pacer.status("globex")["throttled"] == {}
    admin = pacer.status(None)
    assert admin["gateways"][GATEWAY]["calls_in_progress"] == 2
    assert admin["throttled"] == {"acme/tenant_cps": 1}
    assert admin["tenants"] == {"acme": {"cps": 2.0}, "globex": {"cps": None}}


@pytest_twisted.ensureDeferred
async def test_api_answers_a_throttled_call_with_429_and_retry_after():
    """
    A DialerError from the pacer becomes 429, C{Retry-After} in whole seconds (rounded up)
    and status_code 115; after that wait on the clock the same request succeeds.

    makecall is call control's (not merged here), so the pacer is reached through the one
    injected collaborator a route of this branch calls: POST /api/reload's.  The request
    travels the real Klein app and error handling.
    """
    config = paced_config()
    directory = TenantDirectory(config.tenants, config.api.admin_token)
    clock = Clock()
    clock.advance(1_700_000_000)
    pacer = Pacer(lambda: config)

    api = DialerAPI(
        directory=directory,
        ledger=LicenseLedger(directory),
        clock=clock,
        current_config=lambda: config,
        reload=lambda: pacer.admit("acme", GATEWAY, clock.seconds()),
    )
    stub = StubTreq(api.resource())
    for _ in range(2):
        code, _, _ = await call(stub, "POST", "/api/reload", token="admin-token-1", body={})
        assert code == 200
    code, body, headers = await call(stub, "POST", "/api/reload", token="admin-token-1", body={})
    assert code == 429
    assert headers.getRawHeaders("retry-after") == ["1"]
    assert body["status_code"] == 115
    assert body["error"] == "Too Many Requests"
    assert body["message"].startswith("Call failed to originate, could be a throttling problem")
    clock.advance(0.5)
    code, _, headers = await call(stub, "POST", "/api/reload", token="admin-token-1", body={})
    assert code == 200
    assert headers.getRawHeaders("retry-after") is None


# -- configuration ---------------------------------------------------------------------------


def test_pacing_keys_are_read_and_masked_status_shows_them():
    """Tenant cps and [[gateway]] limits are read, and appear in the masked configuration."""
    config = paced_config()
    assert config.tenants[0].cps == 2.0 and config.tenants[1].cps is None
    (gateway,) = config.gateways
    assert (gateway.name, gateway.cps, gateway.max_calls) == (GATEWAY, 5.0, 3)
    masked = config.masked()
    assert masked["gateways"] == [{"name": GATEWAY, "cps": 5.0, "max_calls": 3}]
    assert masked["tenants"][0]["cps"] == 2.0


@pytest.mark.parametrize(
    "change, key, problem",
    [
        (("cps = 2\n", "cps = 0\n"), "tenant[0].cps", "more than 0"),
        (("cps = 5\n", 'cps = "fast"\n'), "gateway[0].cps", "must be a number"),
        (("max_calls = 3\n", "max_calls = 0\n"), "gateway[0].max_calls", "at least 1"),
        (("max_calls = 3\n", "max_calls = 3\nburst = 9\n"), "gateway[0].burst", "not a known key"),
        (
            (f'name = "{GATEWAY}"', 'name = "sofia/gateway/x y"'),
            "gateway[0].name",
            "does not match",
        ),
    ],
)
def test_bad_pacing_keys_are_named(change, key, problem):
    """A bad pacing value stops the server with the file and the key named."""
    from iradialer.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        paced_config(PACED.replace(*change))
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_duplicate_gateway_tables_are_refused():
    """Two [[gateway]] tables for one name would leave it unclear which limit holds."""
    from iradialer.config import ConfigError

    with pytest.raises(ConfigError, match="gateway\\[1\\].name: is used twice"):
        paced_config(PACED + f'[[gateway]]\nname = "{GATEWAY}"\n')


def test_reload_applies_gateway_limits(tmp_path):
    """SIGHUP / POST /api/reload apply changed [[gateway]] limits without a restart."""
    from iradialer.config import load
    from iradialer.domain.tenants import TenantDirectory
    from iradialer.server import LiveConfig
    from tests.helpers import write_config

    path = write_config(tmp_path, extra=f'[[gateway]]\nname = "{GATEWAY}"\ncps = 3\n')
    config = load(path)
    live = LiveConfig(config, TenantDirectory(config.tenants, "admin-token-1"), str(path))
    write_config(tmp_path, extra=f'[[gateway]]\nname = "{GATEWAY}"\ncps = 9\nmax_calls = 4\n')
    live.reload()
    assert live.current.gateways[0].cps == 9.0 and live.current.gateways[0].max_calls == 4
