"""What-if replay: run a wallet file's policy over a window of logged trades and score it. Pure.

Books at the time of a logged trade are not in the log, so by default the gate sees the liquidity the leader's
own fill proves existed: one level at the leader's price and size. Copies are assumed to fill at their limit.
Mark-to-market uses the last price seen for each token later in the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from processors.core.ledger import ZERO, WalletLedger
from processors.core.policy import Evaluation, MarketInfo, day_of, evaluate_trade
from processors.core.targeting import select_followers
from schemas.base import Side
from schemas.books import Level, OrderBook
from schemas.decisions import DecisionAction
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig

DEFAULT_TICK = Decimal("0.01")
DEFAULT_MIN_ORDER_SIZE = Decimal("5")


def book_from_trade(
    trade: RawTrade, tick: Decimal = DEFAULT_TICK, min_order_size: Decimal = DEFAULT_MIN_ORDER_SIZE
) -> OrderBook:
    """The liquidity a leader's fill proves existed: its size at its price, on the side it took."""
    level = (Level(trade.price, trade.size),)
    return OrderBook(
        asset=trade.asset,
        market=trade.condition_id,
        bids=() if trade.side is Side.BUY else level,
        asks=level if trade.side is Side.BUY else (),
        tick_size=tick,
        min_order_size=min_order_size,
        neg_risk=False,
        timestamp_ms=trade.timestamp * 1000,
    )


@dataclass
class WalletReport:
    """One wallet's what-if outcome."""

    wallet_id: str
    considered: int = 0
    copied: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    capital_used_usdc: Decimal = ZERO
    realised_pnl_usdc: Decimal = ZERO
    unrealised_pnl_usdc: Decimal = ZERO

    @property
    def pnl_usdc(self) -> Decimal:
        return self.realised_pnl_usdc + self.unrealised_pnl_usdc


class WhatIfRun:
    """Feeds trades in log order through the policy for each wallet and keeps ledgers and last prices."""

    def __init__(self, wallets: Iterable[WalletConfig]) -> None:
        self.wallets = {wallet.id: wallet for wallet in wallets}
        self.ledgers = {wallet_id: WalletLedger(w.capital_usdc) for wallet_id, w in self.wallets.items()}
        self.reports = {wallet_id: WalletReport(wallet_id) for wallet_id in self.wallets}
        self.last_price: dict[str, Decimal] = {}
        self._seen: set[str] = set()

    def feed(self, trade: RawTrade, book: OrderBook | None = None) -> list[Evaluation]:
        """Evaluate one logged trade for every wallet that follows its trader; fill copies at their limit."""
        self.last_price[trade.asset] = trade.price
        if trade.dedup_key in self._seen:
            return []
        self._seen.add(trade.dedup_key)
        book = book or book_from_trade(trade)
        market = MarketInfo.from_book(book)
        results = []
        for wallet_id in select_followers(trade, self.wallets.values()):
            wallet, ledger, report = self.wallets[wallet_id], self.ledgers[wallet_id], self.reports[wallet_id]
            result = evaluate_trade(
                trade, wallet, ledger, market=market, book=book, now_ms=trade.received_at_ms
            )
            report.considered += 1
            if result.decision.action is DecisionAction.COPY and result.intent is not None:
                intent = result.intent
                report.copied += 1
                if intent.side is Side.BUY:
                    report.capital_used_usdc += intent.size * intent.limit_price
                ledger.apply_fill(
                    intent.intent_id, intent.size, intent.limit_price, day_of(trade.received_at_ms)
                )
            else:
                report.skipped[result.decision.reason] += 1
            results.append(result)
        return results

    def finish(self) -> list[WalletReport]:
        """Mark open positions to the last prices seen and return the reports, by wallet id."""
        for wallet_id, ledger in self.ledgers.items():
            report = self.reports[wallet_id]
            report.realised_pnl_usdc = ledger.realised_pnl
            report.unrealised_pnl_usdc = sum(
                (
                    position.shares * self.last_price.get(asset, position.average_price) - position.cost_usdc
                    for asset, position in ledger.positions.items()
                ),
                ZERO,
            )
        return [self.reports[wallet_id] for wallet_id in sorted(self.reports)]
