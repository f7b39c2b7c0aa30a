"""The simulated trade flow: wallets' orders taking liquidity from the books, as the fills the activity feed
reports (a taker fill and a maker fill per book level crossed)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Any

from polycopy.simulator.books import ONE, BookState, SimulatedBooks
from polycopy.simulator.catalog import Wallet

TAKER_FEED_TYPES = ("trades", "orders_matched")
MAKER_FEED_TYPES = ("trades",)
_SIX_PLACES = Decimal("0.000001")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class SimulatedFill:
    """One fill as the activity feed reports it, and whether the wallet was the taker."""

    payload: dict[str, Any]
    is_taker: bool

    @property
    def feed_types(self) -> tuple[str, ...]:
        """RTDS activity types that carry this fill: taker fills go on both, maker fills only on `trades`."""
        return TAKER_FEED_TYPES if self.is_taker else MAKER_FEED_TYPES


class TradeFlow:
    """Heavy-tailed activity: a few whale wallets and a few popular markets carry most of the fills."""

    def __init__(self, rng: random.Random, wallets: Sequence[Wallet], books: SimulatedBooks) -> None:
        self._rng = rng
        self._wallets = list(wallets)
        self._books = books
        # Zipf-like activity: the first few wallets are whales that trade far more often.
        self._wallet_cum_weights = list(accumulate(1.0 / (rank + 1) ** 1.1 for rank in range(len(wallets))))
        self._market_cum_weights: list[float] = []

    def add_market(self) -> None:
        """Weigh the market the books added last: market popularity is Zipf-like too."""
        rank_weight = 1.0 / len(self._books.states) ** 0.8
        self._market_cum_weights.append((self._market_cum_weights or [0.0])[-1] + rank_weight)

    def next_trades(self, count: int, now_ms: int) -> list[SimulatedFill]:
        """Exactly `count` fills taken from the books (takers first, then makers), consuming liquidity."""
        fills: list[SimulatedFill] = []
        while len(fills) < count and self._books.states and self._wallets:
            fills.extend(self._simulate_order(now_ms))
        return fills[:count]

    def _simulate_order(self, now_ms: int) -> list[SimulatedFill]:
        rng, books = self._rng, self._books
        taker = self._pick_wallet()
        state = rng.choices(books.states, cum_weights=self._market_cum_weights)[0]
        token_index = rng.randrange(len(state.market.token_ids))
        side = "BUY" if rng.random() < 0.75 else "SELL"
        is_first = token_index == 0
        # A BUY of the first token lifts its asks; a BUY of the mirrored token hits the first token's bids.
        levels = state.asks if is_first == (side == "BUY") else state.bids
        if not levels:
            books.rebuild(state)
            levels = state.asks if is_first == (side == "BUY") else state.bids
        ordered = sorted(levels, reverse=levels is state.bids)
        max_levels = rng.choices((1, 2, 3), weights=(75, 18, 7))[0]
        first_price = ordered[0] if is_first else ONE - ordered[0]
        remaining = self._draw_order_shares(taker, first_price)
        transaction_hash = f"0x{rng.getrandbits(256):064x}"
        timestamp = now_ms // 1000 - rng.randint(0, 2)
        taker_fills, maker_fills = [], []
        for book_price in ordered[:max_levels]:
            filled = min(remaining, levels[book_price])
            levels[book_price] -= filled
            if levels[book_price] <= 0:
                del levels[book_price]
            price = book_price if is_first else ONE - book_price
            maker = self._pick_wallet(exclude=taker)
            maker_side = "SELL" if side == "BUY" else "BUY"
            args = (state, token_index, price, filled, transaction_hash, timestamp)
            taker_fills.append(SimulatedFill(self._build_payload(taker, side, *args, taker=True), True))
            maker_fills.append(
                SimulatedFill(self._build_payload(maker, maker_side, *args, taker=False), False)
            )
            state.last_trade[state.market.token_ids[token_index]] = price
            remaining -= filled
            if remaining <= 0:
                break
        if state.bids and state.asks:
            state.mid = (max(state.bids) + min(state.asks)) / 2
        books.touch(state)
        return taker_fills + maker_fills

    def _build_payload(
        self,
        wallet: Wallet,
        side: str,
        state: BookState,
        token_index: int,
        price: Decimal,
        size: Decimal,
        transaction_hash: str,
        timestamp: int,
        *,
        taker: bool,
    ) -> dict[str, Any]:
        market = state.market
        # The venue sometimes sends the sentinel 999 instead of the real outcome index.
        outcome_index = 999 if self._rng.random() < 0.02 else market.outcome_indexes[token_index]
        payload: dict[str, Any] = {
            "proxyWallet": wallet.display,
            "side": side,
            "asset": market.token_ids[token_index],
            "conditionId": market.condition_id,
            "size": float(size),
            "price": float(price),
            "timestamp": timestamp,
            "transactionHash": transaction_hash,
            "outcome": market.outcomes[token_index],
            "outcomeIndex": outcome_index,
            "slug": market.slug,
            "eventSlug": market.event_slug,
            "title": market.question,
            "icon": market.icon,
            "name": wallet.name,
            "pseudonym": wallet.pseudonym,
            "bio": wallet.bio,
            "profileImage": wallet.profile_image,
        }
        if self._rng.random() < 0.4:
            fee = Decimal("0.25") * size * (price * (ONE - price)) ** 2 if taker else Decimal(0)
            payload["fee"] = float(fee.quantize(_SIX_PLACES))
        return payload

    def _draw_order_shares(self, wallet: Wallet, price: Decimal) -> Decimal:
        rng = self._rng
        shares = rng.lognormvariate(math.log(30), 1.3) * wallet.size_factor
        style = rng.random()
        if style < 0.3:  # round share counts, as typed by hand
            magnitude = 10 ** max(0, int(math.log10(max(shares, 1))) - 1)
            return Decimal(max(1, round(shares / magnitude)) * magnitude)
        if style < 0.55:  # market orders spend a round pUSD amount, leaving fractional shares
            spend = Decimal(max(1, round(shares * float(price))))
            return max(spend / price, ONE).quantize(_SIX_PLACES)
        return Decimal(str(max(shares, 1.0))).quantize(_CENT)

    def _pick_wallet(self, exclude: Wallet | None = None) -> Wallet:
        for _ in range(8):
            wallet = self._rng.choices(self._wallets, cum_weights=self._wallet_cum_weights)[0]
            if wallet is not exclude:
                return wallet
        return wallet
