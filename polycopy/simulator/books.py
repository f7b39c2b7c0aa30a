"""The simulated order books: one per market (its second token mirrors the first), their drift, and the
venue's `GET /book` shape."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from polycopy.simulator.catalog import SimulatedMarket

ONE = Decimal(1)
Levels = dict[Decimal, Decimal]
# Real books quote tens to thousands of shares per level; thin books make a liquidity gate fail.
_LEVEL_SCALE = {"thin": 6.0, "normal": 250.0, "deep": 1500.0}
_CENT = Decimal("0.01")


@dataclass
class BookState:
    """One market's book, kept for its first token; the second token's book is the mirror (No = 1 - Yes)."""

    market: SimulatedMarket
    mid: Decimal
    low: Decimal
    high: Decimal
    depth: str
    bids: Levels = field(default_factory=dict)
    asks: Levels = field(default_factory=dict)
    last_trade: dict[str, Decimal] = field(default_factory=dict)
    revision: int = 0


def round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    """`value` rounded down to a whole number of ticks."""
    return (value / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def format_decimal(value: Decimal) -> str:
    """Render a Decimal the way the venue does: no exponent, no trailing zeros ("0.9", "530")."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


class SimulatedBooks:
    """Every market's book, by condition id and by token, and revision counters that say when they changed.

    Sizes and prices are drawn from the simulator's one random generator, so the same seed and calls give the
    same books.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._states: dict[str, BookState] = {}
        self._by_token: dict[str, BookState] = {}
        self.revision = 0  # grows whenever some book may have changed

    @property
    def states(self) -> list[BookState]:
        """Every market's book state, in the order the markets were added."""
        return list(self._states.values())

    @property
    def by_token(self) -> dict[str, BookState]:
        """Book states by outcome token id (read-only use)."""
        return self._by_token

    def find(self, condition_id: str) -> BookState | None:
        """The book state of a market, or None if the market is unknown."""
        return self._states.get(condition_id)

    def find_token(self, token_id: str) -> BookState | None:
        """The book state of the market that owns a token, or None if the token is unknown."""
        return self._by_token.get(token_id)

    def add(self, market: SimulatedMarket, price: Decimal, depth: str) -> BookState:
        """Quote a new market around `price` with levels of the given depth class."""
        tick = market.tick_size
        low, high = max(min(Decimal("0.02"), price), tick), min(max(Decimal("0.98"), price), ONE - tick)
        state = BookState(market, min(max(price, low), high), low, high, depth)
        self.rebuild(state)
        self._states[market.condition_id] = state
        for token_id in market.token_ids:
            self._by_token[token_id] = state
        return state

    def touch(self, state: BookState) -> None:
        """Record that `state` changed; call it after the change, so a reader on another thread that sees the
        new revision sees the new book."""
        state.revision += 1
        self.revision += 1

    def rebuild(self, state: BookState) -> None:
        """Quote the book afresh around its mid, with a spread of one to three ticks."""
        tick = state.market.tick_size
        spread = self._rng.randint(1, 3)
        best_bid = min(max(round_to_tick(state.mid - spread * tick / 2, tick), tick), ONE - 2 * tick)
        best_ask = min(best_bid + spread * tick, ONE - tick)
        state.bids = self._draw_levels(state, best_bid, -tick)
        state.asks = self._draw_levels(state, best_ask, tick)
        state.mid = (best_bid + best_ask) / 2
        self.touch(state)

    def drift(self, state: BookState) -> None:
        """One second of drift: the mid moves a tick or a few now and then, otherwise level sizes change."""
        rng, tick = self._rng, state.market.tick_size
        roll = rng.random()
        if roll < 0.28:
            ticks = rng.randint(2, 4) if roll < 0.03 else 1
            state.mid = min(max(state.mid + rng.choice((-1, 1)) * ticks * tick, state.low), state.high)
            self.rebuild(state)
        elif len(state.bids) < 3 or len(state.asks) < 3:
            self.rebuild(state)
        else:
            for levels in (state.bids, state.asks):
                if rng.random() < 0.5:
                    levels[rng.choice(sorted(levels))] = self._draw_level_size(state)
        self.touch(state)

    def token_levels(
        self, state: BookState, token_id: str
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The token's (bids, asks) as (price, size) pairs in no order; the second token sees the mirror."""
        # list() copies in one C call, so a reader on another thread never sees a dict change size mid-loop.
        bids, asks = list(state.bids.items()), list(state.asks.items())
        if token_id == state.market.token_ids[0]:
            return bids, asks
        return [(ONE - p, s) for p, s in asks], [(ONE - p, s) for p, s in bids]

    def last_trade_price(self, state: BookState, token_id: str) -> Decimal:
        """The token's last traded price, or its mid on the tick before any trade."""
        if token_id in state.last_trade:
            return state.last_trade[token_id]
        mid = round_to_tick(state.mid, state.market.tick_size)
        return mid if token_id == state.market.token_ids[0] else ONE - mid

    def render(self, token_id: str, timestamp_ms: int) -> dict[str, Any] | None:
        """The token's book in the CLOB `GET /book` shape: strings, levels worst-first, or None if unknown."""
        state = self._by_token.get(token_id)
        if state is None:
            return None
        bids, asks = self.token_levels(state, token_id)
        timestamp = str(timestamp_ms)
        bid_rows = [_format_level(level) for level in sorted(bids)]
        ask_rows = [_format_level(level) for level in sorted(asks, reverse=True)]
        digest = hashlib.sha1(f"{token_id}|{bid_rows}|{ask_rows}|{timestamp}".encode()).hexdigest()
        market = state.market
        return {
            "market": market.condition_id,
            "asset_id": token_id,
            "timestamp": timestamp,
            "hash": digest,
            "bids": bid_rows,
            "asks": ask_rows,
            "min_order_size": format_decimal(market.min_order_size),
            "tick_size": format_decimal(market.tick_size),
            "neg_risk": market.neg_risk,
            "last_trade_price": format_decimal(self.last_trade_price(state, token_id)),
        }

    def _draw_levels(self, state: BookState, best: Decimal, step: Decimal) -> Levels:
        tick = state.market.tick_size
        levels: Levels = {}
        price, count = best, self._rng.randint(5, 15)
        while len(levels) < count and tick <= price <= ONE - tick:
            levels[price] = self._draw_level_size(state)
            price += step * self._rng.choices((1, 2, 3), weights=(75, 20, 5))[0]
        return levels

    def _draw_level_size(self, state: BookState) -> Decimal:
        size = _LEVEL_SCALE[state.depth] * self._rng.lognormvariate(0, 1.1)
        rounded = Decimal(round(size)) if self._rng.random() < 0.3 else Decimal(str(size)).quantize(_CENT)
        return max(rounded, state.market.min_order_size)


def _format_level(level: tuple[Decimal, Decimal]) -> dict[str, str]:
    return {"price": format_decimal(level[0]), "size": format_decimal(level[1])}
