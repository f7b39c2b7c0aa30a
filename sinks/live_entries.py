"""How the executor's journal keeps a live order: the journal's live part, and a tracked order or a deferred
intent as the plain JSON of its row, and back (`restore`), so a restarted executor takes every open order up
again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from polycopy.infra.postgres import LiveEntry
from processors.core.reconcile import KnownOrder
from schemas.orders import OrderIntent
from sinks.reconciler import TrackedOrder

TRACKED, DEFERRED = "tracked", "deferred"


class LiveJournal(Protocol):
    """The journal's live-order part (`polycopy.infra.postgres.LiveExecutionJournal`, or a fake in tests)."""

    def open_live(self) -> list[LiveEntry]: ...

    def save_live(
        self,
        intent_id: str,
        order_id: str,
        wallet_id: str,
        state: dict[str, Any],
        outbox: Sequence[dict[str, Any]] = (),
        *,
        open_: bool = True,
    ) -> None: ...

    def clear_live_outbox(self, intent_ids: Sequence[str]) -> None: ...


@dataclass
class DeferredIntent:
    """An intent the venue did not take yet (breaker open, 425, 429, cancel-only): the same order goes again
    at `retry_at_ms`."""

    intent: OrderIntent
    order_id: str
    retry_at_ms: int


def tracked_state(tracked: TrackedOrder) -> dict[str, Any]:
    """A tracked order as plain JSON for the journal."""
    known = tracked.known
    return {
        "phase": TRACKED,
        "intent": tracked.intent.model_dump(mode="json"),
        "sent_at_ms": tracked.sent_at_ms,
        "matched": str(known.matched),
        "confirmed": str(known.confirmed),
        "accepted": known.accepted,
        "finished": known.finished,
        "not_found_count": tracked.not_found_count,
        "lost": tracked.lost,
    }


def deferred_state(deferred: DeferredIntent) -> dict[str, Any]:
    """A deferred intent as plain JSON for the journal."""
    return {
        "phase": DEFERRED,
        "intent": deferred.intent.model_dump(mode="json"),
        "retry_at_ms": deferred.retry_at_ms,
    }


def restore(entry: LiveEntry) -> TrackedOrder | DeferredIntent:
    """The tracked order or deferred intent a journal row holds."""
    state = entry.state
    intent = OrderIntent.model_validate(state["intent"])
    if state["phase"] == DEFERRED:
        return DeferredIntent(intent, entry.order_id, int(state["retry_at_ms"]))
    known = KnownOrder(
        entry.order_id,
        intent.size,
        matched=Decimal(state["matched"]),
        confirmed=Decimal(state["confirmed"]),
        accepted=bool(state["accepted"]),
        finished=bool(state["finished"]),
    )
    return TrackedOrder(
        intent,
        entry.order_id,
        known,
        int(state["sent_at_ms"]),
        int(state["not_found_count"]),
        bool(state["lost"]),
    )
