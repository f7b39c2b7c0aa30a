"""What the simulated venue lists: markets and wallets drawn from a seed, and markets read off trade rows."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

ICON_BASE = "https://polymarket-upload.s3.us-east-2.amazonaws.com/"
_CENT = Decimal("0.01")

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
class Wallet:
    """A trading wallet: its address (lower case and as feeds write it), profile, and how large it trades."""

    address: str
    display: str
    name: str
    pseudonym: str
    bio: str
    profile_image: str
    size_factor: float


@dataclass(frozen=True)
class MarketFromTrades:
    """A market seen in recorded trade rows: its tokens (by outcome index), tick and the latest first-token
    price, with the texts of one of its rows."""

    condition_id: str
    token_ids: list[str]
    outcomes: list[str]
    outcome_indexes: list[int]
    tick_size: Decimal
    price: Decimal
    row: Mapping[str, Any]


def draw_wallet(rng: random.Random, rank: int) -> Wallet:
    """The wallet of activity rank `rank` (0 is the busiest)."""
    address = f"0x{rng.getrandbits(160):040x}"
    # Feeds carry EIP-55 style mixed case; lower-casing is the consumer's job.
    display = "0x" + "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in address[2:])
    handle = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    name = "" if rng.random() < 0.15 else handle + (str(rng.randint(1, 99)) if rng.random() < 0.3 else "")
    image = f"{ICON_BASE}profile-image-{rng.randint(10**6, 10**7)}.jpg" if rng.random() < 0.3 else ""
    return Wallet(
        address=address,
        display=display,
        name=name,
        pseudonym=f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}",
        bio="" if rng.random() < 0.9 else f"{rng.choice(_ADJECTIVES).lower()} trader",
        profile_image=image,
        # Whales trade larger as well as more often.
        size_factor=max(1.0, 30.0 / (rank + 1) ** 0.8),
    )


def draw_market(rng: random.Random, existing: Sequence[SimulatedMarket]) -> SimulatedMarket:
    """A new market with a question, slug (unique among `existing`), tick, end date and depth class."""
    category, question, event_slug = _draw_question(rng)
    slug = slugify(question)
    if any(market.slug == slug for market in existing):
        slug = f"{slug}-{len(existing)}"
    tick = Decimal("0.001") if rng.random() < 0.2 else Decimal("0.01")
    end_date = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.choice((0, 12, 16)):02d}:00:00Z"
    return SimulatedMarket(
        condition_id=f"0x{rng.getrandbits(256):064x}",
        question=question,
        slug=slug,
        event_slug=event_slug,
        token_ids=(draw_token_id(rng), draw_token_id(rng)),
        tick_size=tick,
        neg_risk=rng.random() < 0.25,
        category=category,
        end_date=end_date,
        icon=f"{ICON_BASE}{slug}-{rng.getrandbits(40):010x}.png",
        gamma_id=str(rng.randint(500_000, 1_999_999)),
        thin=rng.random() < 0.15,
    )


def draw_token_id(rng: random.Random) -> str:
    """An outcome token id: ERC-1155 ids are uint256, so 76-78 digits, the 78-digit ones below 2**256."""
    return str(rng.randrange(10**75, 2**256))


def read_markets_from_trades(
    rows: Iterable[Mapping[str, Any]], known_tokens: Mapping[str, Any]
) -> list[MarketFromTrades]:
    """The markets of Data API trade rows whose tokens are not in `known_tokens`, in order of first sight."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        condition_id, asset = str(row.get("conditionId") or ""), str(row.get("asset") or "")
        try:
            price = Decimal(str(row["price"]))
        except (KeyError, InvalidOperation):
            continue
        if not condition_id or not asset or asset in known_tokens or not 0 < price < 1:
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
    markets = []
    for condition_id, group in groups.items():
        tokens = sorted(group["tokens"].items(), key=lambda item: item[1][0])
        _, latest_asset, latest_price = group["latest"]
        markets.append(
            MarketFromTrades(
                condition_id=condition_id,
                token_ids=[asset for asset, _ in tokens],
                outcomes=[outcome or ("Yes", "No")[index] for _, (index, outcome) in tokens],
                outcome_indexes=[index for _, (index, _) in tokens],
                tick_size=Decimal("0.001") if group["fine"] else Decimal("0.01"),
                price=latest_price if latest_asset == tokens[0][0] else Decimal(1) - latest_price,
                row=group["row"],
            )
        )
    return markets


def build_leaderboard_rows(wallets: Sequence[Wallet], limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Data API `/v1/leaderboard` rows for wallets in activity order: volume and PnL falling with rank."""
    rows = []
    for index, wallet in enumerate(wallets[offset : offset + limit], start=offset):
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


def slugify(text: str) -> str:
    """A URL slug as the venue builds them: lower-case words joined by hyphens."""
    cleaned = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in cleaned.split("-") if part)


def _draw_question(rng: random.Random) -> tuple[str, str, str]:
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
    return "Culture", question, slugify(film)


def _parse_outcome_index(row: Mapping[str, Any]) -> int:
    try:
        index = int(row.get("outcomeIndex", 999))
    except (TypeError, ValueError):
        index = 999
    if index in (0, 1):
        return index
    # The sentinel 999 carries no index, so fall back to the outcome label.
    return {"yes": 0, "up": 0, "no": 1, "down": 1}.get(str(row.get("outcome") or "").lower(), 1)
