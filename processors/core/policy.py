"""The copy policy: does this copy wallet copy this trade, at what size and limit; every skip has a reason.

Rules run in a fixed order and the first failing rule is the recorded reason (see `evaluate_trade`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from functools import lru_cache

from processors.core.books import check_liquidity
from processors.core.ids import build_intent_id
from processors.core.ledger import ZERO, WalletLedger
from schemas.base import Side
from schemas.books import OrderBook
from schemas.decisions import Decision, DecisionAction, SkipReason
from schemas.orders import ExecutionMode, OrderIntent
from schemas.reference import MarketReference
from schemas.trades import RawTrade, TradeSource
from schemas.wallets import SizingMode, WalletConfig

SIZE_STEP = Decimal("0.01")  # the venue takes order sizes in hundredths of a share
DAY_MS = 86_400_000


@dataclass(frozen=True)
class MarketInfo:
    """What the policy needs to know about a market; from reference data, else from the book."""

    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool = False
    closed: bool = False
    category: str | None = None
    tags: tuple[str, ...] = ()
    end_date_ms: int | None = None

    @classmethod
    def from_book(cls, book: OrderBook) -> MarketInfo:
        return cls(tick_size=book.tick_size, min_order_size=book.min_order_size, neg_risk=book.neg_risk)

    @classmethod
    def combine(cls, reference: MarketReference | None, book: OrderBook | None) -> MarketInfo | None:
        """Reference metadata where known, the book's trading parameters otherwise; None when neither."""
        if reference is None:
            return cls.from_book(book) if book is not None else None
        tick = reference.tick_size or (book.tick_size if book else None) or Decimal("0.01")
        minimum = reference.min_order_size or (book.min_order_size if book else None) or Decimal(0)
        return cls(
            tick_size=tick,
            min_order_size=minimum,
            neg_risk=reference.neg_risk,
            closed=reference.closed or not reference.accepting_orders,
            category=reference.category,
            tags=reference.tags,
            end_date_ms=reference.end_date_ms,
        )


@dataclass(frozen=True)
class TraderStats:
    """The leader's record, from the synced trader leaderboard."""

    win_rate: Decimal | None = None


@dataclass(frozen=True)
class Evaluation:
    """A decision, and the intent to send when the decision is a copy."""

    decision: Decision
    intent: OrderIntent | None = None


class _Skip(Exception):
    """Internal control flow: a rule failed. Never escapes `evaluate_trade`."""

    def __init__(
        self,
        reason: SkipReason,
        detail: str = "",
        *,
        size: Decimal | None = None,
        limit_price: Decimal | None = None,
        available_size: Decimal | None = None,
    ) -> None:
        super().__init__(reason.value)
        self.reason, self.detail = reason, detail
        self.size, self.limit_price, self.available_size = size, limit_price, available_size


def compute_limit_price(side: Side, leader_price: Decimal, slippage: Decimal, tick: Decimal) -> Decimal:
    """BUY: leader + slippage rounded down to the tick; SELL: leader - slippage rounded up; kept in (0, 1)."""
    if side is Side.BUY:
        raw, rounding = leader_price + slippage, ROUND_FLOOR
    else:
        raw, rounding = leader_price - slippage, ROUND_CEILING
    limit = (raw / tick).to_integral_value(rounding=rounding) * tick
    return min(max(limit, tick), Decimal(1) - tick)


def compute_order_notional(wallet: WalletConfig, trade: RawTrade) -> Decimal:
    """The USDC the sizing rule asks for, before caps."""
    value = wallet.sizing.value
    if wallet.sizing.mode is SizingMode.FIXED_USDC:
        return value
    if wallet.sizing.mode is SizingMode.RATIO:
        return trade.size * trade.price * value
    return wallet.capital_usdc * value / Decimal(100)


def round_shares(shares: Decimal) -> Decimal:
    """Round a share count down to the venue's precision."""
    return shares.quantize(SIZE_STEP, rounding=ROUND_DOWN) if shares > 0 else ZERO


def signal_clock_ms(trade: RawTrade, now_ms: int) -> int:
    """The time a trade's age is judged at: the decision time, so a backlog (an outage, a new consumer group)
    is judged by how old its trades are when we would act; a replayed trade by the replay's own clock, its
    recorded receive time, so a replay of an old capture decides as the recorded run did."""
    return trade.received_at_ms if trade.source is TradeSource.REPLAY else now_ms


def day_of(epoch_ms: int) -> str:
    """The UTC day an epoch-ms instant falls on, as YYYY-MM-DD (daily loss caps reset at 00:00 UTC)."""
    return _day_text(epoch_ms // DAY_MS)


@lru_cache(maxsize=64)
def _day_text(day_number: int) -> str:
    # Every evaluation and report asks for its day: formatting a date each time was a hot spot of replays.
    return datetime.fromtimestamp(day_number * DAY_MS // 1000, UTC).strftime("%Y-%m-%d")


def evaluate_trade(
    trade: RawTrade,
    wallet: WalletConfig,
    ledger: WalletLedger,
    *,
    market: MarketInfo | None,
    book: OrderBook | None,
    trader_stats: TraderStats | None = None,
    followed: Collection[str] = frozenset(),
    now_ms: int,
    missing_book_detail: str = "",
) -> Evaluation:
    """Decide whether `wallet` copies `trade`. On a copy the ledger reserves the order's capital, and the
    intent carries the book levels it can take at its limit (paper execution fills against them).

    The ledger also tracks the leader's position from every trade seen (for SELL mirroring), so call this
    once per (trade, wallet), in log order. `now_ms` is the decision time: it stamps the decision and judges
    the signal's age (`signal_clock_ms`: a replayed trade is judged at its recorded receive time, so a replay
    gives the same decisions). Every decision
    records the id of the book it was given; `missing_book_detail` explains a missing one.
    """
    intent_id = build_intent_id(wallet.id, trade.dedup_key)
    leader_before = ledger.leader_position(trade.proxy_wallet, trade.asset)
    duplicate = ledger.has_seen(intent_id)
    if not duplicate:
        ledger.observe_leader_trade(trade.proxy_wallet, trade.asset, trade.side, trade.size)
    try:
        size, limit, available = _apply_rules(
            trade,
            wallet,
            ledger,
            market,
            book,
            trader_stats,
            followed,
            leader_before,
            duplicate,
            missing_book_detail,
            now_ms,
        )
    except _Skip as skip:
        if not duplicate:
            ledger.remember_intent(intent_id)
        return Evaluation(
            _decision(
                trade,
                wallet,
                intent_id,
                now_ms,
                skip.reason.value,
                skip.detail,
                size=skip.size,
                limit_price=skip.limit_price,
                available_size=skip.available_size,
                book=book,
            )
        )
    assert market is not None and book is not None  # _apply_rules skips without a market or a book
    ledger.capital_usdc = wallet.capital_usdc
    ledger.reserve(
        intent_id,
        asset=trade.asset,
        condition_id=trade.condition_id,
        side=trade.side,
        size=size,
        limit_price=limit,
        leader=trade.proxy_wallet,
    )
    decision = _decision(
        trade,
        wallet,
        intent_id,
        now_ms,
        "copy",
        "",
        size=size,
        limit_price=limit,
        available_size=available,
        action=DecisionAction.COPY,
        book=book,
    )
    intent = OrderIntent(
        intent_id=intent_id,
        wallet_id=wallet.id,
        mode=wallet.mode,
        dedup_key=trade.dedup_key,
        asset=trade.asset,
        condition_id=trade.condition_id,
        side=trade.side,
        size=size,
        limit_price=limit,
        order_type=wallet.order_type,
        expiry_secs=wallet.expiry_secs,
        tick_size=market.tick_size,
        neg_risk=market.neg_risk,
        received_at_ms=trade.received_at_ms,
        created_at_ms=now_ms,
        book_levels=book.levels_within(trade.side, limit),
    )
    return Evaluation(decision, intent)


def _apply_rules(
    trade: RawTrade,
    wallet: WalletConfig,
    ledger: WalletLedger,
    market: MarketInfo | None,
    book: OrderBook | None,
    trader_stats: TraderStats | None,
    followed: Collection[str],
    leader_before: Decimal,
    duplicate: bool,
    missing_book_detail: str,
    now_ms: int,
) -> tuple[Decimal, Decimal, Decimal]:
    """Run every rule in order; raise _Skip at the first that fails, else return (shares, limit, depth)."""
    if not wallet.follows(trade.proxy_wallet, followed):
        raise _Skip(SkipReason.NOT_TARGET)
    if trade.side not in wallet.sides:
        raise _Skip(SkipReason.SIDE_DISABLED, f"{trade.side.value} not in {','.join(wallet.sides)}")
    if market is None:
        raise _Skip(SkipReason.MARKET_UNKNOWN)
    if market.closed:
        raise _Skip(SkipReason.MARKET_CLOSED)
    if wallet.min_days_to_end is not None and (
        market.end_date_ms is None
        or Decimal(market.end_date_ms - trade.timestamp * 1000) / DAY_MS < wallet.min_days_to_end
    ):
        raise _Skip(SkipReason.MARKET_CLOSED, "market ends too soon")
    labels = {label.lower() for label in (market.category, *market.tags) if label}
    if wallet.categories_allow and not labels & {c.lower() for c in wallet.categories_allow}:
        raise _Skip(SkipReason.CATEGORY_DENIED, "category not allowed")
    if labels & {c.lower() for c in wallet.categories_deny}:
        raise _Skip(SkipReason.CATEGORY_DENIED, "category denied")
    if wallet.mode is ExecutionMode.LIVE and trade.source is TradeSource.REPLAY:
        raise _Skip(SkipReason.SIGNAL_STALE, "a replayed trade is never copied by a live wallet")
    if wallet.max_signal_age_secs is not None:
        age_ms = signal_clock_ms(trade, now_ms) - trade.timestamp * 1000
        if age_ms > wallet.max_signal_age_secs * 1000:
            raise _Skip(SkipReason.SIGNAL_STALE, f"signal {age_ms} ms old")
    leader_notional = trade.size * trade.price
    if leader_notional < wallet.min_leader_usdc:
        raise _Skip(SkipReason.LEADER_TOO_SMALL, f"leader notional {leader_notional:.2f}")
    if not wallet.price_min <= trade.price <= wallet.price_max:
        raise _Skip(SkipReason.PRICE_OUT_OF_BAND)
    if wallet.min_edge is not None and wallet.min_edge > 0:
        win_rate = trader_stats.win_rate if trader_stats else None
        if win_rate is None or win_rate - trade.price < wallet.min_edge:
            raise _Skip(SkipReason.EDGE_BELOW_MIN, "no trader stats" if win_rate is None else "")

    limit = compute_limit_price(trade.side, trade.price, wallet.max_slippage, market.tick_size)
    if trade.side is Side.BUY:
        shares = _size_buy(trade, wallet, ledger, market, limit)
    else:
        shares = _size_sell(trade, ledger, market, leader_before)
        _check_open_orders(wallet, ledger, limit)
    if book is None:
        raise _Skip(SkipReason.BOOK_UNAVAILABLE, missing_book_detail, size=shares, limit_price=limit)
    gate = check_liquidity(book, trade.side, limit, shares, wallet.liquidity_min_fill_ratio)
    if not gate.passed:
        raise _Skip(
            SkipReason.INSUFFICIENT_LIQUIDITY,
            size=shares,
            limit_price=limit,
            available_size=gate.available_size,
        )
    if duplicate:
        raise _Skip(SkipReason.DUPLICATE, size=shares, limit_price=limit)
    return shares, limit, gate.available_size


def _size_buy(
    trade: RawTrade, wallet: WalletConfig, ledger: WalletLedger, market: MarketInfo, limit: Decimal
) -> Decimal:
    """Shares to buy: sizing, then each cap in order; a cap leaving less than the minimum is the reason."""
    minimum = _minimum_shares(market)
    notional = compute_order_notional(wallet, trade)
    if wallet.max_order_usdc is not None:
        notional = min(notional, wallet.max_order_usdc)
    if round_shares(notional / limit) < minimum:
        raise _Skip(
            SkipReason.BELOW_MIN_ORDER_SIZE,
            f"{round_shares(notional / limit)} < {minimum} shares",
            limit_price=limit,
        )
    headroom = [
        cap - used
        for cap, used in (
            (wallet.max_market_exposure_usdc, ledger.market_exposure(trade.condition_id)),
            (wallet.max_total_exposure_usdc, ledger.total_exposure()),
        )
        if cap is not None
    ]
    if headroom:
        notional = min(notional, *headroom)
        if round_shares(notional / limit) < minimum:
            raise _Skip(
                SkipReason.EXPOSURE_CAP, f"headroom {max(min(headroom), ZERO):.2f} USDC", limit_price=limit
            )
    if wallet.max_daily_loss_usdc is not None:
        loss = ledger.daily_loss(day_of(trade.received_at_ms))
        if loss >= wallet.max_daily_loss_usdc:
            raise _Skip(SkipReason.DAILY_LOSS_CAP, f"lost {loss:.2f} USDC today", limit_price=limit)
    _check_open_orders(wallet, ledger, limit)
    ledger.capital_usdc = wallet.capital_usdc
    notional = min(notional, ledger.available)
    shares = round_shares(notional / limit)
    if shares < minimum:
        raise _Skip(
            SkipReason.CAPITAL_EXHAUSTED,
            f"available {max(ledger.available, ZERO):.2f} USDC",
            limit_price=limit,
        )
    return shares


def _minimum_shares(market: MarketInfo) -> Decimal:
    # A market without a published minimum (book default 0) still cannot take an order of 0 shares.
    return max(market.min_order_size, SIZE_STEP)


def _check_open_orders(wallet: WalletConfig, ledger: WalletLedger, limit: Decimal) -> None:
    if wallet.max_open_orders is not None and ledger.open_orders >= wallet.max_open_orders:
        raise _Skip(SkipReason.OPEN_ORDERS_CAP, f"{ledger.open_orders} open", limit_price=limit)


def _size_sell(trade: RawTrade, ledger: WalletLedger, market: MarketInfo, leader_before: Decimal) -> Decimal:
    """Sell the fraction of what we bought following this leader that the leader sold of the position we
    saw them build; never more than we hold.

    Only shares bought following the selling leader count: another leader's exit is not ours to mirror,
    and a leader never seen buying has nothing of ours to sell. A leader whose tracked position is already
    gone (they sold all we saw) while we still hold their shares exits in full.
    """
    held = ledger.sellable_shares(trade.asset, leader=trade.proxy_wallet)
    if held <= 0:
        raise _Skip(SkipReason.NO_POSITION, "nothing bought following this trader")
    minimum = _minimum_shares(market)
    fraction = min(trade.size / leader_before, Decimal(1)) if leader_before > 0 else Decimal(1)
    shares = round_shares(min(held * fraction, held))
    if held - shares < minimum:
        # What would remain is dust the venue minimum would never let us sell: sell everything now.
        shares = round_shares(held)
    if shares < minimum:
        raise _Skip(SkipReason.BELOW_MIN_ORDER_SIZE, f"{shares} of {held} held < {minimum} shares")
    return shares


def _decision(
    trade: RawTrade,
    wallet: WalletConfig,
    decision_id: str,
    now_ms: int,
    reason: str,
    detail: str,
    *,
    action: DecisionAction = DecisionAction.SKIP,
    size: Decimal | None = None,
    limit_price: Decimal | None = None,
    available_size: Decimal | None = None,
    book: OrderBook | None = None,
) -> Decision:
    return Decision(
        decision_id=decision_id,
        wallet_id=wallet.id,
        dedup_key=trade.dedup_key,
        trader=trade.proxy_wallet,
        asset=trade.asset,
        condition_id=trade.condition_id,
        side=trade.side,
        leader_price=trade.price,
        leader_size=trade.size,
        action=action,
        reason=reason,
        detail=detail,
        size=size,
        limit_price=limit_price,
        available_size=available_size,
        received_at_ms=trade.received_at_ms,
        decided_at_ms=now_ms,
        book_id=book.book_id if book is not None else None,
    )
