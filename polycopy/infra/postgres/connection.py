"""Connections to PostgreSQL: one-off connections and queries, migrations, test databases, and the
long-lived connection of a component that reconnects with backoff when the database goes away."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

T = TypeVar("T")


class DatabaseError(RuntimeError):
    """PostgreSQL could not be reached or refused a statement."""


class DatabaseUnavailable(DatabaseError):  # noqa: N818 - reads as the state it reports
    """PostgreSQL could not be reached (and the component was asked to stop, or ran out of start-up time)."""


def safe_url(url: str) -> str:
    """The URL without its credentials, for messages and logs."""
    return url.split("@")[-1]


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """Open one connection; a clear error names the URL (without its password) when it fails."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {safe_url(url)}: {str(error).strip()}"
        ) from error


def is_connection_error(error: BaseException) -> bool:
    """True for a lost or refused connection (retry on a new one); False for what the server refused."""
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError | DatabaseUnavailable)


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnection attempts: `initial` doubling up to `maximum` seconds."""

    initial: float = 0.2
    maximum: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.initial * 2**attempt, self.maximum))


class ResilientConnection:
    """A component's one connection. `run(operation)` runs on it; a lost connection (a database restart, a
    network cut) is dropped and the operation run again on a new one, with backoff, until it succeeds or
    `should_stop()` says the component is stopping. Operations must therefore be idempotent (ours are:
    keyed writes, `ON CONFLICT`, whole transactions)."""

    def __init__(
        self,
        url: str,
        *,
        autocommit: bool,
        should_stop: Callable[[], bool] = lambda: False,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.url = url
        self._autocommit, self._should_stop = autocommit, should_stop
        self._backoff = backoff or Backoff()
        self._sleep, self._on_retry = sleep, on_retry
        self._conn: psycopg.Connection[Any] | None = None
        self.reconnects = 0

    def open(self, wait_secs: float = 0.0) -> None:
        """Connect now, retrying for up to `wait_secs` (a component starting while the database restarts);
        a database still unreachable then raises `DatabaseUnavailable`. Idempotent."""
        deadline = time.monotonic() + wait_secs
        attempt = 0
        while self._conn is None or self._conn.closed:
            try:
                self._conn = connect(self.url, autocommit=self._autocommit)
            except DatabaseUnavailable:
                if time.monotonic() >= deadline or self._should_stop():
                    raise
                self._wait(attempt, "waiting for PostgreSQL to start")
                attempt += 1

    def run(self, operation: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`operation(connection)`, again on a new connection after each lost one."""
        attempt = 0
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.url, autocommit=self._autocommit)
                return operation(self._conn)
            except Exception as error:
                if not is_connection_error(error):
                    raise
                self._drop()
                if self._should_stop():
                    raise DatabaseUnavailable(
                        f"PostgreSQL at {safe_url(self.url)} unavailable: {error}"
                    ) from error
                if self._on_retry is not None:
                    self._on_retry(error)
                self._wait(attempt, f"PostgreSQL unavailable ({str(error).strip()[:200]}); retrying")
                attempt += 1
                self.reconnects += 1

    def close(self) -> None:
        self._drop()

    def _wait(self, attempt: int, message: str) -> None:
        delay = self._backoff.delay(attempt)
        log.warning("%s in %.1f s (%s)", message, delay, safe_url(self.url))
        self._sleep(delay)

    def _drop(self) -> None:
        if self._conn is not None:
            # A connection already broken may fail to close; it is gone either way.
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


class DatabaseClient:
    """The base of a component that keeps one `ResilientConnection` (the sink's writer, the executor's
    journal): built from the URL and the retry policy, opened at start so a bad URL fails soon, closed at
    the end."""

    START_WAIT_SECS = 60.0  # how long a component starting while the database (re)starts waits for it

    def __init__(
        self,
        url: str,
        *,
        autocommit: bool,
        should_stop: Callable[[], bool] = lambda: False,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.url = url
        self._connection = ResilientConnection(
            url,
            autocommit=autocommit,
            should_stop=should_stop,
            backoff=backoff,
            sleep=sleep,
            on_retry=on_retry,
        )

    @property
    def reconnects(self) -> int:
        return self._connection.reconnects

    def connect(self) -> None:
        """Open the connection, waiting up to `START_WAIT_SECS` for a database that is (re)starting;
        idempotent."""
        self._connection.open(self.START_WAIT_SECS)

    def close(self) -> None:
        self._connection.close()


def create_database(admin_url: str, name: str) -> str:
    """Create a database (for tests and fresh installs) and return its URL; an existing one is kept."""
    with connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database, disconnecting its sessions."""
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def migration_files(folder: Traversable) -> list[tuple[str, str]]:
    """(name, SQL) of every `.sql` file in `folder`, in name order."""
    return sorted(
        (entry.name, entry.read_text()) for entry in folder.iterdir() if entry.name.endswith(".sql")
    )


def migrate(url: str, folder: Traversable) -> list[str]:
    """Apply the migrations in `folder` not yet applied; returns the names applied.

    The owner of the tables passes its folder (`sinks.MIGRATIONS`): infrastructure never reads upward.
    """
    applied = []
    with connect(url) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("SELECT pg_advisory_xact_lock(7270)")  # two migrators never race
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        for name, text in migration_files(folder):
            if name in done:
                continue
            conn.execute(text)
            conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
            applied.append(name)
        conn.commit()
    return applied


def query(url: str, statement: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one read-only query and return all rows (for summaries, the CLI and tests)."""
    with connect(url) as conn:
        return list(conn.execute(statement, tuple(params)).fetchall())  # type: ignore[arg-type]


def query_rows(
    url: str, statement: str, params: Mapping[str, Any] | Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """Run one query in a read-only session and return its rows as dicts (column name -> value).

    The session itself is read-only, so a reader that must never write (the MCP server) cannot, whatever the
    statement says.
    """
    from psycopg.rows import dict_row

    try:
        with connect(url) as conn:
            conn.read_only = True  # the transaction psycopg begins is READ ONLY
            with conn.cursor(row_factory=dict_row) as cursor:
                cursor.execute(statement, params)  # type: ignore[arg-type]
                return list(cursor.fetchall())
    except psycopg.Error as error:
        raise DatabaseError(f"query failed: {str(error).strip()}") from error
