"""
The SQLite store: versioned migrations, one thread for all database work, group commit,
durability of what a fired Deferred reported, and one process per store file.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater

from iradialer.store import (
    MIGRATIONS,
    ManualStore,
    Migration,
    Store,
    StoreError,
    check_migrations,
    open_database,
    schema_version,
)
from tests.helpers import ThreadedMemoryReactor

EXTRA = Migration(
    len(MIGRATIONS) + 1, "a table for tests", "CREATE TABLE t (k TEXT PRIMARY KEY, v);"
)


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_open_applies_missing_migrations_once(tmp_path):
    """A new file gets every migration; reopening with one more applies only that one."""
    path = tmp_path / "s.sqlite"
    conn = open_database(path, MIGRATIONS)
    assert schema_version(conn) == len(MIGRATIONS)
    assert "webhook_outbox" in tables(conn)
    conn.execute("INSERT INTO webhook_streams VALUES ('call:x', 'acme', 3, NULL, 0, 0)")
    conn.close()
    conn = open_database(path, (*MIGRATIONS, EXTRA))
    assert schema_version(conn) == EXTRA.version
    assert "t" in tables(conn)
    assert conn.execute("SELECT last_sequence FROM webhook_streams").fetchone() == (3,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_failed_migration_is_rolled_back_whole(tmp_path):
    """A migration that fails half-way leaves neither its first statements nor its version."""
    path = tmp_path / "s.sqlite"
    open_database(path, MIGRATIONS).close()
    broken = Migration(
        EXTRA.version, "broken", "CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);"
    )
    with pytest.raises(StoreError, match=f"migration {EXTRA.version} \\(broken\\) failed"):
        open_database(path, (*MIGRATIONS, broken))
    conn = sqlite3.connect(path)
    assert schema_version(conn) == len(MIGRATIONS)
    assert "half" not in tables(conn)


def test_newer_schema_is_refused(tmp_path):
    """A file written by a newer iradialer is not opened (and not damaged) by an older one."""
    path = tmp_path / "s.sqlite"
    open_database(path, (*MIGRATIONS, EXTRA)).close()
    with pytest.raises(StoreError, match="newer than this iradialer knows"):
        open_database(path, MIGRATIONS)


def test_migration_versions_must_count_up():
    """Versions are 1, 2, 3...: a gap or a duplicate is a programming error caught at once."""
    check_migrations(MIGRATIONS)
    gap = Migration(len(MIGRATIONS) + 2, "gap", "")
    with pytest.raises(ValueError, match=f"expected {len(MIGRATIONS) + 1}"):
        check_migrations((*MIGRATIONS, gap))
    with pytest.raises(ValueError):
        Store(Path("x"), (MIGRATIONS[0], MIGRATIONS[0]), reactor=None)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "data" / "s.sqlite", (*MIGRATIONS, EXTRA), reactor=reactor)
    store.startService()
    yield store
    if store.running:
        pytest_twisted.blockon(store.stopService())


def put(key: str, value: object):
    def work(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES (?, ?)", (key, value))
        return key

    return work


async def hold(store: Store) -> tuple[Deferred[bool], threading.Event]:
    """
    Occupy the store's thread with a job that waits for the returned event; return once it
    runs, so work queued next is taken in one batch after it.
    """
    running, gate = threading.Event(), threading.Event()

    def wait(conn):
        running.set()
        return gate.wait(10)

    job = store.run(wait)
    await deferLater(reactor, 0, lambda: None)  # the reactor hands the job to the thread
    assert running.wait(10)
    return job, gate


@pytest_twisted.ensureDeferred
async def test_run_fires_after_commit_on_the_store_thread(store):
    """
    Work runs on the store's own thread, and when its Deferred fires another connection
    already sees the write: it is committed.
    """
    seen = []

    def work(conn):
        seen.append(threading.current_thread().name)
        conn.execute("INSERT INTO t VALUES ('a', 1)")
        return "done"

    assert await store.run(work) == "done"
    assert seen == ["store s.sqlite"]
    other = sqlite3.connect(store.path)
    assert other.execute("SELECT v FROM t WHERE k = 'a'").fetchone() == (1,)
    assert (store.path.parent).is_dir()


@pytest_twisted.ensureDeferred
async def test_group_commit_takes_queued_work_in_one_transaction(store):
    """
    Work queued while the thread is busy is committed in one transaction, each piece in its
    own savepoint: one that raises is undone alone and its caller gets the error.
    """
    before = store.transactions
    first, gate = await hold(store)
    results = [store.run(put(f"k{i}", i)) for i in range(500)]
    results.append(store.run(put("k7", "duplicate")))
    results.append(store.run(put("last", 1)))
    gate.set()
    assert await first is True
    outcomes = await DeferredList(results, consumeErrors=True)
    assert [ok for ok, _ in outcomes].count(False) == 1
    assert outcomes[500][1].check(sqlite3.IntegrityError)
    assert outcomes[501] == (True, "last")
    assert store.transactions - before == 2  # the gate's, then all 502 together
    rows = await store.run(lambda conn: conn.execute("SELECT COUNT(*), MAX(v) FROM t").fetchone())
    assert rows == (501, 499)


@pytest_twisted.ensureDeferred
async def test_only_durable_work_waits_for_the_disk(store):
    """
    A batch of durable=False work commits without syncing (synchronous=NORMAL); a batch
    holding any durable work syncs (FULL), and with it everything before.
    """

    def level(conn):
        return conn.execute("PRAGMA synchronous").fetchone()[0]

    assert await store.run(level, durable=False) == 1
    assert await store.run(level) == 2
    first, gate = await hold(store)
    mixed = [store.run(level, durable=False), store.run(level)]
    gate.set()
    await first
    assert [value for _, value in await DeferredList(mixed)] == [2, 2]


@pytest_twisted.ensureDeferred
async def test_lost_transaction_fails_everything_it_held(store):
    """
    When an error ends the whole transaction (as SQLite does for a full disk), work that had
    succeeded earlier in the same batch is reported failed, not committed; later work runs in
    a fresh transaction.
    """
    first, gate = await hold(store)

    def lose_transaction(conn):
        conn.execute("ROLLBACK")
        raise sqlite3.OperationalError("database or disk is full")

    early = store.run(put("early", 1))
    lost = store.run(lose_transaction)
    late = store.run(put("late", 1))
    gate.set()
    await first
    outcomes = await DeferredList([early, lost, late], consumeErrors=True)
    assert not outcomes[0][0] and outcomes[0][1].check(sqlite3.OperationalError)
    assert not outcomes[1][0]
    assert outcomes[2] == (True, "late")
    keys = await store.run(lambda conn: [r[0] for r in conn.execute("SELECT k FROM t")])
    assert keys == ["late"]


@pytest_twisted.ensureDeferred
async def test_stop_finishes_queued_work_then_refuses(store, tmp_path):
    """Work queued before stop completes and stays; work after stop fails; data persists."""
    pending = store.run(put("kept", 1))
    stopped = store.stopService()
    with pytest.raises(StoreError, match="closed"):
        await store.run(put("refused", 1))
    assert await pending == "kept"
    await stopped
    again = Store(store.path, (*MIGRATIONS, EXTRA), reactor=reactor)
    again.startService()
    try:
        assert await again.run(lambda c: c.execute("SELECT k FROM t").fetchall()) == [("kept",)]
    finally:
        await again.stopService()


def test_stopping_a_store_never_started_fails_its_queued_work(tmp_path):
    """A store stopped without having started answers what was queued, and stops at once."""
    store = Store(tmp_path / "s.sqlite", reactor=ThreadedMemoryReactor())
    errors: list = []
    store.run(lambda conn: 1).addErrback(errors.append)
    assert store.stopService().called
    assert errors[0].check(StoreError) and "closed" in errors[0].getErrorMessage()


def test_second_process_is_locked_out(tmp_path):
    """
    Two servers on one store file would deliver every webhook twice and out of order: the
    second one refuses to start, naming the file.
    """
    path = tmp_path / "s.sqlite"
    fake = ThreadedMemoryReactor()
    first = Store(path, reactor=fake)
    first.startService()
    try:
        with pytest.raises(StoreError, match="in use by another process"):
            Store(path, reactor=fake).startService()
    finally:
        first.stopService()
        first._thread.join(10)
        fake.run_thread_calls()
    second = Store(path, reactor=fake)
    second.startService()  # the lock went with the first store
    second.stopService()
    second._thread.join(10)
    fake.run_thread_calls()


def test_manual_store_runs_work_when_flushed():
    """
    ManualStore (for deterministic tests) runs queued work, and the work its callbacks
    queue, only when flushed.
    """
    store = ManualStore(migrations=(*MIGRATIONS, EXTRA))
    order = []

    def then_b(key):
        order.append(key)
        store.run(put("b", 2)).addCallback(order.append)

    store.run(put("a", 1)).addCallback(then_b)
    assert order == []
    assert store.flush() == 2
    assert order == ["a", "b"]
    assert store.transactions == 2
    assert store.conn.execute("SELECT k FROM t ORDER BY k").fetchall() == [("a",), ("b",)]


def test_server_has_store_and_webhooks_children(tmp_path):
    """
    The server's children "store" and "webhooks" exist; the store is config.store.path and
    its directory is created when it starts.
    """
    from iradialer.tap import Options, makeService
    from tests.helpers import write_config

    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("store.sqlite", "data/dir/store.sqlite"))
    options = Options()
    options.parseOptions(["--config", str(path)])
    fake = ThreadedMemoryReactor()
    root = makeService(options, reactor=fake)
    store = root.getServiceNamed("store")
    webhooks = root.getServiceNamed("webhooks")
    assert webhooks.store is store
    assert store.path == tmp_path / "data" / "dir" / "store.sqlite"
    store.startService()
    try:
        assert store.path.exists()
    finally:
        store.stopService()
        store._thread.join(10)
        fake.run_thread_calls()
