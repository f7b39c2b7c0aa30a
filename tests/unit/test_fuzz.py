"""Fuzzing the parsers of everything that comes from outside: RTDS frames, market-channel messages, Gamma
market objects, wallet files and the CLOB order API's answers. Each input ends as a parsed value, a dead
letter (an error the stage records) or a clear error, never an exception the stage does not expect.

Inputs are real payload shapes with fields replaced by arbitrary JSON (lone surrogates, huge and negative
numbers, nested lists, nulls), deleted or added. `FUZZ_EXAMPLES` sets the examples per parser: a modest
number in `make test`, 10,000 in `make fuzz`.
"""

from __future__ import annotations

import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polycopy.cli.common import UsageError, load_wallet_file
from polycopy.polymarket.books import BookFormatError, parse_book, parse_market_message
from polycopy.polymarket.http import HttpAnswer
from polycopy.polymarket.orders import (
    classify_lookup,
    classify_placement,
    parse_account_fills,
    parse_cancel,
    parse_order,
    parse_page,
)
from polycopy.polymarket.reference import ReferenceParseError, build_market_reference, build_trader_reference
from producers.parsing import parse_rtds_frame
from producers.publisher import TradePublisher
from schemas.base import Side
from schemas.deadletter import DeadLetter
from schemas.topics import DEAD_LETTERS, RAW_TRADES
from schemas.trades import RawTrade, TradeSource
from tests.builders import (
    RECEIVED_AT_MS,
    build_book_payload,
    build_gamma_market,
    build_leaderboard_row,
    build_trade_payload,
    build_wallet,
    rtds_frame,
)
from tests.fakes import FakePublisher

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text as the venue's users write it, with the traps: lone surrogates (half an emoji), NUL, RTL marks.
TRAPS = ["\ud83d", "\udc00", "\x00", "\u202e", "😀", "", " ", "null", "1e400", "-0", "NaN", "0x"]
TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(TRAPS),
    st.builds(str.__add__, st.text(max_size=6), st.sampled_from(TRAPS)),
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
JSON_VALUE = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6
)


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`base` with some fields replaced by arbitrary JSON, some deleted, some added."""
    keys = sorted(base)
    return st.builds(
        lambda replaced, deleted, added: {
            k: v for k, v in (base | replaced | added).items() if k not in deleted
        },
        st.dictionaries(st.sampled_from(keys), JSON_VALUE, max_size=4),
        st.sets(st.sampled_from(keys), max_size=2),
        st.dictionaries(TEXT, JSON_VALUE, max_size=2),
    )


def dumps(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=True)


# --- RTDS frames -------------------------------------------------------------------------------------------
@FUZZ
@given(
    payload=mutated(build_trade_payload()),
    feed_type=st.sampled_from(["trades", "orders_matched", None, "comments"]),
    topic=st.sampled_from(["activity", None, "crypto_prices"]),
)
def test_a_mutated_rtds_frame_ends_as_trades_that_serialise_or_as_a_dead_letter(
    payload: dict[str, Any], feed_type: str | None, topic: str | None
) -> None:
    frame = rtds_frame(payload, feed_type, topic=topic)
    publisher = FakePublisher()
    trades = TradePublisher(publisher, _metrics()).publish_frame(frame, RECEIVED_AT_MS, TradeSource.RTDS)

    for _, _, message in publisher.messages:
        assert message is not None
        message.to_bytes()  # everything a producer publishes can go on the wire
    published = publisher.on(RAW_TRADES)
    letters = publisher.on(DEAD_LETTERS)
    assert len(published) == trades and len(letters) <= 1
    for trade in published:
        assert RawTrade.model_validate_json(trade.to_bytes()) == trade
    assert all(isinstance(letter, DeadLetter) and letter.reason for letter in letters)


@FUZZ
@given(frame=st.one_of(TEXT, JSON_VALUE.map(dumps), st.binary(max_size=40)))
def test_any_text_or_bytes_as_an_rtds_frame_is_parsed_or_reported(frame: str | bytes) -> None:
    parsed = parse_rtds_frame(frame, RECEIVED_AT_MS)
    assert parsed.error is None or (isinstance(parsed.error, str) and not parsed.trades)


# --- market-channel messages -------------------------------------------------------------------------------
BOOK_EVENT = build_book_payload() | {"event_type": "book"}
PRICE_CHANGE = {
    "event_type": "price_change",
    "market": "0x" + "5f" * 32,
    "timestamp": "1757908892351",
    "price_changes": [{"asset_id": "1", "price": "0.5", "size": "200", "side": "BUY", "hash": "h"}],
}
TICK_CHANGE = {"event_type": "tick_size_change", "asset_id": "1", "new_tick_size": "0.001", "timestamp": "1"}


@FUZZ
@given(
    events=st.lists(
        st.one_of(mutated(BOOK_EVENT), mutated(PRICE_CHANGE), mutated(TICK_CHANGE), JSON_VALUE), max_size=3
    ),
    single=st.booleans(),
)
def test_a_mutated_market_channel_frame_keeps_its_good_events_and_reports_the_bad(
    events: list[Any], single: bool
) -> None:
    frame = dumps(events[0] if single and events else events)
    decoded = json.loads(frame)
    items = decoded if isinstance(decoded, list) else [decoded]

    message = parse_market_message(frame)

    # every event of the frame is accounted for: used, skipped (a type we do not use) or reported
    assert len(message.events) + message.skipped + len(message.errors) == len(items)
    assert all(isinstance(error, str) and error for error in message.errors)


@FUZZ
@given(payload=mutated(build_book_payload()))
def test_a_mutated_book_payload_is_a_book_or_a_book_format_error(payload: dict[str, Any]) -> None:
    try:
        book = parse_book(payload)
    except BookFormatError:
        return
    book.to_bytes()
    assert all(level.size > 0 for level in (*book.bids, *book.asks))


# --- Gamma objects and leaderboard rows --------------------------------------------------------------------
@FUZZ
@given(market=mutated(build_gamma_market()))
def test_a_mutated_gamma_market_is_a_reference_or_a_reference_error(market: dict[str, Any]) -> None:
    try:
        reference = build_market_reference(market, 1)
    except ReferenceParseError as error:
        assert str(error)
        return
    reference.to_bytes()


@FUZZ
@given(row=mutated(build_leaderboard_row()))
def test_a_mutated_leaderboard_row_is_a_trader_or_a_reference_error(row: dict[str, Any]) -> None:
    try:
        trader = build_trader_reference(row, source="leaderboard", updated_at_ms=1)
    except ReferenceParseError as error:
        assert str(error)
        return
    trader.to_bytes()


# --- wallet files ------------------------------------------------------------------------------------------
WALLET = json.loads(
    build_wallet(order_type="GTD", expiry_secs=60).model_dump_json(exclude={"schema_version"})
)


@FUZZ
@given(
    wallets=st.lists(mutated(WALLET), max_size=3),
    document=st.one_of(st.none(), JSON_VALUE),
    raw=st.one_of(st.none(), TEXT),
)
def test_a_mutated_wallet_file_is_applied_whole_or_refused_with_a_line_per_problem(
    wallets: list[dict[str, Any]], document: Any, raw: str | None
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "wallets.yaml"
        if raw is not None:
            path.write_text(raw, encoding="utf-8", errors="surrogatepass")
        else:
            body = {"wallets": wallets} if document is None else document
            path.write_text(yaml.safe_dump(json.loads(dumps(body)), allow_unicode=False))
        try:
            config = load_wallet_file(path)
        except UsageError as error:
            assert str(error).strip()
            return
    for wallet in config.wallets:
        wallet.to_bytes()


# --- the CLOB order API's answers --------------------------------------------------------------------------
ORDER = {
    "id": "0x" + "ab" * 32,
    "status": "ORDER_STATUS_LIVE",
    "side": "BUY",
    "asset_id": "1",
    "original_size": "10",
    "size_matched": "0",
    "price": "0.5",
    "order_type": "GTC",
    "created_at": 1_757_908_892,
}
PLACED = {"success": True, "status": "matched", "makingAmount": "5", "takingAmount": "10", "orderID": "0x1"}
TRADE = {
    "id": "t1",
    "status": "TRADE_STATUS_MATCHED",
    "side": "BUY",
    "asset_id": "1",
    "size": "10",
    "price": "0.5",
    "match_time": "1757908892",
    "trader_side": "TAKER",
    "taker_order_id": "0x1",
    "maker_orders": [
        {"order_id": "0x2", "owner": "me", "side": "SELL", "matched_amount": "10", "price": "0.5"}
    ],
}
STATUS = st.one_of(st.none(), st.sampled_from([200, 400, 404, 425, 429, 500, 503]), st.integers(100, 599))


@FUZZ
@given(
    status=STATUS,
    body=st.one_of(mutated(PLACED), mutated(ORDER), JSON_VALUE),
    transport=st.sampled_from(["", "timeout", "connect", "network"]),
    side=st.sampled_from(list(Side)),
)
def test_any_answer_to_a_placement_or_a_look_up_is_classified(
    status: int | None, body: Any, transport: str, side: Side
) -> None:
    answer = HttpAnswer(status, body, transport_error=transport if status is None else "")

    placement = classify_placement("0x1", side, answer)
    lookup = classify_lookup(answer)

    assert placement.kind and lookup.kind
    assert placement.matched_size is None or placement.matched_size.is_finite()


@FUZZ
@given(row=st.one_of(mutated(ORDER), mutated(TRADE)), page=st.one_of(JSON_VALUE, mutated({"data": [ORDER]})))
def test_any_order_or_trade_row_is_parsed_or_left_out(row: dict[str, Any], page: Any) -> None:
    order = parse_order(row)
    fills = parse_account_fills(row, "me", "0x" + "cd" * 20)
    rows, cursor = parse_page(page)

    assert order is None or order.order_id
    assert all(fill.order_id for fill in fills)
    assert isinstance(cursor, str) and all(isinstance(item, dict) for item in rows)


@FUZZ
@given(
    status=STATUS, body=st.one_of(JSON_VALUE, mutated({"canceled": ["0x1"], "not_canceled": {"0x2": "gone"}}))
)
def test_any_answer_to_a_cancel_is_a_cancel_result(status: int | None, body: Any) -> None:
    result = parse_cancel(HttpAnswer(status, body), ["0x1", "0x2"])
    assert all(isinstance(order_id, str) for order_id in result.cancelled)


def _metrics():  # type: ignore[no-untyped-def]
    from polycopy.infra.metrics import PipelineMetrics

    return PipelineMetrics(runtime=False)


def test_the_fuzz_inputs_include_the_traps_that_crashed_producers() -> None:
    # The lone surrogate that stopped `polycopy rtds` (issue 8): parsed, serialised, the name kept readable.
    parsed = parse_rtds_frame(rtds_frame(build_trade_payload(name="Trader \ud83d")), RECEIVED_AT_MS)
    [trade] = parsed.trades
    assert trade.name == "Trader \ufffd"
    # and a str frame carrying the raw surrogate (not its escape) is cleaned as well
    raw = rtds_frame(build_trade_payload(name="Trader \ud83d")).replace("\\ud83d", "\ud83d")
    [again] = parse_rtds_frame(raw, RECEIVED_AT_MS).trades
    assert again.name == "Trader \ufffd"
    assert RawTrade.model_validate_json(trade.to_bytes()).name == "Trader \ufffd"
    assert Decimal(1) > trade.price > 0
