"""The real executor in a live deployment against the fake CLOB (real signatures, broker and PostgreSQL):
intents on the intents topic become signed orders at the venue, reconciliation reports their lives on the
reports topic, and the venue's traps (delays, failed fills, index lag, 5xx storms, 425 windows, a crash
between POST and acknowledgement, the kill switch) lose no intent and double no order. After every test the
reports, run through the order lifecycle and a wallet ledger as the worker does, keep the ledger identity."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from polycopy.infra.kafka import KafkaSetupError, now_ms
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import query
from polycopy.infra.settings import PolycopySettings
from polycopy.wiring import build_executor
from polycopy.wiring.pipeline import start_executor_followers
from processors.core.ledger import WalletLedger
from processors.core.orders import OrderRecord, apply_report
from schemas.alerts import Alert
from schemas.control import KillSwitch
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, OrderType, ReportKind
from schemas.topics import ALERTS, CONTROL, EXECUTION_REPORTS, ORDER_INTENTS
from sinks.executor import Executor
from tests.builders import build_intent
from tests.integration.helpers import publish, read_all, wait_until

pytestmark = pytest.mark.integration

PRIVATE_KEY = "0x" + "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
D = Decimal
CAPITAL = D("1000")
_dedup = itertools.count()


@dataclass
class LiveDeployment:
    """A fake CLOB and the settings of a live deployment pointed at it."""

    sim: Any
    settings: PolycopySettings

    @property
    def exchange(self) -> Any:
        return self.sim.server.clob_orders.exchange

    @property
    def faults(self) -> Any:
        return self.sim.server.clob_orders.faults

    def intent(self, *, marketable: bool = True, size: str = "10", **overrides: Any) -> OrderIntent:
        """A live BUY of the first market's first token: two ticks through the best ask, or five ticks under
        the best bid (rests)."""
        market = self.sim.simulator.markets[0]
        token = market.token_ids[0]
        bids, asks = self.sim.simulator.book_levels(token)
        tick = market.tick_size
        price = min(asks) + 2 * tick if marketable else max(bids) - 5 * tick
        fields: dict[str, Any] = {
            "mode": ExecutionMode.LIVE,
            "dedup_key": f"live-executor-{next(_dedup)}-{time.time_ns()}",
            "asset": token,
            "condition_id": market.condition_id,
            "limit_price": min(max(price, tick), 1 - tick),
            "size": D(size),
            "tick_size": tick,
            "neg_risk": market.neg_risk,
            "order_type": OrderType.FAK if marketable else OrderType.GTC,
            "received_at_ms": now_ms(),
            "created_at_ms": now_ms(),
        }
        return build_intent(**(fields | overrides))

    def send(self, *intents: OrderIntent) -> None:
        publish(self.settings, ORDER_INTENTS, [(intent.wallet_id, intent) for intent in intents])

    def reports(self, intent: OrderIntent) -> list[ExecutionReport]:
        every = read_all(self.settings, EXECUTION_REPORTS, ExecutionReport)
        return [report for report in every if report.intent_id == intent.intent_id]

    def wait_for(
        self, intent: OrderIntent, done: Callable[[list[str]], bool], timeout_secs: float = 60
    ) -> list[ExecutionReport]:
        wait_until(lambda: done(kinds(self.reports(intent))), timeout_secs, f"reports of {intent.intent_id}")
        return self.reports(intent)

    def orders_of(self, intent: OrderIntent) -> list[str]:
        """The venue's orders whose token and price are the intent's (what the venue holds for it)."""
        return [
            order_id
            for order_id, order in self.exchange.orders.items()
            if (order.asset, order.price, order.original_size)
            == (intent.asset, intent.limit_price, intent.size)
        ]


def start_followers(settings: PolycopySettings, executor: Executor) -> list[Any]:
    """The executor's followers; topics created a moment ago may still be electing their leaders."""
    for attempt in range(20):
        try:
            return start_executor_followers(settings, executor)
        except KafkaSetupError:
            if attempt == 19:
                raise
            time.sleep(1)
    return []


class RunningExecutor:
    """`build_executor` and its topic followers in a thread, as `polycopy executor` runs them."""

    def __init__(self, settings: PolycopySettings) -> None:
        self.executor: Executor = build_executor(settings, PipelineMetrics())
        self._followers = start_followers(settings, self.executor)
        self._thread = threading.Thread(target=self.executor.run, daemon=True)

    def __enter__(self) -> Executor:
        self._thread.start()
        return self.executor

    def __exit__(self, *exc: object) -> None:
        self.executor.stop()
        self._thread.join(timeout=60)
        for follower in self._followers:
            follower.stop()


@pytest.fixture
def live(
    simulator_factory: Callable[..., Any], settings_factory: Callable[..., PolycopySettings]
) -> LiveDeployment:
    sim = simulator_factory(seed=11, auto_trades=False, drift_interval_secs=3600.0)
    script = sim.server.clob_orders.exchange.script
    script.mine_ms, script.confirm_ms, script.delay_ms = 100, 400, 500
    settings = settings_factory(
        clob_url=sim.server.clob_url,
        clob_user_ws_url=sim.server.clob_user_ws_url,
        execution_mode="live",
        private_key=PRIVATE_KEY,
        clob_timeout_secs=2.0,
        live_reconcile_secs=0.2,
        live_breaker_open_secs=2.0,
    )
    return LiveDeployment(sim, settings)


def kinds(reports: list[ExecutionReport]) -> list[str]:
    return [report.kind.value for report in reports]


def book(reports: list[ExecutionReport]) -> tuple[WalletLedger, OrderRecord | None, list[str]]:
    """The reports through the order lifecycle and a wallet ledger, as the worker does; the ledger identity
    must hold after every report."""
    first = reports[0]
    ledger = WalletLedger(CAPITAL)
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
        assert (
            ledger.available + ledger.reserved + ledger.deployed == ledger.capital_usdc + ledger.realised_pnl
        )
    return ledger, record, events


def journal_state(settings: PolycopySettings, intent: OrderIntent) -> tuple[str, str]:
    rows = query(
        settings.database_url,
        "SELECT order_id, state FROM executor_journal WHERE intent_id = %s",
        (intent.intent_id,),
    )
    return (str(rows[0][0]), str(rows[0][1])) if rows else ("", "")


# --- the order's life ---------------------------------------------------------------------------------------
def test_a_resting_live_order_is_placed_partially_filled_then_filled(live: LiveDeployment) -> None:
    intent = live.intent(marketable=False)
    with RunningExecutor(live.settings):
        live.send(intent)
        reports = live.wait_for(intent, lambda k: "accepted" in k)
        order_id = reports[0].order_id
        assert live.orders_of(intent) == [order_id]  # the id journaled before sending is the venue's
        assert journal_state(live.settings, intent)[0] == order_id

        live.exchange.fill_resting(order_id, D("4"), now_ms())
        live.wait_for(intent, lambda k: "fill" in k)
        live.exchange.fill_resting(order_id, D("6"), now_ms())
        reports = live.wait_for(intent, lambda k: k.count("fill_confirmed") >= 2)

    assert [r.matched_size for r in reports if r.kind is ReportKind.FILL] == [D("4"), D("10")]
    ledger, record, events = book(reports)
    assert events == ["OrderPlaced", "OrderPartialFill", "OrderFilled"]
    assert ledger.positions[intent.asset].shares == D("10") and ledger.reserved == 0
    assert live.exchange.posts_received == 1


def test_a_marketable_live_order_fills_at_once_and_settles(live: LiveDeployment) -> None:
    intent = live.intent()
    with RunningExecutor(live.settings):
        live.send(intent)
        reports = live.wait_for(intent, lambda k: "fill_confirmed" in k)

    assert kinds(reports)[:2] == ["accepted", "fill"]
    assert book(reports)[2] == ["OrderPlaced", "OrderFilled"]
    rows = query(
        live.settings.database_url, "SELECT open FROM live_orders WHERE intent_id = %s", (intent.intent_id,)
    )
    assert rows == [(False,)]  # settled: no longer reconciled


def test_a_delayed_order_matches_later_and_is_never_sent_again(live: LiveDeployment) -> None:
    live.exchange.script.delay_next_orders = 1
    intent = live.intent()
    with RunningExecutor(live.settings):
        live.send(intent)
        reports = live.wait_for(intent, lambda k: "fill" in k)

    assert reports[0].kind is ReportKind.ACCEPTED and reports[0].detail == "delayed"
    assert live.exchange.posts_received == 1
    assert book(reports)[2] == ["OrderPlaced", "OrderFilled"]


def test_a_matched_fill_that_fails_on_chain_is_reversed_and_the_capital_given_back(
    live: LiveDeployment,
) -> None:
    live.exchange.script.fail_next_fills = 10
    intent = live.intent()
    with RunningExecutor(live.settings):
        live.send(intent)
        reports = live.wait_for(intent, lambda k: "fill_reversed" in k)

    ledger, record, events = book(reports)
    assert events == ["OrderPlaced", "OrderFilled", "OrderFillReversed"]
    assert record is not None and record.matched == 0
    assert ledger.available == CAPITAL and intent.asset not in ledger.positions


# --- lost orders --------------------------------------------------------------------------------------------
def test_three_definitive_not_founds_make_an_order_lost_and_release_its_capital(live: LiveDeployment) -> None:
    live.faults.fail_next(1, 502)  # answered 502 before reaching the engine: the order's fate is unknown
    intent = live.intent()
    with RunningExecutor(live.settings):
        live.send(intent)
        reports = live.wait_for(intent, lambda k: "lost" in k)

    assert kinds(reports) == ["unknown", "not_found", "not_found", "lost"]
    ledger, _, events = book(reports)
    assert events == ["OrderLost"] and ledger.reserved == 0 and ledger.available == CAPITAL
    # One POST (the 502), never a second: an UNKNOWN order is reconciled, not sent again.
    assert live.faults.injected == 1 and live.exchange.posts_received == 0


def test_a_filled_order_the_venue_cannot_find_is_not_lost(live: LiveDeployment) -> None:
    live.exchange.script.index_lag_ms = 10**9  # GET /data/order answers 404 for hours after a FAK matched
    live.exchange.script.confirm_ms = 3000  # so many passes (0.2 s apart) look it up before it settles
    intent = live.intent()
    with RunningExecutor(live.settings):
        live.send(intent)
        reports = live.wait_for(intent, lambda k: "fill_confirmed" in k)

    assert "lost" not in kinds(reports) and "not_found" not in kinds(reports)
    assert book(reports)[2] == ["OrderPlaced", "OrderFilled"]


# --- breaker and the venue's "not now" ----------------------------------------------------------------------
def test_a_5xx_storm_opens_the_breaker_defers_intents_then_a_probe_closes_it(live: LiveDeployment) -> None:
    live.faults.fail_next(5, 500)  # five ambiguous POSTs (never reached the engine): the breaker opens
    storm = [live.intent(marketable=False, size=str(10 + n)) for n in range(5)]
    waiting = live.intent(marketable=False, size="20")
    with RunningExecutor(live.settings):
        live.send(*storm)
        for intent in storm:
            live.wait_for(intent, lambda k: "unknown" in k)
        live.send(waiting)
        reports = live.wait_for(waiting, lambda k: "accepted" in k)
        alerts = read_all(live.settings, ALERTS, Alert)

    assert kinds(reports)[0] == "accepted"  # deferred while open, placed by the probe: never lost
    assert live.orders_of(waiting) == [reports[0].order_id]
    changes = [alert.kind.value for alert in alerts]  # the executor publishes its breaker's changes
    assert "breaker_open" in changes and "breaker_closed" in changes[changes.index("breaker_open") :]


def test_a_425_window_loses_no_intent_and_marks_nothing_lost(live: LiveDeployment) -> None:
    resting = live.intent(marketable=False)
    with RunningExecutor(live.settings):
        live.send(resting)
        live.wait_for(resting, lambda k: "accepted" in k)
        live.faults.restart_window(2.0)
        waiting = [live.intent(size=str(5 + n)) for n in range(3)]
        live.send(*waiting)
        for intent in waiting:
            live.wait_for(intent, lambda k: "fill" in k)
        resting_reports = live.reports(resting)

    assert "not_found" not in kinds(resting_reports) and "lost" not in kinds(resting_reports)
    for intent in waiting:
        assert len(live.orders_of(intent)) == 1
        assert book(live.reports(intent))[2] == ["OrderPlaced", "OrderFilled"]


# --- the kill switch ----------------------------------------------------------------------------------------
def test_the_kill_switch_cancels_open_orders_and_refuses_new_ones(live: LiveDeployment) -> None:
    resting = live.intent(marketable=False)
    with RunningExecutor(live.settings):
        live.send(resting)
        live.wait_for(resting, lambda k: "accepted" in k)
        switch = KillSwitch(wallet_id="*", engaged=True, reason="test", set_by="test", set_at_ms=now_ms())
        publish(live.settings, CONTROL, [("*", switch)])
        reports = live.wait_for(resting, lambda k: "cancelled" in k)
        refused = live.intent()
        live.send(refused)
        refusal = live.wait_for(refused, lambda k: "rejected" in k)

    ledger, record, events = book(reports)
    assert (
        events == ["OrderPlaced", "OrderCancelled"] and ledger.reserved == 0 and ledger.available == CAPITAL
    )
    assert "kill switch" in refusal[0].detail and live.orders_of(refused) == []


# --- a crash between POST and acknowledgement ---------------------------------------------------------------
def start_executor_process(settings: PolycopySettings, log_path: Path) -> subprocess.Popen[bytes]:
    env = os.environ | settings.to_env() | {"POLYCOPY_PRIVATE_KEY": PRIVATE_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "polycopy.cli", "executor"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def test_killing_the_executor_between_post_and_acknowledgement_leaves_exactly_one_order(
    simulator_factory: Callable[..., Any], settings_factory: Callable[..., PolycopySettings], tmp_path: Path
) -> None:
    sim = simulator_factory(seed=13, auto_trades=False, drift_interval_secs=3600.0)
    settings = settings_factory(
        clob_url=sim.server.clob_url,
        clob_user_ws_url=sim.server.clob_user_ws_url,
        execution_mode="live",
        clob_timeout_secs=60.0,  # the executor is still waiting for the answer when it is killed
        live_reconcile_secs=0.2,
        private_key=PRIVATE_KEY,
    )
    deployment = LiveDeployment(sim, settings)
    deployment.faults.stall_next(1, stall_secs=120.0)  # the venue places the order; its answer never comes
    intent = deployment.intent(marketable=False)
    log_path = tmp_path / "executor.log"

    first = start_executor_process(settings, log_path)
    try:
        deployment.send(intent)
        wait_until(lambda: len(deployment.exchange.orders) == 1, 120, "the order at the venue")
        assert journal_state(settings, intent)[1] == "claimed"  # sent, never acknowledged
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        deployment.faults.clear()

        second = start_executor_process(settings, log_path)
        try:
            reports = deployment.wait_for(intent, lambda k: "accepted" in k, timeout_secs=120)
        finally:
            second.terminate()
            second.wait(60)
    finally:
        if first.poll() is None:
            first.kill()

    order_id = journal_state(settings, intent)[0]
    assert list(deployment.exchange.orders) == [order_id] and deployment.exchange.posts_received == 1
    # The restarted executor looked the journaled id up: no second POST reached the venue, not even one the
    # venue would have refused as a duplicate.
    assert reports[0].order_id == order_id and reports[0].kind is ReportKind.ACCEPTED
    assert book(reports)[2] == ["OrderPlaced"]
