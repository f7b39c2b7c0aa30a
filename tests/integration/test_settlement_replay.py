"""A replay of real trades through the what-if engine with the real market resolutions of ZhdanovAlexey's
copybot.db (MIT; read in place from ../shared/data with sqlite3), settled PnL checked against a computation
written here from the fills and the resolutions alone.

The data, as it is: copybot.db's `market_resolutions` holds 393 markets (391 resolved with a winning token, 2
pending) that its leaders traded before the bot ran, and none of the 52 markets of its 926 `trades` rows. The
only recorded trades in ../shared/data that fall in those resolved markets are three rows of
asommerhauser__polymarket-tracker (two NBA markets, both tokens of one of them). So the replay feeds both sets
in log order (January's three trades, then the bot's April leader fills) with all 391 resolutions applied at
their times, and a second run resolves the bot's own 52 markets too, with outcomes this test derives from the
leaders' last prices (the data has none), so that settlement is checked at scale on real fills.

Books: the data has none for these trades, so each trade is offered one deep level at its own price (tick
0.001), quoted at the trade's time; copies fill there on paper.
"""

from __future__ import annotations

import csv
import hashlib
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import pytest

from processors.core.engine import StaticReference
from processors.core.local import Settlement
from processors.core.whatif import WalletReport, WhatIfRun
from schemas.base import Side
from schemas.orders import ReportKind
from schemas.portfolio import MarketResolution, ResolutionSource
from schemas.trades import RawTrade, TradeSource
from schemas.wallets import WalletConfig
from tests.builders import SHARED_DATA, build_book

pytestmark = pytest.mark.integration

COPYBOT = SHARED_DATA / "ZhdanovAlexey__polymarket-copybot" / "copybot.db"
TRACKER = SHARED_DATA / "asommerhauser__polymarket-tracker" / "polymarket_trades_sample.csv"
TICK = Decimal("0.001")
ZERO = Decimal(0)
EXACT = Decimal("0.0001")  # the ledger rounds each sale's cost to 8 decimals; over hundreds of sales


# --- the data, read in place --------------------------------------------------------------------------------
def copybot_rows(sql: str) -> list[sqlite3.Row]:
    connection = sqlite3.connect(f"file:{COPYBOT}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return list(connection.execute(sql))
    finally:
        connection.close()


def resolved_markets() -> dict[str, tuple[str, int]]:
    """condition id -> (winning token id, resolved time in ms), straight from the table."""
    return {
        row["condition_id"]: (row["winner_token_id"], row["resolved_at"] * 1000)
        for row in copybot_rows("SELECT * FROM market_resolutions WHERE status = 'resolved'")
    }


def as_resolutions(markets: dict[str, tuple[str, int]]) -> list[MarketResolution]:
    return [
        MarketResolution(
            condition_id=condition_id,
            payouts={winner: Decimal(1)},  # the loser's token is not in the table: it pays 0
            winning_token_id=winner,
            resolved_at_ms=at_ms,
            source=ResolutionSource.IMPORT,
        )
        for condition_id, (winner, at_ms) in markets.items()
    ]


def leader_trade(
    wallet: str, side: str, token: str, condition_id: str, size: str, price: str, at_ms: int
) -> RawTrade:
    """A recorded fill as the feed would carry it; the data has no transaction hash, so one is derived from
    the fill's fields (a fill recorded twice stays one fill, as the target filter sees it)."""
    fields = f"{wallet}|{side}|{token}|{size}|{price}|{at_ms}"
    return RawTrade(
        source=TradeSource.POLL,
        feed_type="trades",
        received_at_ms=at_ms,
        proxy_wallet=wallet,
        side=Side(side),
        asset=token,
        condition_id=condition_id,
        size=Decimal(size),
        price=Decimal(price),
        timestamp=at_ms // 1000,
        transaction_hash="0x" + hashlib.sha256(fields.encode()).hexdigest(),
        dedup_key=hashlib.sha256(fields.encode()).hexdigest(),
    )


def copybot_trades() -> list[RawTrade]:
    return [
        leader_trade(
            row["trader_address"],
            row["side"],
            row["token_id"],
            row["condition_id"],
            repr(row["original_trader_size"]),
            repr(row["original_trader_price"]),
            int(datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")).timestamp() * 1000),
        )
        for row in copybot_rows("SELECT * FROM trades ORDER BY timestamp, id")
    ]


def tracker_trades_in(markets: dict[str, tuple[str, int]]) -> list[RawTrade]:
    with TRACKER.open(encoding="utf-8") as text:
        rows = [row for row in csv.DictReader(text) if row["conditionId"] in markets]
    return [
        leader_trade(
            r["proxyWallet"],
            r["side"],
            r["asset"],
            r["conditionId"],
            r["size"],
            r["price"],
            int(r["timestamp"]) * 1000,
        )
        for r in rows
    ]


# --- the replay ---------------------------------------------------------------------------------------------
def wallet_following(wallet_id: str, leaders: set[str]) -> WalletConfig:
    return WalletConfig(
        id=wallet_id,
        capital_usdc=Decimal("100000"),
        targets=tuple(sorted(leaders)),
        sides=(Side.BUY, Side.SELL),
        sizing={"mode": "fixed_usdc", "value": "10"},  # type: ignore[arg-type]
        max_slippage=Decimal("0.02"),
        liquidity_min_fill_ratio=Decimal("0"),
    )


def book_at_trade(trade: RawTrade):  # type: ignore[no-untyped-def]
    price = max(trade.price.quantize(TICK), TICK * 2)
    return build_book(
        asks=[(str(price), "1000000")],
        bids=[(str(price - TICK), "1000000")],
        tick="0.001",
        asset=trade.asset,
        market=trade.condition_id,
        timestamp_ms=trade.timestamp * 1000,  # not newer than the trade: the trade's price marks the token
    )


@dataclass
class Replay:
    run: WhatIfRun
    fills: list[tuple[int, str, str, Side, Decimal, Decimal]] = field(default_factory=list)  # wallet, token
    skipped_closed: int = 0


def replay(
    trades: list[RawTrade], wallets: list[WalletConfig], resolutions: list[MarketResolution]
) -> Replay:
    run = WhatIfRun(StaticReference.build(wallets), resolutions)
    record = Replay(run)
    settle = run.pipeline.settle

    def settle_and_record(evaluations, now_ms):  # type: ignore[no-untyped-def]
        settlements: list[Settlement] = settle(evaluations, now_ms)
        for settlement in settlements:
            fills = [r for r in settlement.reports if r.kind is ReportKind.FILL]
            if fills:  # cumulative: the last fill of an order has its whole matched size and value
                last = fills[-1]
                value = last.matched_size * (last.average_price or ZERO)
                record.fills.append(
                    (
                        now_ms,
                        last.wallet_id,
                        last.asset,
                        last.side,
                        last.matched_size,
                        value,
                    )
                )
        return settlements

    run.pipeline.settle = settle_and_record  # type: ignore[method-assign]
    for trade in sorted(trades, key=lambda t: t.received_at_ms):
        for evaluation in run.feed(trade, book_at_trade(trade)):
            record.skipped_closed += evaluation.decision.reason == "market_closed"
    return record


# --- the independent computation ----------------------------------------------------------------------------
@dataclass
class Expected:
    realised: Decimal = ZERO
    settled: int = 0
    won: int = 0
    realised_by_token: dict[str, Decimal] = field(default_factory=dict)  # settled tokens: sales + payout
    open_cost: dict[str, Decimal] = field(default_factory=dict)
    settled_tokens: set[str] = field(default_factory=set)
    open_shares: dict[str, Decimal] = field(default_factory=dict)


def expected_figures(
    fills: list[tuple[int, str, str, Side, Decimal, Decimal]],
    markets: dict[str, tuple[str, int]],
    market_of: dict[str, str],
    end_ms: int,
) -> dict[str, Expected]:
    """Average-cost books per wallet and token from the fills; a token whose market resolved by the end
    pays 1 a share if it won, else 0, at the resolution."""
    figures: dict[str, Expected] = defaultdict(Expected)
    for _, wallet_id, token, side, shares, value in fills:
        book = figures[wallet_id]
        held, cost = book.open_shares.get(token, ZERO), book.open_cost.get(token, ZERO)
        if side is Side.BUY:
            book.open_shares[token], book.open_cost[token] = held + shares, cost + value
        else:
            sold_cost = cost * shares / held
            book.realised += value - sold_cost
            book.realised_by_token[token] = book.realised_by_token.get(token, ZERO) + value - sold_cost
            book.open_shares[token], book.open_cost[token] = held - shares, cost - sold_cost
    for book in figures.values():
        for token in [t for t, shares in book.open_shares.items() if shares > 0]:
            resolved = markets.get(market_of[token])
            if resolved is None or resolved[1] > end_ms:
                continue
            payout = Decimal(resolved[0] == token)
            pnl = book.open_shares.pop(token) * payout - book.open_cost.pop(token)
            book.realised += pnl
            book.settled += 1
            book.won += pnl > 0
            book.realised_by_token[token] = book.realised_by_token.get(token, ZERO) + pnl
            book.settled_tokens.add(token)
        for token in [t for t, shares in book.open_shares.items() if shares == 0]:
            del book.open_shares[token], book.open_cost[token]
    return figures


def last_prices(trades: list[RawTrade]) -> dict[str, Decimal]:
    prices: dict[str, Decimal] = {}
    for trade in sorted(trades, key=lambda t: t.received_at_ms):
        prices[trade.asset] = trade.price
    return prices


def close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= EXACT


def check(
    result: Replay, trades: list[RawTrade], markets: dict[str, tuple[str, int]], end_ms: int
) -> list[WalletReport]:
    """Finish the run and compare every wallet's figures with the independent ones; returns the reports."""
    market_of = {trade.asset: trade.condition_id for trade in trades}
    expected = expected_figures(result.fills, markets, market_of, end_ms)
    prices = last_prices(trades)
    reports = result.run.finish(end_ms)
    for report in reports:
        snapshot, want = report.snapshot, expected[report.wallet_id]
        assert snapshot is not None
        assert close(snapshot.realised_pnl_usdc, want.realised), (report.wallet_id, snapshot, want)
        assert (snapshot.settled_positions, snapshot.winning_positions) == (want.settled, want.won)
        assert {p.asset for p in snapshot.open_positions} == set(want.open_shares)
        assert close(snapshot.deployed_usdc, sum(want.open_cost.values(), ZERO))
        unrealised = sum(
            (want.open_shares[t] * prices[t] - want.open_cost[t] for t in want.open_shares), ZERO
        )
        assert close(snapshot.unrealised_pnl_usdc, unrealised)
        assert snapshot.available_usdc + snapshot.reserved_usdc + snapshot.deployed_usdc == (
            snapshot.capital_usdc + snapshot.realised_pnl_usdc
        )
        state = result.run.pipeline.state_of(report.wallet_id)
        for token in want.settled_tokens:
            assert close(state.portfolio.realised_of(token), want.realised_by_token[token]), token
    return reports


# --- the tests ----------------------------------------------------------------------------------------------
def test_the_copybot_resolutions_are_391_markets_with_a_winner_and_2_pending() -> None:
    counts = dict(copybot_rows("SELECT status, count(*) FROM market_resolutions GROUP BY status"))
    assert counts == {"resolved": 391, "pending": 2}
    resolutions = as_resolutions(resolved_markets())
    assert len({r.condition_id for r in resolutions}) == 391
    assert all(r.payout_of(r.winning_token_id or "") == 1 for r in resolutions)


def test_real_trades_replayed_with_the_copybot_resolutions_settle_as_computed_independently() -> None:
    markets = resolved_markets()
    in_resolved = tracker_trades_in(markets)
    bot = copybot_trades()
    assert (len(in_resolved), len(bot)) == (3, 926)
    assert not {t.condition_id for t in bot} & set(markets)  # the data as described above
    wallets = [
        wallet_following("nba", {t.proxy_wallet for t in in_resolved}),
        wallet_following("bot-leaders", {t.proxy_wallet for t in bot}),
    ]
    trades = in_resolved + bot
    end_ms = max(t.received_at_ms for t in trades)

    result = replay(trades, wallets, as_resolutions(markets))

    assert len(result.run.settled) == sum(1 for _, at_ms in markets.values() if at_ms <= end_ms) == 391
    [leaders, nba] = check(result, trades, markets, end_ms)
    assert nba.snapshot is not None and leaders.snapshot is not None
    # Clippers and Pistons won, Knicks lost: two winners and a loser, each bought for about 10 USDC.
    assert (nba.snapshot.settled_positions, nba.snapshot.winning_positions) == (3, 2)
    assert nba.snapshot.deployed_usdc == 0 and nba.snapshot.realised_pnl_usdc > 0
    assert leaders.snapshot.settled_positions == 0 and leaders.copied > 50


def test_the_bots_own_markets_settled_at_derived_outcomes_mid_replay_match_the_independent_figures() -> None:
    bot = copybot_trades()
    first, last = min(t.received_at_ms for t in bot), max(t.received_at_ms for t in bot)
    middle = (first + last) // 2
    # Outcomes the data lacks, derived here: in each market, the token the leaders last traded wins if its
    # last price was at least 0.5; else the market's other token wins (when the leaders traded it too, it is
    # named; otherwise no token the wallet can hold pays).
    final: dict[str, RawTrade] = {}
    tokens: dict[str, set[str]] = defaultdict(set)
    for trade in sorted(bot, key=lambda t: t.received_at_ms):
        final[trade.condition_id] = trade
        tokens[trade.condition_id].add(trade.asset)
    markets: dict[str, tuple[str, int]] = {}
    for condition_id, trade in final.items():
        others = sorted(tokens[condition_id] - {trade.asset})
        winner = trade.asset if trade.price >= Decimal("0.5") else (others[0] if others else "unknown")
        markets[condition_id] = (winner, middle)
    resolutions = [
        MarketResolution(
            condition_id=condition_id,
            payouts={token: Decimal(token == winner) for token in sorted(tokens[condition_id])},
            winning_token_id=winner if winner != "unknown" else None,
            resolved_at_ms=at_ms,
            source=ResolutionSource.IMPORT,
        )
        for condition_id, (winner, at_ms) in markets.items()
    ]
    assert any(len(names) == 2 for names in tokens.values())
    wallets = [wallet_following("bot-leaders", {t.proxy_wallet for t in bot})]

    result = replay(bot, wallets, resolutions)

    followed_after = {
        t.dedup_key for t in bot if t.received_at_ms >= middle and t.proxy_wallet in wallets[0].targets
    }
    assert result.skipped_closed == len(followed_after) > 0  # every market closed at its resolution
    assert all(at_ms < middle for at_ms, *_ in result.fills)
    [report] = check(result, bot, markets, last)
    assert report.snapshot is not None
    assert report.snapshot.settled_positions > 10 and report.snapshot.deployed_usdc == 0
