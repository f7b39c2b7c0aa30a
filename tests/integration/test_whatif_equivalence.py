"""Live against what-if: one log decided by the live pipeline (simulated venue, books producer, Faust worker,
paper executor, over the real broker), then replayed by `polycopy whatif` with the same wallet file. Every
rule is in play; the decisions must be identical: ids, reasons, details, sizes, limits, depth, book ids."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from polycopy.infra.kafka import TopicFollower, wait_for_consumer_group
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.demo import Processes
from polycopy.tools.whatif import run_whatif
from processors.core.targeting import select_followers
from processors.core.whatif import WalletReport
from schemas.base import Side
from schemas.decisions import Decision
from schemas.orders import OrderEvent, OrderStatus
from schemas.reference import MarketReference, TraderReference
from schemas.topics import DECISIONS, MARKETS, ORDER_EVENTS, RAW_TRADES, TRADERS, WALLET_CONFIG
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig
from tests.builders import build_trade
from tests.integration.helpers import publish, wait_until

pytestmark = pytest.mark.integration

EXPLICIT, SYNCED_STAR, SYNCED_WEAK, STRANGER = ("0x" + c * 40 for c in "abcd")
DAY_MS = 86_400_000
SETTLED = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.LOST}


def build_wallets() -> list[WalletConfig]:
    """Wallets that between them use every rule: explicit targets and synced traders, min_edge with the
    traders' win rates, categories_allow, min_days_to_end, the three USDC caps, SELL mirroring."""
    common: dict[str, Any] = {"order_type": "FAK", "max_slippage": "0.03"}
    specs: list[dict[str, Any]] = [
        {
            "id": "explicit",
            "capital_usdc": "1000",
            "targets": [EXPLICIT],
            "sides": ["BUY", "SELL"],
            "sizing": {"mode": "fixed_usdc", "value": "14"},
            "max_order_usdc": "11",
            "max_market_exposure_usdc": "25",
        },
        {
            "id": "synced",
            "capital_usdc": "500",
            "targets": [],
            "sides": ["BUY"],
            "sizing": {"mode": "ratio", "value": "0.5"},
            "min_edge": "0.1",
            "max_order_usdc": "15",
            "max_total_exposure_usdc": "45",
        },
        {
            "id": "rules",
            "capital_usdc": "400",
            "targets": [EXPLICIT, SYNCED_STAR],
            "sides": ["BUY", "SELL"],
            "sizing": {"mode": "percent_of_capital", "value": "2"},
            "categories_allow": ["sports"],
            "min_days_to_end": "5",
            "liquidity_min_fill_ratio": "0.8",
        },
        {
            "id": "small",
            "capital_usdc": "32",
            "targets": [EXPLICIT, SYNCED_WEAK],
            "sides": ["BUY", "SELL"],
            "sizing": {"mode": "fixed_usdc", "value": "10"},
            "max_slippage": "0.01",
        },
    ]
    return [WalletConfig.model_validate(common | spec) for spec in specs]


def build_markets(venue: Any, now_ms: int) -> list[MarketReference]:
    """Reference data for all but the last simulated market: categories, end dates near and far, and the
    trading parameters for some (the others take them from the book)."""
    shapes = [("Sports", 60), ("Sports", 2), ("Politics", 60), ("Sports", 30), ("Crypto", 90)]
    markets = []
    for market, (category, days) in zip(venue.simulator.markets, shapes, strict=False):
        known = len(markets) % 2 == 0
        markets.append(
            MarketReference(
                condition_id=market.condition_id,
                category=category,
                tags=(category.lower(),),
                end_date_ms=now_ms + days * DAY_MS,
                tick_size=market.tick_size if known else None,
                min_order_size=market.min_order_size if known else None,
                neg_risk=market.neg_risk,
                token_ids=market.token_ids,
                updated_at_ms=now_ms,
            )
        )
    return markets


class TopicLog:
    """A topic followed in the background into a list, for waiting on conditions without re-reading it."""

    def __init__(self, settings: PolycopySettings, spec: Any, model: Any) -> None:
        self.items: list[Any] = []
        self._lock = threading.Lock()

        def keep(record: Any) -> None:
            if record.value:
                with self._lock:
                    self.items.append(model.model_validate_json(record.value))

        self._follower = TopicFollower(settings, spec, keep, since_ms=0).start()

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.items)

    def stop(self) -> None:
        self._follower.stop()


@pytest.fixture
def live(settings_factory, simulator_factory, tmp_path: Path) -> Iterator[tuple[Any, PolycopySettings]]:  # type: ignore[no-untyped-def]
    """The venue, and the live pipeline on it with the wallets and reference data published first."""
    venue = simulator_factory(seed=21, auto_trades=False, drift_interval_secs=0.5)
    settings = settings_factory(
        clob_url=venue.server.clob_url, clob_market_ws_url=venue.server.clob_market_ws_url
    )
    now_ms = int(time.time() * 1000)
    publish(settings, MARKETS, [(m.condition_id, m) for m in build_markets(venue, now_ms)])
    traders = [
        TraderReference(wallet=SYNCED_STAR, win_rate=Decimal("0.9"), updated_at_ms=now_ms),
        TraderReference(wallet=SYNCED_WEAK, win_rate=Decimal("0.45"), updated_at_ms=now_ms),
    ]
    publish(settings, TRADERS, [(t.wallet, t) for t in traders])
    publish(settings, WALLET_CONFIG, [(w.id, w) for w in build_wallets()])
    processes, env = Processes(tmp_path / "logs"), settings.to_env()
    try:
        for component in ("books", "worker", "executor"):
            processes.start(component, "-m", "polycopy.cli", component, env=env)
        for group in (settings.consumer_group("processor"), settings.consumer_group("executor")):
            if not wait_for_consumer_group(settings, group, timeout_secs=120):
                processes.check()
                raise AssertionError(f"{group} did not start; see {tmp_path / 'logs'}")
        yield venue, settings
        processes.check()
    finally:
        processes.stop_all()


def plan_trades(venue: Any) -> list[dict[str, Any]]:
    """Buys by every kind of leader across the markets, then sells of what the explicit leader bought."""
    markets = venue.simulator.markets[:6]
    leaders = [EXPLICIT, SYNCED_STAR, SYNCED_WEAK, EXPLICIT, STRANGER, SYNCED_STAR]
    sizes = [Decimal(n) for n in (30, 120, 45, 250, 60, 15, 80, 200)]
    plan: list[tuple[str, Any, int, Side, Decimal]] = []
    for n in range(24):
        plan.append((leaders[n % len(leaders)], markets[n % len(markets)], n % 2, Side.BUY, sizes[n % 8]))
    for n in range(0, 6):  # the explicit leader sells part, then all, of some of its positions
        plan.append((EXPLICIT, markets[n % 3 * 2], 0, Side.SELL, Decimal(40 if n < 3 else 400)))
    plan.append((SYNCED_STAR, markets[0], 1, Side.SELL, Decimal(50)))  # a side the synced wallet leaves
    trades = []
    for n, (leader, market, outcome, side, size) in enumerate(plan):
        trades.append(
            {
                "proxy_wallet": leader,
                "asset": market.token_ids[outcome],
                "condition_id": market.condition_id,
                "side": side,
                "size": size,
                "transaction_hash": "0x" + f"{n + 1:064x}",
                "outcome_index": outcome,
            }
        )
    return trades


def test_whatif_decides_exactly_as_the_live_pipeline_did(live, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    venue, settings = live
    wallets = build_wallets()
    decisions = TopicLog(settings, DECISIONS, Decision)
    events = TopicLog(settings, ORDER_EVENTS, OrderEvent)
    synced = frozenset({SYNCED_STAR, SYNCED_WEAK})
    start_ms = int(time.time() * 1000)
    try:
        for planned in plan_trades(venue):
            now_ms = int(time.time() * 1000)
            mid = venue.simulator.midpoint(planned["asset"])
            market = venue.simulator.market_for_token(planned["asset"])
            trade = build_trade(
                **planned,
                price=mid.quantize(market.tick_size),
                timestamp=now_ms // 1000 - 2,
                received_at_ms=now_ms,
            )
            expected = len(select_followers(trade, wallets, synced))
            publish(settings, RAW_TRADES, [(trade.proxy_wallet, trade)])

            def decided(trade: RawTrade = trade) -> list[Decision]:
                return [d for d in decisions.snapshot() if d.dedup_key == trade.dedup_key]

            wait_until(
                lambda expected=expected: len(decided()) == expected,  # type: ignore[misc]
                what=f"decisions of trade {trade.dedup_key}",
            )
            copies = {d.decision_id for d in decided() if d.reason == "copy"}

            def settled(copies: set[str] = copies) -> bool:
                done = {e.intent_id for e in events.snapshot() if e.status in SETTLED}
                return copies <= done

            # Fills reach the ledger before the next decision, as whatif applies them.
            wait_until(settled, what=f"the orders of trade {trade.dedup_key} to settle")
        live_decisions = decisions.snapshot()
    finally:
        decisions.stop()
        events.stop()

    lines: list[str] = []
    result = run_whatif(settings, wallets, from_ms=start_ms, sandbox="equivalence", out=lines.append)
    print("\n".join(lines))
    from collections import Counter

    print(Counter((d.wallet_id, d.reason) for d in live_decisions))

    def key(decision: Decision) -> tuple[object, ...]:
        return (
            decision.wallet_id,
            decision.reason,
            decision.detail,
            decision.size,
            decision.limit_price,
            decision.available_size,
            decision.book_id,
        )

    live_by_id = {d.decision_id: key(d) for d in live_decisions}
    whatif_by_id = {d.decision_id: key(d) for d in result.decisions}
    assert len(live_by_id) == len(live_decisions)  # one decision per (wallet, fill)
    for wallet in wallets:
        mine = {i: k for i, k in live_by_id.items() if k[0] == wallet.id}
        assert mine, f"{wallet.id} decided nothing live"
        assert {i: k for i, k in whatif_by_id.items() if k[0] == wallet.id} == mine, wallet.id
    reasons = {k[1] for k in live_by_id.values()}
    assert {
        "copy",
        "category_denied",
        "market_closed",
        "edge_below_min",
        "exposure_cap",
        "side_disabled",
    } <= reasons, reasons
    assert any(k[0] in ("explicit", "rules", "small") and k[1] == "copy" and d.side is Side.SELL
               for d in live_decisions for k in [key(d)]), "no SELL was mirrored"  # fmt: skip
    assert result.books.pinned == len({d.dedup_key for d in live_decisions})
    assert result.books.pinned_missing == 0
    assert any(line.startswith("  books:") for line in lines)
    assert {r.wallet_id: r.considered for r in result.reports} == {
        w.id: sum(1 for d in live_decisions if d.wallet_id == w.id) for w in wallets
    }
    # The wallets split over worker processes: the same decisions, in the same order, and the same reports.
    split = run_whatif(settings, wallets, from_ms=start_ms, sandbox="split", out=lambda _: None, workers=3)
    assert split.decisions == result.decisions

    def figures(report: WalletReport) -> tuple[object, ...]:
        return (report.wallet_id, report.considered, report.copied, report.skipped, report.capital_used_usdc,
                report.realised_pnl_usdc, report.unrealised_pnl_usdc)  # fmt: skip

    assert [figures(r) for r in split.reports] == [figures(r) for r in result.reports]
