"""Seeded model of Polymarket markets, evolving order books and wallet trade flow, with no I/O."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from itertools import accumulate
from typing import Any

ONE = Decimal(1)
TAKER_FEED_TYPES = ("trades", "orders_matched")
MAKER_FEED_TYPES = ("trades",)
_ICON_BASE = "https://polymarket-upload.s3.us-east-2.amazonaws.com/"
_DRIFT_STEP_MS = 1000
_MAX_DRIFT_STEPS = 30
_SIX_PLACES = Decimal("0.000001")
_CENT = Decimal("0.01")
# Real books quote tens to thousands of shares per level; thin books make a liquidity gate fail.
_LEVEL_SCALE = {"thin": 6.0, "normal": 250.0, "deep": 1500.0}

_PEOPLE = ("Gavin Newsom", "J.D. Vance", "Marco Rubio", "AOC", "Josh Shapiro", "Gretchen Whitmer")
_TEAMS = ("Lakers", "Celtics", "Thunder", "Knicks", "Chiefs", "Eagles", "Dodgers", "Yankees", "Arsenal")
_COINS = (("Bitcoin", 100000, 5000), ("Ethereum", 4000, 250), ("Solana", 200, 10), ("XRP", 3, 1))
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
_FILMS = ("Dune Part Three", "The Batman II", "Toy Story 5", "Shrek 5", "Avengers Doomsday")
_ADJECTIVES = ("Comfortable", "Idle", "Warlike", "Wasteful", "Brave", "Quiet", "Lucky", "Frozen", "Sly")
_NOUNS = ("Insulation", "Paint", "Notepad", "Essay", "Harbor", "Falcon", "Ledger", "Orchid", "Kettle")
_SYLLABLES = ("kro", "vax", "nov", "ele", "tou", "ch", "sik", "el", "mar", "zo", "bet", "moar", "ka", "rin")


@dataclass(frozen=True)
class SimulatedMarket:
    """Static description of one binary market: identifiers, texts and trading parameters."""

    condition_id: str
    question: str
    slug: str
    event_slug: str
    token_ids: tuple[str, ...]
    outcomes: tuple[str, ...] = ("Yes", "No")
    outcome_indexes: tuple[int, ...] = (0, 1)
    tick_size: Decimal = Decimal("0.01")
    min_order_size: Decimal = Decimal("5")
    neg_risk: bool = False
    category: str = ""
    end_date: str = "2026-12-31T12:00:00Z"
    icon: str = ""
    gamma_id: str = ""
    thin: bool = False

    @property
    def title(self) -> str:
        """The market question, which the venue calls `title` in trade rows."""
        return self.question


@dataclass(frozen=True)
class SimulatedFill:
    """One fill as the activity feed reports it, and whether the wallet was the taker."""

    payload: dict[str, Any]
    is_taker: bool

    @property
    def feed_types(self) -> tuple[str, ...]:
        """RTDS activity types that carry this fill: taker fills go on both, maker fills only on `trades`."""
        return TAKER_FEED_TYPES if self.is_taker else MAKER_FEED_TYPES


@dataclass(frozen=True)
class _Wallet:
    address: str
    display: str
    name: str
    pseudonym: str
    bio: str
    profile_image: str
    size_factor: float


@dataclass
class _BookState:
    """One market's book, kept for its first token; the second token's book is the mirror (No = 1 - Yes)."""

    market: SimulatedMarket
    mid: Decimal
    low: Decimal
    high: Decimal
    depth: str
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    last_trade: dict[str, Decimal] = field(default_factory=dict)
    revision: int = 0


def _round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    return (value / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def format_decimal(value: Decimal) -> str:
    """Render a Decimal the way the venue does: no exponent, no trailing zeros ("0.9", "530")."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


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
        self._revision = 0
        self._drift_ms: int | None = None
        self._states: dict[str, _BookState] = {}
        self._by_token: dict[str, _BookState] = {}
        self._market_cum_weights: list[float] = []
        self._wallets = [self._draw_wallet(rank) for rank in range(wallet_count)]
        # Zipf-like activity: the first few wallets are whales that trade far more often.
        self._wallet_cum_weights = list(accumulate(1.0 / (rank + 1) ** 1.1 for rank in range(wallet_count)))
        for _ in range(market_count):
            self._add_generated_market()

    @property
    def markets(self) -> list[SimulatedMarket]:
        """All markets, generated and registered, in creation order."""
        return [state.market for state in self._states.values()]

    @property
    def revision(self) -> int:
        """Grows whenever some book may have changed (drift, trades, new markets): a cheap "anything new?"."""
        return self._revision

    def market_for_token(self, token_id: str) -> SimulatedMarket | None:
        """The market that owns an outcome token, or None if the token is unknown."""
        state = self._by_token.get(token_id)
        return state.market if state else None

    def top_wallets(self, n: int) -> list[str]:
        """The n most active wallets (lower-case addresses), most active first."""
        return [wallet.address for wallet in self._wallets[:n]]

    def leaderboard(self, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """Data API `/v1/leaderboard` rows: most active wallets first, volume and PnL falling with rank."""
        rows = []
        for index, wallet in enumerate(self._wallets[offset : offset + limit], start=offset):
            volume = 50_000_000.0 / (index + 1) ** 1.1
            rows.append(
                {
                    "rank": str(index + 1),  # the venue sends the rank as a string
                    "proxyWallet": wallet.address,
                    "userName": wallet.name or wallet.pseudonym,
                    "xUsername": "",
                    "verifiedBadge": False,
                    "vol": round(volume, 6),
                    "pnl": round(volume * (0.12 - 0.004 * (index % 40)), 6),
                    "profileImage": wallet.profile_image,
                }
            )
        return rows

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
        if condition_id in self._states:
            return self._states[condition_id].market
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
        self._add_state(market, Decimal(str(price)), depth)
        return market

    def register_from_trades(self, rows: Iterable[Mapping[str, Any]]) -> list[SimulatedMarket]:
        """Register deep books for the markets in data-API trade rows, centred on each one's latest price."""
        groups: dict[str, dict[str, Any]] = {}
        for row in rows:
            condition_id, asset = str(row.get("conditionId") or ""), str(row.get("asset") or "")
            try:
                price = Decimal(str(row["price"]))
            except (KeyError, InvalidOperation):
                continue
            if not condition_id or not asset or asset in self._by_token or not 0 < price < 1:
                continue
            group = groups.setdefault(condition_id, {"tokens": {}, "latest": None, "row": row, "fine": False})
            # Average fill prices arrive as long floats (0.5699998…), so look at the third decimal only.
            if price.quantize(Decimal("0.001")) != price.quantize(_CENT):
                group["fine"] = True
            group["tokens"].setdefault(asset, (_parse_outcome_index(row), str(row.get("outcome") or "")))
            timestamp = int(float(row.get("timestamp") or 0))
            # Data-API pages are newest first, so on equal timestamps the first row seen wins.
            if group["latest"] is None or timestamp > group["latest"][0]:
                group["latest"] = (timestamp, asset, price)
        registered = []
        for condition_id, group in groups.items():
            tokens = sorted(group["tokens"].items(), key=lambda item: item[1][0])
            tick = Decimal("0.001") if group["fine"] else Decimal("0.01")
            _, latest_asset, latest_price = group["latest"]
            price = latest_price if latest_asset == tokens[0][0] else ONE - latest_price
            row = group["row"]
            registered.append(
                self.register_market(
                    condition_id,
                    [asset for asset, _ in tokens],
                    min(max(price, tick), ONE - tick),
                    tick,
                    title=row.get("title") or None,
                    slug=row.get("slug") or None,
                    event_slug=row.get("eventSlug") or None,
                    outcomes=[outcome or ("Yes", "No")[index] for _, (index, outcome) in tokens],
                    outcome_indexes=[index for _, (index, _) in tokens],
                    icon=str(row.get("icon") or ""),
                )
            )
        return registered

    def book(self, token_id: str) -> dict[str, Any] | None:
        """The token's book in the CLOB `GET /book` shape: strings, levels worst-first, or None if unknown."""
        state = self._by_token.get(token_id)
        if state is None:
            return None
        bids, asks = self._token_levels(state, token_id)
        timestamp = str(self._now_ms() if self._now_ms else self._clock_ms)
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
            "last_trade_price": format_decimal(self._last_trade_price(state, token_id)),
        }

    def book_revision(self, token_id: str) -> int | None:
        """Grows whenever the token's book may have changed; None if the token is unknown."""
        state = self._by_token.get(token_id)
        return state.revision if state else None

    def book_levels(self, token_id: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None:
        """The token's (bids, asks) as price -> size maps (no formatting, no order), or None if unknown."""
        state = self._by_token.get(token_id)
        if state is None:
            return None
        bids, asks = self._token_levels(state, token_id)
        return dict(bids), dict(asks)

    def midpoint(self, token_id: str) -> Decimal | None:
        """Mid of the token's best bid and ask (last trade price if a side is empty); None if unknown."""
        state = self._by_token.get(token_id)
        if state is None:
            return None
        bids, asks = self._token_levels(state, token_id)
        if bids and asks:
            return (max(bids)[0] + min(asks)[0]) / 2
        return self._last_trade_price(state, token_id)

    def advance(self, now_ms: int) -> None:
        """Let every book drift for the whole seconds elapsed since the previous call."""
        self._clock_ms = max(self._clock_ms, now_ms)
        if self._drift_ms is None or now_ms < self._drift_ms:
            self._drift_ms = now_ms
            return
        steps = (now_ms - self._drift_ms) // _DRIFT_STEP_MS
        self._drift_ms = now_ms if steps > _MAX_DRIFT_STEPS else self._drift_ms + steps * _DRIFT_STEP_MS
        for _ in range(min(steps, _MAX_DRIFT_STEPS)):
            for state in self._states.values():
                self._drift_book(state)

    def next_trades(self, count: int, now_ms: int) -> list[SimulatedFill]:
        """Exactly `count` fills taken from the books (takers first, then makers), consuming liquidity."""
        self._clock_ms = max(self._clock_ms, now_ms)
        fills: list[SimulatedFill] = []
        while len(fills) < count and self._states and self._wallets:
            fills.extend(self._simulate_order(now_ms))
        return fills[:count]

    def _simulate_order(self, now_ms: int) -> list[SimulatedFill]:
        rng = self._rng
        taker = self._pick_wallet()
        state = rng.choices(list(self._states.values()), cum_weights=self._market_cum_weights)[0]
        token_index = rng.randrange(len(state.market.token_ids))
        side = "BUY" if rng.random() < 0.75 else "SELL"
        is_first = token_index == 0
        # A BUY of the first token lifts its asks; a BUY of the mirrored token hits the first token's bids.
        levels = state.asks if is_first == (side == "BUY") else state.bids
        if not levels:
            self._rebuild_book(state)
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
        # After the change, so a reader (on another thread) that sees the new revision sees the new book.
        state.revision += 1
        self._revision += 1
        return taker_fills + maker_fills

    def _build_payload(
        self,
        wallet: _Wallet,
        side: str,
        state: _BookState,
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

    def _draw_order_shares(self, wallet: _Wallet, price: Decimal) -> Decimal:
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

    def _drift_book(self, state: _BookState) -> None:
        rng, tick = self._rng, state.market.tick_size
        roll = rng.random()
        if roll < 0.28:
            ticks = rng.randint(2, 4) if roll < 0.03 else 1
            state.mid = min(max(state.mid + rng.choice((-1, 1)) * ticks * tick, state.low), state.high)
            self._rebuild_book(state)
        elif len(state.bids) < 3 or len(state.asks) < 3:
            self._rebuild_book(state)
        else:
            for levels in (state.bids, state.asks):
                if rng.random() < 0.5:
                    levels[rng.choice(sorted(levels))] = self._draw_level_size(state)
        state.revision += 1
        self._revision += 1

    def _rebuild_book(self, state: _BookState) -> None:
        tick = state.market.tick_size
        spread = self._rng.randint(1, 3)
        best_bid = min(max(_round_to_tick(state.mid - spread * tick / 2, tick), tick), ONE - 2 * tick)
        best_ask = min(best_bid + spread * tick, ONE - tick)
        state.bids = self._draw_levels(state, best_bid, -tick)
        state.asks = self._draw_levels(state, best_ask, tick)
        state.mid = (best_bid + best_ask) / 2
        state.revision += 1
        self._revision += 1

    def _draw_levels(self, state: _BookState, best: Decimal, step: Decimal) -> dict[Decimal, Decimal]:
        tick = state.market.tick_size
        levels: dict[Decimal, Decimal] = {}
        price, count = best, self._rng.randint(5, 15)
        while len(levels) < count and tick <= price <= ONE - tick:
            levels[price] = self._draw_level_size(state)
            price += step * self._rng.choices((1, 2, 3), weights=(75, 20, 5))[0]
        return levels

    def _draw_level_size(self, state: _BookState) -> Decimal:
        size = _LEVEL_SCALE[state.depth] * self._rng.lognormvariate(0, 1.1)
        rounded = Decimal(round(size)) if self._rng.random() < 0.3 else Decimal(str(size)).quantize(_CENT)
        return max(rounded, state.market.min_order_size)

    def _token_levels(
        self, state: _BookState, token_id: str
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        # list() copies in one C call, so a reader on another thread never sees a dict change size mid-loop.
        bids, asks = list(state.bids.items()), list(state.asks.items())
        if token_id == state.market.token_ids[0]:
            return bids, asks
        return [(ONE - p, s) for p, s in asks], [(ONE - p, s) for p, s in bids]

    def _last_trade_price(self, state: _BookState, token_id: str) -> Decimal:
        if token_id in state.last_trade:
            return state.last_trade[token_id]
        mid = _round_to_tick(state.mid, state.market.tick_size)
        return mid if token_id == state.market.token_ids[0] else ONE - mid

    def _pick_wallet(self, exclude: _Wallet | None = None) -> _Wallet:
        for _ in range(8):
            wallet = self._rng.choices(self._wallets, cum_weights=self._wallet_cum_weights)[0]
            if wallet is not exclude:
                return wallet
        return wallet

    def _add_state(self, market: SimulatedMarket, price: Decimal, depth: str) -> None:
        tick = market.tick_size
        low, high = max(min(Decimal("0.02"), price), tick), min(max(Decimal("0.98"), price), ONE - tick)
        state = _BookState(market, min(max(price, low), high), low, high, depth)
        self._rebuild_book(state)
        self._states[market.condition_id] = state
        for token_id in market.token_ids:
            self._by_token[token_id] = state
        # Market popularity is Zipf-like too, so a few markets carry most of the flow.
        rank_weight = 1.0 / len(self._states) ** 0.8
        self._market_cum_weights.append((self._market_cum_weights or [0.0])[-1] + rank_weight)

    def _add_generated_market(self) -> None:
        rng = self._rng
        category, question, event_slug = self._draw_question()
        slug = _slugify(question)
        if any(state.market.slug == slug for state in self._states.values()):
            slug = f"{slug}-{len(self._states)}"
        tick = Decimal("0.001") if rng.random() < 0.2 else Decimal("0.01")
        end_date = (
            f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.choice((0, 12, 16)):02d}:00:00Z"
        )
        market = SimulatedMarket(
            condition_id=f"0x{rng.getrandbits(256):064x}",
            question=question,
            slug=slug,
            event_slug=event_slug,
            token_ids=(_draw_token_id(rng), _draw_token_id(rng)),
            tick_size=tick,
            neg_risk=rng.random() < 0.25,
            category=category,
            end_date=end_date,
            icon=f"{_ICON_BASE}{slug}-{rng.getrandbits(40):010x}.png",
            gamma_id=str(rng.randint(500_000, 1_999_999)),
            thin=rng.random() < 0.15,
        )
        price = _round_to_tick(Decimal(str(rng.uniform(0.04, 0.96))), tick)
        self._add_state(market, price, "thin" if market.thin else "normal")

    def _draw_question(self) -> tuple[str, str, str]:
        rng = self._rng
        kind, year, month = rng.randrange(5), rng.choice((2026, 2027, 2028)), rng.choice(_MONTHS)
        if kind == 0:
            person = rng.choice(_PEOPLE)
            return "Politics", f"Will {person} win the {year} Democratic nomination?", f"nominee-{year}"
        if kind == 1:
            team = rng.choice(_TEAMS)
            return "Sports", f"Will the {team} win the {year} championship?", f"champion-{year}"
        if kind == 2:
            coin, level, step = rng.choice(_COINS)
            target = level + rng.randint(-4, 4) * step
            day = rng.randint(1, 28)
            question = f"Will {coin} be above ${target:,} on {month} {day}?"
            return "Crypto", question, f"{coin.lower()}-above-on-{month.lower()}-{day}"
        if kind == 3:
            question = f"Will the Fed cut rates by {rng.choice((25, 50))} bps in {month}?"
            return "Economy", question, f"fed-decision-in-{month.lower()}"
        film = rng.choice(_FILMS)
        question = f"Will {film} gross over ${rng.randint(5, 30) * 10}M opening weekend?"
        return "Culture", question, _slugify(film)

    def _draw_wallet(self, rank: int) -> _Wallet:
        rng = self._rng
        address = f"0x{rng.getrandbits(160):040x}"
        # Feeds carry EIP-55 style mixed case; lower-casing is the consumer's job.
        display = "0x" + "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in address[2:])
        handle = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        name = "" if rng.random() < 0.15 else handle + (str(rng.randint(1, 99)) if rng.random() < 0.3 else "")
        image = f"{_ICON_BASE}profile-image-{rng.randint(10**6, 10**7)}.jpg" if rng.random() < 0.3 else ""
        return _Wallet(
            address=address,
            display=display,
            name=name,
            pseudonym=f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}",
            bio="" if rng.random() < 0.9 else f"{rng.choice(_ADJECTIVES).lower()} trader",
            profile_image=image,
            # Whales trade larger as well as more often.
            size_factor=max(1.0, 30.0 / (rank + 1) ** 0.8),
        )


def _draw_token_id(rng: random.Random) -> str:
    # ERC-1155 ids are uint256, so 76-78 decimal digits with the 78-digit ones below 2**256.
    return str(rng.randrange(10**75, 2**256))


def _slugify(text: str) -> str:
    cleaned = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in cleaned.split("-") if part)


def _format_level(level: tuple[Decimal, Decimal]) -> dict[str, str]:
    return {"price": format_decimal(level[0]), "size": format_decimal(level[1])}


def _parse_outcome_index(row: Mapping[str, Any]) -> int:
    try:
        index = int(row.get("outcomeIndex", 999))
    except (TypeError, ValueError):
        index = 999
    if index in (0, 1):
        return index
    # The sentinel 999 carries no index, so fall back to the outcome label.
    return {"yes": 0, "up": 0, "no": 1, "down": 1}.get(str(row.get("outcome") or "").lower(), 1)
