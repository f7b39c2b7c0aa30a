"""Golden literal ids: every id that dedups or keys an effect, pinned to the value it has today.

An upgrade that changed any of them (a new hash separator, another field order, a canonical form that moved)
would re-decide and re-send every recent trade: the decided pairs, the executor's journal and the PostgreSQL
rows are all keyed by them. Comparing two calls of the same function cannot catch that; literals can.
"""

from __future__ import annotations

from decimal import Decimal

from polycopy.polymarket.clob import derive_order_salt
from processors.core.ids import (
    build_book_id,
    build_dedup_key,
    build_event_id,
    build_intent_id,
    build_paper_order_id,
    build_report_id,
    canonical_decimal,
)
from producers.parsing import build_raw_trade
from schemas.trades import TradeSource
from tests.builders import build_trade, build_trade_payload

DEDUP_KEY = "72a3197b68663cdbd065c176478f81db"
INTENT_ID = "15d41c531221d36a223d009459369a72"
PAPER_ORDER_ID = "paper-95ceb005f9557c86ebbbb8d4db2009826c048086"


def test_the_dedup_key_of_a_fill_is_pinned_and_ignores_case_and_number_spelling() -> None:
    key = build_dedup_key(
        transaction_hash="0x" + "E1" * 32,
        asset="123",
        side="buy",
        price=Decimal("0.50"),
        size="10.0",
        proxy_wallet="0x" + "AB" * 20,
    )
    assert key == DEDUP_KEY
    assert (
        build_dedup_key(
            transaction_hash="0x" + "e1" * 32,
            asset="123",
            side="BUY",
            price="0.5",
            size=10,
            proxy_wallet="0x" + "ab" * 20,
        )
        == DEDUP_KEY
    )


def test_a_venue_payload_parses_to_the_pinned_dedup_key() -> None:
    trade = build_raw_trade(build_trade_payload(), source=TradeSource.RTDS, received_at_ms=1)
    assert trade.dedup_key == build_trade().dedup_key == "67fbce742995d49e7d9fe7196c6962c4"


def test_intent_order_event_and_report_ids_are_pinned() -> None:
    assert build_intent_id("copy-1", DEDUP_KEY) == INTENT_ID
    assert build_paper_order_id(INTENT_ID) == PAPER_ORDER_ID
    assert build_event_id(PAPER_ORDER_ID, 1) == "a7a0c48b237eaa5dabf92e3e1c964448"
    assert build_report_id(PAPER_ORDER_ID, "fill", Decimal("10.00")) == "6a5fd8cb03a0a4ec2081b5f406850c98"


def test_the_live_order_salt_of_an_intent_is_pinned() -> None:
    # The salt makes the signed order, hence the venue's order id: a retry must sign the very same order.
    assert derive_order_salt(INTENT_ID) == 1709584706025284


def test_the_book_id_of_a_state_is_pinned() -> None:
    book_id = build_book_id(
        asset="123",
        source="channel",
        received_at_ms=1,
        timestamp_ms=2,
        venue_hash="h",
        tick_size=Decimal("0.010"),
        min_order_size=Decimal("5"),
        neg_risk=False,
        bids=[(Decimal("0.4"), Decimal("10"))],
        asks=[(Decimal("0.6"), Decimal("20.0"))],
    )
    assert book_id == "a1eb32338c116462571afdf1e4ff582c"


def test_canonical_numbers_have_one_spelling() -> None:
    assert [canonical_decimal(v) for v in ("5", "5.0", "5.00", "-0.0", "1E+2", "0.10")] == [
        "5",
        "5",
        "5",
        "0",
        "100",
        "0.1",
    ]
