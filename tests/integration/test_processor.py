"""The Faust worker over the real broker: target filter, evaluation with the liquidity gate against the
simulated CLOB (real py-clob-client-v2), live wallet configuration, dead letters and the order lifecycle."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from polycopy.infra.settings import PolycopySettings
from processors.core.ids import build_paper_order_id
from processors.core.paper import build_execution_report
from schemas.deadletter import DeadLetter
from schemas.decisions import Decision
from schemas.orders import ExecutionMode, ExecutionReport, OrderEvent, OrderIntent, ReportKind
from schemas.topics import (
    DEAD_LETTERS,
    DECISIONS,
    EXECUTION_REPORTS,
    ORDER_EVENTS,
    ORDER_INTENTS,
    RAW_TRADES,
    WALLET_CONFIG,
)
from schemas.wallets import WalletConfig
from tests.builders import build_trade
from tests.integration.helpers import WorkerProcess, build_buying_wallet, publish, read_all, wait_until

pytestmark = pytest.mark.integration

LEADER = "0x" + "1a" * 20
OTHER = "0x" + "2b" * 20


@pytest.fixture
def pipeline(settings_factory, simulator_factory, tmp_path: Path):  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=9, auto_trades=False)
    settings = settings_factory(clob_url=venue.server.clob_url)
    wallet = build_buying_wallet(LEADER)
    publish(settings, WALLET_CONFIG, [(wallet.id, wallet)])
    with WorkerProcess(settings, tmp_path / "worker.log"):
        yield settings, venue, wallet


def trade_on(venue, n: int, **overrides):  # type: ignore[no-untyped-def]
    market = venue.simulator.markets[n % len(venue.simulator.markets)]
    token = market.token_ids[0]
    mid = venue.simulator.midpoint(token)
    values = {
        "proxy_wallet": LEADER,
        "asset": token,
        "condition_id": market.condition_id,
        "price": mid.quantize(Decimal("0.01")),
        "size": Decimal("40"),
        "transaction_hash": "0x" + f"{n:064x}",
        # matched and received now: the worker judges a signal's age at its decision time
        "timestamp": int(time.time()),
        "received_at_ms": int(time.time() * 1000),
    } | overrides
    return build_trade(**values)


def decisions_of(settings: PolycopySettings) -> dict[str, Decision]:
    return {d.dedup_key: d for d in read_all(settings, DECISIONS, Decision)}


def test_target_trades_are_decided_once_and_others_are_ignored(pipeline) -> None:  # type: ignore[no-untyped-def]
    settings, venue, _ = pipeline
    copy, duplicate = trade_on(venue, 1), trade_on(venue, 1, feed_type="orders_matched")
    sell = trade_on(venue, 2, side="SELL")
    stranger = trade_on(venue, 3, proxy_wallet=OTHER)
    publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in (copy, duplicate, sell, stranger)])
    wait_until(lambda: len(decisions_of(settings)) >= 2, what="two decisions")
    decisions = read_all(settings, DECISIONS, Decision)
    assert sorted((d.dedup_key, d.reason) for d in decisions) == sorted(
        [(copy.dedup_key, "copy"), (sell.dedup_key, "side_disabled")]
    )
    intents = read_all(settings, ORDER_INTENTS, OrderIntent)
    assert [(i.dedup_key, i.wallet_id) for i in intents] == [(copy.dedup_key, "w1")]
    assert intents[0].limit_price <= copy.price + Decimal("0.05")


def test_a_changed_wallet_file_changes_decisions_without_a_restart(pipeline) -> None:  # type: ignore[no-untyped-def]
    settings, venue, wallet = pipeline
    first = trade_on(venue, 4)
    publish(settings, RAW_TRADES, [(first.proxy_wallet, first)])
    wait_until(lambda: first.dedup_key in decisions_of(settings), what="first decision")
    narrowed = wallet.model_copy(update={"price_max": Decimal("0.02"), "price_min": Decimal("0.01")})
    publish(settings, WALLET_CONFIG, [(wallet.id, narrowed)])
    probes = iter(range(100, 200))

    def a_new_trade_is_decided_under_the_new_rules() -> bool:
        probe = trade_on(venue, next(probes))  # a fresh fill each time: the worker never saw it
        publish(settings, RAW_TRADES, [(probe.proxy_wallet, probe)])
        return "price_out_of_band" in {d.reason for d in decisions_of(settings).values()}

    wait_until(
        a_new_trade_is_decided_under_the_new_rules, timeout_secs=30, what="decision under the new rules"
    )
    assert decisions_of(settings)[first.dedup_key].reason == "copy"


def test_malformed_raw_messages_are_dead_lettered_and_processing_goes_on(pipeline) -> None:  # type: ignore[no-untyped-def]
    from polycopy.infra.kafka import MessagePublisher

    settings, venue, _ = pipeline
    publisher = MessagePublisher(settings)
    publisher._producer.produce(settings.topic_name(RAW_TRADES), key=LEADER.encode(), value=b'{"price": "x"}')
    publisher.flush()
    after = trade_on(venue, 6)
    publish(settings, RAW_TRADES, [(after.proxy_wallet, after)])
    wait_until(lambda: after.dedup_key in decisions_of(settings), what="decision after the bad message")
    letters = read_all(settings, DEAD_LETTERS, DeadLetter)
    assert [(letter.stage, letter.payload) for letter in letters] == [("target-filter", '{"price": "x"}')]


def test_execution_reports_become_order_events_and_release_capital(pipeline) -> None:  # type: ignore[no-untyped-def]
    settings, venue, _ = pipeline
    trade = trade_on(venue, 7)
    publish(settings, RAW_TRADES, [(trade.proxy_wallet, trade)])
    wait_until(lambda: read_all(settings, ORDER_INTENTS, OrderIntent), what="an intent")
    intent = read_all(settings, ORDER_INTENTS, OrderIntent)[0]
    order_id = build_paper_order_id(intent.intent_id)
    half = (intent.size / 2).quantize(Decimal("0.01"))

    def report(kind: ReportKind, matched: Decimal) -> ExecutionReport:
        return build_execution_report(
            intent,
            order_id,
            kind,
            ExecutionMode.PAPER,
            matched=matched,
            average=intent.limit_price,
            sent_at_ms=1,
            reported_at_ms=2,
        )

    fill, cancel = report(ReportKind.FILL, half), report(ReportKind.CANCELLED, half)
    publish(settings, EXECUTION_REPORTS, [("w1", fill), ("w1", fill), ("w1", cancel)])
    wait_until(lambda: len(read_all(settings, ORDER_EVENTS, OrderEvent)) >= 3, what="order events")
    events = read_all(settings, ORDER_EVENTS, OrderEvent)
    assert [(e.event_type.value, e.matched_size) for e in events] == [
        ("OrderPlaced", Decimal(0)),
        ("OrderPartialFill", half),
        ("OrderCancelled", half),
    ]
    assert events[-1].released_usdc == (intent.size - half) * intent.limit_price


def test_market_metadata_and_synced_traders_reach_the_policy(pipeline) -> None:  # type: ignore[no-untyped-def]
    from schemas.reference import MarketReference, TraderReference
    from schemas.topics import MARKETS, TRADERS

    settings, venue, _ = pipeline
    closed_market = venue.simulator.markets[8]
    follower = WalletConfig(
        id="w-follows-leaderboard",
        capital_usdc=Decimal("500"),
        max_slippage=Decimal("0.05"),
        liquidity_min_fill_ratio=Decimal("0"),
    )
    star = "0x" + "3c" * 20
    publish(
        settings,
        MARKETS,
        [
            (
                closed_market.condition_id,
                MarketReference(
                    condition_id=closed_market.condition_id,
                    token_ids=closed_market.token_ids,
                    closed=True,
                    category="Sports",
                    updated_at_ms=1,
                ),
            )
        ],
    )
    publish(
        settings, TRADERS, [(star, TraderReference(wallet=star, win_rate=Decimal("0.6"), updated_at_ms=1))]
    )
    publish(settings, WALLET_CONFIG, [(follower.id, follower)])
    probes = iter(range(300, 400))

    def reference_data_is_applied() -> bool:
        n = next(probes)  # fresh fills each time, until the worker's readers have the new data
        on_closed = trade_on(venue, 8, transaction_hash="0x" + f"{n:064x}")
        by_star = trade_on(venue, 9, proxy_wallet=star, transaction_hash="0x" + f"{n:064x}")
        publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in (on_closed, by_star)])
        reasons = {(d.wallet_id, d.reason) for d in read_all(settings, DECISIONS, Decision)}
        return {("w1", "market_closed"), (follower.id, "copy")} <= reasons

    wait_until(reference_data_is_applied, timeout_secs=30, what="decisions using reference data")


def test_a_restarted_worker_keeps_each_wallets_ledger_and_seen_fills(
    settings_factory, simulator_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=10, auto_trades=False)
    settings = settings_factory(clob_url=venue.server.clob_url)
    wallet = WalletConfig(
        id="small",
        capital_usdc=Decimal("12"),
        targets=(LEADER,),
        max_slippage=Decimal("0.05"),
        liquidity_min_fill_ratio=Decimal("0"),
    )
    publish(settings, WALLET_CONFIG, [(wallet.id, wallet)])
    first, second = trade_on(venue, 11), trade_on(venue, 12)
    with WorkerProcess(settings, tmp_path / "worker-1.log"):
        publish(settings, RAW_TRADES, [(first.proxy_wallet, first)])
        wait_until(lambda: first.dedup_key in decisions_of(settings), what="the first decision")
    with WorkerProcess(settings, tmp_path / "worker-2.log"):
        # The same fill again (a producer retry) and a new one: one is known, the other finds no capital.
        publish(settings, RAW_TRADES, [(first.proxy_wallet, first), (second.proxy_wallet, second)])
        wait_until(lambda: second.dedup_key in decisions_of(settings), what="the second decision")
    decisions = read_all(settings, DECISIONS, Decision)
    assert [(d.dedup_key, d.reason) for d in decisions] == [
        (first.dedup_key, "copy"),
        (second.dedup_key, "capital_exhausted"),
    ]
