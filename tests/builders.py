"""Builders for test data: valid schema models and venue payloads with plain defaults, overridable per field.

Every builder takes keyword overrides for any field of what it builds, so a test states only what matters
to its scenario. Shared by the unit, agent, integration and end-to-end suites.

Venue documents come from three places: `tests/fixtures/` (real responses from MIT-licensed repositories,
byte-identical, read with `load_fixture_json`), the builders at the end of this module (documents rebuilt from
the documented formats with the traps of the unlicensed recordings), and `../shared/data` (the unlicensed
recordings themselves, read in place by the integration and end-to-end tests only: unit tests fail if they
try).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from polycopy.polymarket.books import parse_book
from processors.core.ids import (
    build_dedup_key,
    build_event_id,
    build_intent_id,
    build_paper_order_id,
    build_report_id,
)
from processors.core.policy import MarketInfo
from schemas.base import Side
from schemas.books import OrderBook
from schemas.decisions import Decision, DecisionAction
from schemas.orders import (
    ExecutionMode,
    ExecutionReport,
    OrderEvent,
    OrderEventType,
    OrderIntent,
    OrderStatus,
    OrderType,
    ReportKind,
)
from schemas.portfolio import (
    MarketResolution,
    PositionStatus,
    PositionView,
    ResolutionSource,
    WalletSnapshot,
)
from schemas.trades import RawTrade, TradeSource
from schemas.wallets import WalletConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"  # real venue responses from MIT-licensed sources (see its README)
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"  # real venue responses, read in place, never copied

TRADER = "0x" + "ab" * 20
OTHER_TRADER = "0x" + "cd" * 20
ASSET = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
OTHER_ASSET = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
CONDITION_ID = "0x" + "5f" * 32
TX_HASH = "0x" + "e1" * 32
WALLET_ID = "copy-1"
TRADE_TIMESTAMP = 1_784_327_295  # venue trade time, epoch seconds (2026-07-17)
RECEIVED_AT_MS = TRADE_TIMESTAMP * 1000 + 2_000  # our receive time: about 2 s after the match
NOW_MS = RECEIVED_AT_MS + 50

Levels = Sequence[tuple[str | Decimal | float, str | Decimal | float]]
DEFAULT_ASKS: Levels = (("0.50", "1000"), ("0.51", "1000"), ("0.52", "1000"))
DEFAULT_BIDS: Levels = (("0.49", "1000"), ("0.48", "1000"), ("0.47", "1000"))


def build_trade_payload(**overrides: Any) -> dict[str, Any]:
    """A venue trade payload (RTDS `activity` payload / Data API `/trades` row), camelCase as on the wire."""
    payload: dict[str, Any] = {
        "proxyWallet": "0xAbAbabABabababABABababababABABababABABab",  # mixed case, as the venue sends
        "side": "BUY",
        "asset": ASSET,
        "conditionId": CONDITION_ID,
        "size": 100,
        "price": 0.5,
        "timestamp": TRADE_TIMESTAMP,
        "title": "Will it rain in Lisbon tomorrow?",
        "slug": "will-it-rain-in-lisbon-tomorrow",
        "icon": "",
        "eventSlug": "lisbon-weather",
        "outcome": "Yes",
        "outcomeIndex": 0,
        "name": "leader",
        "pseudonym": "Quiet-Leader",
        "bio": "",
        "profileImage": "",
        "profileImageOptimized": "",
        "transactionHash": TX_HASH,
    }
    payload.update(overrides)
    return payload


def rtds_frame(
    payload: Any,
    type: str | None = "trades",
    *,
    topic: str | None = "activity",
    timestamp_ms: int = RECEIVED_AT_MS - 100,
    connection_id: str = "Xq1mZcQ2IAMCJ9g=",
) -> str:
    """One RTDS text frame around `payload`; `type=None` / `topic=None` leave those keys out."""
    envelope: dict[str, Any] = {"connection_id": connection_id}
    if topic is not None:
        envelope["topic"] = topic
    if type is not None:
        envelope["type"] = type
    envelope["timestamp"] = timestamp_ms
    envelope["payload"] = payload
    return json.dumps(envelope)


def build_trade(**overrides: Any) -> RawTrade:
    """A valid RawTrade; the dedup key is derived from the fill's fields unless given."""
    fields: dict[str, Any] = {
        "source": TradeSource.RTDS,
        "feed_type": "trades",
        "received_at_ms": RECEIVED_AT_MS,
        "proxy_wallet": TRADER,
        "side": Side.BUY,
        "asset": ASSET,
        "condition_id": CONDITION_ID,
        "size": Decimal("100"),
        "price": Decimal("0.50"),
        "timestamp": TRADE_TIMESTAMP,
        "transaction_hash": TX_HASH,
        "outcome": "Yes",
        "outcome_index": 0,
    }
    fields.update(overrides)
    if "dedup_key" not in fields:
        fields["dedup_key"] = build_dedup_key(
            transaction_hash=fields["transaction_hash"],
            asset=fields["asset"],
            side=str(fields["side"]),
            price=Decimal(str(fields["price"])),
            size=Decimal(str(fields["size"])),
            proxy_wallet=fields["proxy_wallet"],
        )
    return RawTrade(**fields)


def build_wallet(**overrides: Any) -> WalletConfig:
    """A paper copy wallet following TRADER on both sides, 1000 USDC, 10 USDC per copy, no caps."""
    fields: dict[str, Any] = {
        "id": WALLET_ID,
        "capital_usdc": Decimal("1000"),
        "targets": (TRADER,),
        "sides": (Side.BUY, Side.SELL),
        "sizing": {"mode": "fixed_usdc", "value": "10"},
    }
    fields.update(overrides)
    return WalletConfig(**fields)


def build_market(**overrides: Any) -> MarketInfo:
    """Market reference data: tick 0.01, venue minimum 5 shares, open."""
    fields: dict[str, Any] = {"tick_size": Decimal("0.01"), "min_order_size": Decimal("5")}
    fields.update(
        {k: Decimal(str(v)) if k in ("tick_size", "min_order_size") else v for k, v in overrides.items()}
    )
    return MarketInfo(**fields)


def _levels_worst_first(levels: Levels, *, ascending: bool) -> list[dict[str, str]]:
    ordered = sorted(levels, key=lambda level: Decimal(str(level[0])), reverse=not ascending)
    return [{"price": str(price), "size": str(size)} for price, size in ordered]


def build_book_payload(
    asks: Levels | None = None,
    bids: Levels | None = None,
    *,
    tick: str = "0.01",
    min_size: str = "5",
    asset: str = ASSET,
    market: str = CONDITION_ID,
    neg_risk: bool = False,
    timestamp_ms: int = RECEIVED_AT_MS,
) -> dict[str, Any]:
    """A `GET /book` response as the venue sends it: strings, levels worst-first (bids up, asks down)."""
    return {
        "market": market,
        "asset_id": asset,
        "timestamp": str(timestamp_ms),
        "hash": "0" * 40,
        "bids": _levels_worst_first(DEFAULT_BIDS if bids is None else bids, ascending=True),
        "asks": _levels_worst_first(DEFAULT_ASKS if asks is None else asks, ascending=False),
        "min_order_size": min_size,
        "tick_size": tick,
        "neg_risk": neg_risk,
        "last_trade_price": "0.5",
    }


def build_book(
    asks: Levels | None = None,
    bids: Levels | None = None,
    tick: str = "0.01",
    min_size: str = "5",
    **overrides: Any,
) -> OrderBook:
    """An OrderBook parsed from a venue-shaped payload; `asks`/`bids` are (price, size) pairs, any order."""
    return parse_book(build_book_payload(asks, bids, tick=tick, min_size=min_size, **overrides))


def build_intent(**overrides: Any) -> OrderIntent:
    """A paper FAK BUY of 20 shares at 0.52; the intent id follows the wallet and dedup key unless given."""
    fields: dict[str, Any] = {
        "wallet_id": WALLET_ID,
        "mode": ExecutionMode.PAPER,
        "dedup_key": build_trade().dedup_key,
        "asset": ASSET,
        "condition_id": CONDITION_ID,
        "side": Side.BUY,
        "size": Decimal("20"),
        "limit_price": Decimal("0.52"),
        "order_type": OrderType.FAK,
        "tick_size": Decimal("0.01"),
        "received_at_ms": RECEIVED_AT_MS,
        "created_at_ms": NOW_MS,
    }
    fields.update(overrides)
    fields.setdefault("intent_id", build_intent_id(fields["wallet_id"], fields["dedup_key"]))
    return OrderIntent(**fields)


def build_intent_on_book(book: OrderBook | None, **overrides: Any) -> OrderIntent:
    """build_intent(**overrides) carrying the levels of `book` it can take at its limit, as the evaluation
    attaches them (None: decided without a book)."""
    intent = build_intent(**overrides)
    levels = None if book is None else book.levels_within(intent.side, intent.limit_price)
    return intent.model_copy(update={"book_levels": levels})


def build_report(
    kind: ReportKind | str = ReportKind.FILL, *, intent: OrderIntent | None = None, **overrides: Any
) -> ExecutionReport:
    """An executor report about `intent`'s paper order; ids are derived as the executors derive them."""
    intent = intent or build_intent()
    fields: dict[str, Any] = {
        "intent_id": intent.intent_id,
        "dedup_key": intent.dedup_key,
        "wallet_id": intent.wallet_id,
        "order_id": build_paper_order_id(intent.intent_id),
        "mode": intent.mode,
        "kind": ReportKind(kind),
        "side": intent.side,
        "asset": intent.asset,
        "size": intent.size,
        "limit_price": intent.limit_price,
        "matched_size": Decimal("0"),
        "received_at_ms": intent.received_at_ms,
        "sent_at_ms": intent.created_at_ms + 1,
        "reported_at_ms": intent.created_at_ms + 2,
    }
    fields.update(overrides)
    fields.setdefault(
        "report_id",
        build_report_id(
            fields["order_id"],
            fields["kind"].value,
            Decimal(str(fields["matched_size"])),
            fields.get("detail", ""),
        ),
    )
    return ExecutionReport(**fields)


def build_decision(**overrides: Any) -> Decision:
    """A decision about build_trade() for WALLET_ID; a skip for `not_target` unless told otherwise."""
    trade = build_trade()
    fields: dict[str, Any] = {
        "wallet_id": WALLET_ID,
        "dedup_key": trade.dedup_key,
        "trader": trade.proxy_wallet,
        "asset": trade.asset,
        "condition_id": trade.condition_id,
        "side": trade.side,
        "leader_price": trade.price,
        "leader_size": trade.size,
        "action": DecisionAction.SKIP,
        "reason": "not_target",
        "received_at_ms": trade.received_at_ms,
        "decided_at_ms": NOW_MS,
    }
    fields.update(overrides)
    fields.setdefault("decision_id", build_intent_id(fields["wallet_id"], fields["dedup_key"]))
    return Decision(**fields)


_EVENT_TYPE_OF = {
    OrderStatus.PLACED: OrderEventType.ORDER_PLACED,
    OrderStatus.PARTIALLY_FILLED: OrderEventType.ORDER_PARTIAL_FILL,
    OrderStatus.FILLED: OrderEventType.ORDER_FILLED,
    OrderStatus.CANCELLED: OrderEventType.ORDER_CANCELLED,
    OrderStatus.REJECTED: OrderEventType.ORDER_REJECTED,
    OrderStatus.LOST: OrderEventType.ORDER_LOST,
}


def build_order_event(
    status: OrderStatus | str = OrderStatus.PLACED, sequence: int = 1, **overrides: Any
) -> OrderEvent:
    """An order event for the paper order of build_intent(); the event type follows `status`."""
    intent = build_intent()
    status = OrderStatus(status)
    fields: dict[str, Any] = {
        "event_type": _EVENT_TYPE_OF[status],
        "sequence": sequence,
        "order_id": build_paper_order_id(intent.intent_id),
        "intent_id": intent.intent_id,
        "wallet_id": intent.wallet_id,
        "mode": intent.mode,
        "status": status,
        "side": intent.side,
        "asset": intent.asset,
        "size": intent.size,
        "limit_price": intent.limit_price,
        "matched_size": Decimal("0"),
        "received_at_ms": intent.received_at_ms,
        "sent_at_ms": intent.created_at_ms + 1,
        "occurred_at_ms": intent.created_at_ms + 2,
    }
    fields.update(overrides)
    fields.setdefault("event_id", build_event_id(fields["order_id"], fields["sequence"]))
    return OrderEvent(**fields)


# --- real venue data: MIT-licensed fixtures in the repository, the rest read in place from ../shared -------
def load_fixture_json(relative_path: str) -> Any:
    """A JSON file under tests/fixtures, e.g. `ra1nty__polymarket-cli/book.json`."""
    return json.loads((FIXTURES / relative_path).read_text(encoding="utf-8"))


class SharedDataMissingError(FileNotFoundError):
    """The shared data folder is absent: unit tests are run without it (see tests/unit/conftest.py)."""


def _shared_path(relative_path: str) -> Path:
    if not SHARED_DATA.is_dir():
        raise SharedDataMissingError(
            f"{SHARED_DATA} does not exist: unit tests never read ../shared/data (use tests/fixtures or a "
            f"builder), and integration and end-to-end tests need it beside the repository ({relative_path})"
        )
    return SHARED_DATA / relative_path


def load_shared_json(relative_path: str) -> Any:
    """A JSON file under the shared data folder, e.g. `edulabrador__polymarket-smart-money/trades.json`."""
    return json.loads(_shared_path(relative_path).read_text(encoding="utf-8"))


def load_shared_csv_rows(relative_path: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a CSV Data API dump under the shared data folder, typed as in read_trades_csv."""
    rows = read_trades_csv(_shared_path(relative_path).read_text(encoding="utf-8"))
    return rows if limit is None else rows[:limit]


def unique_by(items: Iterable[Any], key: Any) -> list[Any]:
    """The first item of each distinct `key(item)`, in order."""
    seen: set[Any] = set()
    kept = []
    for item in items:
        marker = key(item)
        if marker not in seen:
            seen.add(marker)
            kept.append(item)
    return kept


# --- venue documents rebuilt from the documented formats ----------------------------------------------------
# The recorded files these stand in for carry no license, so they stay out of the repository. The builders
# make documents of the same shape with the same traps (/work/shared/reference/polymarket-api.md sections 1.5,
# 4.1, 4.3), from our own seeded values: the same seed always gives the same documents.
DATA_API_TRADE_COLUMNS = (
    "proxyWallet", "side", "asset", "conditionId", "size", "price", "timestamp", "title", "slug", "icon",
    "eventSlug", "outcome", "outcomeIndex", "name", "pseudonym", "bio", "profileImage",
    "profileImageOptimized", "transactionHash",
)  # fmt: skip
DATA_API_MAX_OFFSET = 1000  # older revisions of `/trades` serve any larger offset as this one (section 4.1)
_CSV_NUMBER_TYPES = {"size": float, "price": float, "timestamp": int, "outcomeIndex": int}


def to_mixed_case(address: str, rng: random.Random) -> str:
    """`address` with some hex letters upper-cased, as the venue writes EIP-55 checksummed wallets."""
    return "0x" + "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in address[2:].lower())


def _draw_address(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(160):040x}"


def _draw_hash(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(256):064x}"


def _draw_token_id(rng: random.Random) -> str:
    # Outcome token ids are uint256 in decimal; recorded ones have 70 to 78 digits.
    digits = rng.randint(70, 77)
    return str(rng.randrange(10 ** (digits - 1), 10**digits))


def build_trade_rows(
    count: int, *, seed: int = 1, newest_timestamp: int = TRADE_TIMESTAMP
) -> list[dict[str, Any]]:
    """`count` distinct Data API `/trades` rows (full schema) of different wallets and markets, newest first.

    The traps of recorded pages: wallets in EIP-55 mixed case, share counts with up to six decimals, average
    fill prices as long floats (0.6188732397...), both sides, outcome indexes 0 and 1, empty profile fields.
    """
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        outcome_index = rng.randrange(2)
        slug = f"will-event-{seed}-{number}-happen"
        rows.append(
            build_trade_payload(
                proxyWallet=to_mixed_case(_draw_address(rng), rng),
                side=rng.choice(("BUY", "BUY", "SELL")),
                asset=_draw_token_id(rng),
                conditionId=_draw_hash(rng),
                size=rng.choice((round(rng.uniform(1, 60_000), 6), float(rng.randrange(5, 50_000)))),
                price=rng.choice((round(rng.uniform(0.01, 0.99), 2), rng.uniform(0.01, 0.99))),
                timestamp=newest_timestamp - number * rng.randint(1, 90),
                title=f"Will event {number} of batch {seed} happen?",
                slug=slug,
                icon=f"https://polymarket-upload.s3.us-east-2.amazonaws.com/{slug}.png",
                eventSlug=f"event-batch-{seed}",
                outcome=("Yes", "No")[outcome_index],
                outcomeIndex=outcome_index,
                name=rng.choice(("", f"trader{number}", f"Whale-{seed}{number}")),
                pseudonym=f"Quiet-Leader-{number}",
                transactionHash=_draw_hash(rng),
            )
        )
    return rows


def build_wrapped_trade_pages(pages: int, page_size: int = 500, *, seed: int = 2) -> list[dict[str, Any]]:
    """Every row a client collected paging one event's `/trades` by offset (0, page_size, ...), in order.

    Past DATA_API_MAX_OFFSET the venue serves the page at that offset again, so the dump holds
    DATA_API_MAX_OFFSET + page_size distinct fills and then repeats of its last page. Like recorded dumps of
    a negRisk event (20 markets of two tokens): whole or cent share counts (5000.0 is a float, as the API's
    JSON types it), prices near 0.001 and 0.999, lower-case wallets, and some transactions holding several
    fills of one wallet at different prices (a transaction hash is not a fill's identity, section 1.5).
    """
    rng = random.Random(seed)
    markets = [(_draw_hash(rng), (_draw_token_id(rng), _draw_token_id(rng))) for _ in range(20)]
    fills: list[dict[str, Any]] = []
    while len(fills) < DATA_API_MAX_OFFSET + page_size:
        wallet, transaction = _draw_address(rng), _draw_hash(rng)
        number, outcome_index = rng.randrange(len(markets)), rng.randrange(2)
        condition_id, tokens = markets[number]
        for price in rng.choice(((0.999,), (0.001,), (0.999,), (0.95, 0.951), (0.02, 0.021, 0.022))):
            fills.append(
                build_trade_payload(
                    proxyWallet=wallet,
                    side=rng.choice(("BUY", "BUY", "BUY", "SELL")),
                    asset=tokens[outcome_index],
                    conditionId=condition_id,
                    size=rng.choice((5000.0, 10.0, 20.0, 52.0, 100.0, round(rng.uniform(1, 20_000), 2))),
                    price=price,
                    timestamp=TRADE_TIMESTAMP - len(fills) * 7,
                    title=f"Will nominee {number} win the prize?",
                    slug=f"will-nominee-{number}-win-the-prize",
                    eventSlug="who-wins-the-prize",
                    outcome=("Yes", "No")[outcome_index],
                    outcomeIndex=outcome_index,
                    transactionHash=transaction,
                )
            )
    fills = fills[: DATA_API_MAX_OFFSET + page_size]
    rows: list[dict[str, Any]] = []
    for page in range(pages):
        offset = min(page * page_size, DATA_API_MAX_OFFSET)
        rows.extend(dict(row) for row in fills[offset : offset + page_size])
    return rows


def write_trades_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Data API trade rows as a CSV export writes them: full schema, numbers through str() ("5000.0")."""
    text = io.StringIO()
    writer = csv.DictWriter(
        text, fieldnames=DATA_API_TRADE_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def read_trades_csv(text: str) -> list[dict[str, Any]]:
    """Rows of a CSV Data API dump, with numbers typed as the API's JSON types them."""
    rows: list[dict[str, Any]] = []
    for row in csv.DictReader(io.StringIO(text)):
        typed: dict[str, Any] = dict(row)
        for name, convert in _CSV_NUMBER_TYPES.items():
            typed[name] = convert(row[name])
        rows.append(typed)
    return rows


_OUTCOME_PAIRS = (("Yes", "No"), ("Yes", "No"), ("Over", "Under"), ("Up", "Down"), ("Acorns", "Bluebells"))


def build_gamma_market(*, without: Iterable[str] = (), **overrides: Any) -> dict[str, Any]:
    """A Gamma `/markets` object as sent (section 4.3), less the keys in `without` (Gamma omits some).

    camelCase; `outcomes`, `outcomePrices` and `clobTokenIds` are JSON text inside the JSON; tick and minimum
    size are numbers; `endDate` is ISO-8601 and `endDateIso` a date; one event, without a category.
    """
    market: dict[str, Any] = {
        "id": "1100001",
        "question": "Will it rain in Lisbon tomorrow?",
        "conditionId": CONDITION_ID,
        "slug": "will-it-rain-in-lisbon-tomorrow",
        "description": "This market resolves to Yes if it rains in Lisbon tomorrow.",
        "outcomes": json.dumps(["Yes", "No"]),
        "outcomePrices": json.dumps(["0.535", "0.465"]),
        "clobTokenIds": json.dumps([ASSET, OTHER_ASSET]),
        "volume": "12345.678901",
        "volumeNum": 12345.678901,
        "active": True,
        "closed": False,
        "archived": False,
        "acceptingOrders": True,
        "enableOrderBook": True,
        "negRisk": False,
        "negRiskRequestID": "",
        "questionID": "0x" + "9a" * 32,
        "startDate": "2026-07-01T00:00:00.123456Z",
        "endDate": "2026-07-18T12:00:00Z",
        "endDateIso": "2026-07-18",
        "orderPriceMinTickSize": 0.01,
        "orderMinSize": 5,
        "umaResolutionStatuses": "[]",
        "events": [
            {"id": "90001", "ticker": "lisbon-weather", "slug": "lisbon-weather", "title": "Lisbon weather"}
        ],
    }
    market.update(overrides)
    for name in without:
        market.pop(name, None)
    return market


def build_gamma_markets(
    count: int,
    *,
    closed: int,
    neg_risk: int,
    without_end_date: int = 0,
    repeated: int = 0,
    categories: Sequence[str] = (),
    seed: int = 3,
) -> list[dict[str, Any]]:
    """A Gamma `/markets` listing of `count` objects with the traps of recorded listings.

    `closed` of them are closed and `neg_risk` negRisk; `without_end_date` have neither `endDate` nor
    `endDateIso`; the last `repeated` objects are repeats of earlier closed ones (offset paging while markets
    are added serves a market twice). Each category is carried by one market's event only, the first also by
    the market. As recorded: outcome labels other than Yes/No, tick 0.01 or 0.001, and some objects without a
    tick size and minimum size, without `acceptingOrders`, without `negRisk` or without `events`.
    """
    distinct = count - repeated
    if not (0 <= repeated <= closed - repeated <= distinct and 0 <= neg_risk <= distinct):
        raise ValueError("the repeats must be of distinct closed markets, and the counts fit the listing")
    rng = random.Random(seed)
    # Open and closed markets alternate, so any page holds both; the repeated ones are the last closed ones.
    is_closed = [False] * distinct
    for index in sorted(range(distinct), key=lambda i: (i % 2, i))[: closed - repeated]:
        is_closed[index] = True
    no_end_date = set(range(3, 3 + 7 * without_end_date, 7))
    markets = []
    for index in range(distinct):
        outcomes = rng.choice(_OUTCOME_PAIRS)
        first = round(rng.uniform(0.005, 0.995), 3)
        prices = (
            rng.choice((["1", "0"], ["0", "1"])) if is_closed[index] else [f"{first}", f"{1 - first:.3f}"]
        )
        slug = f"gamma-market-{seed}-{index}"
        end = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        without = [
            *(("endDate", "endDateIso") if index in no_end_date else ()),
            *(("orderPriceMinTickSize", "orderMinSize") if index % 75 == 11 else ()),
            *(("acceptingOrders",) if index % 60 == 17 else ()),
            *(("negRisk",) if index >= neg_risk and index % 50 == 31 else ()),
            *(("events",) if index == distinct - 1 else ()),
        ]
        markets.append(
            build_gamma_market(
                without=without,
                id=str(1_200_000 + index),
                question=f"Gamma market {index} of listing {seed}?",
                conditionId=_draw_hash(rng),
                slug=slug,
                outcomes=json.dumps(list(outcomes)),
                outcomePrices=json.dumps(prices),
                clobTokenIds=json.dumps([_draw_token_id(rng), _draw_token_id(rng)]),
                closed=is_closed[index],
                acceptingOrders=not is_closed[index] and rng.random() < 0.97,
                negRisk=index < neg_risk,
                endDate=rng.choice(
                    (f"{end}T{rng.choice((0, 12, 18)):02d}:30:00Z", f"{end}T00:03:11.698284Z")
                ),
                endDateIso=end,
                orderPriceMinTickSize=rng.choice((0.01, 0.001, 0.001)),
                orderMinSize=rng.choice((5, 5, 5, 15)),
                events=[
                    {"id": str(300_000 + index), "ticker": slug, "slug": slug, "title": f"Event {index}"}
                ],
            )
        )
    for number, category in enumerate(categories):
        market = markets[2 * number + 5]
        market["events"] = [market["events"][0] | {"category": category}]
        if number == 0:
            market["category"] = category
    closed_ones = [market for market in markets if market["closed"]]
    markets.extend(dict(market) for market in closed_ones[len(closed_ones) - repeated :])
    return markets


def build_leaderboard_row(**overrides: Any) -> dict[str, Any]:
    """A Data API `/v1/leaderboard` row: the rank as a string, `vol` and `pnl` as floats."""
    row: dict[str, Any] = {
        "rank": "1",
        "proxyWallet": "0xAbAbabABabababABABababababABABababABABab",
        "userName": "leader",
        "xUsername": "",
        "verifiedBadge": False,
        "vol": 72_000_000.123456,
        "pnl": 8_000_000.123456789,
        "profileImage": "",
    }
    row.update(overrides)
    return row


def build_leaderboard_rows(count: int, *, start_rank: int = 1, seed: int = 4) -> list[dict[str, Any]]:
    """`count` leaderboard rows ranked from `start_rank`, as recorded pages have them: figures as floats with
    up to 17 significant digits, a zero volume, some empty userNames, and every other wallet in mixed case."""
    rng = random.Random(seed)
    rows = []
    for rank in range(start_rank, start_rank + count):
        wallet = _draw_address(rng)
        image = f"https://polymarket-upload.s3.us-east-2.amazonaws.com/profile-{rank}.png"
        rows.append(
            build_leaderboard_row(
                rank=str(rank),
                proxyWallet=to_mixed_case(wallet, rng) if rank % 2 else wallet,
                userName="" if rank % 23 == 7 else f"trader{rank}",
                xUsername=f"x_trader{rank}" if rank % 17 == 3 else "",
                vol=0 if rank % 19 == 4 else rng.uniform(1e5, 4e8),
                pnl=rng.uniform(4e5, 9e6) / rank,
                profileImage=image if rank % 13 == 2 else "",
            )
        )
    return rows


def build_profit_leaderboard_row(**overrides: Any) -> dict[str, Any]:
    """A row of the older profit leaderboard: `amount` is the profit over `period`; no rank and no volume."""
    row: dict[str, Any] = {
        "proxyWallet": "0x" + "5a" * 20,
        "amount": 9_876_543.210987654,
        "pseudonym": "Top-Earner",
        "name": "TopEarner",
        "bio": "",
        "profileImage": "",
        "profileImageOptimized": "",
        "period": "all",
    }
    row.update(overrides)
    return row


LEADERBOARD_SNAPSHOT_COLUMNS = (
    "timestamp_utc", "rank_combined", "address", "username", "pnl", "vol", "rank_pnl", "rank_vol", "score",
    "verified_badge", "x_username", "timeframe", "num_trades", "wallet_type",
)  # fmt: skip


def build_leaderboard_snapshots_csv(snapshots: int, per_snapshot: int, wallets: int, *, seed: int = 5) -> str:
    """A day's CSV of leaderboard snapshots taken every 10 minutes, as exported by leaderboard scrapers.

    Each snapshot lists `per_snapshot` of the `wallets` traders, the set moving on by one trader per snapshot
    so every one of them appears; the official figures (pnl, possibly negative, and vol) come as long floats,
    the rank columns are the exporter's own (no `rank`), and some usernames are empty.
    """
    if (snapshots - 1) + per_snapshot < wallets or per_snapshot > wallets:
        raise ValueError("the snapshots must list every wallet")
    rng = random.Random(seed)
    pool = [(_draw_address(rng), "" if rng.random() < 0.1 else f"scraped{n}") for n in range(wallets)]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(LEADERBOARD_SNAPSHOT_COLUMNS)
    first_taken = datetime(2026, 7, 2, 0, 5, 42, tzinfo=UTC)
    for snapshot in range(snapshots):
        taken = (first_taken + timedelta(minutes=10 * snapshot)).isoformat()
        for rank in range(1, per_snapshot + 1):
            address, username = pool[(snapshot + rank - 1) % wallets]
            pnl, vol = rng.uniform(-20_000, 20_000), rng.uniform(0, 3e6)
            writer.writerow(
                [
                    taken,
                    rank,
                    address,
                    username,
                    repr(pnl),
                    repr(vol),
                    rank + 1,
                    rank,
                    f"{1 - rank / 100:.3f}",
                ]
                + ["False", "", "MONTH+WEEK", 0, "UNKNOWN"]
            )
    return text.getvalue()


# --- resolutions, positions and wallet snapshots -----------------------------------------------------------
def build_resolution(
    winner: str | None = ASSET, *, condition_id: str = CONDITION_ID, **overrides: Any
) -> MarketResolution:
    """A market resolution from Gamma: `winner` pays 1 and the other token of the default market 0 (None: a
    50-50 resolution, both tokens 0.5)."""
    payouts = (
        {ASSET: Decimal("0.5"), OTHER_ASSET: Decimal("0.5")}
        if winner is None
        else {token: Decimal(token == winner) for token in dict.fromkeys((ASSET, OTHER_ASSET, winner))}
    )
    fields: dict[str, Any] = {
        "condition_id": condition_id,
        "payouts": payouts,
        "winning_token_id": winner,
        "resolved_at_ms": NOW_MS + 60_000,
        "source": ResolutionSource.GAMMA,
    }
    fields.update(overrides)
    return MarketResolution(**fields)


def build_position_view(**overrides: Any) -> PositionView:
    """An open position of 20 shares bought at 0.5 and marked at 0.55."""
    fields: dict[str, Any] = {
        "wallet_id": WALLET_ID,
        "asset": ASSET,
        "condition_id": CONDITION_ID,
        "status": PositionStatus.OPEN,
        "shares": Decimal("20"),
        "cost_usdc": Decimal("10"),
        "average_price": Decimal("0.5"),
        "mark_price": Decimal("0.55"),
        "marked_at_ms": NOW_MS,
        "unrealised_pnl_usdc": Decimal("1"),
        "version": 3,
        "updated_at_ms": NOW_MS,
    }
    fields.update(overrides)
    return PositionView(**fields)


def build_wallet_snapshot(**overrides: Any) -> WalletSnapshot:
    """A snapshot of a 1000 USDC wallet holding one position (`build_position_view`) and nothing reserved."""
    fields: dict[str, Any] = {
        "wallet_id": WALLET_ID,
        "mode": "paper",
        "capital_usdc": Decimal("1000"),
        "available_usdc": Decimal("990"),
        "reserved_usdc": Decimal("0"),
        "deployed_usdc": Decimal("10"),
        "realised_pnl_usdc": Decimal("0"),
        "unrealised_pnl_usdc": Decimal("1"),
        "day": "2026-07-17",
        "open_positions": (build_position_view(),),
        "version": 3,
        "as_of_ms": NOW_MS,
    }
    fields.update(overrides)
    return WalletSnapshot(**fields)
