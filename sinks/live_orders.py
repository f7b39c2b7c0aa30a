"""The executor's live orders: each live intent placed through the order gateway (the kill switch first, the
venue's order id journaled before sending), deferred placements sent again as the same order within the
intent's maximum age, open orders reconciled with the venue between polls, and a wallet's open orders
cancelled when its kill switch engages. Every change is stored with its reports (the outbox) before they are
published, so a restart takes every open order up again and publishes what the last run could not deliver.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from polycopy.infra.kafka import Record
from polycopy.infra.metrics import PipelineMetrics
from processors.core.deferral import decide_deferral
from processors.core.kill_switch import KillSwitchBoard, apply_switch, refuse_live_order, wallets_to_cancel
from processors.core.paper import build_execution_report
from processors.core.reconcile import is_settled
from schemas.control import KillSwitch
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, ReportKind
from schemas.venue import Placement, PlacementKind
from sinks.gateway import OrderGateway
from sinks.live_entries import DeferredIntent, LiveJournal, deferred_state, restore, tracked_state
from sinks.paper_orders import ReportSink
from sinks.reconciler import OrderHints, OrderReconciler, TrackedOrder

log = logging.getLogger(__name__)

UNSIGNED_PREFIX = "unsigned-"


@dataclass(frozen=True)
class LivePolicy:
    """How often the venue is asked, and for how long an order is watched."""

    max_intent_age_secs: float = 60.0
    reconcile_secs: float = 2.0
    lost_watch_secs: float = 3600.0  # a LOST order stays fillable: its fills are looked for this long
    # Passes over the orders the user channel named, at most this often: authenticated GETs are throttled
    # early (about 10/s), and each pass reads the account's trades and open orders.
    named_pass_secs: float = 0.25


class LiveOrders:
    """Places live intents and keeps their orders up to date with the venue (for the executor)."""

    def __init__(
        self,
        gateway: OrderGateway,
        journal: LiveJournal,
        reports: ReportSink,
        metrics: PipelineMetrics,
        *,
        policy: LivePolicy,
        clock_ms: Callable[[], int],
    ) -> None:
        self._gateway, self._journal, self._reports, self._metrics = gateway, journal, reports, metrics
        self._policy, self._clock_ms = policy, clock_ms
        self._reconciler = OrderReconciler(gateway, clock_ms=clock_ms)
        self._tracked: dict[str, TrackedOrder] = {}  # by intent id
        self._deferred: dict[str, DeferredIntent] = {}
        self._board = KillSwitchBoard()
        self._switches: list[tuple[str, KillSwitch | None]] = []  # from the control topic's follower thread
        self._lock = threading.Lock()
        self._to_cancel: set[str] = set()  # order ids a kill switch asked to cancel, until the venue did
        self._unsignable: dict[str, str] = {}  # intent id -> why its order cannot be signed
        self._hints = OrderHints(int(policy.named_pass_secs * 1000))
        self._next_pass_ms = 0

    @property
    def tracked(self) -> dict[str, TrackedOrder]:
        return dict(self._tracked)

    @property
    def deferred(self) -> dict[str, DeferredIntent]:
        return dict(self._deferred)

    @property
    def board(self) -> KillSwitchBoard:
        return self._board

    # --- the kill switch (control topic) -------------------------------------------------------------------
    def on_control(self, record: Record) -> None:
        """A control-topic record (from the follower's thread): applied before the next order is sent."""
        key = (record.key or b"").decode(errors="replace")
        try:
            switch = KillSwitch.model_validate_json(record.value) if record.value is not None else None
        except (ValidationError, ValueError) as error:
            log.warning("malformed kill switch %s ignored: %s", key, str(error)[:200])
            return
        with self._lock:
            self._switches.append((key, switch))

    def _apply_switches(self) -> None:
        with self._lock:
            switches, self._switches = self._switches, []
        if not switches:
            return
        before = self._board
        for key, switch in switches:
            self._board = apply_switch(self._board, key, switch)
        open_wallets = [t.intent.wallet_id for t in self._tracked.values() if not t.known.finished]
        halted = wallets_to_cancel(before, self._board, open_wallets)
        if halted:
            ids = {
                t.order_id
                for t in self._tracked.values()
                if t.intent.wallet_id in halted and not t.known.finished
            }
            log.warning("kill switch: cancelling %d open orders of %s", len(ids), ", ".join(halted))
            self._to_cancel |= ids

    # --- placing -------------------------------------------------------------------------------------------
    def order_id_for(self, intent: OrderIntent) -> str:
        """The venue's id of the intent's order (its hash). An intent that cannot be signed (a token id or a
        price the order format refuses) gets an id of ours and is rejected when placed, never retried: an
        exception here would stop the executor on the same record at every restart."""
        try:
            return self._gateway.order_id_for(intent)
        except Exception as error:  # noqa: BLE001 - any signing failure is this intent's, not the executor's
            log.warning("intent %s cannot be signed: %s", intent.intent_id, error)
            self._unsignable[intent.intent_id] = f"not sent: the order cannot be signed: {error}"
            return UNSIGNED_PREFIX + intent.intent_id

    def place(self, intent: OrderIntent, order_id: str, sent_at_ms: int) -> list[ExecutionReport]:
        """A newly claimed live intent: refused (kill switch, a missing switch), or placed once; a deferred
        placement waits (stored) and gives no report now."""
        self._apply_switches()
        unsignable = self._unsignable.pop(intent.intent_id, None)
        if unsignable is not None:
            return [self._reject(intent, order_id, unsignable, sent_at_ms)]
        refusal = refuse_live_order(
            wallet_id=intent.wallet_id,
            wallet_mode=intent.mode,
            deployment_mode=ExecutionMode.LIVE,
            has_key=True,
            board=self._board,
        )
        if refusal is not None:
            return [self._reject(intent, order_id, f"not sent: {refusal}", sent_at_ms)]
        return self._after_placement(intent, order_id, sent_at_ms, self._gateway.place(intent))

    def resolve(self, intent: OrderIntent, order_id: str, sent_at_ms: int) -> list[ExecutionReport]:
        """An intent an earlier run claimed and may have sent: its order looked up by the id computed before
        sending; only if the venue has never heard of it is the very same order sent (never while halted)."""
        self._apply_switches()
        unsignable = self._unsignable.pop(intent.intent_id, None)
        if unsignable is not None:  # never signed, so never sent
            return [self._reject(intent, order_id, unsignable, sent_at_ms)]
        halted = self._board.is_halted(intent.wallet_id)
        placement = self._gateway.resolve_unsent(intent, resend=not halted)
        if placement.kind is PlacementKind.DEFERRED and halted:
            return [self._reject(intent, order_id, "not sent: kill switch engaged", sent_at_ms)]
        return self._after_placement(intent, order_id, sent_at_ms, placement)

    def _after_placement(
        self,
        intent: OrderIntent,
        order_id: str,
        sent_at_ms: int,
        placement: Placement,
        *,
        outbox: bool = False,
    ) -> list[ExecutionReport]:
        """The reports of a placement, the order stored (tracked, deferred, or closed) first. `outbox`: the
        reports are stored with it (a retry between polls); else the executor's journal holds them."""
        if placement.kind is PlacementKind.DEFERRED:
            deferral = decide_deferral(intent, placement, self._clock_ms(), self._policy.max_intent_age_secs)
            if deferral.retry_at_ms is not None:
                deferred = DeferredIntent(intent, order_id, deferral.retry_at_ms)
                self._journal.save_live(
                    intent.intent_id, order_id, intent.wallet_id, deferred_state(deferred)
                )
                self._deferred[intent.intent_id] = deferred
                log.info("order %s deferred: %s", order_id[:12], placement.detail)
                return []
            self._deferred.pop(intent.intent_id, None)
            reports = [self._reject(intent, order_id, deferral.skip_reason or "not placed", sent_at_ms)]
            if outbox:
                self._store(DeferredIntent(intent, order_id, 0), reports, still_open=False)
            return reports
        self._deferred.pop(intent.intent_id, None)
        tracked = TrackedOrder.start(intent, order_id, sent_at_ms)
        reports = self._reconciler.report_placement(tracked, placement)
        settled = is_settled(tracked.known)
        # Stored before the claim is marked sent: a crash in between finds the order here at start-up.
        self._store(tracked, reports if outbox else [], still_open=not settled)
        if not settled:
            self._tracked[intent.intent_id] = tracked
        return reports

    def _reject(self, intent: OrderIntent, order_id: str, detail: str, sent_at_ms: int) -> ExecutionReport:
        return build_execution_report(
            intent,
            order_id,
            ReportKind.REJECTED,
            ExecutionMode.LIVE,
            detail=detail,
            sent_at_ms=sent_at_ms,
            reported_at_ms=self._clock_ms(),
        )

    # --- between polls -------------------------------------------------------------------------------------
    def hint(self, order_ids: Iterable[str]) -> None:
        """Order ids the user channel named (its thread): ours are looked up at the next step. Only a hint:
        the look-ups and the pure rules decide, so an event lost, repeated or early changes only the delay."""
        self._hints.add(order_ids)

    def load(self) -> None:
        """Take up the open orders and deferred intents the journal holds; publish what an earlier run stored
        but did not deliver. The first reconciliation pass runs at the first step."""
        undelivered = []
        for entry in self._journal.open_live():
            item = restore(entry)
            if isinstance(item, DeferredIntent):
                self._deferred[entry.intent_id] = item
            else:
                self._tracked[entry.intent_id] = item
            if entry.outbox:
                undelivered.append(entry.intent_id)
                for report in entry.outbox:
                    self._reports.publish(ExecutionReport.model_validate(report))
        if undelivered:
            self._reports.deliver()
            self._journal.clear_live_outbox(undelivered)
        self._apply_switches()
        if self._tracked or self._deferred:
            log.info("%d live orders to reconcile, %d deferred", len(self._tracked), len(self._deferred))
        self._observe()

    def step(self) -> None:
        """Kill switches, due deferred placements, pending cancels, and (every `reconcile_secs`) one
        reconciliation pass over the open orders; between passes, one over those the user channel named."""
        self._apply_switches()
        now = self._clock_ms()
        self._retry_deferred(now)
        if self._to_cancel:
            self._cancel_pending()
            self._next_pass_ms = 0  # report the cancels at once
        hinted = self._hints.take(now)
        if self._tracked and now >= self._next_pass_ms:
            self._next_pass_ms = now + int(self._policy.reconcile_secs * 1000)
            self.reconcile()
        elif named := [t for t in self._tracked.values() if t.order_id in hinted]:
            self._hints.space_from(now)
            self.reconcile(named, named=True)
        self._observe()

    def _observe(self) -> None:
        """The live-order gauges: what is open at the venue, watched as lost, or waiting to be sent."""
        lost = sum(1 for tracked in self._tracked.values() if tracked.lost)
        gauge = self._metrics.live_orders
        gauge.labels("open").set(len(self._tracked) - lost)
        gauge.labels("lost").set(lost)
        gauge.labels("deferred").set(len(self._deferred))

    def reconcile(self, orders: Sequence[TrackedOrder] | None = None, *, named: bool = False) -> None:
        """One pass over every open order (or over `orders`, `named` by the user channel): reports for what
        changed, stored then published."""
        orders = list(self._tracked.values()) if orders is None else list(orders)
        reports = self._reconciler.reconcile(orders, named=named)
        by_intent: dict[str, list[ExecutionReport]] = {}
        for report in reports:
            by_intent.setdefault(report.intent_id, []).append(report)
        now = self._clock_ms()
        watch_ms = int(self._policy.lost_watch_secs * 1000)
        changes = []
        for tracked in orders:
            expired = tracked.lost and now - tracked.sent_at_ms > watch_ms
            settled = is_settled(tracked.known) or expired
            mine = by_intent.get(tracked.intent.intent_id, [])
            if mine or settled:
                changes.append((tracked, mine, not settled))
        self._store_and_publish(changes)

    def _retry_deferred(self, now: int) -> None:
        published: list[tuple[str, list[ExecutionReport]]] = []
        for deferred in [d for d in self._deferred.values() if d.retry_at_ms <= now]:
            intent = deferred.intent
            if self._board.is_halted(intent.wallet_id):
                self._deferred.pop(intent.intent_id)
                reports = [self._reject(intent, deferred.order_id, "not sent: kill switch engaged", now)]
                self._store(deferred, reports, still_open=False)
            else:
                placement = self._gateway.place(intent)
                reports = self._after_placement(intent, deferred.order_id, now, placement, outbox=True)
            published.append((intent.intent_id, reports))
        self._publish(published)

    def _cancel_pending(self) -> None:
        open_ids = {t.order_id for t in self._tracked.values() if not t.known.finished}
        ids = sorted(self._to_cancel & open_ids)
        self._to_cancel &= open_ids
        if not ids:
            return
        result = self._gateway.cancel(ids)
        if not result.ok:
            log.warning("kill switch cancel failed (%s): retried at the next step", result.detail)
            return
        for order_id, reason in result.not_cancelled:
            log.warning("order %s not cancelled: %s", order_id[:12], reason)
        self._to_cancel -= set(ids)

    def _store(
        self, item: TrackedOrder | DeferredIntent, reports: Sequence[ExecutionReport], *, still_open: bool
    ) -> None:
        intent = item.intent
        state = tracked_state(item) if isinstance(item, TrackedOrder) else deferred_state(item)
        outbox = [report.model_dump(mode="json") for report in reports]
        self._journal.save_live(
            intent.intent_id, item.order_id, intent.wallet_id, state, outbox, open_=still_open
        )

    def _store_and_publish(
        self, changes: Iterable[tuple[TrackedOrder | DeferredIntent, list[ExecutionReport], bool]]
    ) -> None:
        published = []
        for item, reports, still_open in changes:
            self._store(item, reports, still_open=still_open)
            if not still_open:
                self._tracked.pop(item.intent.intent_id, None)
            published.append((item.intent.intent_id, reports))
        self._publish(published)

    def _publish(self, published: Sequence[tuple[str, Sequence[ExecutionReport]]]) -> None:
        """Publish stored reports, wait for the broker, then empty their outboxes."""
        delivered = []
        for intent_id, reports in published:
            for report in reports:
                self._metrics.reports.labels(report.kind.value).inc()
                self._reports.publish(report)
            if reports:
                delivered.append(intent_id)
        if delivered:
            self._reports.deliver()
            self._journal.clear_live_outbox(delivered)
