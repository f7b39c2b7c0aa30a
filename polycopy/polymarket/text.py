"""Venue JSON as valid Unicode. Names and titles are user input, and JavaScript cuts strings in the middle of
a surrogate pair: JSON then carries a lone `\\ud83d`, which decodes to a Python string no UTF-8 encoder
accepts, so nothing built from it could be serialised or stored. Every venue document is decoded here, and a
lone surrogate becomes U+FFFD. Websocket frames of events (market and user channels) are split here too."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

E = TypeVar("E")

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def clean_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (a valid pair becomes its character)."""
    if _LONE_SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_json(value: Any) -> Any:
    """A decoded JSON value with every string (keys too) passed through `clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_json(key): clean_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_json(item) for item in value]
    return value


def decode_json(data: str | bytes | bytearray) -> Any:
    """Decode a venue JSON document (numbers with a fraction as exact Decimals), as valid Unicode.
    Raises ValueError (json.JSONDecodeError, UnicodeDecodeError) when it is not JSON."""
    document = json.loads(data, parse_float=Decimal)
    if isinstance(data, str):  # a str may also carry a raw lone surrogate, not only its escape
        suspect = _ESCAPE.search(data) is not None or _LONE_SURROGATE.search(data) is not None
    else:
        suspect = _ESCAPE_BYTES.search(bytes(data)) is not None
    return clean_json(document) if suspect else document


def parse_events(
    frame: str | bytes, parse_event: Callable[[Any], E | None], malformed: type[Exception]
) -> tuple[tuple[E, ...], int, tuple[str, ...]]:
    """The events of one websocket frame (an event or a JSON array of events): those parsed, how many were
    of a type `parse_event` skips (None), and why each malformed one (`malformed` raised) was left out; one
    bad event does not spoil the others."""
    try:
        decoded = decode_json(frame)
    except ValueError as error:
        return (), 0, (f"invalid JSON: {error}",)
    events: list[E] = []
    skipped, errors = 0, []
    for item in decoded if isinstance(decoded, list) else [decoded]:
        try:
            event = parse_event(item)
        except malformed as error:
            errors.append(str(error))
            continue
        if event is None:
            skipped += 1
        else:
            events.append(event)
    return tuple(events), skipped, tuple(errors)
