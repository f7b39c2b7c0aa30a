"""The executor's journal: its claim on each intent and the outbox of what it sent, and the paper orders left
resting on the book, all in PostgreSQL so a restarted executor knows exactly what it already did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from polycopy.infra.postgres.connection import DatabaseClient

CLAIMED, SENT, DELIVERED = "claimed", "sent", "delivered"


@dataclass(frozen=True)
class JournalEntry:
    """An earlier claim on an intent: its state and, once sent, the reports it sent (plain JSON objects)."""

    state: str
    reports: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class RestingEntry:
    """A paper order resting on the book: its state (plain JSON) and the reports still to deliver."""

    intent_id: str
    state: dict[str, Any]
    outbox: list[dict[str, Any]]


class ExecutionJournal(DatabaseClient):
    """The executor's durable record per intent: claimed (before anything is sent) -> sent (its reports
    stored here, the outbox) -> delivered (the broker acknowledged them). A lost connection is retried with
    backoff until `should_stop()`: nothing is sent while the journal cannot say it is the first time."""

    def __init__(self, url: str, **retry: Any) -> None:
        super().__init__(url, autocommit=True, **retry)

    def claim(self, intent_id: str, order_id: str, mode: str) -> JournalEntry | None:
        """Claim an intent before anything is sent: None when newly claimed, else the earlier claim."""

        def run(conn: psycopg.Connection[Any]) -> JournalEntry | None:
            row = conn.execute(
                "INSERT INTO executor_journal (intent_id, order_id, mode, state) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (intent_id) DO NOTHING RETURNING intent_id",
                (intent_id, order_id, mode, CLAIMED),
            ).fetchone()
            return None if row is not None else _earlier_claim(conn, intent_id)

        return self._connection.run(run)

    def claim_sent(
        self,
        intent_id: str,
        order_id: str,
        mode: str,
        reports: Sequence[dict[str, Any]],
        resting: tuple[str, str, dict[str, Any]] | None = None,
    ) -> JournalEntry | None:
        """Claim an intent already executed in-process (paper: nothing left the process yet) together with
        its reports and resting order, as `claim` then `record_sent` would: one statement, so one round trip
        and all or nothing. Returns None when newly claimed (everything stored), else the earlier claim
        (nothing stored: the caller's execution is discarded)."""
        rest = (
            "INSERT INTO paper_resting_orders (intent_id, order_id, asset, state) "
            "SELECT intent_id, %s, %s, %s FROM claimed ON CONFLICT (intent_id) DO NOTHING"
        )
        statement = (
            "WITH claimed AS (INSERT INTO executor_journal (intent_id, order_id, mode, state, reports) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (intent_id) DO NOTHING RETURNING intent_id)"
            + (f", rested AS ({rest})" if resting is not None else "")
            + " SELECT intent_id FROM claimed"
        )
        params: list[Any] = [intent_id, order_id, mode, SENT, Jsonb(list(reports))]
        if resting is not None:
            params += [resting[0], resting[1], Jsonb(resting[2])]

        def run(conn: psycopg.Connection[Any]) -> JournalEntry | None:
            row = conn.execute(statement, params).fetchone()  # type: ignore[arg-type]
            return None if row is not None else _earlier_claim(conn, intent_id)

        return self._connection.run(run)

    def record_sent(
        self,
        intent_id: str,
        reports: Sequence[dict[str, Any]],
        resting: tuple[str, str, dict[str, Any]] | None = None,
    ) -> None:
        """Store the reports about to be published (state `sent`) and, for an order left resting on the
        book, `resting = (order_id, asset, state)`: one statement, so a restart finds both or neither."""
        statement = (
            "WITH sent AS (UPDATE executor_journal SET state = %s, reports = %s, updated_at = now() "
            "WHERE intent_id = %s RETURNING intent_id)"
        )
        params: list[Any] = [SENT, Jsonb(list(reports)), intent_id]
        if resting is not None:
            statement += (
                " INSERT INTO paper_resting_orders (intent_id, order_id, asset, state) "
                "SELECT intent_id, %s, %s, %s FROM sent ON CONFLICT (intent_id) DO NOTHING"
            )
            params += [resting[0], resting[1], Jsonb(resting[2])]
        else:
            statement += " SELECT intent_id FROM sent"
        self._connection.run(lambda conn: conn.execute(statement, params))  # type: ignore[arg-type]

    def mark_delivered(self, intent_ids: Sequence[str]) -> None:
        """The reports of these intents reached the broker: a re-delivered intent is now a plain duplicate."""
        if intent_ids:
            self._connection.run(
                lambda conn: conn.execute(
                    "UPDATE executor_journal SET state = %s, updated_at = now() "
                    "WHERE intent_id = ANY(%s) AND state = %s",
                    (DELIVERED, list(intent_ids), SENT),
                )
            )

    def open_resting(self) -> list[RestingEntry]:
        """Every paper order still resting, with the reports it still has to deliver."""

        def run(conn: psycopg.Connection[Any]) -> list[RestingEntry]:
            rows = conn.execute(
                "SELECT intent_id, state, outbox FROM paper_resting_orders WHERE open ORDER BY intent_id"
            ).fetchall()
            return [RestingEntry(str(intent_id), state, list(outbox)) for intent_id, state, outbox in rows]

        return self._connection.run(run)

    def update_resting(
        self, intent_id: str, state: dict[str, Any], outbox: Sequence[dict[str, Any]], *, open_: bool
    ) -> None:
        """Store a resting order's new state with the reports to publish about it (its outbox)."""
        self._connection.run(
            lambda conn: conn.execute(
                "UPDATE paper_resting_orders SET state = %s, outbox = outbox || %s, open = %s, "
                "updated_at = now() WHERE intent_id = %s",
                (Jsonb(state), Jsonb(list(outbox)), open_, intent_id),
            )
        )

    def clear_outbox(self, intent_ids: Sequence[str]) -> None:
        """The outboxes of these resting orders were delivered."""
        if intent_ids:
            self._connection.run(
                lambda conn: conn.execute(
                    "UPDATE paper_resting_orders SET outbox = '[]'::jsonb WHERE intent_id = ANY(%s)",
                    (list(intent_ids),),
                )
            )


def _earlier_claim(conn: psycopg.Connection[Any], intent_id: str) -> JournalEntry:
    """The claim that was there first (a claim made by a transaction not yet visible reads as `claimed`)."""
    existing = conn.execute(
        "SELECT state, reports FROM executor_journal WHERE intent_id = %s", (intent_id,)
    ).fetchone()
    return JournalEntry(str(existing[0]), existing[1]) if existing else JournalEntry(CLAIMED)
