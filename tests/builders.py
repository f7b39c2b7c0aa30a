"""Builders for test data: valid schema models and venue payloads with plain defaults, overridable per field.

Every builder takes keyword overrides for any field of what it builds, so a test states only what matters
to its scenario. Shared by the unit, agent, integration and end-to-end suites.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
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
from schemas.trades import RawTrade, TradeSource
from schemas.wallets import WalletConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
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


# --- real venue data, read from the shared data folder ------------------------------------------------------
def load_shared_json(relative_path: str) -> Any:
    """A JSON file under the shared data folder, e.g. `ra1nty__polymarket-cli/book.json`."""
    return json.loads((SHARED_DATA / relative_path).read_text())


def load_shared_csv_rows(relative_path: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a CSV Data API dump, with numbers typed as the API's JSON types them."""
    rows: list[dict[str, Any]] = []
    with (SHARED_DATA / relative_path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            typed: dict[str, Any] = dict(row)
            for name in ("size", "price"):
                typed[name] = float(row[name])
            for name in ("timestamp", "outcomeIndex"):
                typed[name] = int(row[name])
            rows.append(typed)
            if limit is not None and len(rows) >= limit:
                break
    return rows


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
