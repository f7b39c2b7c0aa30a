"""The copy engine: the one copy step that the live worker, `polycopy whatif` and the bench all call.

Given a trade: which copy wallets follow it (after dedup); given a trade, a follower, its state, the
reference data and the book: the evaluation (decision and intent); given an executor report: the lifecycle
events. No I/O: the callers bring the reference data, the state and the book, and send what comes back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Protocol

from processors.core import settlement
from processors.core.orders import apply_report as advance_order
from processors.core.policy import Evaluation, MarketInfo, TraderStats, day_of, evaluate_trade
from processors.core.targeting import select_followers
from processors.core.wallet_state import WalletState
from schemas.books import OrderBook
from schemas.orders import ExecutionMode, ExecutionReport, OrderEvent
from schemas.portfolio import MarketResolution
from schemas.reference import MarketReference, TraderReference
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig


class ReferenceView(Protocol):
    """The reference data the engine reads: wallet configs, markets, synced traders and their stats."""

    def wallets(self) -> Mapping[str, WalletConfig]: ...
    def market_for_token(self, token_id: str) -> MarketReference | None: ...
    def followed_traders(self) -> frozenset[str]: ...
    def trader_stats(self, wallet: str) -> TraderStats | None: ...


class RecentKeys(Protocol):
    """Keys seen recently: the worker's windowed table, or a plain set in a replay."""

    def __contains__(self, key: object) -> bool: ...
    def add(self, key: str) -> None: ...


def build_trader_stats(trader: TraderReference | None) -> TraderStats | None:
    """What the policy knows of a synced trader (None for a trader not on the traders topic)."""
    return TraderStats(win_rate=trader.win_rate) if trader is not None else None


@dataclass(frozen=True)
class StaticReference:
    """Reference data held in memory: for what-if runs, the bench and tests."""

    wallet_configs: Mapping[str, WalletConfig] = field(default_factory=dict)
    markets_by_token: Mapping[str, MarketReference] = field(default_factory=dict)
    traders: Mapping[str, TraderReference] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        wallets: Iterable[WalletConfig] = (),
        markets: Iterable[MarketReference] = (),
        traders: Iterable[TraderReference] = (),
    ) -> StaticReference:
        """From lists as a topic holds them (later entries win, as on a compacted topic)."""
        return cls(
            {wallet.id: wallet for wallet in wallets},
            {token: market for market in markets for token in market.token_ids},
            {trader.wallet: trader for trader in traders},
        )

    def wallets(self) -> Mapping[str, WalletConfig]:
        return self.wallet_configs

    def market_for_token(self, token_id: str) -> MarketReference | None:
        return self.markets_by_token.get(token_id)

    def followed_traders(self) -> frozenset[str]:
        return self._followed

    def trader_stats(self, wallet: str) -> TraderStats | None:
        return build_trader_stats(self.traders.get(wallet))

    @cached_property
    def _followed(self) -> frozenset[str]:
        # Asked for every trade and every evaluation; the traders never change in a StaticReference.
        return frozenset(self.traders)


@dataclass(frozen=True)
class Targeting:
    """A trade after the target filter: whether it was new, and the wallets that follow its trader."""

    first_seen: bool
    followers: tuple[str, ...] = ()


def target(
    trade: RawTrade,
    seen: RecentKeys,
    reference: ReferenceView,
    known_followers: dict[str, tuple[str, ...]] | None = None,
) -> Targeting:
    """Drop a fill seen recently (the same fill on both feed types, a reconnect, the poller's overlap);
    otherwise remember it and return its followers in a stable (wallet id) order. A caller whose reference
    never changes (a replay) may pass `known_followers`: each trader's followers, filled in as they are
    found, so every wallet is asked about a trader once rather than about each of their trades."""
    if trade.dedup_key in seen:
        return Targeting(first_seen=False)
    seen.add(trade.dedup_key)
    followers = known_followers.get(trade.proxy_wallet) if known_followers is not None else None
    if followers is None:
        wallets, followed = reference.wallets().values(), reference.followed_traders()
        followers = tuple(select_followers(trade, wallets, followed))
        if known_followers is not None:
            known_followers[trade.proxy_wallet] = followers
    return Targeting(first_seen=True, followers=followers)


def evaluate(
    trade: RawTrade,
    wallet: WalletConfig,
    state: WalletState,
    reference: ReferenceView,
    book: OrderBook | None,
    now_ms: int,
    *,
    missing_book_detail: str = "",
) -> Evaluation:
    """One follower's decision on a trade, with the market's reference data combined with the book's
    trading parameters, the trader's stats and the synced traders. A copy reserves capital in `state`.

    The trade (and the book, where newer) first marks the wallet's position in its token, so the daily loss
    cap sees what the position is worth now."""
    state.portfolio.observe_trade(state.ledger, trade, book, day_of(trade.received_at_ms))
    market = MarketInfo.combine(reference.market_for_token(trade.asset), book)
    if market is not None and trade.condition_id in state.portfolio.resolutions:
        market = replace(market, closed=True)  # the wallet knows it resolved, whatever the reference says yet
    return evaluate_trade(
        trade,
        wallet,
        state.ledger,
        market=market,
        book=book,
        trader_stats=reference.trader_stats(trade.proxy_wallet),
        followed=reference.followed_traders(),
        now_ms=now_ms,
        missing_book_detail=missing_book_detail,
    )


def apply_report(state: WalletState, report: ExecutionReport, now_ms: int) -> list[OrderEvent]:
    """Advance the reported order in `state` (ledger, PnL book and open orders) and return the events to
    publish; a fill in a market that already resolved settles at once (`settlement.sweep`).

    A report about an order that already reached a final state is late (a re-delivery, a stray status poll)
    and changes nothing, except that it releases a reservation its intent holds: one made when the trade was
    decided again from a state saved before the order ended (a worker killed between its sends and its state
    write), which nothing else would ever release.
    """
    if state.is_closed(report.order_id):
        if report.intent_id in state.ledger.reservations:
            state.ledger.release(report.intent_id)
            state.portfolio.refresh(state.ledger)
        return []
    ledger, book = state.ledger, state.portfolio
    book.roll_day(ledger, day_of(report.reported_at_ms))
    realised_before = ledger.realised_pnl
    record, events = advance_order(ledger, state.orders.get(report.order_id), report, now_ms)
    settlement.book_fee(state, record, report)
    book.attribute_realised(report.asset, ledger.realised_pnl - realised_before)
    state.record_order(record)
    events += settlement.sweep(state, report.wallet_id, report.mode, now_ms)
    book.refresh(ledger)
    return events


def settle(
    state: WalletState, wallet_id: str, resolution: MarketResolution, mode: ExecutionMode, now_ms: int
) -> list[OrderEvent]:
    """Apply a market's resolution to one wallet (`processors.core.settlement`); returns the order events."""
    return settlement.settle_market(state, wallet_id, resolution, mode, now_ms)
