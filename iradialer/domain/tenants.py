"""
Tenants, their tokens, and the licenses (concurrent calls) each holds.

The directory is rebuilt from configuration on reload; the license ledger is not, so calls
in progress keep their licenses across a reload and a lowered limit only refuses new calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from iradialer.config import TenantConfig


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class Principal:
    """
    Who is asking: one tenant, or the administrator (C{tenant} is C{None}).
    """

    tenant: TenantConfig | None

    @property
    def is_admin(self) -> bool:
        return self.tenant is None


ADMIN = Principal(tenant=None)


class TenantDirectory:
    """
    Maps bearer tokens to tenants.  Tokens are looked up by their SHA-256 digest, so the
    lookup time does not depend on how much of a guessed token matches.
    """

    def __init__(self, tenants: Iterable[TenantConfig], admin_token: str) -> None:
        self.replace(tenants, admin_token)

    def replace(self, tenants: Iterable[TenantConfig], admin_token: str) -> None:
        tenants = tuple(tenants)
        self._by_digest = {_digest(t.token): t for t in tenants}
        self._by_id = {t.id: t for t in tenants}
        self._admin_digest = _digest(admin_token)

    def authenticate(self, token: str) -> Principal | None:
        digest = _digest(token)
        if digest == self._admin_digest:
            return ADMIN
        tenant = self._by_digest.get(digest)
        return None if tenant is None else Principal(tenant)

    def get(self, tenant_id: str) -> TenantConfig | None:
        return self._by_id.get(tenant_id)

    def __iter__(self):
        return iter(self._by_id.values())


class LicensesExhausted(Exception):
    def __init__(self, tenant_id: str, used: int, total: int) -> None:
        self.tenant_id = tenant_id
        self.used = used
        self.total = total
        super().__init__(f"Tenant has used up all the available iraDial licenses [{used}/{total}]")


class LicenseLedger:
    """
    Which call holds which tenant's license.  A call holds one from makecall until hangup.
    """

    def __init__(self, directory: TenantDirectory) -> None:
        self._directory = directory
        self._holders: dict[str, str] = {}
        self._used: dict[str, int] = {}

    def acquire(self, tenant_id: str, call_uuid: str, force: bool = False) -> None:
        """
        @param force: count the license even over the limit (a call that already exists,
            re-adopted after a restart, holds one whatever the limit is now).
        @raise LicensesExhausted: the tenant's calls already use every license it has.
        """
        if call_uuid in self._holders:
            return
        tenant = self._directory.get(tenant_id)
        total = 0 if tenant is None else tenant.licenses
        used = self._used.get(tenant_id, 0)
        if used >= total and not force:
            raise LicensesExhausted(tenant_id, used, total)
        self._holders[call_uuid] = tenant_id
        self._used[tenant_id] = used + 1

    def release(self, call_uuid: str) -> bool:
        """
        Give back the license of C{call_uuid}; C{False} when it held none.
        """
        tenant_id = self._holders.pop(call_uuid, None)
        if tenant_id is None:
            return False
        self._used[tenant_id] -= 1
        return True

    def used(self, tenant_id: str) -> int:
        return self._used.get(tenant_id, 0)

    def holders(self) -> dict[str, str]:
        return dict(self._holders)
