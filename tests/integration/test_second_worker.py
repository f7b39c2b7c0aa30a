"""A second worker and a hot standby (issues 11 and 8): a second `polycopy worker` process joins the group
while trades flow and takes half of the partitions, and the decisions that come out are exactly those one
worker alone produces (same ids, reasons, sizes); then one of the two is killed (-9), the other takes every
partition, and no (trade, wallet) pair is missing or decided twice. Static membership (POLYCOPY_INSTANCE_ID)
and the 10 s session make the survivor take over without waiting out Faust's 60 s default."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from polycopy.infra.kafka import group_assignment, group_backlog
from polycopy.infra.settings import PolycopySettings
from schemas.decisions import Decision
from schemas.topics import DECISIONS, RAW_TRADES, TARGETED_TRADES, WALLET_CONFIG
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig
from tests.builders import build_trade
from tests.integration.helpers import WorkerProcess, build_buying_wallet, publish, read_all, wait_until

pytestmark = pytest.mark.integration

LEADERS = ["0x" + f"{n:02x}" * 20 for n in range(0x31, 0x39)]  # eight traders, spread over raw partitions
TRADES = 48
BEFORE_JOIN, AFTER_KILL = 8, 8  # the rest flows while the second worker joins


def build_wallets() -> list[WalletConfig]:
    """One wallet per leader (wallet-keyed partitions get several); every other one with little capital, so
    its later trades are skipped for capital and the outcome depends on each wallet's order of events."""
    wallets = []
    for n, leader in enumerate(LEADERS):
        wallet = build_buying_wallet(leader, wallet_id=f"standby-{n}")
        capital = Decimal("1000") if n % 2 else Decimal("45")
        wallets.append(wallet.model_copy(update={"capital_usdc": capital, "max_signal_age_secs": None}))
    return wallets


def build_trades(venue) -> list[RawTrade]:  # type: ignore[no-untyped-def]
    """Fills of the leaders in turn on the simulator's markets, at their mid price (its books stay put)."""
    trades = []
    for n in range(TRADES):
        market = venue.simulator.markets[n % len(venue.simulator.markets)]
        token = market.token_ids[0]
        trades.append(
            build_trade(
                proxy_wallet=LEADERS[n % len(LEADERS)],
                asset=token,
                condition_id=market.condition_id,
                price=venue.simulator.midpoint(token).quantize(Decimal("0.01")),
                size=Decimal("40"),
                transaction_hash="0x" + f"{0x5000 + n:064x}",
                timestamp=int(time.time()),
                received_at_ms=int(time.time() * 1000),
            )
        )
    return trades


def decided(settings: PolycopySettings) -> dict[tuple[str, str], set[tuple[str, str, str]]]:
    """Per (wallet, trade): every distinct (decision id, reason, size) the log holds."""
    found: dict[tuple[str, str], set[tuple[str, str, str]]] = defaultdict(set)
    for decision in read_all(settings, DECISIONS, Decision):
        found[(decision.wallet_id, decision.dedup_key)].add(
            (decision.decision_id, decision.reason, str(decision.size))
        )
    return found


def wait_for_pairs(settings: PolycopySettings, count: int, what: str) -> None:
    wait_until(lambda: len(decided(settings)) >= count, timeout_secs=240, what=what)


def members(settings: PolycopySettings) -> dict[str, set[tuple[str, int]]]:
    return group_assignment(settings, settings.consumer_group("processor")) or {}


def partitions_of(assignment: set[tuple[str, int]], settings: PolycopySettings, spec) -> int:  # type: ignore[no-untyped-def]
    name = settings.topic_name(spec)
    return sum(1 for topic, _ in assignment if topic == name)


@pytest.mark.timeout(900)
def test_a_second_worker_takes_half_the_partitions_then_all_after_a_kill_and_decisions_do_not_change(
    settings_factory, simulator_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    venue = simulator_factory(seed=9, auto_trades=False, drift_interval_secs=3600.0)
    wallets = build_wallets()
    trades = build_trades(venue)
    pairs = TRADES  # each trade has exactly one follower

    # One worker alone: the reference.
    alone = settings_factory(clob_url=venue.server.clob_url)
    publish(alone, WALLET_CONFIG, [(w.id, w) for w in wallets])
    with WorkerProcess(alone, tmp_path / "alone.log"):
        publish(alone, RAW_TRADES, [(t.proxy_wallet, t) for t in trades])
        wait_for_pairs(alone, pairs, "the lone worker's decisions")
    reference = decided(alone)

    # Two workers, one joining while trades flow, then one killed.
    shared = settings_factory(clob_url=venue.server.clob_url)
    publish(shared, WALLET_CONFIG, [(w.id, w) for w in wallets])
    first = shared.model_copy(update={"instance_id": "worker-a"})
    second = shared.model_copy(update={"instance_id": "worker-b"})
    with WorkerProcess(first, tmp_path / "worker-a.log") as worker_a:
        publish(shared, RAW_TRADES, [(t.proxy_wallet, t) for t in trades[:BEFORE_JOIN]])
        wait_for_pairs(shared, BEFORE_JOIN, "decisions before the join")
        flowing = trades[BEFORE_JOIN : TRADES - AFTER_KILL]
        feeder = threading.Thread(target=feed_slowly, args=(shared, flowing), daemon=True)
        feeder.start()
        with WorkerProcess(second, tmp_path / "worker-b.log"):
            wait_until(lambda: len(members(shared)) == 2, timeout_secs=120, what="two members")
            split = members(shared)
            for assignment in split.values():
                assert partitions_of(assignment, shared, RAW_TRADES) == RAW_TRADES.partitions // 2
                assert partitions_of(assignment, shared, TARGETED_TRADES) == TARGETED_TRADES.partitions // 2
            feeder.join(120)
            wait_for_pairs(shared, TRADES - AFTER_KILL, "decisions while both run")

            worker_a.process.kill()  # kill -9 of the worker that held everything first
            worker_a.process.wait(30)
            wait_until(
                lambda: set(members(shared)) == {f"{shared.consumer_group('processor')}-worker-b"},
                timeout_secs=120,
                what="the survivor alone in the group",
            )
            [survivor] = members(shared).values()
            assert partitions_of(survivor, shared, RAW_TRADES) == RAW_TRADES.partitions
            assert partitions_of(survivor, shared, TARGETED_TRADES) == TARGETED_TRADES.partitions
            publish(shared, RAW_TRADES, [(t.proxy_wallet, t) for t in trades[-AFTER_KILL:]])
            wait_for_pairs(shared, pairs, "every decision after the kill")
            # Everything read and committed: a half-done event of the killed worker was re-read by now.
            inputs = (RAW_TRADES, TARGETED_TRADES)
            group = shared.consumer_group("processor")
            wait_until(lambda: group_backlog(shared, group, inputs) == 0, timeout_secs=120, what="no backlog")

    both = decided(shared)
    assert len(both) == pairs and all(len(outcomes) == 1 for outcomes in both.values()), "a pair doubled"
    assert both == reference
    reasons = {reason for outcomes in reference.values() for _, reason, _ in outcomes}
    assert {"copy", "capital_exhausted"} <= reasons  # the outcome depended on each wallet's order


def feed_slowly(settings: PolycopySettings, trades: list[RawTrade]) -> None:
    """Publish one trade at a time, about ten a second: trades flow while the second worker joins."""
    for trade in trades:
        publish(settings, RAW_TRADES, [(trade.proxy_wallet, trade)])
        time.sleep(0.1)
