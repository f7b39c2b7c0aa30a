"""Idempotent batch writes of the PostgreSQL sink: one transaction per batch, conflicts change nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from polycopy.infra.postgres.connection import Backoff, DatabaseError, ResilientConnection

START_WAIT_SECS = 60.0  # how long a component starting while the database (re)starts waits for it

# What the server (or the driver, adapting a value) refuses in the data itself: a number out of range, a NUL
# in a text, a lone surrogate that UTF-8 cannot encode. Another batch without the offending row goes through.
DATA_ERRORS: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError, ValueError)


class RowsRejected(DatabaseError):  # noqa: N818 - reads as the outcome it reports
    """PostgreSQL refused the data of a batch (not the connection): a smaller batch may go through."""


class BatchWriter:
    """Writes batches of rows in one transaction; conflicts on the primary key change nothing. A lost
    connection is retried with backoff (the transaction runs again whole) until `should_stop()`."""

    def __init__(
        self,
        url: str,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.url = url
        self._connection = ResilientConnection(
            url, autocommit=False, should_stop=should_stop, backoff=backoff, sleep=sleep, on_retry=on_retry
        )

    @property
    def reconnects(self) -> int:
        return self._connection.reconnects

    def connect(self) -> None:
        """Open the connection (the sink does it at start, so a bad URL fails soon); idempotent."""
        self._connection.open(START_WAIT_SECS)

    def write(
        self,
        inserts: Mapping[str, Sequence[dict[str, Any]]],
        upserts: Mapping[str, tuple[str, str, Sequence[dict[str, Any]]]] | None = None,
    ) -> None:
        """Insert rows per table (`ON CONFLICT DO NOTHING`), then upsert rows that only move forward.

        `upserts[table] = (conflict_columns, guard_column, rows)`: a row replaces the stored one only when its
        `guard_column` is greater, so an old re-delivered event never rolls a row back. A key of several
        columns is written comma-separated (`"wallet_id,asset"`). Raises `RowsRejected`
        when the data was refused, `DatabaseError` for anything else but a lost connection (retried).
        """

        def transaction(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cursor:
                for table, rows in inserts.items():
                    if rows:
                        cursor.executemany(_insert_sql(table, list(rows[0])), rows)
                for table, (conflict, guard, rows) in (upserts or {}).items():
                    if rows:
                        cursor.executemany(_upsert_sql(table, list(rows[0]), conflict, guard), rows)

        try:
            self._connection.run(transaction)
        except DATA_ERRORS as error:
            raise RowsRejected(f"rows refused: {str(error).strip()}") from error
        except psycopg.Error as error:
            raise DatabaseError(f"batch write failed: {error}") from error

    def close(self) -> None:
        self._connection.close()


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
