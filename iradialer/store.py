"""
The SQLite store every part of the server keeps its durable state in.

One file under the data directory, in WAL mode.  When a L{Store.run} Deferred fires, the
work's writes are committed: they survive a crash of the process, and (for durable work, the
default) a crash of the machine too, the commit having been synced to disk.  All database
work happens on one dedicated thread, so the reactor never waits on the disk; work queued
while a transaction is being written is taken in one batch, each piece in its own savepoint,
and committed together (group commit): thousands of small writes a second cost a few syncs.

Work that may be lost to a power failure without harm (bookkeeping that is redone, like
marking a webhook delivered: at worst it is delivered again) can say C{durable=False}; a
batch of such work commits without waiting for the disk (C{synchronous=NORMAL}), and the next
durable commit syncs it too.

The schema is versioned: L{MIGRATIONS} is the ordered list of changes, and opening a store
applies the ones it lacks, each in its own transaction.  A part that needs tables appends a
L{Migration} with the next version number; nothing else changes.
"""

from __future__ import annotations

import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

T = TypeVar("T")


@dataclass(frozen=True)
class Migration:
    """
    One step of the schema: C{sql} (any number of statements) takes the database from
    C{version - 1} to C{version}.
    """

    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "webhook outbox, per-stream sequences and dead letters",
        """
        -- One row per ordering stream ("call:<uuid>", "tenant:<id>", "fallback:<id>").
        -- next_attempt_at is NULL exactly when the stream has nothing in the outbox; claimed
        -- is 1 while the running server is delivering the stream's oldest event.
        CREATE TABLE webhook_streams (
            stream TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            last_sequence INTEGER NOT NULL,
            next_attempt_at REAL,
            claimed INTEGER NOT NULL DEFAULT 0,
            last_event_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX webhook_streams_due ON webhook_streams (tenant_id, next_attempt_at)
            WHERE claimed = 0 AND next_attempt_at IS NOT NULL;
        CREATE INDEX webhook_streams_idle ON webhook_streams (last_event_at)
            WHERE next_attempt_at IS NULL;

        -- Events not yet delivered; body is exactly what is signed and POSTed.
        CREATE TABLE webhook_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stream TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            url TEXT NOT NULL,
            event_id TEXT NOT NULL,
            event TEXT NOT NULL,
            body BLOB NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX webhook_outbox_stream ON webhook_outbox (stream, id);

        -- Events that used up their attempts (id is their outbox id).
        CREATE TABLE webhook_dead_letters (
            id INTEGER PRIMARY KEY,
            stream TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            url TEXT NOT NULL,
            event_id TEXT NOT NULL,
            event TEXT NOT NULL,
            body BLOB NOT NULL,
            attempts INTEGER NOT NULL,
            last_error TEXT,
            created_at REAL NOT NULL,
            dead_at REAL NOT NULL
        );
        CREATE INDEX webhook_dead_letters_dead_at ON webhook_dead_letters (dead_at);
        """,
    ),
    Migration(
        2,
        "call records, CPA and ASR configurations (iradialer.dialer.records)",
        """
        CREATE TABLE cpa_configs (
            tenant_id TEXT NOT NULL,
            config_name TEXT NOT NULL,
            params TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (tenant_id, config_name)
        );
        CREATE TABLE asr_configs (
            tenant_id TEXT NOT NULL,
            config_name TEXT NOT NULL,
            params TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (tenant_id, config_name)
        );
        CREATE TABLE calls (
            call_uuid TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            node TEXT NOT NULL,
            live INTEGER NOT NULL,
            created_at REAL NOT NULL,
            record TEXT NOT NULL
        );
        CREATE INDEX calls_live ON calls (live) WHERE live = 1;
        CREATE INDEX calls_tenant ON calls (tenant_id, created_at);
        """,
    ),
)


class StoreError(Exception):
    """
    The store cannot be opened or used (wrong schema, locked by another process, closed).
    """


def check_migrations(migrations: Sequence[Migration]) -> None:
    """
    @raise ValueError: the versions are not 1, 2, 3, ... in order.
    """
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(
                f"migration {migration.description!r} has version {migration.version}, "
                f"expected {expected}: versions count up from 1 without gaps"
            )


def open_database(path: Path | str, migrations: Sequence[Migration]) -> sqlite3.Connection:
    """
    Open (creating it if needed) the database at C{path} and bring its schema up to date.

    The connection is in autocommit mode (C{isolation_level=None}): transactions are explicit.

    @raise StoreError: the file holds a newer schema than C{migrations} knows, or a migration
        failed (it is rolled back; the file keeps its previous version).
    """
    check_migrations(migrations)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # execute_batch lowers it for some batches
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        _migrate(conn, migrations, str(path))
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def _migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], where: str) -> None:
    current = schema_version(conn)
    if current > len(migrations):
        raise StoreError(
            f"{where} has schema version {current}, newer than this iradialer knows "
            f"({len(migrations)}); refusing to open it"
        )
    for migration in migrations[current:]:
        try:
            # executescript commits first, so the transaction is spelled out in the script.
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\n;\n"
                f"PRAGMA user_version = {migration.version};\nCOMMIT;"
            )
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(
                f"{where}: migration {migration.version} ({migration.description}) failed: {e}"
            ) from e
        Store.log.info(
            "Store {path} migrated to version {version}: {description}",
            path=where,
            version=migration.version,
            description=migration.description,
        )


@dataclass
class _Job:
    work: Callable[[sqlite3.Connection], Any]
    deferred: Deferred[Any]
    durable: bool = True


_Outcome = tuple[Deferred[Any], bool, Any]  # (deferred, succeeded, result or Failure)


def execute_batch(conn: sqlite3.Connection, jobs: Sequence[_Job]) -> list[_Outcome]:
    """
    Run C{jobs} in one transaction; a job only succeeds if the commit does.

    The jobs run one after another in the transaction; if one raises, the transaction is
    rolled back and the batch run again with each job in its own savepoint
    (L{execute_isolated}), so the failing job leaves no trace and the others still commit.
    A job may therefore run twice: it must act only through the connection.
    """
    durable = any(job.durable for job in jobs)
    try:
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        failure = _failure()
        return [(job.deferred, False, failure) for job in jobs]
    try:
        values = [job.work(conn) for job in jobs]
    except Exception:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return execute_isolated(conn, jobs)
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        failure = _failure()
        _roll_back(conn)
        return [(job.deferred, False, failure) for job in jobs]
    return [(job.deferred, True, value) for job, value in zip(jobs, values)]


def execute_isolated(conn: sqlite3.Connection, jobs: Sequence[_Job]) -> list[_Outcome]:
    """
    Run C{jobs} in one transaction, each in its own savepoint: a job that raises leaves no
    trace and does not disturb the others.
    """
    results: list[tuple[bool, Any]] = []
    uncommitted: list[int] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for job in jobs:
            conn.execute("SAVEPOINT job")
            try:
                value = job.work(conn)
            except Exception:
                failure = _failure()
                results.append((False, failure))
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                else:
                    # Some errors (disk full, I/O) make SQLite roll back the whole
                    # transaction: what ran before in this batch will not be committed.
                    for index in uncommitted:
                        results[index] = (False, failure)
                    uncommitted.clear()
                    conn.execute("BEGIN IMMEDIATE")
            else:
                conn.execute("RELEASE job")
                uncommitted.append(len(results))
                results.append((True, value))
        conn.execute("COMMIT")
    except sqlite3.Error:
        failure = _failure()
        _roll_back(conn)
        for index in uncommitted:
            results[index] = (False, failure)
        results.extend((False, failure) for _ in jobs[len(results) :])
    return [(job.deferred, ok, value) for job, (ok, value) in zip(jobs, results)]


def _roll_back(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _failure() -> Failure:
    failure = Failure()
    failure.cleanFailure()
    return failure


def _deliver(outcomes: list[_Outcome]) -> None:
    for deferred, succeeded, value in outcomes:
        if succeeded:
            deferred.callback(value)
        else:
            deferred.errback(value)


class Store(Service):
    """
    The database, used through L{run} from the reactor thread.

    Opening (and migrating) happens in L{startService}, so a store that cannot be opened stops
    the server at start with the reason.  A lock file beside the database keeps a second
    process from delivering the same outbox.

    @param reactor: provides C{callLater} and C{callFromThread}: jobs given during one turn
        of the reactor are handed to the thread together (one wake-up), and results come
        back through C{callFromThread}.
    @param max_batch: about the most jobs committed in one transaction.
    """

    log = Logger()

    def __init__(
        self,
        path: Path,
        migrations: Sequence[Migration] = MIGRATIONS,
        *,
        reactor: Any,
        max_batch: int = 2000,
    ) -> None:
        check_migrations(migrations)
        self.path = Path(path)
        self.migrations = tuple(migrations)
        self._reactor = reactor
        self._max_batch = max_batch
        self._outgoing: list[_Job] = []
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._closed = False
        self._stopped: Deferred[None] | None = None
        self.transactions = 0
        self.jobs = 0

    def run(self, work: Callable[[sqlite3.Connection], T], durable: bool = True) -> Deferred[T]:
        """
        Run C{work(connection)} on the store's thread inside one transaction (shared with
        the other work of its batch); fire with its result once committed (and, when
        C{durable}, synced to disk), or fail with what it raised (its writes then undone).
        Jobs run in the order they were given.  C{work} must act only through the
        connection (it may be run twice, see L{execute_batch}), must not commit, and must not
        touch reactor state: it runs on another thread.
        """
        if self._closed:
            return fail(StoreError(f"the store {self.path} is closed"))
        deferred: Deferred[T] = Deferred()
        self._outgoing.append(_Job(work, deferred, durable))
        if len(self._outgoing) == 1:
            self._reactor.callLater(0, self._hand_over)
        return deferred

    def _hand_over(self) -> None:
        if self._outgoing:
            self._queue.put(self._outgoing)
            self._outgoing = []

    def startService(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.path)
        try:
            conn = open_database(self.path, self.migrations)
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        self._closed = False
        self._thread = threading.Thread(
            target=self._serve, args=(conn,), name=f"store {self.path.name}", daemon=True
        )
        self._thread.start()
        super().startService()
        self.log.info("Store open: {path}", path=str(self.path))

    def stopService(self) -> Deferred[None]:
        """
        Finish the jobs already queued, then close; later jobs fail with L{StoreError}.
        """
        super().stopService()
        self._closed = True
        self._stopped = Deferred()
        self._hand_over()
        if self._thread is None or not self._thread.is_alive():
            self._closed_down()  # never started: only fail what was queued
        else:
            self._queue.put(None)
        return self._stopped

    def status(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "queued": len(self._outgoing) + self._queue.qsize(),
            "transactions": self.transactions,
            "jobs": self.jobs,
        }

    def _serve(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                batch = [] if first is None else list(first)
                stop = first is None
                while not stop and len(batch) < self._max_batch:
                    try:
                        jobs = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if jobs is None:
                        stop = True
                    else:
                        batch.extend(jobs)
                if batch:
                    try:
                        outcomes = execute_batch(conn, batch)
                    except Exception:
                        failure = _failure()
                        outcomes = [(job.deferred, False, failure) for job in batch]
                    self.transactions += 1
                    self.jobs += len(batch)
                    self._reactor.callFromThread(_deliver, outcomes)
                if stop:
                    break
        finally:
            conn.close()
            self._reactor.callFromThread(self._closed_down)

    def _closed_down(self) -> None:
        while True:
            try:
                jobs = self._queue.get_nowait()
            except queue.Empty:
                break
            for job in jobs or ():
                job.deferred.errback(StoreError(f"the store {self.path} is closed"))
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.log.info("Store closed: {path}", path=str(self.path))
        if self._stopped is not None:
            self._stopped.callback(None)


def _lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"{path} is in use by another process (lock {lock_path})") from None
    return fd


class ManualStore(Store):
    """
    A store whose jobs run only when L{flush} is called, on the calling thread: for
    deterministic tests (like C{StubTreq.flush}).  The database is in memory unless a path is
    given; the same migrations and batching apply.
    """

    def __init__(self, path: Path | str = ":memory:", migrations: Sequence[Migration] = MIGRATIONS):
        super().__init__(Path(path), migrations, reactor=None)
        self.conn = open_database(path, self.migrations)
        self._pending: list[_Job] = []

    def run(self, work: Callable[[sqlite3.Connection], T], durable: bool = True) -> Deferred[T]:
        if self._closed:
            return fail(StoreError("the store is closed"))
        deferred: Deferred[T] = Deferred()
        self._pending.append(_Job(work, deferred, durable))
        return deferred

    def flush(self) -> int:
        """
        Run every queued job, including jobs queued by the callbacks of earlier ones, one
        batch at a time; return how many ran.
        """
        count = 0
        while self._pending:
            batch, self._pending = self._pending, []
            outcomes = execute_batch(self.conn, batch)
            self.transactions += 1
            self.jobs += len(batch)
            count += len(batch)
            _deliver(outcomes)
        return count

    def startService(self) -> None:
        Service.startService(self)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        self.flush()
        self._closed = True
        return succeed(None)
