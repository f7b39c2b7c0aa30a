"""Books read back from the books topic: the worker's view (latest channel state, lost books, states found by
id) and the replay rule (pinned state, else the latest fresh channel state, else a fresh REST state)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.core.book_log import RecentBooks, ReplayBooks, ReplayedTrade
from processors.core.books import stamp_book
from schemas.books import BookSource, OrderBook
from tests.builders import ASSET, OTHER_ASSET, build_book

T0 = 1_790_000_000_000
CHANNEL_AGE, REST_AGE = 30_000, 500


def state(
    at_ms: int, source: BookSource = BookSource.CHANNEL, asset: str = ASSET, ask: str = "0.50"
) -> OrderBook:
    return stamp_book(build_book(asks=[(ask, "100")], asset=asset), source, at_ms)


# --- RecentBooks: the worker's view -------------------------------------------------------------------------
def test_the_latest_channel_state_is_fresh_until_it_is_older_than_the_maximum_age() -> None:
    books = RecentBooks()
    old, new = state(T0), state(T0 + 10)
    books.apply(ASSET, old)
    books.apply(ASSET, new)
    assert books.fresh_channel_book(ASSET, T0 + 10 + CHANNEL_AGE, CHANNEL_AGE) == new
    assert books.fresh_channel_book(ASSET, T0 + 11 + CHANNEL_AGE, CHANNEL_AGE) is None
    assert books.fresh_channel_book(OTHER_ASSET, T0, CHANNEL_AGE) is None


def test_a_rest_state_is_findable_by_id_but_is_never_the_channels_book() -> None:
    books = RecentBooks()
    rest = state(T0, BookSource.REST)
    books.apply(ASSET, rest)
    assert books.fresh_channel_book(ASSET, T0, CHANNEL_AGE) is None
    assert rest.book_id is not None and books.find(ASSET, rest.book_id) == rest


def test_a_lost_channel_book_is_not_served_but_its_states_stay_findable() -> None:
    books = RecentBooks()
    channel = state(T0)
    books.apply(ASSET, channel)
    books.apply(ASSET, None)
    assert books.fresh_channel_book(ASSET, T0, CHANNEL_AGE) is None
    assert channel.book_id is not None and books.find(ASSET, channel.book_id) == channel


def test_states_are_forgotten_after_the_keep_time_and_beyond_the_count_per_token() -> None:
    books = RecentBooks(keep_ms=1_000, keep_per_token=3)
    states = [state(T0 + n, ask=f"0.{50 + n}") for n in range(5)]
    for book in states:
        books.apply(ASSET, book)
    assert [books.find(ASSET, b.book_id or "") is not None for b in states] == [
        False,
        False,
        True,
        True,
        True,
    ]
    books.apply(OTHER_ASSET, state(T0 + 5_000, asset=OTHER_ASSET))
    assert all(books.find(ASSET, b.book_id or "") is None for b in states) and len(books) == 1
    assert books.fresh_channel_book(ASSET, T0 + 5, CHANNEL_AGE) is None  # its token was forgotten whole


def test_the_same_state_read_twice_is_kept_once() -> None:
    books = RecentBooks()
    rest = state(T0, BookSource.REST)
    books.apply(ASSET, rest)  # the worker that fetched it
    books.apply(ASSET, rest)  # ... and the books topic bringing it back
    assert len(books) == 1


# --- ReplayBooks: the rule a replay uses --------------------------------------------------------------------
def trade(at_ms: int, key: str = "k1", asset: str = ASSET, **live: Any) -> ReplayedTrade:
    return ReplayedTrade(key, asset, at_ms, **live)


def replay(trades: list[ReplayedTrade], records: list[tuple[int, OrderBook | None]]) -> ReplayBooks:
    books = ReplayBooks(trades, CHANNEL_AGE, REST_AGE)
    for at_ms, book in records:
        books.add(book.asset if book else ASSET, at_ms, book)
    return books


def test_a_trade_decided_live_gets_the_state_it_was_pinned_to_even_if_newer_ones_came_first() -> None:
    pinned, newer = state(T0), state(T0 + 5)
    live = trade(T0 + 10, decided_live=True, pinned_book_id=pinned.book_id)
    assert replay([live], [(T0, pinned), (T0 + 5, newer)]).book_for(live) == pinned


def test_a_trade_decided_live_without_a_book_gets_none() -> None:
    live = trade(T0 + 10, decided_live=True, pinned_book_id=None)
    assert replay([live], [(T0, state(T0))]).book_for(live) is None


def test_a_pinned_state_gone_from_the_log_falls_back_to_the_rule_and_is_counted() -> None:
    live = trade(T0 + 10, decided_live=True, pinned_book_id="gone")
    fresh = state(T0)
    books = replay([live], [(T0, fresh)])
    assert books.book_for(live) == fresh and books.pinned_missing == 1


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([(T0, "a")], "a"),  # fresh channel state
        ([(T0, "a"), (T0 + 20, "b")], "b"),  # the latest one
        ([(T0, "a"), (T0 + 101, "b")], "a"),  # not one received after the trade
        ([(T0 - CHANNEL_AGE + 100, "a")], "a"),  # exactly the maximum age
        ([(T0 - CHANNEL_AGE + 99, "a")], None),  # older
        ([(T0, "a"), (T0 + 10, None)], None),  # the channel's book was lost since
        ([(T0, "a"), (T0 + 10, None), (T0 + 50, "rest")], "rest"),  # then a fresh REST state
        ([(T0 + 100 - REST_AGE - 1, "rest")], None),  # a REST state lives 500 ms only
        ([(T0, "rest"), (T0 + 10, "a")], "a"),  # a channel state before a REST one
    ],
)
def test_a_trade_not_decided_live_gets_what_the_live_target_filter_would_have_chosen(
    records: list[tuple[int, str | None]], expected: str | None
) -> None:
    built = {
        name: state(at, BookSource.REST if name == "rest" else BookSource.CHANNEL, ask=f"0.{40 + n}")
        for n, (at, name) in enumerate(records)
        if name is not None
    }
    books = replay([trade(T0 + 100)], [(at, built.get(name) if name else None) for at, name in records])
    assert books.book_for(trade(T0 + 100)) == (built[expected] if expected else None)


def test_each_trade_gets_the_book_of_its_own_token_and_time() -> None:
    first, second = trade(T0 + 10, "k1"), trade(T0 + 10, "k2", OTHER_ASSET)
    mine, other = state(T0), state(T0 + 5, asset=OTHER_ASSET)
    books = replay([first, second], [(T0, mine), (T0 + 5, other)])
    assert (books.book_for(first), books.book_for(second)) == (mine, other)


RECORDS = st.lists(
    st.tuples(st.integers(0, 40_000), st.sampled_from([BookSource.CHANNEL, BookSource.REST, None])),
    max_size=12,
).map(lambda items: sorted(items, key=lambda item: item[0]))


@given(records=RECORDS, trade_times=st.lists(st.integers(0, 45_000), min_size=1, max_size=5))
def test_the_rule_matches_a_direct_reading_of_it(
    records: list[tuple[int, BookSource | None]], trade_times: list[int]
) -> None:
    log = [
        (T0 + at, state(T0 + at, source, ask=f"0.{10 + n}") if source else None)
        for n, (at, source) in enumerate(records)
    ]
    trades = [trade(T0 + at, f"k{n}") for n, at in enumerate(trade_times)]
    books = replay(trades, log)
    for replayed in trades:
        at = replayed.received_at_ms
        before = [(t, book) for t, book in log if t <= at]
        channel = [(t, b) for t, b in before if b is None or b.source is BookSource.CHANNEL]
        rest = [(t, b) for t, b in before if b is not None and b.source is BookSource.REST]
        expected = None
        if channel and channel[-1][1] is not None and at - channel[-1][0] <= CHANNEL_AGE:
            expected = channel[-1][1]
        elif rest and at - rest[-1][0] <= REST_AGE:
            expected = rest[-1][1]
        assert books.book_for(replayed) == expected


def test_a_price_is_a_decimal_after_the_round_trip() -> None:
    book = OrderBook.model_validate_json(state(T0).to_bytes())
    assert book == state(T0) and isinstance(book.asks[0].price, Decimal)
