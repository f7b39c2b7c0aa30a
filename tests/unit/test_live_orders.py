"""The executor's live orders with a fake gateway and journal: the kill switch before anything is sent, a
deferred placement sent again as the same order within the intent's maximum age (or skipped with the reason),
reports stored before they are published, a restart taking every open order up again, a claimed intent
resolved by looking its order up, and an engaged kill switch cancelling the wallet's open orders."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from polycopy.infra.kafka import Record
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import LiveEntry
from polycopy.infra.settings import PolycopySettings
from processors.core.reconcile import KnownOrder, is_settled
from schemas.control import KillSwitch
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, ReportKind
from schemas.topics import EXECUTION_REPORTS, ORDER_INTENTS
from schemas.venue import (
    CancelResult,
    LookupKind,
    OrderFill,
    OrderLookup,
    Placement,
    PlacementKind,
    VenueOrder,
    VenueOrderStatus,
)
from sinks.base import ConsumeLoop, LoopPolicy
from sinks.executor import Executor
from sinks.live_orders import LiveOrders, LivePolicy
from tests.builders import NOW_MS, build_book, build_intent, build_intent_on_book
from tests.fakes import FakeBroker, FakeJournal, FakePublisher

D = Decimal
ORDER_ID = "0x" + "ab" * 32


class FakeGateway:
    """An `OrderGateway` answering from queues; records what was asked of the venue."""

    def __init__(self, *placements: Placement) -> None:
        self.placements = list(placements)
        self.placed: list[OrderIntent] = []
        self.resolved: list[tuple[OrderIntent, bool]] = []
        self.cancelled: list[list[str]] = []
        self.orders: dict[str, VenueOrder] = {}
        self.lookups: list[str] = []

    def order_id_for(self, intent: OrderIntent) -> str:
        return ORDER_ID if intent.dedup_key == build_intent().dedup_key else "0x" + intent.intent_id

    def place(self, intent: OrderIntent) -> Placement:
        self.placed.append(intent)
        return self.placements.pop(0)

    def look_up(self, order_id: str) -> OrderLookup:
        self.lookups.append(order_id)
        order = self.orders.get(order_id)
        return OrderLookup(LookupKind.FOUND, order) if order else OrderLookup(LookupKind.UNAVAILABLE)

    def open_orders(self) -> list[VenueOrder] | None:
        return [order for order in self.orders.values() if order.status is VenueOrderStatus.LIVE]

    def fills_since(self, after_ms: int) -> list[OrderFill] | None:
        return []

    def cancel(self, order_ids: Sequence[str]) -> CancelResult:
        self.cancelled.append(list(order_ids))
        for order_id in order_ids:
            order = self.orders[order_id]
            self.orders[order_id] = VenueOrder(
                order_id,
                VenueOrderStatus.CANCELED,
                order.side,
                order.asset,
                order.original_size,
                D(0),
                order.price,
            )
        return CancelResult(cancelled=tuple(order_ids))

    def resolve_unsent(self, intent: OrderIntent, *, resend: bool = True) -> Placement:
        self.resolved.append((intent, resend))
        return self.placements.pop(0)


class FakeLiveJournal:
    """The live-order rows in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def open_live(self) -> list[LiveEntry]:
        return [
            LiveEntry(i, row["order_id"], row["state"], list(row["outbox"]))
            for i, row in sorted(self.rows.items())
            if row["open"]
        ]

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
        row = self.rows.setdefault(intent_id, {"order_id": order_id, "outbox": []})
        row.update(state=state, open=open_, outbox=[*row["outbox"], *outbox])

    def clear_live_outbox(self, intent_ids: Sequence[str]) -> None:
        for intent_id in intent_ids:
            self.rows[intent_id]["outbox"] = []


class Reports:
    """The executor's side of `ReportSink`: what was published, and each delivery."""

    def __init__(self) -> None:
        self.published: list[ExecutionReport] = []
        self.deliveries = 0

    def publish(self, report: ExecutionReport) -> None:
        self.published.append(report)

    def deliver(self) -> None:
        self.deliveries += 1


class Clock:
    def __init__(self) -> None:
        self.now = NOW_MS + 100

    def __call__(self) -> int:
        return self.now


def live_intent(**fields: Any) -> OrderIntent:
    return build_intent(**({"mode": ExecutionMode.LIVE, "received_at_ms": NOW_MS} | fields))


def resting(order_id: str = ORDER_ID) -> VenueOrder:
    return VenueOrder(order_id, VenueOrderStatus.LIVE, build_intent().side, "a", D(20), D(0), D("0.52"))


def build(gateway: FakeGateway, journal: FakeLiveJournal | None = None) -> tuple[LiveOrders, Reports, Clock]:
    reports, clock = Reports(), Clock()
    orders = LiveOrders(
        gateway,
        journal or FakeLiveJournal(),
        reports,
        PipelineMetrics(),
        policy=LivePolicy(max_intent_age_secs=60, reconcile_secs=1),
        clock_ms=clock,
    )
    return orders, reports, clock


def engage(orders: LiveOrders, wallet: str = "*") -> None:
    switch = KillSwitch(wallet_id=wallet, engaged=True, set_at_ms=NOW_MS)
    orders.on_control(Record("control", 0, 0, wallet.encode(), switch.model_dump_json().encode(), NOW_MS))


def accepted(order_id: str = ORDER_ID) -> Placement:
    return Placement(order_id, PlacementKind.ACCEPTED, venue_status=VenueOrderStatus.LIVE)


# --- placing ------------------------------------------------------------------------------------------------
def test_an_accepted_resting_order_is_reported_and_kept_for_reconciliation() -> None:
    gateway = FakeGateway(accepted())
    orders, _, _ = build(gateway)
    intent = live_intent()

    reports = orders.place(intent, ORDER_ID, NOW_MS + 100)

    assert [r.kind for r in reports] == [ReportKind.ACCEPTED] and reports[0].order_id == ORDER_ID
    assert list(orders.tracked) == [intent.intent_id]


def test_a_deferred_placement_is_sent_again_as_the_same_order_when_the_venue_said() -> None:
    gateway = FakeGateway(
        Placement(ORDER_ID, PlacementKind.DEFERRED, detail="breaker orders.place: open", retry_after_secs=5),
        accepted(),
    )
    journal = FakeLiveJournal()
    orders, reports, clock = build(gateway, journal)
    intent = live_intent()

    assert orders.place(intent, ORDER_ID, clock.now) == []  # nothing to report yet, nothing lost
    assert journal.rows[intent.intent_id]["state"]["phase"] == "deferred"
    orders.step()
    assert len(gateway.placed) == 1  # not before the venue's wait
    clock.now += 5000
    orders.step()

    assert gateway.placed == [intent, intent]  # the same intent, hence the same signed order
    assert [r.kind for r in reports.published] == [ReportKind.ACCEPTED] and reports.deliveries == 1
    assert journal.rows[intent.intent_id]["outbox"] == []  # stored, published, delivered, cleared
    assert journal.rows[intent.intent_id]["state"]["phase"] == "tracked" and not orders.deferred


def test_the_live_order_gauges_follow_an_intent_from_deferred_to_open_at_the_venue() -> None:
    gateway = FakeGateway(
        Placement(ORDER_ID, PlacementKind.DEFERRED, detail="breaker orders.place: open", retry_after_secs=5),
        accepted(),
    )
    metrics, clock = PipelineMetrics(), Clock()
    policy = LivePolicy(max_intent_age_secs=60, reconcile_secs=1)
    orders = LiveOrders(gateway, FakeLiveJournal(), Reports(), metrics, policy=policy, clock_ms=clock)

    def gauges() -> dict[str, float]:
        return {s: metrics.live_orders.labels(s)._value.get() for s in ("open", "lost", "deferred")}

    orders.place(live_intent(), ORDER_ID, clock.now)
    orders.step()
    assert gauges() == {"open": 0, "lost": 0, "deferred": 1}
    clock.now += 5000
    orders.step()
    assert gauges() == {"open": 1, "lost": 0, "deferred": 0}


def test_a_placement_deferred_past_the_intents_maximum_age_is_skipped_with_the_reason() -> None:
    gateway = FakeGateway(
        Placement(
            ORDER_ID, PlacementKind.DEFERRED, detail="the matching engine is restarting", retry_after_secs=90
        )
    )
    orders, _, _ = build(gateway)

    [report] = orders.place(live_intent(), ORDER_ID, NOW_MS + 100)

    assert report.kind is ReportKind.REJECTED
    assert report.detail == "not placed within 60 s of the signal: the matching engine is restarting"
    assert not orders.deferred and not orders.tracked


# --- the kill switch ----------------------------------------------------------------------------------------
def test_an_engaged_kill_switch_refuses_new_orders_before_anything_is_sent() -> None:
    gateway = FakeGateway(accepted())
    orders, _, _ = build(gateway)
    engage(orders, "copy-1")

    [report] = orders.place(live_intent(wallet_id="copy-1"), ORDER_ID, NOW_MS + 100)

    assert report.kind is ReportKind.REJECTED and report.detail == "not sent: kill switch engaged"
    assert gateway.placed == []


def test_an_engaged_kill_switch_cancels_the_wallets_open_orders_and_reports_the_cancels() -> None:
    mine, other = live_intent(wallet_id="copy-1"), live_intent(wallet_id="copy-2", dedup_key="other")
    gateway = FakeGateway(accepted(), accepted("0x" + other.intent_id))
    orders, reports, _ = build(gateway)
    orders.place(mine, ORDER_ID, NOW_MS + 100)
    orders.place(other, "0x" + other.intent_id, NOW_MS + 100)
    gateway.orders = {ORDER_ID: resting(), "0x" + other.intent_id: resting("0x" + other.intent_id)}

    engage(orders, "copy-1")
    orders.step()

    assert gateway.cancelled == [[ORDER_ID]]
    cancels = [r for r in reports.published if r.kind is ReportKind.CANCELLED]
    assert [r.intent_id for r in cancels] == [mine.intent_id]
    assert list(orders.tracked) == [other.intent_id]  # the cancelled order is settled and closed


def test_a_deferred_intent_of_a_halted_wallet_is_skipped_at_its_retry() -> None:
    gateway = FakeGateway(Placement(ORDER_ID, PlacementKind.DEFERRED, retry_after_secs=1))
    orders, reports, clock = build(gateway)
    orders.place(live_intent(), ORDER_ID, clock.now)
    engage(orders)
    clock.now += 1000

    orders.step()

    assert [(r.kind, r.detail) for r in reports.published] == [
        (ReportKind.REJECTED, "not sent: kill switch engaged")
    ]
    assert len(gateway.placed) == 1 and not orders.deferred


def test_a_claimed_intent_of_a_halted_wallet_is_looked_up_but_never_sent() -> None:
    gateway = FakeGateway(Placement(ORDER_ID, PlacementKind.DEFERRED, detail="not at the venue; not resent"))
    orders, _, _ = build(gateway)
    engage(orders)
    intent = live_intent()

    [report] = orders.resolve(intent, ORDER_ID, NOW_MS + 100)

    assert gateway.resolved == [(intent, False)] and gateway.placed == []
    assert report.kind is ReportKind.REJECTED and "kill switch" in report.detail


def test_a_reconciliation_pass_reads_resting_orders_in_one_request_and_looks_up_only_the_others() -> None:
    # The executor's loop waits for the pass: one request per open order would hold every new intent back
    # for as long as the venue takes to answer them all.
    intents = [live_intent(dedup_key=f"k{n}") for n in range(5)]
    gateway = FakeGateway(*(accepted("0x" + i.intent_id) for i in intents))
    orders, _, _ = build(gateway)
    for intent in intents:
        orders.place(intent, "0x" + intent.intent_id, NOW_MS + 100)
    gateway.orders = {"0x" + i.intent_id: resting("0x" + i.intent_id) for i in intents}
    gone = "0x" + intents[0].intent_id
    gateway.orders[gone] = VenueOrder(
        gone, VenueOrderStatus.CANCELED, intents[0].side, "a", D(20), D(0), D(1)
    )

    orders.reconcile()

    assert gateway.lookups == [gone]  # the four resting ones came with the open orders
    assert list(orders.tracked) == [i.intent_id for i in intents[1:]]


# --- the user channel's hints -------------------------------------------------------------------------------
def test_an_order_the_user_channel_names_is_looked_up_at_the_next_step_not_at_the_next_pass() -> None:
    intents = [live_intent(dedup_key=f"h{n}") for n in range(2)]
    named, other = ("0x" + intent.intent_id for intent in intents)
    gateway = FakeGateway(accepted(named), accepted(other))
    orders, reports, clock = build(gateway)
    for intent in intents:
        orders.place(intent, "0x" + intent.intent_id, NOW_MS + 100)
    gateway.orders = {order_id: resting(order_id) for order_id in (named, other)}
    orders.step()  # the first pass; the next is `reconcile_secs` (1 s) away
    gateway.orders[named] = VenueOrder(
        named, VenueOrderStatus.CANCELED, intents[0].side, "a", D(20), D(0), D(1)
    )
    clock.now += 10

    orders.step()  # nothing named: no pass yet, the cancel is not seen
    assert reports.published == []
    orders.hint([named, "0x" + "ee" * 32])  # an order of another deployment is ignored
    orders.step()

    assert gateway.lookups == [named]  # the named order only (the other one rests, not even looked up)
    assert [(r.order_id, r.kind) for r in reports.published] == [(named, ReportKind.CANCELLED)]
    assert list(orders.tracked) == [intents[1].intent_id]
    # Named passes are spaced (authenticated GETs are throttled early): a hint soon after waits, kept.
    gateway.orders[other] = VenueOrder(
        other, VenueOrderStatus.CANCELED, intents[1].side, "a", D(20), D(0), D(1)
    )
    orders.hint([other])
    clock.now += 10
    orders.step()
    assert len(reports.published) == 1
    clock.now += 250
    orders.step()
    assert [(r.order_id, r.kind) for r in reports.published][1:] == [(other, ReportKind.CANCELLED)]


def test_a_named_order_the_venue_cannot_find_yet_is_not_counted_towards_lost() -> None:
    # The channel just said the venue knows the order: a not-found now is its index lagging.
    gateway = FakeGateway(accepted())
    gateway.look_up = lambda order_id: OrderLookup(LookupKind.NOT_FOUND)  # type: ignore[method-assign]
    orders, reports, clock = build(gateway)
    intent = live_intent()
    orders.place(intent, ORDER_ID, NOW_MS + 100)
    orders.step()  # the first pass counts one not-found
    for _ in range(3):
        clock.now += 10
        orders.hint([ORDER_ID])
        orders.step()

    assert [r.kind for r in reports.published] == [ReportKind.NOT_FOUND]
    assert orders.tracked[intent.intent_id].not_found_count == 1
    clock.now += 1000
    orders.step()  # the next regular pass counts again
    assert orders.tracked[intent.intent_id].not_found_count == 2


# --- restarts -----------------------------------------------------------------------------------------------
def test_a_restart_takes_open_orders_up_again_and_publishes_what_was_not_delivered() -> None:
    gateway = FakeGateway(accepted())
    journal = FakeLiveJournal()
    first, _, _ = build(gateway, journal)
    intent = live_intent()
    undelivered = first.place(intent, ORDER_ID, NOW_MS + 100)
    # The run died after storing these reports in the order's outbox and before the broker took them.
    journal.rows[intent.intent_id]["outbox"] = [r.model_dump(mode="json") for r in undelivered]

    restarted, reports, _ = build(FakeGateway(), journal)
    restarted.load()

    assert list(restarted.tracked) == [intent.intent_id]
    assert restarted.tracked[intent.intent_id].known.accepted
    assert reports.published == undelivered and journal.rows[intent.intent_id]["outbox"] == []


@pytest.mark.parametrize(
    ("known", "settled"),
    [
        (KnownOrder("o", D(10)), False),  # resting, nothing matched
        (KnownOrder("o", D(10), matched=D(10)), False),  # filled, not confirmed: may still FAIL
        (KnownOrder("o", D(10), matched=D(10), confirmed=D(10)), True),
        (KnownOrder("o", D(10), matched=D(4), confirmed=D(4)), False),  # partly filled, still resting
        (KnownOrder("o", D(10), matched=D(4), confirmed=D(4), finished=True), True),  # rest cancelled
        (KnownOrder("o", D(10), matched=D(4), confirmed=D(2), finished=True), False),
        (KnownOrder("o", D(10), finished=True), True),  # cancelled or rejected, nothing matched
    ],
)
def test_an_order_is_settled_once_finished_or_filled_and_every_matched_share_is_confirmed(
    known: KnownOrder, settled: bool
) -> None:
    assert is_settled(known) is settled


# --- the executor with live orders --------------------------------------------------------------------------
def executor_with(gateway: FakeGateway, *intents: OrderIntent) -> tuple[Executor, FakePublisher, FakeJournal]:
    settings = PolycopySettings(topic_prefix="unit.", metrics_enabled=False)
    broker, publisher, journal, metrics = FakeBroker(), FakePublisher(), FakeJournal(), PipelineMetrics()
    for intent in intents:
        broker.append_message(settings.topic_name(ORDER_INTENTS), intent, key=intent.wallet_id)
    executor = Executor(
        settings,
        loop=ConsumeLoop(broker.consumer("executor"), publisher, metrics, LoopPolicy()),
        publisher=publisher,
        journal=journal,
        metrics=metrics,
        live=lambda ex: LiveOrders(
            gateway, FakeLiveJournal(), ex, metrics, policy=LivePolicy(), clock_ms=lambda: NOW_MS + 100
        ),
        clock_ms=lambda: NOW_MS + 100,
    )
    return executor, publisher, journal


def test_the_executor_sends_a_live_intent_with_the_venues_order_id_and_a_paper_one_on_paper() -> None:
    live = live_intent()
    paper = build_intent_on_book(build_book(asks=[("0.50", "100")]), dedup_key="paper")
    gateway = FakeGateway(accepted())
    executor, publisher, journal = executor_with(gateway, live, paper)

    executor.run(max_idle_secs=0)

    reports = {r.intent_id: r for r in publisher.on(EXECUTION_REPORTS)}
    assert reports[live.intent_id].order_id == ORDER_ID and reports[live.intent_id].mode is ExecutionMode.LIVE
    assert (
        reports[paper.intent_id].kind is ReportKind.FILL
        and reports[paper.intent_id].mode is ExecutionMode.PAPER
    )
    assert gateway.placed == [live]
    assert journal.states == {live.intent_id: "delivered", paper.intent_id: "delivered"}


class ClaimWatchingGateway(FakeGateway):
    """Records what the journal had been asked when the venue got the order."""

    def __init__(self, journal_calls: list[str], *placements: Placement) -> None:
        super().__init__(*placements)
        self.journal_calls, self.calls_at_place = journal_calls, list[list[str]]()

    def place(self, intent: OrderIntent) -> Placement:
        self.calls_at_place.append(list(self.journal_calls))
        return super().place(intent)


def test_a_live_intent_is_claimed_before_the_venue_gets_it_and_its_reports_stored_after() -> None:
    # Paper claims with its reports in one call (it sends nothing); live keeps claim -> send -> store.
    journal_calls: list[str] = []
    gateway = ClaimWatchingGateway(journal_calls, accepted())
    executor, _, journal = executor_with(gateway, live_intent())
    journal.calls = journal_calls

    executor.run(max_idle_secs=0)

    assert gateway.calls_at_place == [["claim"]]
    assert journal.calls == ["claim", "record_sent", "mark_delivered"]


def test_a_live_intent_claimed_by_a_run_that_died_is_looked_up_at_the_venue_not_sent_again() -> None:
    intent = live_intent()
    gateway = FakeGateway(accepted())
    executor, publisher, journal = executor_with(gateway, intent)
    journal.states[intent.intent_id] = "claimed"  # the earlier run died between POST and acknowledgement

    executor.run(max_idle_secs=0)

    assert gateway.resolved == [(intent, True)] and gateway.placed == []
    assert [r.kind for r in publisher.on(EXECUTION_REPORTS)] == [ReportKind.ACCEPTED]


class UnsignableGateway(FakeGateway):
    def order_id_for(self, intent: OrderIntent) -> str:
        raise ValueError("token id is not an integer")


def test_an_intent_whose_order_cannot_be_signed_is_rejected_with_the_reason_and_the_executor_goes_on() -> (
    None
):
    bad = live_intent(dedup_key="bad")
    gateway = UnsignableGateway(accepted())
    executor, publisher, journal = executor_with(gateway, bad)

    executor.run(max_idle_secs=0)

    [report] = publisher.on(EXECUTION_REPORTS)
    assert report.kind is ReportKind.REJECTED and report.intent_id == bad.intent_id
    assert report.detail == "not sent: the order cannot be signed: token id is not an integer"
    assert gateway.placed == [] and journal.states == {bad.intent_id: "delivered"}
