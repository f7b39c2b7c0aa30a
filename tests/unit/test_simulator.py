"""Unit tests of the pure market simulator: determinism, venue-shaped books and trades, liquidity use."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polycopy.simulator.__main__ import load_capture_payloads
from polycopy.simulator.market import MarketSimulator, SimulatedFill

NOW_MS = 1_774_166_201_606
PAYLOAD_FIELDS = {
    "proxyWallet", "side", "asset", "conditionId", "size", "price", "timestamp", "transactionHash", "outcome",
    "outcomeIndex", "slug", "eventSlug", "title", "icon", "name", "pseudonym", "bio", "profileImage",
}  # fmt: skip
BOOK_FIELDS = {
    "market", "asset_id", "timestamp", "hash", "bids", "asks", "min_order_size", "tick_size", "neg_risk",
    "last_trade_price",
}  # fmt: skip
HEX_64 = re.compile(r"^0x[0-9a-f]{64}$")


def build_simulator(seed: int = 7, **kwargs: Any) -> MarketSimulator:
    """A simulator with a fixed clock so book timestamps are reproducible."""
    return MarketSimulator(seed, now_ms=lambda: NOW_MS, **kwargs)


def build_trade_row(**overrides: Any) -> dict[str, Any]:
    """A data-API trade row shaped like the venue's (values from a public MIT-licensed fixture)."""
    row: dict[str, Any] = {
        "proxyWallet": "0x9fb96c5cf2027d0ce8e0e92fc30b52e81f001866",
        "side": "BUY",
        "asset": "22943400237250229318795315882775337816951160275867284205243766113690886285726",
        "conditionId": "0xba3509c3c29a52bb2f8cf8204755314a38461825e61e77e6350f5abd4b848e05",
        "size": 3.28888,
        "price": 0.9,
        "timestamp": 1774166009,
        "title": "Bitcoin Up or Down - March 22, 3:50AM-3:55AM ET",
        "slug": "btc-updown-5m-1774165800",
        "icon": "https://polymarket-upload.s3.us-east-2.amazonaws.com/BTC+fullsize.png",
        "eventSlug": "btc-updown-5m-1774165800",
        "outcome": "Down",
        "outcomeIndex": 1,
        "transactionHash": "0x80e71829e69e94d57052689c2f7ca654d04720461d2961af61a403bafd62308c",
    }
    row.update(overrides)
    return row


def levels(book: dict[str, Any], side: str) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(level["price"]), Decimal(level["size"])) for level in book[side]]


def best_prices(book: dict[str, Any]) -> tuple[Decimal, Decimal]:
    return Decimal(book["bids"][-1]["price"]), Decimal(book["asks"][-1]["price"])


def test_same_seed_and_calls_give_identical_markets_books_and_trades() -> None:
    first, second = build_simulator(11), build_simulator(11)
    first.advance(NOW_MS)
    second.advance(NOW_MS)
    assert first.markets == second.markets
    assert first.next_trades(300, NOW_MS) == second.next_trades(300, NOW_MS)
    first.advance(NOW_MS + 20_000)
    second.advance(NOW_MS + 20_000)
    token = first.markets[3].token_ids[1]
    assert first.book(token) == second.book(token)
    assert first.top_wallets(5) == second.top_wallets(5)


def test_different_seeds_give_different_markets_and_trades() -> None:
    first, second = build_simulator(1), build_simulator(2)
    assert first.markets[0].condition_id != second.markets[0].condition_id
    assert [f.payload for f in first.next_trades(20, NOW_MS)] != [
        f.payload for f in second.next_trades(20, NOW_MS)
    ]


def test_generated_markets_have_venue_shaped_identifiers() -> None:
    simulator = build_simulator(market_count=60)
    assert len(simulator.markets) == 60
    for market in simulator.markets:
        assert HEX_64.match(market.condition_id)
        assert market.outcomes == ("Yes", "No")
        assert market.tick_size in (Decimal("0.01"), Decimal("0.001"))
        assert market.min_order_size == Decimal("5")
        for token_id in market.token_ids:
            assert token_id.isdigit() and 76 <= len(token_id) <= 78 and int(token_id) < 2**256
            assert simulator.market_for_token(token_id) is market
    assert simulator.market_for_token("123") is None
    assert len({market.slug for market in simulator.markets}) == 60


def test_books_are_venue_shaped_sorted_worst_first_and_on_tick() -> None:
    simulator = build_simulator()
    for market in simulator.markets:
        for token_id in market.token_ids:
            book = simulator.book(token_id)
            assert book is not None and set(book) == BOOK_FIELDS
            assert book["timestamp"] == str(NOW_MS) and book["asset_id"] == token_id
            assert book["market"] == market.condition_id and isinstance(book["neg_risk"], bool)
            assert all(isinstance(level[key], str) for level in book["bids"] + book["asks"] for key in level)
            bids, asks = levels(book, "bids"), levels(book, "asks")
            assert [p for p, _ in bids] == sorted(p for p, _ in bids)
            assert [p for p, _ in asks] == sorted((p for p, _ in asks), reverse=True)
            assert len(bids) + len(asks) >= 5 and len(bids) <= 15 and len(asks) <= 15
            assert all(p % market.tick_size == 0 and 0 < p < 1 and s > 0 for p, s in bids + asks)
            best_bid, best_ask = best_prices(book)
            assert best_bid < best_ask and (best_ask - best_bid) <= 3 * market.tick_size
    assert simulator.book("123") is None


def test_yes_and_no_books_are_complementary() -> None:
    simulator = build_simulator()
    for market in simulator.markets:
        yes, no = (simulator.book(token) for token in market.token_ids)
        assert yes is not None and no is not None
        assert {(1 - p, s) for p, s in levels(yes, "bids")} == set(levels(no, "asks"))
        assert {(1 - p, s) for p, s in levels(yes, "asks")} == set(levels(no, "bids"))
        yes_mid, no_mid = (simulator.midpoint(token) for token in market.token_ids)
        assert yes_mid is not None and no_mid is not None and yes_mid + no_mid == 1


def test_some_books_are_thin_and_most_hold_hundreds_of_shares() -> None:
    simulator = build_simulator(market_count=80)
    depths = []
    for market in simulator.markets:
        book = simulator.book(market.token_ids[0])
        assert book is not None
        depths.append(sum(s for _, s in levels(book, "asks")))
    assert min(depths) < 100 < 1000 < max(depths)
    assert any(market.thin for market in simulator.markets)


def test_trade_payloads_carry_exactly_the_venue_field_names_and_types() -> None:
    fills = build_simulator().next_trades(2000, NOW_MS)
    assert len(fills) == 2000
    for fill in fills:
        payload = fill.payload
        assert set(payload) - {"fee"} == PAYLOAD_FIELDS
        assert isinstance(payload["size"], float) and payload["size"] > 0
        assert isinstance(payload["price"], float) and 0 < payload["price"] < 1
        assert isinstance(payload["timestamp"], int) and payload["side"] in ("BUY", "SELL")
        assert re.fullmatch(r"0x[0-9a-fA-F]{40}", payload["proxyWallet"])
        assert HEX_64.match(payload["transactionHash"]) and HEX_64.match(payload["conditionId"])
        assert payload["outcomeIndex"] in (0, 1, 999)
    fee_share = sum("fee" in fill.payload for fill in fills) / len(fills)
    assert 0.3 < fee_share < 0.5
    assert any(fill.payload["outcomeIndex"] == 999 for fill in fills)
    assert any(fill.payload["proxyWallet"] != fill.payload["proxyWallet"].lower() for fill in fills)


def test_trade_timestamps_are_whole_seconds_with_up_to_two_seconds_of_feed_lag() -> None:
    fills = build_simulator().next_trades(500, NOW_MS)
    lags = {NOW_MS // 1000 - fill.payload["timestamp"] for fill in fills}
    assert lags == {0, 1, 2}


def test_taker_fills_go_on_both_feeds_and_each_has_a_maker_fill_in_the_same_transaction() -> None:
    fills = build_simulator().next_trades(3000, NOW_MS)
    takers = [fill for fill in fills if fill.is_taker]
    makers = [fill for fill in fills if not fill.is_taker]
    assert takers and makers
    assert all(fill.feed_types == ("trades", "orders_matched") for fill in takers)
    assert all(fill.feed_types == ("trades",) for fill in makers)
    taker_keys = {_match_key(fill) for fill in takers}
    assert all(_match_key(fill, flip=True) in taker_keys for fill in makers)


def _match_key(fill: SimulatedFill, flip: bool = False) -> tuple[Any, ...]:
    payload = fill.payload
    side = {"BUY": "SELL", "SELL": "BUY"}[payload["side"]] if flip else payload["side"]
    return payload["transactionHash"], payload["asset"], side, payload["price"], payload["size"]


def test_one_transaction_sometimes_holds_several_fills_of_one_wallet_at_different_prices() -> None:
    fills = [fill for fill in build_simulator().next_trades(3000, NOW_MS) if fill.is_taker]
    prices_by_tx: dict[str, set[float]] = {}
    for fill in fills:
        prices_by_tx.setdefault(fill.payload["transactionHash"], set()).add(fill.payload["price"])
    counts = [len(prices) for prices in prices_by_tx.values()]
    assert counts.count(1) > len(counts) / 2
    assert any(count in (2, 3) for count in counts)


def test_taker_fills_happen_at_book_levels_and_consume_their_liquidity() -> None:
    simulator = build_simulator(market_count=10)
    checked = 0
    for _ in range(300):
        books_before = {t: simulator.book(t) for m in simulator.markets for t in m.token_ids}
        [fill] = simulator.next_trades(1, NOW_MS)
        payload = fill.payload
        assert fill.is_taker
        side = "asks" if payload["side"] == "BUY" else "bids"
        before = dict(levels(books_before[payload["asset"]], side))
        if not before:
            continue  # an emptied side is re-quoted before the order fills
        price, size = Decimal(str(payload["price"])), Decimal(str(payload["size"]))
        assert price in before
        book_after = simulator.book(payload["asset"])
        assert book_after is not None
        after = dict(levels(book_after, side))
        assert after.get(price, Decimal(0)) == before[price] - size
        checked += 1
    assert checked > 250


def test_buying_the_no_token_consumes_the_yes_bid_at_the_complementary_price() -> None:
    simulator = build_simulator(market_count=10)
    for _ in range(200):
        books_before = {m.token_ids[0]: simulator.book(m.token_ids[0]) for m in simulator.markets}
        [fill] = simulator.next_trades(1, NOW_MS)
        market = simulator.market_for_token(fill.payload["asset"])
        assert market is not None
        if fill.payload["asset"] != market.token_ids[1] or fill.payload["side"] != "BUY":
            continue
        yes_price = 1 - Decimal(str(fill.payload["price"]))
        yes_bids_before = dict(levels(books_before[market.token_ids[0]], "bids"))
        yes_after = simulator.book(market.token_ids[0])
        assert yes_after is not None
        left = dict(levels(yes_after, "bids")).get(yes_price, Decimal(0))
        assert left == yes_bids_before[yes_price] - Decimal(str(fill.payload["size"]))
        return
    pytest.fail("no BUY of a No token in 200 fills")


def test_whales_trade_most_and_top_wallets_lists_them_in_lower_case() -> None:
    simulator = build_simulator()
    top = simulator.top_wallets(5)
    assert len(top) == 5 and all(re.fullmatch(r"0x[0-9a-f]{40}", wallet) for wallet in top)
    counts: dict[str, int] = {}
    for fill in simulator.next_trades(4000, NOW_MS):
        wallet = fill.payload["proxyWallet"].lower()
        counts[wallet] = counts.get(wallet, 0) + 1
    busiest = sorted(counts, key=counts.__getitem__, reverse=True)
    assert busiest[0] == top[0]
    assert sum(counts[wallet] for wallet in top) > 4000 * 0.3  # heavy tail: 5 of 300 wallets do >30%


def test_advance_makes_books_drift_and_keeps_mids_in_bounds() -> None:
    simulator = build_simulator(market_count=20)
    simulator.advance(NOW_MS)
    token = simulator.markets[0].token_ids[0]
    before = simulator.book(token)
    changed = False
    for step in range(1, 100):
        simulator.advance(NOW_MS + step * 1000)
        changed |= simulator.book(token) != before
        for market in simulator.markets:
            mid = simulator.midpoint(market.token_ids[0])
            assert mid is not None and Decimal("0.015") <= mid <= Decimal("0.985")
    assert changed


def test_registered_market_books_centre_on_the_given_price_with_deep_levels() -> None:
    simulator = build_simulator(market_count=0)
    market = simulator.register_market(
        "0x" + "ab" * 32, ["1" * 77, "2" * 77], Decimal("0.42"), title="Will it?"
    )
    assert simulator.markets == [market] and market.question == "Will it?"
    book = simulator.book("1" * 77)
    assert book is not None
    best_bid, best_ask = best_prices(book)
    assert best_bid <= Decimal("0.42") <= best_ask
    assert sum(size for _, size in levels(book, "asks")[-3:]) > 500
    assert simulator.register_market("0x" + "ab" * 32, ["3" * 77], Decimal("0.1")) is market


def test_register_from_trades_uses_the_latest_price_and_registers_only_known_tokens() -> None:
    simulator = build_simulator(market_count=0)
    rows = [
        build_trade_row(price=0.903, timestamp=1774166010),
        build_trade_row(price=0.5, timestamp=1774160000),
        build_trade_row(
            conditionId="0x" + "cd" * 32, asset="5" * 77, outcome="Yes", outcomeIndex=999, price="0.999"
        ),
        build_trade_row(
            conditionId="0x" + "cd" * 32, asset="6" * 77, outcome="No", outcomeIndex=1, price="0.001"
        ),
    ]
    down, nobel = simulator.register_from_trades(rows)
    assert (
        down.token_ids == (rows[0]["asset"],) and down.outcomes == ("Down",) and down.outcome_indexes == (1,)
    )
    assert down.tick_size == Decimal("0.001") and down.slug == "btc-updown-5m-1774165800"
    book = simulator.book(rows[0]["asset"])
    assert book is not None
    best_bid, best_ask = best_prices(book)
    assert best_bid <= Decimal("0.903") <= best_ask
    assert nobel.token_ids == ("5" * 77, "6" * 77) and nobel.outcome_indexes == (0, 1)
    fills = simulator.next_trades(50, NOW_MS)
    assert {fill.payload["conditionId"] for fill in fills} <= {down.condition_id, nobel.condition_id}
    assert all(
        fill.payload["outcome"] == "Down" for fill in fills if fill.payload["asset"] == rows[0]["asset"]
    )


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    steps=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5_000)), max_size=8),
)
def test_books_stay_well_formed_under_any_mix_of_trades_and_drift(
    seed: int, steps: list[tuple[int, int]]
) -> None:
    simulator = build_simulator(seed, market_count=6, wallet_count=20)
    now = NOW_MS
    for count, elapsed_ms in steps:
        now += elapsed_ms
        assert len(simulator.next_trades(count, now)) == count
        simulator.advance(now)
    for market in simulator.markets:
        for token_id in market.token_ids:
            book = simulator.book(token_id)
            assert book is not None
            bids, asks = levels(book, "bids"), levels(book, "asks")
            assert all(size > 0 for _, size in bids + asks)
            if bids and asks:
                assert best_prices(book)[0] < best_prices(book)[1]


def test_capture_files_yield_their_trade_payloads_and_skip_pongs_and_junk(tmp_path: Path) -> None:
    frame = {"connection_id": "x", "topic": "activity", "type": "trades", "timestamp": NOW_MS}
    lines = [
        {"received_at_ms": NOW_MS, "frame": json.dumps(frame | {"payload": build_trade_row()})},
        {"received_at_ms": NOW_MS, "frame": ""},
        {"received_at_ms": NOW_MS, "frame": '{"topic":"activity","payload":'},
    ]
    capture = tmp_path / "capture.jsonl"
    capture.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    payloads = load_capture_payloads(capture)
    assert payloads == [build_trade_row()]
    [market] = build_simulator(market_count=0).register_from_trades(payloads)
    assert market.condition_id == build_trade_row()["conditionId"]
