"""The live order gateway the executor calls: every venue call behind its endpoint group's circuit breaker,
placement idempotent by construction (one intent, one signed order, one hash), and a start-up resolution of
intents that were claimed but never acknowledged. Synchronous, like the executor's consume loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from polycopy.infra.metrics import BREAKER_ENDPOINTS
from processors.core.breaker import BreakerBoard, BreakerChange
from processors.core.reconcile import placement_from_fills, placement_from_order
from schemas.orders import OrderIntent
from schemas.venue import (
    CallOutcome,
    CancelResult,
    LookupKind,
    OrderFill,
    OrderLookup,
    Placement,
    PlacementKind,
    RejectReason,
    VenueOrder,
)

log = logging.getLogger(__name__)

# The endpoint groups, one breaker each; their names are metric labels, so the metrics bundle lists them.
ENDPOINT_GROUPS = BREAKER_ENDPOINTS
PLACE, READ, CANCEL = ENDPOINT_GROUPS
RESOLVE_LOOKBACK_MS = 60_000  # account trades read from this long before the intent was created


class OrderGateway(Protocol):
    """What the executor needs of a venue (`LiveOrderGateway`; paper execution needs none of it)."""

    def order_id_for(self, intent: OrderIntent) -> str:
        """The venue's id of the intent's order, known before sending (journal it before `place`)."""
        ...

    def place(self, intent: OrderIntent) -> Placement:
        """Send the intent's order once. DEFERRED: not sent or not taken, send later (same order). UNKNOWN:
        maybe placed; reconciliation resolves it, never a new order."""
        ...

    def look_up(self, order_id: str) -> OrderLookup: ...

    def open_orders(self) -> list[VenueOrder] | None:
        """The account's resting orders; None when the venue could not be asked."""
        ...

    def fills_since(self, after_ms: int) -> list[OrderFill] | None:
        """Our orders' fills (each with its settlement status) since `after_ms`; None when unavailable."""
        ...

    def cancel(self, order_ids: Sequence[str]) -> CancelResult: ...

    def resolve_unsent(self, intent: OrderIntent, *, resend: bool = True) -> Placement:
        """At start-up, for an intent claimed but never acknowledged: what became of its order."""
        ...


class VenueOrderClient(Protocol):
    """The adapter's blocking client (`polycopy.polymarket.live.LiveClobClient`, or a fake in tests)."""

    def order_id_for(self, intent: OrderIntent) -> str: ...

    def refusal_for(self, intent: OrderIntent) -> str | None: ...

    def place(self, intent: OrderIntent) -> tuple[Placement, CallOutcome]: ...

    def look_up(self, order_id: str) -> tuple[OrderLookup, CallOutcome]: ...

    def open_orders(self, asset: str | None = None) -> tuple[list[VenueOrder] | None, CallOutcome]: ...

    def fills_since(
        self, after_ms: int, order_id: str | None = None
    ) -> tuple[list[OrderFill] | None, CallOutcome]: ...

    def cancel(self, order_ids: Sequence[str]) -> tuple[CancelResult, CallOutcome]: ...


class LiveOrderGateway:
    """`OrderGateway` for the live venue: breakers per endpoint group, changes reported to `on_change`."""

    def __init__(
        self,
        client: VenueOrderClient,
        breakers: BreakerBoard | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerChange], None] | None = None,
    ) -> None:
        self._client, self._clock = client, clock
        self.breakers = breakers or BreakerBoard()
        self._on_change = on_change

    def order_id_for(self, intent: OrderIntent) -> str:
        return self._client.order_id_for(intent)

    def place(self, intent: OrderIntent) -> Placement:
        order_id = self._client.order_id_for(intent)
        refusal = self._client.refusal_for(intent)
        if refusal is not None:  # the venue would refuse it for sure: do not spend a request on it
            return Placement(
                order_id, PlacementKind.REJECTED, reject_reason=RejectReason.INVALID, detail=refusal
            )
        wait = self._admit(PLACE)
        if wait is not None:
            return Placement(order_id, PlacementKind.DEFERRED, detail=wait[1], retry_after_secs=wait[0])
        placement, outcome = self._client.place(intent)
        self._record(PLACE, outcome)
        if placement.kind is PlacementKind.DUPLICATE:
            # The venue holds this very order (same hash): ours, placed by an earlier attempt. Read it back.
            lookup = self.look_up(order_id)
            if lookup.kind is LookupKind.FOUND and lookup.order is not None:
                return placement_from_order(lookup.order, "already at the venue (duplicate hash)")
        return placement

    def look_up(self, order_id: str) -> OrderLookup:
        wait = self._admit(READ)
        if wait is not None:
            return OrderLookup(LookupKind.UNAVAILABLE, detail=wait[1])
        lookup, outcome = self._client.look_up(order_id)
        self._record(READ, outcome)
        return lookup

    def open_orders(self) -> list[VenueOrder] | None:
        if self._admit(READ) is not None:
            return None
        orders, outcome = self._client.open_orders()
        self._record(READ, outcome)
        return orders

    def fills_since(self, after_ms: int) -> list[OrderFill] | None:
        if self._admit(READ) is not None:
            return None
        fills, outcome = self._client.fills_since(after_ms)
        self._record(READ, outcome)
        return fills

    def cancel(self, order_ids: Sequence[str]) -> CancelResult:
        if not order_ids:
            return CancelResult()
        wait = self._admit(CANCEL)
        if wait is not None:
            return CancelResult(
                ok=False, detail=wait[1], not_cancelled=tuple((i, wait[1]) for i in order_ids)
            )
        result, outcome = self._client.cancel(order_ids)
        self._record(CANCEL, outcome)
        return result

    def resolve_unsent(self, intent: OrderIntent, *, resend: bool = True) -> Placement:
        """Look the intent's order up (by its hash); if the venue has never heard of it and the account's
        trades do not show it, send the very same order again when `resend` (a duplicate answer then proves
        it was there after all). An unanswered look-up leaves it UNKNOWN: never a different order."""
        order_id = self._client.order_id_for(intent)
        lookup = self.look_up(order_id)
        if lookup.kind is LookupKind.FOUND and lookup.order is not None:
            return placement_from_order(lookup.order, "found at the venue at start-up")
        if lookup.kind is LookupKind.UNAVAILABLE:
            return Placement(order_id, PlacementKind.UNKNOWN, detail=f"look-up unavailable: {lookup.detail}")
        fills = self.fills_since(intent.created_at_ms - RESOLVE_LOOKBACK_MS)
        if fills is None:
            return Placement(order_id, PlacementKind.UNKNOWN, detail="account trades unavailable")
        mine = [fill for fill in fills if fill.order_id == order_id]
        if mine:
            return placement_from_fills(order_id, mine, "found in the account's trades at start-up")
        if not resend:
            return Placement(order_id, PlacementKind.DEFERRED, detail="not at the venue; not resent")
        return self.place(intent)

    def _admit(self, group: str) -> tuple[float, str] | None:
        admission, change = self.breakers.admit(group, self._clock())
        self._notify(change)
        return None if admission.allowed else (admission.wait_secs, f"breaker {group}: {admission.reason}")

    def _record(self, group: str, outcome: CallOutcome) -> None:
        self._notify(self.breakers.record(group, outcome, self._clock()))

    def _notify(self, change: BreakerChange | None) -> None:
        if change is None:
            return
        log.warning(
            "venue breaker %s: %s -> %s (%s)", change.group, change.previous, change.current, change.reason
        )
        if self._on_change is not None:
            self._on_change(change)
