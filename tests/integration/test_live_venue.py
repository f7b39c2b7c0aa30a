"""The live order path against the fake CLOB, with real signatures: keys derived over L1, orders signed and
HMAC-authenticated as the venue checks them, and the venue's traps scripted (delays, index lag, failed fills,
5xx storms, 425 windows, 503 cancel-only, 429, lost acknowledgements)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from polycopy.polymarket.clob import derive_api_credentials
from polycopy.polymarket.http import ClobHttp
from polycopy.polymarket.live import LiveClobClient
from polycopy.tools.chaos_servers import free_port
from processors.core.breaker import BreakerBoard, BreakerChange, BreakerPolicy, BreakerState
from processors.core.ledger import WalletLedger
from processors.core.orders import OrderRecord, apply_report
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, OrderStatus, OrderType, ReportKind
from schemas.venue import PlacementKind, RejectReason
from sinks.gateway import LiveOrderGateway
from sinks.reconciler import OrderReconciler, TrackedOrder
from tests.builders import build_intent

pytestmark = pytest.mark.integration

PRIVATE_KEY = "0x" + "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d"[:64]
CHAIN_ID = 137
D = Decimal
_dedup = itertools.count()


class ManualClock:
    """The breaker's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Venue:
    """A fake CLOB with our account on it, and the live gateway in front of it."""

    sim: Any
    gateway: LiveOrderGateway
    client: LiveClobClient
    clock: ManualClock
    changes: list[BreakerChange] = field(default_factory=list)

    @property
    def exchange(self) -> Any:
        return self.sim.server.clob_orders.exchange

    @property
    def faults(self) -> Any:
        return self.sim.server.clob_orders.faults

    def market(self, index: int = 0) -> Any:
        return self.sim.simulator.markets[index]

    def intent(
        self, *, marketable: bool = True, size: str = "10", index: int = 0, **overrides: Any
    ) -> OrderIntent:
        """A live BUY of the market's first token: at the best ask + 2 ticks (marketable) or 5 ticks under the
        best bid (rests)."""
        market = self.market(index)
        token = market.token_ids[0]
        bids, asks = self.sim.simulator.book_levels(token)
        tick = market.tick_size
        price = min(asks) + 2 * tick if marketable else max(bids) - 5 * tick
        fields: dict[str, Any] = {
            "mode": ExecutionMode.LIVE,
            "dedup_key": f"live-test-{next(_dedup)}-{time.time_ns()}",
            "asset": token,
            "condition_id": market.condition_id,
            "limit_price": min(max(price, tick), 1 - tick),
            "size": D(size),
            "tick_size": tick,
            "neg_risk": market.neg_risk,
            "order_type": OrderType.FAK if marketable else OrderType.GTC,
            "created_at_ms": int(time.time() * 1000),
        }
        fields.update(overrides)
        return build_intent(**fields)

    def restart(self) -> LiveOrderGateway:
        """A new process: new client, new gateway, nothing remembered but the intents."""
        creds = derive_api_credentials(self.sim.server.clob_url, CHAIN_ID, PRIVATE_KEY)
        client = LiveClobClient.connect(
            self.sim.server.clob_url, CHAIN_ID, PRIVATE_KEY, creds, timeout_secs=2.0
        )
        return LiveOrderGateway(client, BreakerBoard(), clock=self.clock)


@pytest.fixture
def venue(simulator_factory: Callable[..., Any]) -> Iterator[Venue]:
    sim = simulator_factory(seed=11, auto_trades=False, drift_interval_secs=3600.0)
    script = sim.server.clob_orders.exchange.script
    script.mine_ms, script.confirm_ms, script.delay_ms = 100, 400, 500
    creds = derive_api_credentials(sim.server.clob_url, CHAIN_ID, PRIVATE_KEY)
    client = LiveClobClient(
        ClobHttp(sim.server.clob_url, timeout_secs=1.0),
        *_signing(creds),
    )
    clock = ManualClock()
    changes: list[BreakerChange] = []
    policy = BreakerPolicy(restart_probe_secs=0.2)
    gateway = LiveOrderGateway(client, BreakerBoard(policy), clock=clock, on_change=changes.append)
    yield Venue(sim, gateway, client, clock, changes)
    client.close()


def _signing(creds: Any) -> tuple[Any, Any]:
    from polycopy.polymarket.clob import OrderSigner, RequestAuthenticator

    return OrderSigner(PRIVATE_KEY, CHAIN_ID), RequestAuthenticator(PRIVATE_KEY, CHAIN_ID, creds)


def reconcile_until(
    reconciler: OrderReconciler,
    tracked: list[TrackedOrder],
    done: Callable[[list[ExecutionReport]], bool],
    *,
    passes: int = 200,
) -> list[ExecutionReport]:
    """Reconcile pass after pass until `done(all reports so far)`; fails after `passes` passes."""
    reports: list[ExecutionReport] = []
    for _ in range(passes):
        reports += reconciler.reconcile(tracked)
        if done(reports):
            return reports
        time.sleep(0.05)
    raise AssertionError(
        f"condition not reached; reports: {[(r.kind, r.matched_size, r.detail) for r in reports]}"
    )


def kinds(reports: list[ExecutionReport]) -> list[str]:
    return [report.kind.value for report in reports]


def book(reports: list[ExecutionReport]) -> tuple[WalletLedger, OrderRecord | None, list[str]]:
    """Run the reports through the order lifecycle and a wallet ledger, as the worker does."""
    first = reports[0]
    ledger = WalletLedger(D("1000"))
    ledger.reserve(
        first.intent_id,
        asset=first.asset,
        condition_id=first.condition_id,
        side=first.side,
        size=first.size,
        limit_price=first.limit_price,
    )
    record: OrderRecord | None = None
    events: list[str] = []
    for number, report in enumerate(reports):
        record, new = apply_report(ledger, record, report, number)
        events += [event.event_type.value for event in new]
    assert ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl
    return ledger, record, events


def place(venue: Venue, intent: OrderIntent) -> tuple[TrackedOrder, list[ExecutionReport], OrderReconciler]:
    reconciler = OrderReconciler(venue.gateway)
    tracked = TrackedOrder.start(intent, venue.gateway.order_id_for(intent), int(time.time() * 1000))
    placement = venue.gateway.place(intent)
    return tracked, reconciler.report_placement(tracked, placement), reconciler


# --- the order's life ---------------------------------------------------------------------------------------
def test_a_resting_order_is_placed_partially_filled_then_filled(venue: Venue) -> None:
    intent = venue.intent(marketable=False)
    tracked, reports, reconciler = place(venue, intent)
    assert kinds(reports) == ["accepted"]
    assert tracked.order_id in venue.exchange.orders  # the id we computed before sending is the venue's

    venue.exchange.fill_resting(tracked.order_id, D("4"), int(time.time() * 1000))
    reports += reconcile_until(reconciler, [tracked], lambda r: "fill" in kinds(r))
    venue.exchange.fill_resting(tracked.order_id, D("6"), int(time.time() * 1000))
    reports += reconcile_until(reconciler, [tracked], lambda r: D("10") in [x.matched_size for x in r])

    fills = [r.matched_size for r in reports if r.kind is ReportKind.FILL]
    assert fills == [D("4"), D("10")]
    ledger, record, events = book(reports)
    assert events == ["OrderPlaced", "OrderPartialFill", "OrderFilled"]
    assert record is not None and record.status is OrderStatus.FILLED
    assert ledger.positions[intent.asset].shares == D("10") and ledger.reserved == 0


def test_a_resting_order_is_cancelled_and_its_capital_released(venue: Venue) -> None:
    intent = venue.intent(marketable=False)
    tracked, reports, reconciler = place(venue, intent)
    assert [order.order_id for order in venue.gateway.open_orders() or []] == [tracked.order_id]

    result = venue.gateway.cancel([tracked.order_id])
    reports += reconcile_until(reconciler, [tracked], lambda r: "cancelled" in kinds(r))

    assert result.cancelled == (tracked.order_id,) and result.ok
    assert venue.gateway.open_orders() == []
    ledger, record, events = book(reports)
    assert events == ["OrderPlaced", "OrderCancelled"]
    assert ledger.reserved == 0 and ledger.available == D("1000")


def test_a_marketable_fak_matches_at_once_and_its_fills_settle_to_confirmed(venue: Venue) -> None:
    intent = venue.intent()
    tracked, reports, reconciler = place(venue, intent)

    assert kinds(reports) == ["accepted", "fill"]
    assert reports[1].matched_size == D("10") and reports[1].average_price is not None
    reports += reconcile_until(reconciler, [tracked], lambda r: "fill_confirmed" in kinds(r))
    assert [r.matched_size for r in reports if r.kind is ReportKind.FILL_CONFIRMED] == [D("10")]
    _, record, events = book(reports)
    assert events == ["OrderPlaced", "OrderFilled"]


def test_a_delayed_order_matches_later_and_is_never_sent_again(venue: Venue) -> None:
    venue.exchange.script.delay_next_orders = 1
    intent = venue.intent()
    tracked, reports, reconciler = place(venue, intent)
    assert kinds(reports) == ["accepted"] and reports[0].detail == "delayed"

    reports += reconcile_until(reconciler, [tracked], lambda r: "fill" in kinds(r))

    assert venue.exchange.posts_received == 1
    assert [r.matched_size for r in reports if r.kind is ReportKind.FILL] == [D("10")]
    assert book(reports)[2] == ["OrderPlaced", "OrderFilled"]


def test_a_matched_fill_that_fails_on_chain_is_reversed(venue: Venue) -> None:
    venue.exchange.script.fail_next_fills = 10
    intent = venue.intent()
    tracked, reports, reconciler = place(venue, intent)
    assert kinds(reports) == ["accepted", "fill"]

    reports += reconcile_until(reconciler, [tracked], lambda r: "fill_reversed" in kinds(r))

    reversed_report = next(r for r in reports if r.kind is ReportKind.FILL_REVERSED)
    assert reversed_report.matched_size == 0 and "FAILED" in reversed_report.detail
    assert "fill_confirmed" not in kinds(reports)
    ledger, record, events = book(reports)
    assert events == ["OrderPlaced", "OrderFilled", "OrderFillReversed"]
    assert record is not None and record.matched == 0
    assert intent.asset not in ledger.positions and ledger.available == D("1000")  # the capital is back


# --- lost orders --------------------------------------------------------------------------------------------
def test_three_definitive_not_founds_make_an_order_lost_and_release_its_capital(venue: Venue) -> None:
    venue.faults.fail_next(1, 502)  # the POST is answered 502 and never reaches the engine: fate unknown
    intent = venue.intent()
    tracked, reports, reconciler = place(venue, intent)
    assert kinds(reports) == ["unknown"]

    reports += reconcile_until(reconciler, [tracked], lambda r: "lost" in kinds(r))

    assert kinds(reports) == ["unknown", "not_found", "not_found", "lost"]
    ledger, record, events = book(reports)
    assert events == ["OrderLost"]
    assert ledger.reserved == 0 and ledger.available == D("1000")


def test_a_filled_order_the_venue_cannot_find_is_not_lost(venue: Venue) -> None:
    venue.exchange.script.index_lag_ms = 10**9  # GET /data/order answers 404 for hours after a FAK matched
    intent = venue.intent()
    tracked, reports, reconciler = place(venue, intent)
    assert venue.gateway.look_up(tracked.order_id).kind.value == "not_found"

    for _ in range(6):
        reports += reconciler.reconcile([tracked])

    assert "lost" not in kinds(reports) and "not_found" not in kinds(reports)
    assert tracked.not_found_count == 0 and not tracked.lost
    assert book(reports)[2] == ["OrderPlaced", "OrderFilled"]


# --- breaker and the venue's "not now" ----------------------------------------------------------------------
def test_a_5xx_storm_opens_the_breaker_then_one_probe_closes_it(venue: Venue) -> None:
    venue.faults.fail_next(5, 500)
    outcomes = [venue.gateway.place(venue.intent()).kind for _ in range(5)]
    assert outcomes == [PlacementKind.UNKNOWN] * 5
    assert venue.gateway.breakers.state("orders.place").state is BreakerState.OPEN
    posts = venue.exchange.posts_received

    held = venue.gateway.place(venue.intent())
    assert held.kind is PlacementKind.DEFERRED and "5 consecutive failures" in held.detail
    assert venue.exchange.posts_received == posts  # nothing was sent while open

    venue.clock.now += 61
    probe = venue.gateway.place(venue.intent())

    assert probe.kind is PlacementKind.ACCEPTED
    assert [(c.previous, c.current) for c in venue.changes] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_a_failed_probe_opens_the_breaker_again(venue: Venue) -> None:
    venue.faults.fail_next(6, 503)  # a 503 that is not the venue's cancel-only answer is a failure
    for _ in range(5):
        venue.gateway.place(venue.intent())
    venue.clock.now += 61

    assert venue.gateway.place(venue.intent()).kind is PlacementKind.UNKNOWN
    assert venue.gateway.breakers.state("orders.place").state is BreakerState.OPEN


def test_a_425_window_loses_no_intent_and_marks_nothing_lost(venue: Venue) -> None:
    resting = venue.intent(marketable=False)
    tracked, reports, reconciler = place(venue, resting)
    venue.faults.restart_window(1.5)
    waiting = venue.intent()

    first = venue.gateway.place(waiting)
    assert first.kind is PlacementKind.DEFERRED and "restarting" in first.detail
    for _ in range(5):
        reports += reconciler.reconcile([tracked])  # every look-up answers 425: nothing counts
        venue.clock.now += 1
    assert "not_found" not in kinds(reports) and "lost" not in kinds(reports)

    deadline = time.monotonic() + 30
    placement = first
    while placement.kind is PlacementKind.DEFERRED and time.monotonic() < deadline:
        time.sleep(0.1)
        venue.clock.now += 1
        placement = venue.gateway.place(waiting)  # the same intent, hence the same order, once admitted

    assert placement.kind is PlacementKind.ACCEPTED and placement.order_id == first.order_id
    assert len(venue.exchange.orders) == 2
    assert venue.gateway.breakers.state("orders.place").state is BreakerState.CLOSED


def test_429_waits_the_retry_after_the_venue_asks_for(venue: Venue) -> None:
    venue.faults.throttle_next(1, retry_after_secs=7)

    placement = venue.gateway.place(venue.intent())
    held = venue.gateway.place(venue.intent())

    assert placement.kind is PlacementKind.DEFERRED and placement.retry_after_secs == 7
    assert held.kind is PlacementKind.DEFERRED and held.retry_after_secs == pytest.approx(7)
    venue.clock.now += 7
    assert venue.gateway.place(venue.intent()).kind is PlacementKind.ACCEPTED


def test_503_cancel_only_defers_orders_while_cancels_still_work(venue: Venue) -> None:
    resting = venue.intent(marketable=False)
    tracked, _, _ = place(venue, resting)
    venue.faults.cancel_only(60)

    placement = venue.gateway.place(venue.intent())
    cancelled = venue.gateway.cancel([tracked.order_id])

    assert placement.kind is PlacementKind.DEFERRED and "cancel-only" in placement.detail
    assert cancelled.cancelled == (tracked.order_id,)
    assert venue.gateway.breakers.state("orders.place").state is BreakerState.PAUSED


# --- idempotency --------------------------------------------------------------------------------------------
def test_the_same_intent_placed_twice_gives_one_order_at_the_venue(venue: Venue) -> None:
    intent = venue.intent(marketable=False)

    first = venue.gateway.place(intent)
    second = venue.restart().place(intent)  # another process: nothing shared but the intent

    assert first.kind is PlacementKind.ACCEPTED
    assert second.kind is PlacementKind.ACCEPTED and second.order_id == first.order_id
    assert "duplicate" in second.detail
    assert venue.exchange.posts_received == 2 and list(venue.exchange.orders) == [first.order_id]


def test_a_crash_between_post_and_acknowledgement_leaves_exactly_one_order(venue: Venue) -> None:
    venue.faults.stall_next(1, stall_secs=2.5)  # the venue places the order; the answer comes too late
    intent = venue.intent(marketable=False)
    assert venue.gateway.place(intent).kind is PlacementKind.UNKNOWN

    restarted = venue.restart()
    resolved = restarted.resolve_unsent(intent)

    assert resolved.kind is PlacementKind.ACCEPTED and resolved.venue_status is not None
    assert list(venue.exchange.orders) == [resolved.order_id] and venue.exchange.posts_received == 1


def test_an_unsent_intent_is_sent_once_at_start_up_with_the_same_order(venue: Venue) -> None:
    venue.faults.fail_next(1, 500)
    intent = venue.intent(marketable=False)
    lost_answer = venue.gateway.place(intent)
    assert lost_answer.kind is PlacementKind.UNKNOWN and not venue.exchange.orders

    resolved = venue.restart().resolve_unsent(intent)

    assert resolved.kind is PlacementKind.ACCEPTED and resolved.order_id == lost_answer.order_id
    assert list(venue.exchange.orders) == [lost_answer.order_id]


def test_a_fak_that_finds_nothing_is_rejected_with_the_venues_reason(venue: Venue) -> None:
    market = venue.market()
    bids, _ = venue.sim.simulator.book_levels(market.token_ids[0])
    intent = venue.intent(limit_price=max(bids) - 3 * market.tick_size)  # a FAK BUY under the best ask

    placement = venue.gateway.place(intent)

    assert placement.kind is PlacementKind.REJECTED and placement.reject_reason is RejectReason.NO_MATCH
    assert placement.status_code == 400


def test_an_order_signed_by_another_key_is_refused_by_the_fake_venue(venue: Venue) -> None:
    from polycopy.polymarket.clob import OrderSigner, RequestAuthenticator

    creds = derive_api_credentials(venue.sim.server.clob_url, CHAIN_ID, PRIVATE_KEY)
    other_signer = OrderSigner("0x" + "22" * 32, CHAIN_ID)
    client = LiveClobClient(
        ClobHttp(venue.sim.server.clob_url), other_signer, RequestAuthenticator(PRIVATE_KEY, CHAIN_ID, creds)
    )

    placement, _ = client.place(venue.intent())

    assert placement.kind is PlacementKind.REJECTED
    assert "signer address has to be the address of the API KEY" in placement.detail
    assert not venue.exchange.orders


# --- the fake venue speaks the reference client's wire format -----------------------------------------------
def test_the_reference_client_trades_against_the_fake_venue_with_its_own_methods(venue: Venue) -> None:
    from py_clob_client_v2.client import ClobClient
    from py_clob_client_v2.clob_types import (
        OpenOrderParams,
        OrderArgsV2,
        OrderPayload,
        OrderType,
        TradeParams,
    )

    host = venue.sim.server.clob_url
    client = ClobClient(host=host, chain_id=CHAIN_ID, key=PRIVATE_KEY)
    client.set_api_creds(client.create_or_derive_api_key())
    market = venue.market(1)
    token = market.token_ids[0]
    bids, asks = venue.sim.simulator.book_levels(token)

    resting = client.create_order(
        OrderArgsV2(token_id=token, price=float(max(bids) - 3 * market.tick_size), size=8, side="BUY")
    )
    posted = client.post_order(resting, OrderType.GTC)
    taker = client.create_order(OrderArgsV2(token_id=token, price=float(min(asks)), size=5, side="BUY"))
    matched = client.post_order(taker, OrderType.FAK)

    assert posted["success"] and posted["status"] == "live"
    assert matched["status"] == "matched" and D(matched["takingAmount"]) == D("5")
    assert client.get_order(posted["orderID"])["status"] == "ORDER_STATUS_LIVE"
    assert [o["id"] for o in client.get_open_orders(OpenOrderParams(asset_id=token))] == [posted["orderID"]]
    assert {t["taker_order_id"] for t in client.get_trades(TradeParams(asset_id=token))} == {
        matched["orderID"]
    }
    assert client.cancel_order(OrderPayload(orderID=posted["orderID"]))["canceled"] == [posted["orderID"]]
    with pytest.raises(Exception, match="Duplicated"):
        client.post_order(resting, OrderType.GTC)


def test_the_wired_gateway_derives_its_key_and_reports_breaker_changes_as_metric_and_alert(
    venue: Venue, settings_factory: Callable[..., Any]
) -> None:
    from polycopy.infra.metrics import PipelineMetrics
    from polycopy.wiring import build_live_gateway
    from polycopy.wiring.live import live_api_credentials
    from schemas.topics import ALERTS
    from tests.fakes import FakePublisher

    settings = settings_factory(
        clob_url=venue.sim.server.clob_url,
        execution_mode="live",
        private_key=PRIVATE_KEY,
        metrics_enabled=False,
    )
    metrics, publisher = PipelineMetrics(), FakePublisher()
    gateway = build_live_gateway(settings, metrics, publisher)  # no credentials configured: derived over L1
    # The user channel asks for them too (`start_user_channel`): the key derived for the gateway is reused.
    keys, asked = venue.sim.server.clob_orders, venue.sim.server.clob_orders.l1_requests
    assert live_api_credentials(settings).api_key and keys.l1_requests == asked

    assert gateway.place(venue.intent(marketable=False)).kind is PlacementKind.ACCEPTED
    venue.faults.fail_next(5, 500)
    for _ in range(5):
        gateway.place(venue.intent())

    assert metrics.circuit_breaker_open.labels("orders.place")._value.get() == 1
    assert metrics.circuit_breaker_open.labels("orders.read")._value.get() == 0
    alerts = publisher.on(ALERTS)
    assert [alert.kind.value for alert in alerts] == ["breaker_open"]
    assert "orders.place" in alerts[0].summary and "5 consecutive failures" in alerts[0].detail


def test_an_order_the_market_would_refuse_for_sure_is_not_sent(venue: Venue) -> None:
    market = venue.market()
    too_fine = venue.intent(tick_size=market.tick_size / 10)
    too_small = venue.intent(marketable=False, size=str(market.min_order_size - 1))

    placements = [venue.gateway.place(too_fine), venue.gateway.place(too_small)]

    assert [p.kind for p in placements] == [PlacementKind.REJECTED, PlacementKind.REJECTED]
    assert "tick size changed" in placements[0].detail and "minimum" in placements[1].detail
    assert venue.exchange.posts_received == 0


def test_the_clients_error_line_for_a_404_is_dropped_and_other_errors_still_log(
    venue: Venue, caplog: pytest.LogCaptureFixture
) -> None:
    from py_clob_client_v2.client import ClobClient
    from py_clob_client_v2.exceptions import PolyApiException

    import polycopy.polymarket.clob  # noqa: F401 - importing it installs the filter

    client = ClobClient(venue.sim.server.clob_url, CHAIN_ID)
    with caplog.at_level("ERROR", logger="py_clob_client_v2"):
        for token in ("999", ""):  # 404: no book for this token; 400: not a token id
            with pytest.raises(PolyApiException):
                client.get_order_book(token)

    lines = [record.getMessage() for record in caplog.records]
    assert not any("status=404" in line for line in lines)
    assert any("status=400" in line for line in lines)


def test_the_workers_book_reader_answers_none_for_no_book_and_raises_with_the_status_otherwise(
    venue: Venue,
) -> None:
    from polycopy.polymarket.books import parse_book
    from polycopy.polymarket.http import ClobBookReader, VenueHttpError

    books = ClobBookReader(venue.sim.server.clob_url)
    token = venue.sim.simulator.markets[0].token_ids[0]

    assert parse_book(books.fetch_book(token)) == parse_book(venue.sim.simulator.book(token))
    assert books.fetch_book("999") is None
    with pytest.raises(VenueHttpError) as refused:
        books.fetch_book("")
    assert refused.value.status_code == 400
    unreachable = ClobBookReader(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(VenueHttpError, match="connect"):
        unreachable.fetch_book(token)
