"""The CLOB user channel's wire format (reference 2.3): the authenticated subscription frame, and `order` /
`trade` events parsed into small frozen values naming the orders they concern.

These events are hints, never a source of truth: the executor reads them only to know which of its orders to
look up at once (the venue's REST answers and the pure reconciliation rules decide what happened).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from polycopy.polymarket.text import parse_events

ORDER_EVENT, TRADE_EVENT = "order", "trade"


class UserChannelFormatError(ValueError):
    """A user-channel event that does not have the documented shape (logged and skipped by the caller)."""


def build_user_subscription(
    api_key: str, secret: str, passphrase: str, markets: Iterable[str] | None = None
) -> str:
    """The first (and only) frame on a user-channel socket: the L2 credentials, and the condition ids to
    follow; `markets` None follows the whole account (the venue subscribes by condition id, not token)."""
    frame: dict[str, Any] = {"auth": {"apiKey": api_key, "secret": secret, "passphrase": passphrase}}
    if markets is not None:
        frame["markets"] = list(markets)
    frame["type"] = "user"
    return json.dumps(frame, separators=(",", ":"))


@dataclass(frozen=True)
class OrderEvent:
    """An `order` event: one of the account's orders was placed, updated (matched) or cancelled."""

    order_id: str
    status: str  # LIVE | MATCHED | DELAYED | UNMATCHED | CANCELED | INVALID, as the venue spells it
    change: str  # PLACEMENT | UPDATE | CANCELLATION

    @property
    def order_ids(self) -> tuple[str, ...]:
        return (self.order_id,)


@dataclass(frozen=True)
class TradeEvent:
    """A `trade` event: a fill involving the account (at MATCHED, then at each later status); it names the
    taker's order and every maker order of the match."""

    trade_id: str
    status: str  # MATCHED | MINED | CONFIRMED | RETRYING | FAILED
    taker_order_id: str
    maker_order_ids: tuple[str, ...]

    @property
    def order_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i for i in (self.taker_order_id, *self.maker_order_ids) if i))


UserEvent: TypeAlias = OrderEvent | TradeEvent


@dataclass(frozen=True)
class UserMessage:
    """What one user-channel frame held: the events we use, the ones we skip, and the malformed ones."""

    events: tuple[UserEvent, ...] = ()
    skipped: int = 0
    errors: tuple[str, ...] = ()

    @property
    def order_ids(self) -> tuple[str, ...]:
        """Every order id the frame's events name, each once, in order."""
        return tuple(dict.fromkeys(order_id for event in self.events for order_id in event.order_ids))


def parse_user_message(frame: str | bytes) -> UserMessage:
    """Parse one user-channel frame (an event or a JSON array of events). Unknown event types are skipped; a
    malformed event is reported in `errors` and does not spoil the other events of the frame."""
    return UserMessage(*parse_events(frame, parse_user_event, UserChannelFormatError))


def parse_user_event(item: Any) -> UserEvent | None:
    """One decoded user-channel event, or None for another event type. Raises UserChannelFormatError."""
    if not isinstance(item, dict):
        raise UserChannelFormatError(f"user event is not an object: {str(item)[:80]}")
    event_type = item.get("event_type")
    if event_type == ORDER_EVENT:
        return OrderEvent(
            order_id=_required_text(item, "id"),
            status=_text(item.get("status")).upper(),
            change=_text(item.get("type")).upper(),
        )
    if event_type == TRADE_EVENT:
        makers = item.get("maker_orders") or []
        if not isinstance(makers, list) or not all(isinstance(maker, dict) for maker in makers):
            raise UserChannelFormatError(f"trade {item.get('id')!r}: maker_orders is not a list of objects")
        maker_ids = tuple(_required_text(maker, "order_id") for maker in makers)
        taker_id = _text(item.get("taker_order_id"))
        if not taker_id and not maker_ids:
            raise UserChannelFormatError(f"trade {item.get('id')!r} names no order")
        return TradeEvent(
            trade_id=_required_text(item, "id"),
            status=_text(item.get("status")).upper(),
            taker_order_id=taker_id,
            maker_order_ids=maker_ids,
        )
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _required_text(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        kind = item.get("event_type", "user")
        raise UserChannelFormatError(f"{kind} event without a {name}: {str(item)[:80]}")
    return value
