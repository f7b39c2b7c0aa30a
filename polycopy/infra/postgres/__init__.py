"""The one package that imports psycopg: connections that reconnect, migrations, the sink's idempotent batch
writes, the executor's journal and read-only queries. Callers import from here."""

from polycopy.infra.postgres.connection import (
    Backoff,
    DatabaseError,
    DatabaseUnavailable,
    ResilientConnection,
    connect,
    create_database,
    drop_database,
    migrate,
    migration_files,
    query,
    query_rows,
    safe_url,
)
from polycopy.infra.postgres.journal import (
    CLAIMED,
    DELIVERED,
    SENT,
    ExecutionJournal,
    JournalEntry,
    RestingEntry,
)
from polycopy.infra.postgres.live_journal import LiveEntry, LiveExecutionJournal
from polycopy.infra.postgres.writer import BatchWriter, RowsRejected

__all__ = [
    "CLAIMED",
    "DELIVERED",
    "SENT",
    "Backoff",
    "BatchWriter",
    "DatabaseError",
    "DatabaseUnavailable",
    "ExecutionJournal",
    "JournalEntry",
    "LiveEntry",
    "LiveExecutionJournal",
    "ResilientConnection",
    "RestingEntry",
    "RowsRejected",
    "connect",
    "create_database",
    "drop_database",
    "migrate",
    "migration_files",
    "query",
    "query_rows",
    "safe_url",
]
