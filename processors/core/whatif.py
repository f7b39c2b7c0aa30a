"""What-if replay: run a wallet file over a window of logged trades through the copy engine and score it.

The decisions are the live pipeline's (`LocalPipeline`: the same target filter, evaluation and lifecycle),
with the books rebuilt from the books topic (`book_log.ReplayBooks`) and copies filled on paper against the
levels their intent carries. Markets that resolved within the window settle when the replay reaches their
resolution time, as the live worker settles them; a market that resolved after a trade was open for that
trade, even when the markets topic now says it is closed. At the end, open positions are marked to the last
price seen for their token anywhere in the window, and each wallet's figures are its snapshot's (the same as
`polycopy wallets show` gives for a live wallet).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from processors.core.engine import ReferenceView
from processors.core.ledger import ZERO
from processors.core.local import LocalPipeline
from processors.core.policy import Evaluation, TraderStats
from processors.core.snapshots import build_snapshot
from schemas.base import Side
from schemas.books import OrderBook
from schemas.decisions import DecisionAction
from schemas.orders import ReportKind
from schemas.portfolio import MarketResolution, WalletSnapshot
from schemas.reference import MarketReference
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig


@dataclass(frozen=True)
class PnlPoint:
    """A wallet's PnL at one moment of the replay."""

    at_ms: int
    realised_usdc: Decimal
    unrealised_usdc: Decimal

    @property
    def total_usdc(self) -> Decimal:
        return self.realised_usdc + self.unrealised_usdc


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
    snapshot: WalletSnapshot | None = None  # capital, available, reserved, deployed, settlements at the end
    history: list[PnlPoint] = field(default_factory=list)  # PnL after each trade it evaluated or settlement

    @property
    def pnl_usdc(self) -> Decimal:
        return self.realised_pnl_usdc + self.unrealised_pnl_usdc


class AsOfReference:
    """The reference data as it was at the replay's current time: a market that resolved later was open."""

    def __init__(self, reference: ReferenceView, resolved_at_ms: Mapping[str, int]) -> None:
        self._reference, self._resolved_at_ms = reference, resolved_at_ms
        self.now_ms = 0

    def wallets(self) -> Mapping[str, WalletConfig]:
        return self._reference.wallets()

    def market_for_token(self, token_id: str) -> MarketReference | None:
        market = self._reference.market_for_token(token_id)
        resolved_at = self._resolved_at_ms.get(market.condition_id) if market is not None else None
        if market is not None and resolved_at is not None and resolved_at > self.now_ms:
            return market.model_copy(update={"closed": False, "accepting_orders": True})
        return market

    def followed_traders(self) -> frozenset[str]:
        return self._reference.followed_traders()

    def trader_stats(self, wallet: str) -> TraderStats | None:
        return self._reference.trader_stats(wallet)


class WhatIfRun:
    """Feeds trades in log order through the engine for each wallet, settles the markets that resolve on the
    way, and keeps reports and last prices."""

    def __init__(self, reference: ReferenceView, resolutions: Iterable[MarketResolution] = ()) -> None:
        pending = sorted(resolutions, key=lambda r: (r.resolved_at_ms, r.condition_id))
        self.reference = AsOfReference(reference, {r.condition_id: r.resolved_at_ms for r in pending})
        self.pipeline = LocalPipeline(self.reference)
        self.reports = {wallet_id: WalletReport(wallet_id) for wallet_id in reference.wallets()}
        self.last_price: dict[str, tuple[Decimal, int]] = {}  # token -> (price, venue time in ms)
        self.pending = pending
        self.settled: list[MarketResolution] = []
        self.latest_ms = 0  # receive time of the latest trade fed

    def feed(self, trade: RawTrade, book: OrderBook | None) -> list[Evaluation]:
        """Evaluate one logged trade (at its receive time) for every wallet that follows its trader, with the
        book the gate saw; execute the copies on paper and apply their reports before the next trade."""
        self.settle_until(trade.received_at_ms)
        self.reference.now_ms = self.latest_ms = trade.received_at_ms
        self.last_price[trade.asset] = (trade.price, trade.timestamp * 1000)
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
        for wallet_id in dict.fromkeys(e.decision.wallet_id for e in evaluations):
            self._record_point(wallet_id, trade.received_at_ms)
        return evaluations

    def settle_until(self, now_ms: int) -> None:
        """Settle every market whose resolution time the replay has reached, at that time."""
        while self.pending and self.pending[0].resolved_at_ms <= now_ms:
            resolution = self.pending.pop(0)
            self.pipeline.resolve(resolution, resolution.resolved_at_ms)
            self.settled.append(resolution)
            for wallet_id in self.reports:
                self._record_point(wallet_id, resolution.resolved_at_ms)

    def finish(self, end_ms: int | None = None) -> list[WalletReport]:
        """Settle the markets that resolved by `end_ms` (the window's end), mark open positions to the last
        prices seen and return the reports, by wallet id."""
        if end_ms is not None:
            self.settle_until(end_ms)
        wallets = self.reference.wallets()
        for wallet_id, report in self.reports.items():
            state = self.pipeline.state_of(wallet_id)
            for asset, (price, at_ms) in self.last_price.items():
                state.portfolio.update_mark(state.ledger, asset, price, at_ms)
            state.portfolio.refresh(state.ledger)
            at_ms = max(end_ms or 0, self.latest_ms)
            report.snapshot = build_snapshot(wallet_id, wallets[wallet_id].mode.value, state, at_ms)
            report.realised_pnl_usdc = report.snapshot.realised_pnl_usdc
            report.unrealised_pnl_usdc = report.snapshot.unrealised_pnl_usdc
            self._record_point(wallet_id, at_ms)
        return [self.reports[wallet_id] for wallet_id in sorted(self.reports)]

    def _record_point(self, wallet_id: str, at_ms: int) -> None:
        state = self.pipeline.state_of(wallet_id)
        point = PnlPoint(at_ms, state.ledger.realised_pnl, state.portfolio.unrealised(state.ledger))
        history = self.reports[wallet_id].history
        if history and history[-1].at_ms == at_ms:
            history[-1] = point
        else:
            history.append(point)
