"""
The durable outbox: the database side of webhook delivery.

Every function here is a unit of work for L{iradialer.store.Store.run}: it takes the
connection, runs on the store's thread inside one transaction, and returns plain data.  The
tables (migration 1 in L{iradialer.store}) keep three facts the service relies on:

 - an event is in C{webhook_outbox} from the moment L{enqueue} commits until it is delivered
   or dead-lettered (L{finish});
 - events of one stream (a call, or a tenant's events without a call) are delivered in
   C{id} order, one at a time: only the stream's oldest event (its head) is ever attempted;
 - C{webhook_streams.next_attempt_at} is when the head is due (NULL: nothing pending), and
   C{claimed} marks the streams the running service is delivering, so the others can be found
   by an index scan when there is room for them (L{claim_due}).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

CALL_PREFIX = "call:"
TENANT_PREFIX = "tenant:"
FALLBACK_PREFIX = "fallback:"


def stream_for(tenant_id: str, call_uuid: str | None) -> str:
    """
    The ordering stream of an event: its call, or its tenant when it has no call.
    """
    if call_uuid:
        return CALL_PREFIX + call_uuid
    return TENANT_PREFIX + tenant_id


def fallback_stream(tenant_id: str) -> str:
    """
    The stream of a tenant's C{web_error} events, apart from its calls so that a dead
    fallback receiver holds up nothing else.
    """
    return FALLBACK_PREFIX + tenant_id


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


@dataclass(frozen=True)
class Draft:
    """
    An event encoded but for its C{sequence}, which only the store can give: the JSON
    before and after the number.  Encoding when the event is sent (not later, on the store's
    thread) catches values JSON cannot carry at once and keeps the caller's objects out of
    the other thread.
    """

    event_id: str
    event: str
    before: bytes
    after: bytes

    @classmethod
    def of(cls, event: dict[str, Any]) -> Draft:
        """
        @param event: has the key C{sequence} (its value is ignored).
        """
        keys = list(event)
        at = keys.index("sequence")
        before = encode({k: event[k] for k in keys[:at]})[:-1]
        after = encode({k: event[k] for k in keys[at + 1 :]})[1:]
        return cls(
            event_id=event["event_id"],
            event=event["event"],
            before=before + (b',"sequence":' if len(before) > 1 else b'"sequence":'),
            after=b"," + after if len(after) > 1 else after,
        )

    def body(self, sequence: int) -> bytes:
        return self.before + str(sequence).encode("ascii") + self.after


@dataclass(frozen=True)
class Head:
    """
    The oldest undelivered event of a stream: the one being delivered.
    """

    id: int
    stream: str
    tenant_id: str
    url: str
    event_id: str
    event: str
    body: bytes
    attempts: int
    created_at: float


_HEAD = (
    "SELECT id, stream, tenant_id, url, event_id, event, body, attempts, created_at"
    " FROM webhook_outbox WHERE stream = ? ORDER BY id LIMIT 1"
)


def _head_of(conn: sqlite3.Connection, stream: str) -> Head | None:
    row = conn.execute(_HEAD, (stream,)).fetchone()
    if row is None:
        return None
    id_, stream, tenant_id, url, event_id, event, body, attempts, created_at = row
    return Head(id_, stream, tenant_id, url, event_id, event, bytes(body), attempts, created_at)


@dataclass(frozen=True)
class Enqueued:
    """
    @ivar sequence: the event's number in its stream.
    @ivar head: set when the event is its stream's head and was claimed for delivery now.
    @ivar due_at: set when the event is its stream's head but was not claimed (no room):
        when it is due (now).
    """

    sequence: int
    head: Head | None
    due_at: float | None


def enqueue(
    conn: sqlite3.Connection,
    *,
    stream: str,
    tenant_id: str,
    url: str,
    draft: Draft,
    now: float,
    claim: bool,
) -> Enqueued:
    """
    Give the event the next sequence number of its stream and add it to the outbox.  When
    C{claim} and the stream had nothing pending, the stream is claimed and the event returned
    as the head to deliver.
    """
    row = conn.execute(
        "SELECT last_sequence, next_attempt_at FROM webhook_streams WHERE stream = ?", (stream,)
    ).fetchone()
    idle = row is None or row[1] is None
    sequence = 1 if row is None else row[0] + 1
    body = draft.body(sequence)
    claimed = claim and idle
    if row is None:
        conn.execute(
            "INSERT INTO webhook_streams"
            " (stream, tenant_id, last_sequence, next_attempt_at, claimed, last_event_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (stream, tenant_id, sequence, now, int(claimed), now),
        )
    elif idle:
        conn.execute(
            "UPDATE webhook_streams SET last_sequence = ?, last_event_at = ?,"
            " next_attempt_at = ?, claimed = ? WHERE stream = ?",
            (sequence, now, now, int(claimed), stream),
        )
    else:
        conn.execute(
            "UPDATE webhook_streams SET last_sequence = ?, last_event_at = ? WHERE stream = ?",
            (sequence, now, stream),
        )
    cursor = conn.execute(
        "INSERT INTO webhook_outbox (stream, tenant_id, url, event_id, event, body, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (stream, tenant_id, url, draft.event_id, draft.event, body, now),
    )
    head = None
    if claimed:
        assert cursor.lastrowid is not None
        head = Head(
            cursor.lastrowid, stream, tenant_id, url, draft.event_id, draft.event, body, 0, now
        )
    return Enqueued(sequence=sequence, head=head, due_at=now if idle and not claimed else None)


@dataclass(frozen=True)
class Claimed:
    """
    @ivar heads: the heads of the streams claimed, to deliver now.
    @ivar next_due: per tenant of the plan, when its earliest unclaimed stream is due
        (absent: it has none).
    """

    heads: list[Head]
    next_due: dict[str, float]


def claim_due(conn: sqlite3.Connection, *, plan: dict[str, int], now: float) -> Claimed:
    """
    Claim, for each tenant of C{plan}, up to that many unclaimed streams whose head is due,
    earliest first.
    """
    heads: list[Head] = []
    next_due: dict[str, float] = {}
    for tenant_id, room in plan.items():
        streams = conn.execute(
            "SELECT stream FROM webhook_streams WHERE tenant_id = ? AND claimed = 0"
            " AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?",
            (tenant_id, now, room),
        ).fetchall()
        for (stream,) in streams:
            head = _head_of(conn, stream)
            if head is None:
                conn.execute(
                    "UPDATE webhook_streams SET next_attempt_at = NULL WHERE stream = ?", (stream,)
                )
                continue
            conn.execute("UPDATE webhook_streams SET claimed = 1 WHERE stream = ?", (stream,))
            heads.append(head)
        due = _earliest_due(conn, tenant_id)
        if due is not None:
            next_due[tenant_id] = due
    return Claimed(heads=heads, next_due=next_due)


def _earliest_due(conn: sqlite3.Connection, tenant_id: str) -> float | None:
    row = conn.execute(
        "SELECT next_attempt_at FROM webhook_streams WHERE tenant_id = ? AND claimed = 0"
        " AND next_attempt_at IS NOT NULL ORDER BY next_attempt_at LIMIT 1",
        (tenant_id,),
    ).fetchone()
    return None if row is None else float(row[0])


@dataclass(frozen=True)
class DeadLetter:
    """
    Why a head is given up, and the C{web_error} event to queue for the tenant's fallback
    URL, if it has one.
    """

    attempts: int
    error: str
    fallback_url: str | None = None
    web_error: Draft | None = None


@dataclass(frozen=True)
class Finished:
    """
    @ivar removed: the head left the outbox (it was still there).
    @ivar dead: it went to the dead letters.
    @ivar web_error: the C{web_error} event queued for it, if any.
    @ivar next_head: the stream's next event, still claimed, to deliver now; C{None} when the
        stream was released.
    """

    removed: bool
    dead: bool
    web_error: Enqueued | None
    next_head: Head | None


def finish(
    conn: sqlite3.Connection, *, head: Head, now: float, dead: DeadLetter | None = None
) -> Finished:
    """
    The head was delivered (C{dead} is C{None}) or is given up: take it out of the outbox and
    move on to the next event of its stream, or release the stream when there is none.
    """
    moved = False
    web_error = None
    if dead is not None:
        moved = (
            conn.execute(
                "INSERT INTO webhook_dead_letters (id, stream, tenant_id, url, event_id, event,"
                " body, attempts, last_error, created_at, dead_at)"
                " SELECT id, stream, tenant_id, url, event_id, event, body, ?, ?, created_at, ?"
                " FROM webhook_outbox WHERE id = ?",
                (dead.attempts, dead.error, now, head.id),
            ).rowcount
            == 1
        )
        if moved and dead.web_error is not None and dead.fallback_url is not None:
            web_error = enqueue(
                conn,
                stream=fallback_stream(head.tenant_id),
                tenant_id=head.tenant_id,
                url=dead.fallback_url,
                draft=dead.web_error,
                now=now,
                claim=False,
            )
    removed = conn.execute("DELETE FROM webhook_outbox WHERE id = ?", (head.id,)).rowcount == 1
    next_head = _head_of(conn, head.stream)
    if next_head is None:
        conn.execute(
            "UPDATE webhook_streams SET next_attempt_at = NULL, claimed = 0 WHERE stream = ?",
            (head.stream,),
        )
    else:
        conn.execute(
            "UPDATE webhook_streams SET next_attempt_at = ? WHERE stream = ?", (now, head.stream)
        )
    return Finished(removed=removed, dead=moved, web_error=web_error, next_head=next_head)


def retry_later(
    conn: sqlite3.Connection, *, head: Head, attempts: int, error: str, at: float
) -> None:
    """
    Record a failed attempt and release the stream until C{at}.
    """
    conn.execute(
        "UPDATE webhook_outbox SET attempts = ?, last_error = ? WHERE id = ?",
        (attempts, error, head.id),
    )
    conn.execute(
        "UPDATE webhook_streams SET next_attempt_at = ?, claimed = 0 WHERE stream = ?",
        (at, head.stream),
    )


@dataclass(frozen=True)
class Recovered:
    depth: int
    dead_letters: int
    due: dict[str, float]


def recover(conn: sqlite3.Connection) -> Recovered:
    """
    At start: nothing is being delivered yet, so release every claim a previous run (perhaps
    killed) left, and report what is waiting.
    """
    conn.execute("UPDATE webhook_streams SET claimed = 0 WHERE claimed = 1")
    depth = conn.execute("SELECT COUNT(*) FROM webhook_outbox").fetchone()[0]
    dead_letters = conn.execute("SELECT COUNT(*) FROM webhook_dead_letters").fetchone()[0]
    due = dict(
        conn.execute(
            "SELECT tenant_id, MIN(next_attempt_at) FROM webhook_streams"
            " WHERE next_attempt_at IS NOT NULL GROUP BY tenant_id"
        ).fetchall()
    )
    return Recovered(depth=depth, dead_letters=dead_letters, due=due)


@dataclass(frozen=True)
class Pruned:
    streams: int
    dead_letters: int


def prune(
    conn: sqlite3.Connection,
    *,
    idle_before: float | None,
    dead_before: float | None,
    limit: int = 10000,
) -> Pruned:
    """
    Forget the sequence counters of calls idle since before C{idle_before} and the dead
    letters older than C{dead_before} (C{None}: keep them), at most C{limit} of each.
    """
    streams = dead_letters = 0
    if idle_before is not None:
        streams = conn.execute(
            "DELETE FROM webhook_streams WHERE stream IN (SELECT stream FROM webhook_streams"
            " WHERE next_attempt_at IS NULL AND last_event_at < ? AND stream LIKE 'call:%'"
            " LIMIT ?)",
            (idle_before, limit),
        ).rowcount
    if dead_before is not None:
        dead_letters = conn.execute(
            "DELETE FROM webhook_dead_letters WHERE id IN (SELECT id FROM webhook_dead_letters"
            " WHERE dead_at < ? LIMIT ?)",
            (dead_before, limit),
        ).rowcount
    return Pruned(streams=streams, dead_letters=dead_letters)


@dataclass(frozen=True)
class Redelivered:
    count: int
    due: dict[str, float]


def redeliver_dead_letters(
    conn: sqlite3.Connection, *, tenant_id: str | None, now: float
) -> Redelivered:
    """
    Put dead letters (of one tenant, or all) back at the end of their streams, with fresh
    attempts; they keep their event id, sequence and body.
    """
    where, args = ("WHERE tenant_id = ?", (tenant_id,)) if tenant_id else ("", ())
    rows = conn.execute(
        f"SELECT id, stream, tenant_id, url, event_id, event, body, created_at"
        f" FROM webhook_dead_letters {where} ORDER BY id",
        args,
    ).fetchall()
    due: dict[str, float] = {}
    for dead_id, stream, tenant, url, event_id, event, body, created_at in rows:
        conn.execute(
            "INSERT INTO webhook_outbox (stream, tenant_id, url, event_id, event, body,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (stream, tenant, url, event_id, event, body, created_at),
        )
        conn.execute("DELETE FROM webhook_dead_letters WHERE id = ?", (dead_id,))
        # The stream's counter may have been forgotten since (sequence_retention_days).
        conn.execute(
            "INSERT OR IGNORE INTO webhook_streams"
            " (stream, tenant_id, last_sequence, next_attempt_at, claimed, last_event_at)"
            " VALUES (?, ?, ?, NULL, 0, ?)",
            (stream, tenant, json.loads(body)["sequence"], now),
        )
        conn.execute(
            "UPDATE webhook_streams SET next_attempt_at = ? WHERE stream = ?"
            " AND next_attempt_at IS NULL",
            (now, stream),
        )
        due[tenant] = now
    return Redelivered(count=len(rows), due=due)
