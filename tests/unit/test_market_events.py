"""Market-channel events: parsing the venue's frames, and applying level changes to best-first books."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polycopy.polymarket.books import (
    BookSnapshot,
    PriceChange,
    PriceChanges,
    TickSizeChange,
    apply_price_changes,
    apply_tick_size_change,
    build_levels,
    parse_market_message,
)
from schemas.base import Side
from schemas.books import Level
from tests.builders import ASSET, CONDITION_ID, OTHER_ASSET, build_book, build_book_payload

D = Decimal


def build_change_row(price: str, size: str, side: str = "SELL", asset: str = ASSET) -> dict[str, str]:
    """One `price_changes[]` entry as the venue sends it."""
    return {
        "asset_id": asset,
        "price": price,
        "size": size,
        "side": side,
        "hash": "ab" * 20,
        "best_bid": "0.49",
        "best_ask": "0.5",
    }


def build_price_change_event(*rows: dict[str, str], timestamp_ms: int = 1_790_000_000_123) -> dict[str, Any]:
    """A `price_change` event in the array format (since Sep 2025)."""
    return {
        "market": CONDITION_ID,
        "price_changes": list(rows),
        "timestamp": str(timestamp_ms),
        "event_type": "price_change",
    }


def build_book_event(**overrides: Any) -> dict[str, Any]:
    """A market-channel `book` event: the /book payload plus its event type."""
    return build_book_payload(**overrides) | {"event_type": "book"}


def change(price: str, size: str, side: Side = Side.SELL, asset: str = ASSET) -> PriceChange:
    return PriceChange(asset=asset, side=side, price=D(price), size=D(size))


def prices(levels: tuple[Level, ...]) -> list[str]:
    return [str(level.price) for level in levels]


# --- parsing ----------------------------------------------------------------------------------------------
def test_a_book_event_parses_to_a_best_first_snapshot_with_its_parameters() -> None:
    message = parse_market_message(json.dumps(build_book_event(tick="0.001")))
    [snapshot] = message.events
    assert isinstance(snapshot, BookSnapshot) and snapshot.has_trading_parameters
    assert prices(snapshot.book.asks) == ["0.50", "0.51", "0.52"]
    assert prices(snapshot.book.bids) == ["0.49", "0.48", "0.47"]
    assert snapshot.book.tick_size == D("0.001")


def test_an_array_of_events_yields_every_event_in_order() -> None:
    frame = json.dumps(
        [
            build_book_event(),
            build_book_event(asset=OTHER_ASSET),
            build_price_change_event(build_change_row("0.5", "0")),
        ]
    )
    message = parse_market_message(frame)
    kinds = [type(event).__name__ for event in message.events]
    assert kinds == ["BookSnapshot", "BookSnapshot", "PriceChanges"]
    assert [event.book.asset for event in message.events[:2]] == [ASSET, OTHER_ASSET]  # type: ignore[union-attr]


def test_a_price_change_event_carries_each_level_change_with_its_asset_and_side() -> None:
    rows = [build_change_row("0.5", "0"), build_change_row("0.48", "12.5", side="BUY", asset=OTHER_ASSET)]
    frame = json.dumps(build_price_change_event(*rows))
    [event] = parse_market_message(frame).events
    hashed = {"venue_hash": "ab" * 20}
    assert event == PriceChanges(
        market=CONDITION_ID,
        timestamp_ms=1_790_000_000_123,
        changes=(
            replace(change("0.5", "0"), **hashed),
            replace(change("0.48", "12.5", Side.BUY, OTHER_ASSET), **hashed),
        ),
    )


def test_a_changed_book_carries_the_venues_hash_and_time_of_its_last_change() -> None:
    book = build_book()
    rows = [
        build_change_row("0.5", "0") | {"hash": "11" * 20},
        build_change_row("0.51", "7") | {"hash": "22" * 20},
    ]
    [event] = parse_market_message(json.dumps(build_price_change_event(*rows, timestamp_ms=42))).events
    assert isinstance(event, PriceChanges)

    changed = apply_price_changes(book, event.changes, event.timestamp_ms)

    assert (changed.venue_hash, changed.timestamp_ms) == ("22" * 20, 42)
    assert book.venue_hash == "0" * 40  # the snapshot's hash, from the payload


def test_the_pre_2025_price_change_format_with_one_asset_per_event_is_understood() -> None:
    frame = json.dumps(
        {
            "event_type": "price_change",
            "asset_id": ASSET,
            "market": CONDITION_ID,
            "changes": [{"price": "0.51", "side": "SELL", "size": "7"}],
            "timestamp": "5",
        }
    )
    [event] = parse_market_message(frame).events
    assert event == PriceChanges(market=CONDITION_ID, timestamp_ms=5, changes=(change("0.51", "7"),))


def test_a_tick_size_change_is_parsed() -> None:
    frame = json.dumps(
        {
            "event_type": "tick_size_change",
            "asset_id": ASSET,
            "market": CONDITION_ID,
            "old_tick_size": "0.01",
            "new_tick_size": "0.001",
            "timestamp": "9",
        }
    )
    assert parse_market_message(frame).events == (
        TickSizeChange(asset=ASSET, market=CONDITION_ID, tick_size=D("0.001"), timestamp_ms=9),
    )


def test_a_book_snapshot_without_tick_size_says_so_and_old_buys_sells_names_are_read() -> None:
    payload = build_book_event()
    event = {key: value for key, value in payload.items() if key not in ("tick_size", "min_order_size")}
    event["buys"], event["sells"] = event.pop("bids"), event.pop("asks")
    [snapshot] = parse_market_message(json.dumps(event)).events
    assert isinstance(snapshot, BookSnapshot) and not snapshot.has_trading_parameters
    assert len(snapshot.book.bids) == len(snapshot.book.asks) == 3


@pytest.mark.parametrize("event_type", ["last_trade_price", "best_bid_ask", "new_market", None])
def test_event_types_we_do_not_use_are_skipped_not_errors(event_type: str | None) -> None:
    message = parse_market_message(json.dumps({"event_type": event_type, "asset_id": ASSET, "price": "0.5"}))
    assert (message.events, message.skipped, message.errors) == ((), 1, ())


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (build_price_change_event(build_change_row("0.5", "-1")), "bad price_change"),
        (build_price_change_event(build_change_row("abc", "1")), "bad price_change"),
        (build_price_change_event(build_change_row("0.5", "1", side="HOLD")), "bad price_change"),
        (build_price_change_event({"price": "0.5", "size": "1", "side": "BUY"}), "bad price_change"),
        ({"event_type": "book", "bids": []}, "bad book payload"),
        ({"event_type": "tick_size_change", "asset_id": ASSET, "new_tick_size": "0"}, "bad tick_size_change"),
        ("just a string", "not an object"),
    ],
)
def test_a_malformed_event_is_reported_and_spoils_nothing_else_in_the_frame(bad: Any, reason: str) -> None:
    message = parse_market_message(json.dumps([bad, build_book_event()]))
    assert len(message.events) == 1 and isinstance(message.events[0], BookSnapshot)
    assert len(message.errors) == 1 and reason in message.errors[0]


def test_a_frame_that_is_not_json_is_one_error() -> None:
    message = parse_market_message("PONG?")
    assert message.events == () and message.errors[0].startswith("invalid JSON")


# --- applying changes --------------------------------------------------------------------------------------
def test_a_new_size_replaces_the_level_and_zero_removes_it() -> None:
    book = build_book()
    changes = [change("0.5", "0"), change("0.51", "3"), change("0.48", "0", Side.BUY)]
    after = apply_price_changes(book, changes, timestamp_ms=42)
    assert [(str(level.price), str(level.size)) for level in after.asks] == [("0.51", "3"), ("0.52", "1000")]
    assert prices(after.bids) == ["0.49", "0.47"]
    assert after.timestamp_ms == 42 and (after.asset, after.tick_size) == (book.asset, book.tick_size)


def test_new_levels_are_inserted_in_best_first_order_on_each_side() -> None:
    after = apply_price_changes(
        build_book(),
        [change("0.495", "10"), change("0.485", "4", Side.BUY), change("0.60", "1", Side.BUY)],
        timestamp_ms=1,
    )
    assert prices(after.asks) == ["0.495", "0.50", "0.51", "0.52"]
    assert prices(after.bids) == ["0.60", "0.49", "0.485", "0.48", "0.47"]


def test_changes_for_other_assets_leave_the_book_as_it_was() -> None:
    book = build_book()
    assert apply_price_changes(book, [change("0.5", "0", asset=OTHER_ASSET)], timestamp_ms=99) is book


def test_removing_a_level_that_is_not_there_changes_nothing_but_the_time() -> None:
    book = build_book()
    after = apply_price_changes(book, [change("0.77", "0")], timestamp_ms=7)
    assert (after.bids, after.asks, after.timestamp_ms) == (book.bids, book.asks, 7)


def test_a_tick_size_change_applies_to_its_token_only() -> None:
    book = build_book()
    finer = TickSizeChange(asset=ASSET, market=CONDITION_ID, tick_size=D("0.001"), timestamp_ms=1)
    assert apply_tick_size_change(book, finer).tick_size == D("0.001")
    assert apply_tick_size_change(book, TickSizeChange(OTHER_ASSET, CONDITION_ID, D("0.001"), 1)) is book


# --- properties ---------------------------------------------------------------------------------------------
TICKS = st.integers(min_value=1, max_value=99).map(lambda n: D(n) / 100)
SIZES = st.one_of(st.just(D(0)), st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2))
SIDES = st.sampled_from([Side.BUY, Side.SELL])
LEVEL_MAPS = st.dictionaries(
    TICKS, st.decimals(min_value=D("0.01"), max_value=D("5000"), places=2), max_size=12
)
CHANGES = st.lists(
    st.builds(PriceChange, asset=st.sampled_from([ASSET, OTHER_ASSET]), side=SIDES, price=TICKS, size=SIZES),
    max_size=40,
)


@given(bids=LEVEL_MAPS, asks=LEVEL_MAPS, changes=CHANGES)
def test_applied_changes_keep_levels_best_first_without_empty_levels_and_equal_a_rebuild(
    bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal], changes: list[PriceChange]
) -> None:
    book = build_book(asks=list(asks.items()), bids=list(bids.items()))
    after = apply_price_changes(book, changes, timestamp_ms=1)

    bid_prices = [level.price for level in after.bids]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert [level.price for level in after.asks] == sorted(level.price for level in after.asks)
    assert len({level.price for level in after.bids}) == len(after.bids)
    assert all(level.size > 0 for level in after.bids + after.asks)
    # The model: replay the changes on plain maps, then build the book from the final maps.
    final = {Side.BUY: dict(bids), Side.SELL: dict(asks)}
    for item in changes:
        if item.asset == ASSET:
            final[item.side][item.price] = item.size
    assert after.bids == build_levels(final[Side.BUY], best_first_high=True)
    assert after.asks == build_levels(final[Side.SELL], best_first_high=False)


@given(bids=LEVEL_MAPS, asks=LEVEL_MAPS, changes=CHANGES)
def test_applying_changes_one_at_a_time_equals_applying_them_together(
    bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal], changes: list[PriceChange]
) -> None:
    book = build_book(asks=list(asks.items()), bids=list(bids.items()))
    stepwise = book
    for item in changes:
        stepwise = apply_price_changes(stepwise, [item], timestamp_ms=1)
    together = apply_price_changes(book, changes, timestamp_ms=1)
    assert (stepwise.bids, stepwise.asks) == (together.bids, together.asks)
