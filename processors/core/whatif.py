"""What-if replay: run a wallet file over a window of logged trades through the copy engine and score it.

The decisions are the live pipeline's (`LocalPipeline`: the same target filter, evaluation and lifecycle),
with the books rebuilt from the books topic (`book_log.ReplayBooks`) and copies filled on paper against the
levels their intent carries. Mark-to-market uses the last price seen for each token later in the window.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from processors.core.engine import ReferenceView
from processors.core.ledger import ZERO
from processors.core.local import LocalPipeline
from processors.core.policy import Evaluation
from schemas.base import Side
from schemas.books import OrderBook
from schemas.decisions import DecisionAction
from schemas.orders import ReportKind
from schemas.trades import RawTrade


@dataclass
class WalletReport:
    """One wallet's what-if outcome."""

    wallet_id: str
    considered: int = 0
    copied: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    capital_used_usdc: Decimal = ZERO  # what its BUY copies paid for the shares they got
    realised_pnl_usdc: Decimal = ZERO
    unrealised_pnl_usdc: Decimal = ZERO

    @property
    def pnl_usdc(self) -> Decimal:
        return self.realised_pnl_usdc + self.unrealised_pnl_usdc


class WhatIfRun:
    """Feeds trades in log order through the engine for each wallet and keeps reports and last prices."""

    def __init__(self, reference: ReferenceView) -> None:
        self.pipeline = LocalPipeline(reference)
        self.reports = {wallet_id: WalletReport(wallet_id) for wallet_id in reference.wallets()}
        self.last_price: dict[str, Decimal] = {}

    def feed(self, trade: RawTrade, book: OrderBook | None) -> list[Evaluation]:
        """Evaluate one logged trade (at its receive time) for every wallet that follows its trader, with the
        book the gate saw; execute the copies on paper and apply their reports before the next trade."""
        self.last_price[trade.asset] = trade.price
        evaluations = self.pipeline.decide(trade, book, trade.received_at_ms)
        for evaluation in evaluations:
            decision = evaluation.decision
            report = self.reports[decision.wallet_id]
            report.considered += 1
            if decision.action is DecisionAction.COPY:
                report.copied += 1
            else:
                report.skipped[decision.reason] += 1
        for settlement in self.pipeline.settle(evaluations, trade.received_at_ms):
            fills = [r for r in settlement.reports if r.kind is ReportKind.FILL]
            last = fills[-1] if fills else None  # fills are cumulative: the last has the whole matched size
            if last is not None and last.side is Side.BUY and last.average_price is not None:
                self.reports[last.wallet_id].capital_used_usdc += last.matched_size * last.average_price
        return evaluations

    def finish(self) -> list[WalletReport]:
        """Mark open positions to the last prices seen and return the reports, by wallet id."""
        for wallet_id, report in self.reports.items():
            ledger = self.pipeline.state_of(wallet_id).ledger
            report.realised_pnl_usdc = ledger.realised_pnl
            report.unrealised_pnl_usdc = sum(
                (
                    position.shares * self.last_price.get(asset, position.average_price) - position.cost_usdc
                    for asset, position in ledger.positions.items()
                ),
                ZERO,
            )
        return [self.reports[wallet_id] for wallet_id in sorted(self.reports)]
