"""
What call control keeps in the SQLite store: CPA and ASR configurations per tenant, and a
record of every call (its details and timeline) that survives restarts.

The tables are migration 2 of L{iradialer.store.MIGRATIONS}; each method's C{work} runs on
the store's thread inside one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from twisted.internet.defer import Deferred

_TABLES = {"cpa": "cpa_configs", "asr": "asr_configs"}


class Records:
    """
    Call control's view of the store.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def save_config(
        self, kind: str, tenant_id: str, name: str, params: dict[str, Any], now: float
    ) -> Deferred[None]:
        table = _TABLES[kind]
        text = json.dumps(params, sort_keys=True)

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO {table} (tenant_id, config_name, params, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, config_name)"
                " DO UPDATE SET params = excluded.params, updated_at = excluded.updated_at",
                (tenant_id, name, text, now),
            )

        return self.store.run(work)

    def load_config(self, kind: str, tenant_id: str, name: str) -> Deferred[dict | None]:
        table = _TABLES[kind]

        def work(db: sqlite3.Connection) -> dict | None:
            row = db.execute(
                f"SELECT params FROM {table} WHERE tenant_id = ? AND config_name = ?",
                (tenant_id, name),
            ).fetchone()
            return None if row is None else json.loads(row[0])

        return self.store.run(work)

    def save_call(self, details: dict[str, Any], live: bool) -> Deferred[None]:
        text = json.dumps(details, sort_keys=True, default=str)

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO calls (call_uuid, tenant_id, node, live, created_at, record)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (call_uuid)"
                " DO UPDATE SET live = excluded.live, node = excluded.node,"
                " record = excluded.record",
                (
                    details["call_uuid"],
                    details["tenant_id"],
                    details["node"],
                    int(live),
                    details["created_at"],
                    text,
                ),
            )

        # A process crash loses nothing (the write reaches the WAL); only a power failure
        # could lose the newest timeline entries, so no fsync per update.
        return self.store.run(work, durable=False)

    def load_call(self, call_uuid: str) -> Deferred[dict | None]:
        def work(db: sqlite3.Connection) -> dict | None:
            row = db.execute(
                "SELECT record FROM calls WHERE call_uuid = ?", (call_uuid,)
            ).fetchone()
            return None if row is None else json.loads(row[0])

        return self.store.run(work)

    def live_calls(self) -> Deferred[list[dict[str, Any]]]:
        """
        Every call the last run of iradialer had not seen end (to re-adopt after a restart).
        """

        def work(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute("SELECT record FROM calls WHERE live = 1").fetchall()
            return [json.loads(row[0]) for row in rows]

        return self.store.run(work)
