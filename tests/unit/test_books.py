"""Order books: parsing the venue's worst-first levels, the liquidity gate, and the paper fill model."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polycopy.polymarket.books import BookFormatError, parse_book
from processors.core.books import check_liquidity, simulate_fill
from schemas.base import Side
from schemas.books import OrderBook
from tests.builders import build_book, build_book_payload, load_fixture_json

D = Decimal
REAL_BOOK = "ra1nty__polymarket-cli/book.json"  # a real GET /book response (MIT), see tests/fixtures


@pytest.fixture(scope="module")
def real_payload() -> dict[str, Any]:
    return load_fixture_json(REAL_BOOK)


@pytest.fixture(scope="module")
def real_book(real_payload: dict[str, Any]) -> OrderBook:
    return parse_book(real_payload)


# --- the real /book response --------------------------------------------------------------------------------
def test_real_book_is_sent_worst_first_and_parsed_best_first(
    real_payload: dict[str, Any], real_book: OrderBook
) -> None:
    venue_prices = [D(level["price"]) for level in real_payload["asks"]]
    assert venue_prices[0] == D("0.999") and venue_prices[-1] == D("0.001")  # the venue lists worst first

    assert real_book.asks[0].price == D("0.001") == min(venue_prices)
    assert real_book.asks[-1].price == D("0.999")
    assert [level.price for level in real_book.asks] == sorted(venue_prices)
    assert real_book.asks[0].size == D("385409.39")
    assert real_book.bids == ()


def test_real_book_keeps_the_venue_parameters(real_book: OrderBook) -> None:
    assert real_book.asset == "94242206871221370391055736153305071391564432448684801902267396130896523340261"
    assert real_book.market == "0xba3509c3c29a52bb2f8cf8204755314a38461825e61e77e6350f5abd4b848e05"
    assert (real_book.tick_size, real_book.min_order_size, real_book.neg_risk) == (D("0.001"), D("5"), False)
    assert real_book.timestamp_ms == 1_774_166_201_606
    assert len(real_book.asks) == 104


@pytest.mark.parametrize(
    ("limit", "expected"),
    [("0.001", "385409.39"), ("0.009", "385509.39"), ("0.01", "1475186.38"), ("0.0005", "0")],
)
def test_real_book_depth_at_a_limit_sums_the_cheapest_asks(
    real_book: OrderBook, limit: str, expected: str
) -> None:
    gate = check_liquidity(real_book, Side.BUY, D(limit), D("100"), D("0.5"))

    assert gate.available_size == D(expected)
    assert gate.passed is (D(expected) > 0)


def test_real_book_has_no_bids_so_any_sell_fails_the_gate(real_book: OrderBook) -> None:
    gate = check_liquidity(real_book, Side.SELL, D("0.001"), D("5"), D("0.5"))

    assert (gate.passed, gate.available_size) == (False, D(0))


def test_a_buy_on_the_real_book_fills_at_the_best_ask_first(real_book: OrderBook) -> None:
    fill = simulate_fill(real_book.asks, Side.BUY, D("0.5"), D("1000"))

    assert (fill.matched_size, fill.average_price, fill.notional) == (D("1000"), D("0.001"), D("1.000"))


def test_a_buy_sweeping_the_real_book_stops_at_the_limit(real_book: OrderBook) -> None:
    fill = simulate_fill(real_book.asks, Side.BUY, D("0.009"), D("400000"))

    assert fill.matched_size == D("385509.39")  # the 0.001 and 0.009 levels, not the 0.01 one
    assert fill.notional == D("385409.39") * D("0.001") + D("100") * D("0.009")


# --- parsing ------------------------------------------------------------------------------------------------
def test_levels_are_sorted_best_first_whatever_order_the_venue_uses() -> None:
    payload = build_book_payload(
        asks=[("0.55", "1"), ("0.53", "2"), ("0.54", "3")], bids=[("0.45", "1"), ("0.47", "2"), ("0.46", "3")]
    )
    payload["asks"] = [payload["asks"][1], payload["asks"][2], payload["asks"][0]]  # shuffle

    book = parse_book(payload)

    assert [level.price for level in book.asks] == [D("0.53"), D("0.54"), D("0.55")]
    assert [level.price for level in book.bids] == [D("0.47"), D("0.46"), D("0.45")]
    assert book.levels_against(Side.BUY) == book.asks
    assert book.levels_against(Side.SELL) == book.bids


def test_empty_levels_are_dropped() -> None:
    book = build_book(asks=[("0.50", "0"), ("0.51", "10")], bids=[("0.49", "0.00")])

    assert [level.price for level in book.asks] == [D("0.51")]
    assert book.bids == ()


def test_missing_optional_fields_take_defaults() -> None:
    book = parse_book({"asset_id": "123", "bids": None})

    assert (book.tick_size, book.min_order_size, book.neg_risk, book.timestamp_ms) == (
        D("0.01"),
        D(0),
        False,
        0,
    )
    assert book.asks == book.bids == ()


@pytest.mark.parametrize(
    "payload",
    [
        {"bids": [], "asks": []},
        {"asset_id": "1", "asks": [{"price": "abc", "size": "1"}]},
        {"asset_id": "1", "asks": [{"price": "0.5"}]},
        {"asset_id": "1", "asks": ["0.5"]},
        {"asset_id": "1", "tick_size": "tick"},
        {"asset_id": "1", "timestamp": "yesterday"},
    ],
    ids=["no-asset", "bad-price", "no-size", "level-not-object", "bad-tick", "bad-timestamp"],
)
def test_malformed_book_raises_book_format_error(payload: dict[str, Any]) -> None:
    with pytest.raises(BookFormatError, match="bad book payload"):
        parse_book(payload)


# --- liquidity gate at its boundary -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("side", "levels", "limit", "passes", "available"),
    [
        (Side.BUY, [("0.50", "30"), ("0.52", "20"), ("0.53", "1000")], "0.52", True, "50"),
        (Side.BUY, [("0.50", "30"), ("0.52", "19.99"), ("0.53", "1000")], "0.52", False, "49.99"),
        (Side.BUY, [("0.50", "30"), ("0.52", "20")], "0.51", False, "30"),
        (Side.SELL, [("0.50", "30"), ("0.48", "20"), ("0.47", "1000")], "0.48", True, "50"),
        (Side.SELL, [("0.50", "30"), ("0.48", "19.99"), ("0.47", "1000")], "0.48", False, "49.99"),
        (Side.SELL, [("0.50", "30"), ("0.48", "20")], "0.49", False, "30"),
    ],
    ids=[
        "buy-exactly-half",
        "buy-just-under",
        "buy-level-above-limit",
        "sell-exactly-half",
        "sell-just-under",
        "sell-level-below-limit",
    ],
)
def test_liquidity_passes_exactly_at_ratio_times_size_and_fails_just_under(
    side: Side, levels: list[tuple[str, str]], limit: str, passes: bool, available: str
) -> None:
    book = build_book(asks=levels, bids=[]) if side is Side.BUY else build_book(asks=[], bids=levels)

    gate = check_liquidity(book, side, D(limit), D("100"), D("0.5"))

    assert (gate.passed, gate.available_size, gate.required_size) == (passes, D(available), D("50"))


def test_a_buy_gate_ignores_bids_and_a_sell_gate_ignores_asks() -> None:
    book = build_book(asks=[("0.40", "1000")], bids=[("0.60", "1000")])

    assert check_liquidity(book, Side.BUY, D("0.50"), D("10"), D("0.5")).available_size == D("1000")
    assert check_liquidity(book, Side.SELL, D("0.50"), D("10"), D("0.5")).available_size == D("1000")
    assert not check_liquidity(book, Side.BUY, D("0.39"), D("10"), D("0.5")).passed
    assert not check_liquidity(book, Side.SELL, D("0.61"), D("10"), D("0.5")).passed


def test_an_empty_side_never_passes_even_with_a_zero_ratio() -> None:
    assert not check_liquidity(build_book(asks=[]), Side.BUY, D("0.99"), D("10"), D("0")).passed


# --- the paper fill model -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("side", "levels", "limit", "size", "matched", "average", "notional"),
    [
        (Side.BUY, [("0.53", "10"), ("0.50", "10"), ("0.51", "10")], "0.52", "25", "20", "0.505", "10.10"),
        (Side.BUY, [("0.53", "10"), ("0.50", "10"), ("0.51", "10")], "0.52", "15", "15", "0.503333", "7.55"),
        (Side.BUY, [("0.53", "10")], "0.52", "15", "0", None, "0"),
        (Side.SELL, [("0.47", "10"), ("0.50", "10"), ("0.49", "10")], "0.48", "25", "20", "0.495", "9.90"),
        (
            Side.SELL,
            [("0.47", "10"), ("0.50", "10"), ("0.49", "10")],
            "0.47",
            "30",
            "30",
            "0.486667",
            "14.60",
        ),
    ],
    ids=["buy-stops-at-limit", "buy-full", "buy-nothing-crosses", "sell-stops-at-limit", "sell-full"],
)
def test_simulate_fill_walks_best_first_and_stops_at_the_limit(
    side: Side,
    levels: list[tuple[str, str]],
    limit: str,
    size: str,
    matched: str,
    average: str | None,
    notional: str,
) -> None:
    book = build_book(asks=levels, bids=[]) if side is Side.BUY else build_book(asks=[], bids=levels)

    fill = simulate_fill(book.levels_against(side), side, D(limit), D(size))

    assert fill.matched_size == D(matched)
    assert fill.average_price == (D(average) if average else None)
    assert fill.notional == D(notional)


LEVELS = st.lists(
    st.tuples(st.integers(1, 99).map(lambda cents: D(cents) / 100), st.decimals("0.01", "500", places=2)),
    max_size=8,
    unique_by=lambda level: level[0],
)


@given(
    side=st.sampled_from(Side),
    levels=LEVELS,
    limit=st.integers(1, 99),
    size=st.decimals("0.01", "1000", places=2),
)
def test_simulated_fill_takes_exactly_the_crossing_depth_at_prices_within_the_limit(
    side: Side, levels: list[tuple[Decimal, Decimal]], limit: int, size: Decimal
) -> None:
    book = build_book(asks=levels, bids=[]) if side is Side.BUY else build_book(asks=[], bids=levels)
    limit_price = D(limit) / 100

    fill = simulate_fill(book.levels_against(side), side, limit_price, size)

    # reference model from the raw levels: best first, only levels that cross the limit
    ordered = sorted(levels, key=lambda level: level[0], reverse=side is Side.SELL)
    crossing = [(p, q) for p, q in ordered if (p <= limit_price if side is Side.BUY else p >= limit_price)]
    remaining, notional = size, D(0)
    for price, quantity in crossing:
        take = min(remaining, quantity)
        notional, remaining = notional + take * price, remaining - take
    assert fill.matched_size == size - remaining
    assert fill.notional == notional
    if fill.matched_size == 0:
        assert fill.average_price is None
    else:
        assert fill.average_price == (notional / fill.matched_size).quantize(D("0.000001"))
        worst, best = crossing[-1][0], crossing[0][0]
        assert min(best, worst) <= fill.average_price <= max(best, worst)
