"""The simulator's CLOB market channel over real sockets: book snapshots on subscribe, venue-format price
changes that rebuild the /book exactly, dynamic (un)subscription, and PING/PONG."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any

import aiohttp
import pytest

from polycopy.polymarket.books import PriceChanges, apply_price_changes, parse_book, parse_market_message
from polycopy.simulator import SimulatorServer
from schemas.books import OrderBook
from tests.unit.conftest import ServerFactory

ABSENT_SECS = 0.2


@pytest.fixture
def start_server(start_server: ServerFactory) -> ServerFactory:
    """This file's simulator: seed 11, six markets."""
    return functools.partial(start_server, 11, 6)


def tokens_of(server: SimulatorServer, markets: int) -> list[str]:
    return [token for market in server.simulator.markets[:markets] for token in market.token_ids]


async def subscribe(
    session: aiohttp.ClientSession, server: SimulatorServer, tokens: list[str]
) -> aiohttp.ClientWebSocketResponse:
    socket = await session.ws_connect(server.clob_market_ws_url)
    frame = {"type": "market", "assets_ids": tokens, "custom_feature_enabled": False}
    await socket.send_str(json.dumps(frame))
    return socket


async def receive_json(socket: aiohttp.ClientWebSocketResponse) -> Any:
    return json.loads(await socket.receive_str(timeout=3))


async def assert_nothing_arrives(socket: aiohttp.ClientWebSocketResponse) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await socket.receive(timeout=ABSENT_SECS)


def change_every_book(server: SimulatorServer, steps: int) -> None:
    """Drift every book `steps` times and take some liquidity with trades."""
    now_ms = int(time.time() * 1000)
    server.simulator.advance(now_ms + steps * 1000)
    server.simulator.next_trades(steps * 5, now_ms)


def levels(book: OrderBook) -> tuple[object, object]:
    return book.bids, book.asks


async def test_subscribing_sends_one_array_with_the_exact_book_of_each_known_token(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    tokens = tokens_of(server, 2)
    socket = await subscribe(session, server, [*tokens, "123"])  # an unknown token gets nothing
    frame = await receive_json(socket)
    assert isinstance(frame, list)
    assert frame == [server.simulator.book(token) | {"event_type": "book"} for token in tokens]
    assert server.subscribed_assets == set(tokens)
    await assert_nothing_arrives(socket)


async def test_ping_is_answered_with_pong(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await session.ws_connect(server.clob_market_ws_url)
    await socket.send_str("PING")
    assert await socket.receive_str(timeout=2) == "PONG"


async def test_price_changes_rebuild_the_current_book_after_every_change(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    tokens = tokens_of(server, 3)
    socket = await subscribe(session, server, tokens)
    books = {event["asset_id"]: parse_book(event) for event in await receive_json(socket)}
    for round_number in range(1, 6):
        change_every_book(server, round_number)
        await server.push_book_changes()
        while True:
            try:
                message = parse_market_message(await socket.receive_str(timeout=ABSENT_SECS))
            except TimeoutError:
                break
            for event in message.events:
                assert isinstance(event, PriceChanges)
                for token in {item.asset for item in event.changes}:
                    books[token] = apply_price_changes(books[token], event.changes, event.timestamp_ms)
        for token in tokens:
            assert levels(books[token]) == levels(parse_book(server.simulator.book(token)))


async def test_price_changes_are_in_the_venue_format_with_zero_for_removed_levels(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    [token, _] = tokens_of(server, 1)
    socket = await subscribe(session, server, [token])
    [snapshot] = await receive_json(socket)
    sent_asks = {row["price"] for row in snapshot["asks"]}
    server.simulator.next_trades(60, int(time.time() * 1000))  # enough to empty some levels
    server.simulator.advance(int(time.time() * 1000) + 20_000)
    await server.push_book_changes()
    event = await receive_json(socket)
    assert set(event) == {"market", "price_changes", "timestamp", "event_type"}
    assert event["event_type"] == "price_change"
    assert event["market"] == server.simulator.markets[0].condition_id
    rows = event["price_changes"]
    fields = {"asset_id", "price", "size", "side", "hash", "best_bid", "best_ask"}
    assert all(set(row) == fields for row in rows)
    assert all(isinstance(row["price"], str) and isinstance(row["size"], str) for row in rows)
    assert {row["side"] for row in rows} <= {"BUY", "SELL"}
    current = {row["price"] for row in server.simulator.book(token)["asks"]}
    removed = {row["price"] for row in rows if row["side"] == "SELL" and row["size"] == "0"}
    assert removed and removed == sent_asks - current


async def test_later_subscriptions_get_their_book_and_unsubscribed_tokens_go_quiet(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    first, second = tokens_of(server, 1)[0], tokens_of(server, 2)[2]
    socket = await subscribe(session, server, [first])
    await receive_json(socket)
    await socket.send_str(json.dumps({"operation": "subscribe", "assets_ids": [second]}))
    snapshot = await receive_json(socket)
    assert isinstance(snapshot, dict) and snapshot == server.simulator.book(second) | {"event_type": "book"}
    await socket.send_str(json.dumps({"operation": "unsubscribe", "assets_ids": [first, second]}))
    await socket.send_str("PING")
    assert await socket.receive_str(timeout=2) == "PONG"  # the unsubscribe is applied by now
    change_every_book(server, 3)
    await server.push_book_changes()
    await assert_nothing_arrives(socket)
    assert server.subscribed_assets == set()


async def test_the_background_pusher_sends_changes_made_outside_the_server(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    [token, _] = tokens_of(server, 1)
    socket = await subscribe(session, server, [token])
    await receive_json(socket)
    change_every_book(server, 2)  # no push_book_changes(): the pusher notices within milliseconds
    event = await receive_json(socket)
    assert event["event_type"] == "price_change"


async def test_dropped_market_sockets_are_closed_by_the_server(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await subscribe(session, server, tokens_of(server, 1))
    await receive_json(socket)
    await server.drop_market_connections()
    message = await socket.receive(timeout=2)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert server.stats.market_connections_total == 1
