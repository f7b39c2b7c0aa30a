"""Idempotent batch writes of the PostgreSQL sink: one transaction per batch, conflicts change nothing.

Rows go in by `COPY` into a temporary staging table per target table, then one `INSERT ... SELECT ... ON
CONFLICT` per table: PostgreSQL parses a whole batch in one stream, where an `INSERT` per row (even through
`executemany`'s pipeline) costs a statement's parse, bind and execute per row. The target tables' keys stay
the dedup, exactly as with per-row inserts.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from polycopy.infra.postgres.connection import DatabaseClient, DatabaseError

# What the server (or the driver, adapting a value) refuses in the data itself: a number out of range, a NUL
# in a text, a lone surrogate that UTF-8 cannot encode. Another batch without the offending row goes through.
DATA_ERRORS: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError, ValueError)

STAGE_PREFIX = "stage_"  # a target table's staging table: temporary, emptied at every commit


class RowsRejected(DatabaseError):  # noqa: N818 - reads as the outcome it reports
    """PostgreSQL refused the data of a batch (not the connection): a smaller batch may go through."""


class BatchWriter(DatabaseClient):
    """Writes batches of rows in one transaction; conflicts on the primary key change nothing. A lost
    connection is retried with backoff (the transaction runs again whole) until `should_stop()`."""

    def __init__(self, url: str, **retry: Any) -> None:
        super().__init__(url, autocommit=False, **retry)

    def write(
        self,
        inserts: Mapping[str, Sequence[dict[str, Any]]],
        upserts: Mapping[str, tuple[str, str, Sequence[dict[str, Any]]]] | None = None,
    ) -> None:
        """Insert rows per table (`ON CONFLICT DO NOTHING`), then upsert rows that only move forward.

        `upserts[table] = (conflict_columns, guard_column, rows)`: a row replaces the stored one only when its
        `guard_column` is greater, so an old re-delivered event never rolls a row back. A key of several
        columns is written comma-separated (`"wallet_id,asset"`); an upsert's rows must hold one row per key.
        Every row of a table has the same keys (its columns). Raises `RowsRejected` when the data was
        refused, `DatabaseError` for anything else but a lost connection (retried).
        """

        def transaction(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cursor:
                for table, rows in inserts.items():
                    if rows:
                        columns = list(rows[0])
                        _copy_to_stage(cursor, table, columns, rows)
                        cursor.execute(_insert_sql(table, columns))
                for table, (conflict, guard, rows) in (upserts or {}).items():
                    if rows:
                        columns = list(rows[0])
                        _copy_to_stage(cursor, table, columns, rows)
                        cursor.execute(_upsert_sql(table, columns, conflict, guard))

        try:
            self._connection.run(transaction)
        except DATA_ERRORS as error:
            raise RowsRejected(f"rows refused: {str(error).strip()}") from error
        except psycopg.Error as error:
            raise DatabaseError(f"batch write failed: {error}") from error


def _copy_to_stage(
    cursor: psycopg.Cursor[Any], table: str, columns: list[str], rows: Sequence[dict[str, Any]]
) -> None:
    """Stream `rows` into the table's staging table (created on first use in the session, like the target
    without its keys, so every row lands and the target's keys decide). Emptied again at commit; a rolled
    back transaction takes its rows (and a staging table it created) with it."""
    stage = sql.Identifier(STAGE_PREFIX + table)
    cursor.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        ).format(stage, sql.Identifier(table))
    )
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        stage, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    values_of = operator.itemgetter(*columns)  # a row's values in column order, at C speed
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(values_of(row) if len(columns) > 1 else (values_of(row),))


def _insert_sql(table: str, columns: list[str]) -> sql.Composed:
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
        sql.Identifier(table), names, names, sql.Identifier(STAGE_PREFIX + table)
    )


def _upsert_sql(table: str, columns: list[str], conflict: str, guard: str) -> sql.Composed:
    keys = conflict.split(",")
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns
        if c not in keys
    )
    return sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({key}) DO UPDATE SET {updates} "
        "WHERE {t}.{guard} < EXCLUDED.{guard}"
    ).format(
        t=sql.Identifier(table),
        cols=names,
        stage=sql.Identifier(STAGE_PREFIX + table),
        key=sql.SQL(", ").join(map(sql.Identifier, keys)),
        updates=updates,
        guard=sql.Identifier(guard),
    )
