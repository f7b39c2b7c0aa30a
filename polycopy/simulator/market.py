"""Seeded model of Polymarket markets, evolving order books and wallet trade flow, with no I/O.

MarketSimulator is the one object the fake services and tools use; it composes the catalog (markets and
wallets, `catalog.py`), the books (`books.py`) and the trade flow (`flow.py`), which all draw from one random
generator so that one seed and the same calls give the same venue.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from polycopy.simulator.books import ONE, SimulatedBooks, format_decimal, round_to_tick
from polycopy.simulator.catalog import (
    SimulatedMarket,
    build_leaderboard_rows,
    draw_market,
    draw_wallet,
    read_markets_from_trades,
)
from polycopy.simulator.flow import MAKER_FEED_TYPES, TAKER_FEED_TYPES, SimulatedFill, TradeFlow

__all__ = [
    "MAKER_FEED_TYPES",
    "TAKER_FEED_TYPES",
    "MarketSimulator",
    "SimulatedFill",
    "SimulatedMarket",
    "format_decimal",
]

_DRIFT_STEP_MS = 1000
_MAX_DRIFT_STEPS = 30


class MarketSimulator:
    """Deterministic fake venue state from one seed: markets, evolving books, heavy-tailed wallet activity."""

    def __init__(
        self,
        seed: int,
        market_count: int = 40,
        wallet_count: int = 300,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._now_ms = now_ms
        self._clock_ms = 0
        self._drift_ms: int | None = None
        self._wallets = [draw_wallet(self._rng, rank) for rank in range(wallet_count)]
        self._books = SimulatedBooks(self._rng)
        self._flow = TradeFlow(self._rng, self._wallets, self._books)
        for _ in range(market_count):
            market = draw_market(self._rng, self.markets)
            price = round_to_tick(Decimal(str(self._rng.uniform(0.04, 0.96))), market.tick_size)
            self._add_market(market, price, "thin" if market.thin else "normal")

    @property
    def markets(self) -> list[SimulatedMarket]:
        """All markets, generated and registered, in creation order."""
        return [state.market for state in self._books.states]

    @property
    def revision(self) -> int:
        """Grows whenever some book may have changed (drift, trades, new markets): a cheap "anything new?"."""
        return self._books.revision

    def market_for_token(self, token_id: str) -> SimulatedMarket | None:
        """The market that owns an outcome token, or None if the token is unknown."""
        state = self._books.find_token(token_id)
        return state.market if state else None

    def top_wallets(self, n: int) -> list[str]:
        """The n most active wallets (lower-case addresses), most active first."""
        return [wallet.address for wallet in self._wallets[:n]]

    def leaderboard(self, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """Data API `/v1/leaderboard` rows: most active wallets first, volume and PnL falling with rank."""
        return build_leaderboard_rows(self._wallets, limit, offset)

    def register_market(
        self,
        condition_id: str,
        token_ids: list[str],
        price: Decimal,
        tick_size: Decimal = Decimal("0.01"),
        title: str | None = None,
        slug: str | None = None,
        *,
        event_slug: str | None = None,
        outcomes: list[str] | None = None,
        outcome_indexes: list[int] | None = None,
        icon: str = "",
        neg_risk: bool = False,
        category: str = "",
        depth: str = "deep",
    ) -> SimulatedMarket:
        """Add a market whose first token trades around `price`; a known condition id is returned as is."""
        known = self._books.find(condition_id)
        if known is not None:
            return known.market
        slug = slug or f"market-{condition_id[2:10]}"
        market = SimulatedMarket(
            condition_id=condition_id,
            question=title or slug.replace("-", " ").capitalize() + "?",
            slug=slug,
            event_slug=event_slug or slug,
            token_ids=tuple(token_ids),
            outcomes=tuple(outcomes or ("Yes", "No")[: len(token_ids)]),
            outcome_indexes=tuple(outcome_indexes or range(len(token_ids))),
            tick_size=tick_size,
            neg_risk=neg_risk,
            category=category,
            icon=icon,
            gamma_id=str(self._rng.randint(500_000, 1_999_999)),
            thin=depth == "thin",
        )
        self._add_market(market, Decimal(str(price)), depth)
        return market

    def register_from_trades(self, rows: Iterable[Mapping[str, Any]]) -> list[SimulatedMarket]:
        """Register deep books for the markets in data-API trade rows, centred on each one's latest price."""
        registered = []
        for found in read_markets_from_trades(rows, self._books.by_token):
            tick, row = found.tick_size, found.row
            registered.append(
                self.register_market(
                    found.condition_id,
                    found.token_ids,
                    min(max(found.price, tick), ONE - tick),
                    tick,
                    title=row.get("title") or None,
                    slug=row.get("slug") or None,
                    event_slug=row.get("eventSlug") or None,
                    outcomes=found.outcomes,
                    outcome_indexes=found.outcome_indexes,
                    icon=str(row.get("icon") or ""),
                )
            )
        return registered

    def book(self, token_id: str) -> dict[str, Any] | None:
        """The token's book in the CLOB `GET /book` shape: strings, levels worst-first, or None if unknown."""
        return self._books.render(token_id, self._now_ms() if self._now_ms else self._clock_ms)

    def book_revision(self, token_id: str) -> int | None:
        """Grows whenever the token's book may have changed; None if the token is unknown."""
        state = self._books.find_token(token_id)
        return state.revision if state else None

    def book_levels(self, token_id: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None:
        """The token's (bids, asks) as price -> size maps (no formatting, no order), or None if unknown."""
        state = self._books.find_token(token_id)
        if state is None:
            return None
        bids, asks = self._books.token_levels(state, token_id)
        return dict(bids), dict(asks)

    def midpoint(self, token_id: str) -> Decimal | None:
        """Mid of the token's best bid and ask (last trade price if a side is empty); None if unknown."""
        state = self._books.find_token(token_id)
        if state is None:
            return None
        bids, asks = self._books.token_levels(state, token_id)
        if bids and asks:
            return (max(bids)[0] + min(asks)[0]) / 2
        return self._books.last_trade_price(state, token_id)

    def take_liquidity(
        self, token_id: str, side: str, limit: Decimal, size: Decimal
    ) -> list[tuple[Decimal, Decimal]]:
        """Match a taker order of ours against the token's book up to `limit`, best level first, consuming
        what it takes; the (price, size) fills in the token's prices (empty when nothing crosses)."""
        state = self._books.find_token(token_id)
        if state is None:
            return []
        is_first = token_id == state.market.token_ids[0]
        # A BUY of the first token lifts its asks; a BUY of the mirrored token hits the first token's bids.
        levels = state.asks if is_first == (side == "BUY") else state.bids
        fills, remaining = [], size
        for book_price in sorted(levels, reverse=levels is state.bids):
            price = book_price if is_first else ONE - book_price
            if remaining <= 0 or (price > limit if side == "BUY" else price < limit):
                break
            taken = min(remaining, levels[book_price])
            levels[book_price] -= taken
            if levels[book_price] <= 0:
                del levels[book_price]
            fills.append((price, taken))
            remaining -= taken
        if fills:
            state.last_trade[token_id] = fills[-1][0]
            self._books.touch(state)
        return fills

    def advance(self, now_ms: int) -> None:
        """Let every book drift for the whole seconds elapsed since the previous call."""
        self._clock_ms = max(self._clock_ms, now_ms)
        if self._drift_ms is None or now_ms < self._drift_ms:
            self._drift_ms = now_ms
            return
        steps = (now_ms - self._drift_ms) // _DRIFT_STEP_MS
        self._drift_ms = now_ms if steps > _MAX_DRIFT_STEPS else self._drift_ms + steps * _DRIFT_STEP_MS
        for _ in range(min(steps, _MAX_DRIFT_STEPS)):
            for state in self._books.states:
                self._books.drift(state)

    def next_trades(self, count: int, now_ms: int) -> list[SimulatedFill]:
        """Exactly `count` fills taken from the books (takers first, then makers), consuming liquidity."""
        self._clock_ms = max(self._clock_ms, now_ms)
        return self._flow.next_trades(count, now_ms)

    def _add_market(self, market: SimulatedMarket, price: Decimal, depth: str) -> None:
        self._books.add(market, price, depth)
        self._flow.add_market()
