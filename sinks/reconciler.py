"""Reconciliation passes over the live orders that are not settled yet: each order looked up, the account's
trades read once per pass, the lost-order rule applied, and what changed turned into execution reports.

The venue's authenticated user channel only shortens the delay: the orders its events name get a pass of
their own at once (`named`), through the same look-ups and pure rules (`processors.core.reconcile`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from polycopy.infra.kafka import now_ms
from processors.core.ids import build_report_id
from processors.core.lost_orders import (
    LOST_AFTER_NOT_FOUND,
    LookupVerdict,
    LostVerdict,
    decide_lost,
    observe_lookup,
)
from processors.core.reconcile import (
    KnownOrder,
    Observation,
    advance_known,
    observe_placement,
    reconcile_order,
)
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, OrderType, ReportKind
from schemas.venue import LookupKind, OrderLookup, Placement
from sinks.gateway import RESOLVE_LOOKBACK_MS, OrderGateway

log = logging.getLogger(__name__)


@dataclass
class TrackedOrder:
    """A live order being reconciled: its intent, its venue id, what was reported, the not-found count."""

    intent: OrderIntent
    order_id: str
    known: KnownOrder
    sent_at_ms: int
    not_found_count: int = 0
    lost: bool = False

    @classmethod
    def start(cls, intent: OrderIntent, order_id: str, sent_at_ms: int) -> TrackedOrder:
        return cls(intent, order_id, KnownOrder(order_id, intent.size), sent_at_ms)


class OrderHints:
    """Order ids the user channel named (added from its thread), taken by the executor's loop for a pass of
    their own at most once per `spacing_ms`: authenticated GETs are throttled early (about 10/s), and each
    pass reads the account's trades and open orders. Ids not taken yet are kept for the next pass."""

    def __init__(self, spacing_ms: int) -> None:
        self._spacing_ms, self._next_ms = spacing_ms, 0
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, order_ids: Iterable[str]) -> None:
        with self._lock:
            self._ids.update(order_ids)

    def take(self, now_ms: int) -> set[str]:
        """Every id named since the last take, or none (all kept) before the next pass is due."""
        if now_ms < self._next_ms:
            return set()
        with self._lock:
            taken, self._ids = self._ids, set()
        return taken

    def space_from(self, now_ms: int) -> None:
        """A named pass ran at `now_ms`: the next one waits `spacing_ms`."""
        self._next_ms = now_ms + self._spacing_ms


def build_live_report(
    tracked: TrackedOrder, observation: Observation, reported_at_ms: int
) -> ExecutionReport:
    """The execution report of one observation about a live order (its market included, for late fills).
    Its id is stable for the same observation, so a re-run reconciliation pass publishes nothing new."""
    intent = tracked.intent
    return ExecutionReport(
        report_id=build_report_id(
            tracked.order_id, observation.kind.value, observation.matched, observation.detail
        ),
        intent_id=intent.intent_id,
        dedup_key=intent.dedup_key,
        wallet_id=intent.wallet_id,
        order_id=tracked.order_id,
        mode=ExecutionMode.LIVE,
        kind=observation.kind,
        side=intent.side,
        asset=intent.asset,
        size=intent.size,
        limit_price=intent.limit_price,
        matched_size=observation.matched,
        average_price=observation.average_price,
        detail=observation.detail,
        received_at_ms=intent.received_at_ms,
        sent_at_ms=tracked.sent_at_ms,
        reported_at_ms=reported_at_ms,
        condition_id=intent.condition_id,
    )


class OrderReconciler:
    """Brings tracked live orders up to date with the venue; returns the reports to publish."""

    def __init__(self, gateway: OrderGateway, *, clock_ms: Callable[[], int] = now_ms) -> None:
        self._gateway, self._clock_ms = gateway, clock_ms

    def report_placement(self, tracked: TrackedOrder, placement: Placement) -> list[ExecutionReport]:
        """The reports a placement gives at once (accepted, matched part, killed rest, rejected, unknown)."""
        kills = tracked.intent.order_type in (OrderType.FAK, OrderType.FOK)
        return self._emit(tracked, observe_placement(placement, tracked.intent.size, kills))

    def reconcile(self, orders: Sequence[TrackedOrder], *, named: bool = False) -> list[ExecutionReport]:
        """One pass: the account's trades and its resting orders once, then a look-up of each order that is
        not resting (one request per changed order, not per open order: the executor's loop waits for the
        pass), and the lost-order rule. `named`: the user channel has just named these orders, so the venue
        knows them and a not-found now is its index lagging, never counted towards LOST."""
        if not orders:
            return []
        since = min(tracked.intent.created_at_ms for tracked in orders) - RESOLVE_LOOKBACK_MS
        fills = self._gateway.fills_since(since)
        resting = {order.order_id: order for order in self._gateway.open_orders() or ()}
        reports: list[ExecutionReport] = []
        for tracked in orders:
            order = resting.get(tracked.order_id)
            lookup = (
                OrderLookup(LookupKind.FOUND, order) if order else self._gateway.look_up(tracked.order_id)
            )
            mine = [fill for fill in fills or () if fill.order_id == tracked.order_id]
            count, verdict = observe_lookup(tracked.not_found_count, lookup.kind)
            observations: list[Observation] = []
            if lookup.kind is LookupKind.FOUND or mine:
                tracked.not_found_count = 0
                observations = reconcile_order(tracked.known, lookup.order, mine)
            elif verdict is LookupVerdict.COUNTED and not named:
                tracked.not_found_count = count
                observations = [self._not_found(tracked, count)]
            elif verdict is LookupVerdict.CHECK_TRADES and not tracked.lost and not named:
                tracked.not_found_count = count
                decision = decide_lost(tracked.order_id, fills)
                if decision is LostVerdict.LOST:
                    tracked.lost = True
                    detail = f"not found {count} times in a row and not in the account's trades"
                    observations = [Observation(ReportKind.LOST, tracked.known.matched, None, detail)]
            reports.extend(self._emit(tracked, observations))
        return reports

    def _not_found(self, tracked: TrackedOrder, count: int) -> Observation:
        detail = f"not found ({count} of {LOST_AFTER_NOT_FOUND})"
        return Observation(ReportKind.NOT_FOUND, tracked.known.matched, None, detail)

    def _emit(self, tracked: TrackedOrder, observations: Sequence[Observation]) -> list[ExecutionReport]:
        reports = []
        for observation in observations:
            tracked.known = advance_known(tracked.known, observation)
            reports.append(build_live_report(tracked, observation, self._clock_ms()))
            log.info(
                "order %s: %s %s %s",
                tracked.order_id[:12],
                observation.kind,
                observation.matched,
                observation.detail,
            )
        return reports
