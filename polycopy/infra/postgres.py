"""The one module that imports psycopg: connections, migrations, idempotent batch writes, executor journal,
read-only queries."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources.abc import Traversable
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)


class DatabaseError(RuntimeError):
    """PostgreSQL could not be reached or refused a statement."""


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """Open one connection; a clear error names the URL (without its password) when it fails."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as error:
        safe = url.split("@")[-1]
        raise DatabaseError(f"cannot connect to PostgreSQL at {safe}: {str(error).strip()}") from error


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


class BatchWriter:
    """Writes batches of rows in one transaction; conflicts on the primary key change nothing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def connect(self) -> None:
        """Open the connection (the sink does it at start, so a bad URL fails at once); idempotent."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url)

    def write(
        self,
        inserts: Mapping[str, Sequence[dict[str, Any]]],
        upserts: Mapping[str, tuple[str, str, Sequence[dict[str, Any]]]] | None = None,
    ) -> None:
        """Insert rows per table (`ON CONFLICT DO NOTHING`), then upsert rows that only move forward.

        `upserts[table] = (conflict_columns, guard_column, rows)`: a row replaces the stored one only when its
        `guard_column` is greater, so an old re-delivered event never rolls a row back. A key of several
        columns is written comma-separated (`"wallet_id,asset"`).
        """
        self.connect()
        conn = self._conn
        assert conn is not None
        try:
            with conn.transaction(), conn.cursor() as cursor:
                for table, rows in inserts.items():
                    if rows:
                        cursor.executemany(_insert_sql(table, list(rows[0])), rows)
                for table, (conflict, guard, rows) in (upserts or {}).items():
                    if rows:
                        cursor.executemany(_upsert_sql(table, list(rows[0]), conflict, guard), rows)
        except psycopg.Error as error:
            raise DatabaseError(f"batch write failed: {error}") from error

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _insert_sql(table: str, columns: list[str]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
    )


def _upsert_sql(table: str, columns: list[str], conflict: str, guard: str) -> sql.Composed:
    keys = conflict.split(",")
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns
        if c not in keys
    )
    return sql.SQL(
        "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT ({key}) DO UPDATE SET {updates} "
        "WHERE {t}.{guard} < EXCLUDED.{guard}"
    ).format(
        t=sql.Identifier(table),
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        vals=sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
        key=sql.SQL(", ").join(map(sql.Identifier, keys)),
        updates=updates,
        guard=sql.Identifier(guard),
    )


class ExecutionJournal:
    """The executor's durable claim per intent: claimed before sending, so no intent is ever sent twice."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def connect(self) -> None:
        """Open the connection (the executor does it at start, so a bad URL fails at once); idempotent."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url, autocommit=True)

    def _connection(self) -> psycopg.Connection[Any]:
        self.connect()
        assert self._conn is not None
        return self._conn

    def claim(self, intent_id: str, order_id: str, mode: str) -> str | None:
        """Claim an intent. Returns None when newly claimed, else the state of the earlier claim."""
        conn = self._connection()
        row = conn.execute(
            "INSERT INTO executor_journal (intent_id, order_id, mode, state) VALUES (%s, %s, %s, 'claimed') "
            "ON CONFLICT (intent_id) DO NOTHING RETURNING intent_id",
            (intent_id, order_id, mode),
        ).fetchone()
        if row is not None:
            return None
        existing = conn.execute(
            "SELECT state FROM executor_journal WHERE intent_id = %s", (intent_id,)
        ).fetchone()
        return str(existing[0]) if existing else "claimed"

    def mark(self, intent_id: str, state: str) -> None:
        self._connection().execute(
            "UPDATE executor_journal SET state = %s, updated_at = now() WHERE intent_id = %s",
            (state, intent_id),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


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
