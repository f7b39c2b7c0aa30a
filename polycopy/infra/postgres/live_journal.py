"""The executor's journal with its live orders: every live order still reconciled with the venue (or waiting
to be placed again) and the reports still to deliver about it, in PostgreSQL beside the intents' claims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from polycopy.infra.postgres.journal import ExecutionJournal


@dataclass(frozen=True)
class LiveEntry:
    """A live order still open: its state (plain JSON) and the reports it still has to deliver."""

    intent_id: str
    order_id: str
    state: dict[str, Any]
    outbox: list[dict[str, Any]]


class LiveExecutionJournal(ExecutionJournal):
    """`ExecutionJournal` plus the live orders table (one connection for both)."""

    def open_live(self) -> list[LiveEntry]:
        """Every live order still open, with the reports it still has to deliver."""

        def run(conn: psycopg.Connection[Any]) -> list[LiveEntry]:
            rows = conn.execute(
                "SELECT intent_id, order_id, state, outbox FROM live_orders WHERE open ORDER BY intent_id"
            ).fetchall()
            return [LiveEntry(str(i), str(o), state, list(outbox)) for i, o, state, outbox in rows]

        return self._connection.run(run)

    def save_live(
        self,
        intent_id: str,
        order_id: str,
        wallet_id: str,
        state: dict[str, Any],
        outbox: Sequence[dict[str, Any]] = (),
        *,
        open_: bool = True,
    ) -> None:
        """Store a live order's new state, appending `outbox` to the reports it still has to deliver."""
        self._connection.run(
            lambda conn: conn.execute(
                "INSERT INTO live_orders (intent_id, order_id, wallet_id, state, outbox, open) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (intent_id) DO UPDATE SET "
                "state = EXCLUDED.state, outbox = live_orders.outbox || EXCLUDED.outbox, "
                "open = EXCLUDED.open, updated_at = now()",
                (intent_id, order_id, wallet_id, Jsonb(state), Jsonb(list(outbox)), open_),
            )
        )

    def clear_live_outbox(self, intent_ids: Sequence[str]) -> None:
        """The outboxes of these live orders were delivered."""
        if intent_ids:
            self._connection.run(
                lambda conn: conn.execute(
                    "UPDATE live_orders SET outbox = '[]'::jsonb WHERE intent_id = ANY(%s)",
                    (list(intent_ids),),
                )
            )
