"""Parsing RTDS frames and Data API rows into RawTrade, and the fill dedup key."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.ids import build_dedup_key, canonical_decimal
from producers.parsing import TradeParseError, build_raw_trade, parse_rtds_frame
from schemas.trades import TradeSource
from tests.builders import (
    RECEIVED_AT_MS,
    TRADE_TIMESTAMP,
    TRADER,
    TX_HASH,
    build_trade,
    build_trade_payload,
    build_trade_rows,
    build_wrapped_trade_pages,
    load_fixture_json,
    read_trades_csv,
    rtds_frame,
    unique_by,
    write_trades_csv,
)

D = Decimal
RECORDED_TRADES = "ra1nty__polymarket-cli/trades.json"  # real Data API rows (MIT), see tests/fixtures


def parse_one(frame: str | bytes, received_at_ms: int = RECEIVED_AT_MS) -> Any:
    parsed = parse_rtds_frame(frame, received_at_ms)
    assert parsed.error is None, parsed.error
    assert len(parsed.trades) == 1
    return parsed.trades[0]


@pytest.fixture(scope="module")
def recorded_rows() -> list[dict[str, Any]]:
    return load_fixture_json(RECORDED_TRADES)


@pytest.fixture(scope="module")
def dump_rows() -> list[dict[str, Any]]:
    """A CSV dump of an event's trades, paged until the offset wrapped, read back as the API typed it."""
    return read_trades_csv(write_trades_csv(build_wrapped_trade_pages(pages=10, page_size=500)))


# --- Data API rows, wrapped as the RTDS feed sends them -----------------------------------------------------
@pytest.mark.parametrize("source", ["recorded", "rebuilt"])
@pytest.mark.parametrize("feed_type", ["trades", "orders_matched"])
def test_data_api_rows_wrapped_in_rtds_frames_parse_field_for_field(
    recorded_rows: list[dict[str, Any]], source: str, feed_type: str
) -> None:
    # The rebuilt rows carry the traps of recorded pages the repository cannot hold: mixed-case wallets,
    # six-decimal share counts, long float prices, empty names.
    rows = recorded_rows if source == "recorded" else build_trade_rows(5)
    for row in rows:
        trade = parse_one(rtds_frame(row, type=feed_type))

        assert trade.proxy_wallet == row["proxyWallet"].lower()
        assert trade.side.value == row["side"]
        assert trade.asset == row["asset"]
        assert trade.condition_id == row["conditionId"].lower()
        assert trade.size == D(str(row["size"]))
        assert trade.price == D(str(row["price"]))
        assert trade.timestamp == row["timestamp"]
        assert trade.transaction_hash == row["transactionHash"].lower()
        assert (trade.outcome, trade.outcome_index, trade.slug, trade.event_slug, trade.title) == (
            row["outcome"],
            row["outcomeIndex"],
            row["slug"],
            row["eventSlug"],
            row["title"],
        )
        assert (trade.name, trade.pseudonym) == (row["name"] or None, row["pseudonym"] or None)
        assert (trade.source, trade.feed_type, trade.received_at_ms) == (
            TradeSource.RTDS,
            feed_type,
            RECEIVED_AT_MS,
        )
    assert any(row["proxyWallet"] != row["proxyWallet"].lower() for row in build_trade_rows(5))


def test_a_real_fractional_fill_keeps_every_digit(recorded_rows: list[dict[str, Any]]) -> None:
    trade = parse_one(rtds_frame(recorded_rows[1]))

    assert (trade.size, trade.price) == (D("1.754383"), D("0.5699998232997013"))
    assert (trade.name, trade.pseudonym) == ("lucky313", "Grumpy-Pipeline")


def test_dump_rows_give_one_key_per_distinct_fill(dump_rows: list[dict[str, Any]]) -> None:
    """The dump repeats rows because its pagination wrapped: 5000 rows, 1500 distinct fills."""
    keys = {parse_one(rtds_frame(row)).dedup_key for row in dump_rows}

    distinct_fills = unique_by(
        dump_rows,
        lambda r: (r["transactionHash"], r["asset"], r["side"], r["price"], r["size"], r["proxyWallet"]),
    )
    assert len(dump_rows) == 5000
    assert len(keys) == len(distinct_fills) == 1500
    # a transaction hash alone would merge fills: some transactions hold several fills of one wallet
    assert len({row["transactionHash"] for row in distinct_fills}) < 1500


def test_a_csv_size_written_as_5000_0_keys_like_5000(dump_rows: list[dict[str, Any]]) -> None:
    row = next(r for r in dump_rows if r["size"] == 5000.0)
    as_float = parse_one(rtds_frame(row))
    as_int = parse_one(rtds_frame(row | {"size": 5000}))

    assert json.dumps(row["size"]) == "5000.0"
    assert as_float.dedup_key == as_int.dedup_key


# --- field handling -----------------------------------------------------------------------------------------
def test_addresses_and_hashes_are_lower_cased() -> None:
    payload = build_trade_payload(
        proxyWallet=TRADER.upper().replace("0X", "0x"),
        conditionId="0x" + "AB" * 32,
        transactionHash=TX_HASH.upper().replace("0X", "0x"),
    )

    trade = parse_one(rtds_frame(payload))

    assert trade.proxy_wallet == TRADER
    assert trade.condition_id == "0x" + "ab" * 32
    assert trade.transaction_hash == TX_HASH


def test_envelope_time_is_milliseconds_and_payload_time_is_seconds() -> None:
    frame = rtds_frame(
        build_trade_payload(timestamp=TRADE_TIMESTAMP), timestamp_ms=TRADE_TIMESTAMP * 1000 + 1900
    )

    trade = parse_one(frame, received_at_ms=TRADE_TIMESTAMP * 1000 + 2000)

    assert trade.timestamp == TRADE_TIMESTAMP
    assert trade.received_at_ms == TRADE_TIMESTAMP * 1000 + 2000  # our clock, not the envelope's


@pytest.mark.parametrize(
    "timestamp", [TRADE_TIMESTAMP * 1000, TRADE_TIMESTAMP * 1000 + 999, str(TRADE_TIMESTAMP)]
)
def test_a_payload_timestamp_in_milliseconds_or_text_is_read_as_seconds(timestamp: int | str) -> None:
    in_seconds = parse_one(rtds_frame(build_trade_payload(timestamp=TRADE_TIMESTAMP)))

    trade = parse_one(rtds_frame(build_trade_payload(timestamp=timestamp)))

    assert trade.timestamp == TRADE_TIMESTAMP
    assert trade.dedup_key == in_seconds.dedup_key


@pytest.mark.parametrize(("value", "expected"), [(999, 999), (1, 1), (None, None), ("", None), ("0", 0)])
def test_outcome_index_sentinels_are_tolerated(value: Any, expected: int | None) -> None:
    assert parse_one(rtds_frame(build_trade_payload(outcomeIndex=value))).outcome_index == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"fee": 0.25}, D("0.25")),
        ({"fee": ""}, None),
        ({}, None),
        ({"fee": None}, None),
    ],
)
def test_fee_is_optional(fields: dict[str, Any], expected: Decimal | None) -> None:
    assert parse_one(rtds_frame(build_trade_payload(**fields))).fee == expected


def test_empty_profile_fields_become_none() -> None:
    trade = parse_one(rtds_frame(build_trade_payload(name="", pseudonym="")))

    assert (trade.name, trade.pseudonym) == (None, None)


def test_lower_case_side_is_accepted() -> None:
    assert parse_one(rtds_frame(build_trade_payload(side="sell"))).side.value == "SELL"


# --- routing ------------------------------------------------------------------------------------------------
def test_a_frame_without_topic_and_type_is_routed_by_payload_shape() -> None:
    trade = parse_one(rtds_frame(build_trade_payload(), type=None, topic=None))

    assert trade.feed_type is None


def test_a_bare_payload_without_an_envelope_is_a_trade() -> None:
    assert parse_one(json.dumps(build_trade_payload())).feed_type is None


def test_a_list_of_envelopes_gives_every_trade_in_order() -> None:
    frames = [json.loads(rtds_frame(build_trade_payload(size=size))) for size in (1, 2, 3)]

    parsed = parse_rtds_frame(json.dumps(frames), RECEIVED_AT_MS)

    assert parsed.error is None
    assert [trade.size for trade in parsed.trades] == [D(1), D(2), D(3)]


@pytest.mark.parametrize("frame", ["", "PONG", "pong", "PING", "  \n", b"", b"PONG"])
def test_control_frames_are_ignored(frame: str | bytes) -> None:
    parsed = parse_rtds_frame(frame, RECEIVED_AT_MS)

    assert (parsed.trades, parsed.error) == ([], None)


@pytest.mark.parametrize(
    "frame",
    [
        rtds_frame({"symbol": "btcusdt", "value": 67000.5}, type="update", topic="crypto_prices"),
        rtds_frame(build_trade_payload(), type="update", topic="crypto_prices"),
        rtds_frame(build_trade_payload(), type="comment_created", topic="activity"),
        json.dumps({"message": "subscribed", "connection_id": "abc"}),
        json.dumps([]),
        json.dumps({"topic": ["activity"], "type": {"name": "trades"}, "payload": build_trade_payload()}),
    ],
    ids=[
        "other-topic",
        "trade-shaped-other-topic",
        "other-activity-type",
        "ack",
        "empty-list",
        "routing-fields-not-strings",
    ],
)
def test_frames_of_other_topics_and_types_are_skipped_without_error(frame: str) -> None:
    parsed = parse_rtds_frame(frame, RECEIVED_AT_MS)

    assert (parsed.trades, parsed.error) == ([], None)


# --- errors: a string naming the problem, never an exception -----------------------------------------------
@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"topic": "activity", "type": "trades", "payload": {', "invalid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("[1, 2]", "JSON int, not an object"),
        ('"PONG!"', "JSON str, not an object"),
        (rtds_frame(None), "activity frame without a trade payload"),
        (rtds_frame({"proxyWallet": TRADER}), "transactionHash"),
        (rtds_frame({"transactionHash": TX_HASH}), "proxyWallet"),
        (rtds_frame(build_trade_payload(price="abc")), "invalid trade payload"),
        (rtds_frame(build_trade_payload(price=1.5)), "invalid trade field price"),
        (rtds_frame(build_trade_payload(price=0)), "invalid trade field price"),
        (rtds_frame(build_trade_payload(price=True)), "boolean where a number was expected"),
        (rtds_frame(build_trade_payload(size=-3)), "invalid trade field size"),
        (rtds_frame(build_trade_payload(side="HOLD")), "invalid trade field side"),
        (rtds_frame(build_trade_payload(proxyWallet="0x1234")), "invalid trade field proxy_wallet"),
        (rtds_frame(build_trade_payload(timestamp="noon")), "invalid trade payload"),
        (rtds_frame(build_trade_payload(outcomeIndex="first")), "invalid trade payload"),
    ],
    ids=[
        "truncated-json",
        "not-utf8",
        "list-of-numbers",
        "json-string",
        "null-payload",
        "no-tx-hash",
        "no-wallet",
        "price-not-a-number",
        "price-above-one",
        "price-zero",
        "price-boolean",
        "negative-size",
        "bad-side",
        "bad-wallet",
        "bad-timestamp",
        "bad-outcome-index",
    ],
)
def test_malformed_frames_give_an_error_naming_the_problem(frame: str | bytes, expected: str) -> None:
    parsed = parse_rtds_frame(frame, RECEIVED_AT_MS)

    assert parsed.trades == []
    assert parsed.error is not None and expected in parsed.error


@pytest.mark.parametrize("field", ["side", "asset", "conditionId", "price", "size", "timestamp"])
def test_a_missing_trade_field_is_named_in_the_error(field: str) -> None:
    payload = build_trade_payload()
    del payload[field]

    parsed = parse_rtds_frame(rtds_frame(payload), RECEIVED_AT_MS)

    assert parsed.error == f"trade payload lacks field {field!r}"


def test_one_bad_trade_in_a_list_fails_the_frame_with_its_error() -> None:
    frames = [
        json.loads(rtds_frame(build_trade_payload())),
        json.loads(rtds_frame(build_trade_payload(price=2))),
    ]

    parsed = parse_rtds_frame(json.dumps(frames), RECEIVED_AT_MS)

    assert parsed.trades == [] and parsed.error is not None and "price" in parsed.error


def test_build_raw_trade_raises_its_own_error_type() -> None:
    with pytest.raises(TradeParseError, match="lacks field 'asset'"):
        build_raw_trade(
            {"proxyWallet": TRADER, "side": "BUY", "price": 0.5, "size": 1, "timestamp": 1},
            source=TradeSource.POLL,
            received_at_ms=1,
        )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TRADE_FIELDS = [
    "proxyWallet",
    "side",
    "asset",
    "conditionId",
    "size",
    "price",
    "timestamp",
    "transactionHash",
    "outcomeIndex",
    "fee",
    "name",
    "outcome",
]


@settings(max_examples=150, deadline=None)
@given(
    overrides=st.dictionaries(st.sampled_from(TRADE_FIELDS), JSON_VALUES, max_size=4),
    removed=st.sets(st.sampled_from(TRADE_FIELDS), max_size=2),
    topic=st.sampled_from(["activity", None, "crypto_prices"]) | JSON_VALUES,
    feed_type=st.sampled_from(["trades", "orders_matched", None]) | JSON_VALUES,
)
def test_any_mangled_trade_frame_gives_trades_or_an_error_never_an_exception(
    overrides: dict[str, Any], removed: set[str], topic: Any, feed_type: Any
) -> None:
    payload = build_trade_payload(**overrides)
    for name in removed:
        payload.pop(name, None)
    envelope = {"topic": topic, "type": feed_type, "timestamp": 1, "payload": payload}

    parsed = parse_rtds_frame(json.dumps(envelope), RECEIVED_AT_MS)

    assert parsed.error is None or (isinstance(parsed.error, str) and parsed.error and not parsed.trades)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.binary(max_size=40) | JSON_VALUES.map(json.dumps))
def test_any_text_gives_trades_or_an_error_never_an_exception(frame: str | bytes) -> None:
    parsed = parse_rtds_frame(frame, RECEIVED_AT_MS)

    assert parsed.error is None or not parsed.trades


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_numbers_in_a_trade_are_an_error_not_an_exception(literal: str) -> None:
    for field in ("price", "size", "timestamp"):
        frame = rtds_frame(build_trade_payload()).replace(
            f'"{field}": {json.dumps(build_trade_payload()[field])}', f'"{field}": {literal}'
        )

        parsed = parse_rtds_frame(frame, RECEIVED_AT_MS)

        assert parsed.trades == [] and parsed.error is not None, (field, literal)


# --- the dedup key -----------------------------------------------------------------------------------------
def test_the_same_fill_through_trades_and_orders_matched_has_one_key() -> None:
    payload = build_trade_payload()

    via_trades = parse_one(rtds_frame(payload, type="trades"), received_at_ms=RECEIVED_AT_MS)
    via_matched = parse_one(rtds_frame(payload, type="orders_matched"), received_at_ms=RECEIVED_AT_MS + 300)
    via_poll = build_raw_trade(payload, source=TradeSource.POLL, received_at_ms=RECEIVED_AT_MS + 9000)

    assert via_trades.dedup_key == via_matched.dedup_key == via_poll.dedup_key


@pytest.mark.parametrize(
    "change",
    [
        {"size": 40},
        {"price": 0.51},
        {"side": "SELL"},
        {"asset": "1"},
        {"proxyWallet": "0x" + "cd" * 20},
        {"transactionHash": "0x" + "02" * 32},
    ],
    ids=["size", "price", "side", "asset", "wallet", "transaction"],
)
def test_two_fills_differing_in_one_field_have_two_keys(change: dict[str, Any]) -> None:
    first = parse_one(rtds_frame(build_trade_payload()))
    second = parse_one(rtds_frame(build_trade_payload(**change)))

    assert first.dedup_key != second.dedup_key


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"size": 5}, {"size": 5.0}),
        ({"size": 5}, {"size": "5.00"}),
        ({"price": 0.5}, {"price": "0.500"}),
        ({"side": "buy"}, {"side": "BUY"}),
        ({"transactionHash": TX_HASH}, {"transactionHash": TX_HASH.upper()}),
        ({"title": "a", "name": "x", "outcomeIndex": 0}, {"title": "b", "name": "y", "outcomeIndex": 999}),
    ],
    ids=["5-vs-5.0", "5-vs-5.00", "0.5-vs-0.500", "side-case", "hash-case", "descriptive-fields"],
)
def test_the_same_fill_written_differently_has_one_key(one: dict[str, Any], other: dict[str, Any]) -> None:
    assert (
        parse_one(rtds_frame(build_trade_payload(**one))).dedup_key
        == parse_one(rtds_frame(build_trade_payload(**other))).dedup_key
    )


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9),
    st.integers(0, 6),
)
def test_canonical_decimal_ignores_trailing_zeros_and_never_uses_an_exponent(
    value: Decimal, zeros: int
) -> None:
    padded = value + D(0).scaleb(-zeros)  # same number, `zeros` more digits after the point

    text = canonical_decimal(value)

    assert canonical_decimal(padded) == text
    assert "E" not in text and "e" not in text
    assert D(text) == value
    assert text != "-0"


def test_dedup_key_is_stable_across_releases() -> None:
    """Stored keys must keep matching: this pins the key of one fill."""
    key = build_dedup_key(
        transaction_hash=TX_HASH, asset="123", side="BUY", price=D("0.5"), size=D("10"), proxy_wallet=TRADER
    )

    assert key == build_dedup_key(
        transaction_hash=TX_HASH.upper(),
        asset="123",
        side="buy",
        price="0.50",
        size=10.0,
        proxy_wallet=TRADER.upper(),
    )
    assert len(key) == 32 and int(key, 16) >= 0


def test_the_payload_builder_and_the_trade_builder_describe_the_same_fill() -> None:
    payload = build_trade_payload()

    trade = parse_one(rtds_frame(payload))

    assert trade == build_trade(
        slug=payload["slug"],
        event_slug=payload["eventSlug"],
        title=payload["title"],
        name=payload["name"],
        pseudonym=payload["pseudonym"],
    )
