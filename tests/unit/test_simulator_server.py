"""Tests of the simulator server over real sockets: RTDS frames, CLOB REST, Data API and Gamma shapes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import BookParams
from py_clob_client_v2.exceptions import PolyApiException

from polycopy.simulator import SimulatorServer
from tests.unit.conftest import ServerFactory

SUBSCRIBE_BOTH = {
    "action": "subscribe",
    "subscriptions": [
        {"topic": "activity", "type": "trades"},
        {"topic": "activity", "type": "orders_matched"},
    ],
}
ABSENT_SECS = 0.2


def build_payload(**overrides: Any) -> dict[str, Any]:
    """An RTDS activity payload with the venue's field names."""
    payload: dict[str, Any] = {
        "proxyWallet": "0x9Fb96C5cF2027d0CE8e0E92fc30B52E81f001866",
        "side": "BUY",
        "asset": "22943400237250229318795315882775337816951160275867284205243766113690886285726",
        "conditionId": "0xba3509c3c29a52bb2f8cf8204755314a38461825e61e77e6350f5abd4b848e05",
        "size": 3.28888,
        "price": 0.9,
        "timestamp": 1774166009,
        "transactionHash": "0x80e71829e69e94d57052689c2f7ca654d04720461d2961af61a403bafd62308c",
        "outcome": "Down",
        "outcomeIndex": 1,
        "slug": "btc-updown-5m-1774165800",
        "eventSlug": "btc-updown-5m-1774165800",
        "title": "Bitcoin Up or Down - March 22, 3:50AM-3:55AM ET",
        "icon": "",
        "name": "SIKEL",
        "pseudonym": "Comfortable-Insulation",
        "bio": "",
        "profileImage": "",
        "fee": 0.01,
    }
    payload.update(overrides)
    return payload


async def sync_with_server(socket: aiohttp.ClientWebSocketResponse) -> None:
    """Round-trip a PING; the server handles messages in order, so earlier ones are applied by then."""
    await socket.send_str("PING")
    assert await socket.receive_str(timeout=2) == ""


async def connect_subscribed(
    session: aiohttp.ClientSession, server: SimulatorServer, message: dict[str, Any] = SUBSCRIBE_BOTH
) -> aiohttp.ClientWebSocketResponse:
    socket = await session.ws_connect(server.rtds_url)
    await socket.send_str(json.dumps(message))
    await sync_with_server(socket)
    return socket


async def receive_frames(socket: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    return [json.loads(await socket.receive_str(timeout=3)) for _ in range(count)]


async def assert_nothing_arrives(socket: aiohttp.ClientWebSocketResponse) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await socket.receive(timeout=ABSENT_SECS)


async def test_generated_stream_sends_venue_envelopes_with_takers_on_both_feed_types(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server(auto_trades=True, trades_per_sec=400.0)
    socket = await connect_subscribed(session, server)
    frames = await receive_frames(socket, 120)
    assert all(set(frame) == {"connection_id", "topic", "type", "timestamp", "payload"} for frame in frames)
    assert {frame["topic"] for frame in frames} == {"activity"}
    assert {frame["type"] for frame in frames} == {"trades", "orders_matched"}
    assert len({frame["connection_id"] for frame in frames}) == 1
    assert all(isinstance(frame["timestamp"], int) and frame["timestamp"] > 10**12 for frame in frames)
    assert all(frame["payload"]["timestamp"] < 10**11 for frame in frames)  # payload time is in seconds
    trades = [frame["payload"] for frame in frames if frame["type"] == "trades"]
    matched = [frame["payload"] for frame in frames if frame["type"] == "orders_matched"]
    assert all(payload in trades for payload in matched)
    assert len(trades) > len(matched)  # maker fills go out on `trades` only
    assert server.stats.frames_sent >= 120 and server.stats.trades_generated > 0


async def test_subscribe_without_action_keeps_the_socket_open_and_delivers_nothing(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await connect_subscribed(session, server, {"subscriptions": SUBSCRIBE_BOTH["subscriptions"]})
    await server.publish_payloads([build_payload()])
    await assert_nothing_arrives(socket)
    assert not socket.closed


@pytest.mark.parametrize("ping", ["PING", "ping"])
async def test_ping_is_answered_with_an_empty_text_frame(
    start_server: ServerFactory, session: aiohttp.ClientSession, ping: str
) -> None:
    server = await start_server()
    socket = await session.ws_connect(server.rtds_url)
    await socket.send_str(ping)
    message = await socket.receive(timeout=2)
    assert message.type == aiohttp.WSMsgType.TEXT and message.data == ""


async def test_published_payloads_reach_subscribers_unchanged_on_the_requested_types(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await connect_subscribed(session, server)
    taker, maker = build_payload(), build_payload(side="SELL", proxyWallet="0x" + "a" * 40)
    await server.publish_payloads([taker])
    await server.publish_payloads([maker], feed_types=("trades",))
    frames = await receive_frames(socket, 3)
    assert [(frame["type"], frame["payload"]) for frame in frames] == [
        ("trades", taker),
        ("orders_matched", taker),
        ("trades", maker),
    ]
    await assert_nothing_arrives(socket)


async def test_unsubscribe_stops_only_the_named_type(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await connect_subscribed(session, server)
    unsubscribe = {
        "action": "unsubscribe",
        "subscriptions": [{"topic": "activity", "type": "orders_matched"}],
    }
    await socket.send_str(json.dumps(unsubscribe))
    await sync_with_server(socket)
    await server.publish_payloads([build_payload()])
    [frame] = await receive_frames(socket, 1)
    assert frame["type"] == "trades"
    await assert_nothing_arrives(socket)


async def test_injected_raw_frames_reach_every_client(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await session.ws_connect(server.rtds_url)
    await sync_with_server(socket)
    await server.inject_frame('{"topic":"activity","payload":')
    assert await socket.receive_str(timeout=2) == '{"topic":"activity","payload":'


async def test_stall_goes_silent_without_closing_then_resumes(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await connect_subscribed(session, server)
    server.stall(60)
    await server.publish_payloads([build_payload()])
    await socket.send_str("PING")
    await assert_nothing_arrives(socket)
    assert not socket.closed and server.stats.frames_dropped == 2
    server.stall(0)
    await sync_with_server(socket)


async def test_drop_connections_closes_every_socket(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    sockets = [await connect_subscribed(session, server) for _ in range(2)]
    assert server.stats.clients == 2
    await server.drop_connections()
    for socket in sockets:
        message = await socket.receive(timeout=2)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert server.stats.clients == 0


async def test_official_py_clob_client_v2_reads_books_and_market_parameters(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    market = server.simulator.markets[0]
    token_id = market.token_ids[0]
    client = ClobClient(host=server.clob_url, chain_id=137)
    book = await asyncio.to_thread(client.get_order_book, token_id)
    assert isinstance(book, dict) and book == server.simulator.book(token_id)
    assert float(book["asks"][-1]["price"]) > float(book["bids"][-1]["price"])
    books = await asyncio.to_thread(
        client.get_order_books, [BookParams(token_id=t) for t in market.token_ids]
    )
    assert [b["asset_id"] for b in books] == list(market.token_ids)
    assert await asyncio.to_thread(client.get_tick_size, token_id) == str(float(market.tick_size))
    assert await asyncio.to_thread(client.get_neg_risk, token_id) is market.neg_risk
    assert await asyncio.to_thread(client.get_version) == 2
    assert isinstance(await asyncio.to_thread(client.get_server_time), int)
    assert await asyncio.to_thread(client.get_ok) == "OK"
    mid = await asyncio.to_thread(client.get_midpoint, token_id)
    assert mid == {"mid": str(server.simulator.midpoint(token_id).normalize())}  # type: ignore[union-attr]
    info = await asyncio.to_thread(client.get_clob_market_info, market.condition_id)
    assert [token["t"] for token in info["t"]] == list(market.token_ids) and info["mos"] == 5
    assert server.stats.books_served == 3


async def test_unknown_token_is_a_404_with_the_venue_error_text(start_server: ServerFactory) -> None:
    server = await start_server()
    client = ClobClient(host=server.clob_url, chain_id=137)
    with pytest.raises(PolyApiException) as raised:
        await asyncio.to_thread(client.get_order_book, "123")
    assert raised.value.status_code == 404
    assert raised.value.error_msg == {"error": "No orderbook exists for the requested token id"}


async def test_data_api_trades_filters_by_user_newest_first_and_hides_makers_by_default(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    wallet = "0x9fb96c5cf2027d0ce8e0e92fc30b52e81f001866"
    older, newer = build_payload(timestamp=1774166000), build_payload(timestamp=1774166009, price=0.91)
    await server.publish_payloads([newer, older])
    await server.publish_payloads([build_payload(side="SELL", timestamp=1774166010)], feed_types=("trades",))
    await server.publish_payloads([build_payload(proxyWallet="0x" + "b" * 40)])
    async with session.get(f"{server.clob_url}/trades", params={"user": wallet, "limit": "10"}) as response:
        rows = await response.json()
    assert [row["timestamp"] for row in rows] == [1774166009, 1774166000]
    assert all("fee" not in row and "profileImageOptimized" in row for row in rows)
    assert set(rows[0]) == set(build_payload()) - {"fee"} | {"profileImageOptimized"}
    params = {"user": wallet, "takerOnly": "false", "limit": "1", "offset": "0"}
    async with session.get(f"{server.clob_url}/trades", params=params) as response:
        assert [row["side"] for row in await response.json()] == ["SELL"]
    async with session.get(f"{server.clob_url}/trades", params={"limit": "x"}) as response:
        assert response.status == 400


async def test_generated_trades_are_kept_for_the_data_api(start_server: ServerFactory) -> None:
    server = await start_server(auto_trades=True, trades_per_sec=400.0)
    wallet = server.simulator.top_wallets(1)[0]
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            await asyncio.sleep(0.05)
            async with session.get(f"{server.clob_url}/trades", params={"user": wallet}) as response:
                rows = await response.json()
            if rows:
                break
    assert rows and all(row["proxyWallet"].lower() == wallet for row in rows)


async def test_gamma_markets_return_camel_case_objects_with_json_encoded_lists(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    wanted = server.simulator.markets[:2]
    params = {"condition_ids": ",".join(market.condition_id for market in wanted)}
    async with session.get(f"{server.clob_url}/markets", params=params) as response:
        markets = await response.json()
    assert [market["conditionId"] for market in markets] == [market.condition_id for market in wanted]
    first = markets[0]
    for key in ("clobTokenIds", "outcomes", "outcomePrices"):
        assert isinstance(first[key], str)
    assert json.loads(first["clobTokenIds"]) == list(wanted[0].token_ids)
    assert json.loads(first["outcomes"]) == ["Yes", "No"]
    assert sum(float(price) for price in json.loads(first["outcomePrices"])) == pytest.approx(1)
    assert first["orderMinSize"] == 5 and first["orderPriceMinTickSize"] == float(wanted[0].tick_size)
    assert (
        first["closed"] is False and first["acceptingOrders"] is True and isinstance(first["negRisk"], bool)
    )
    assert first["endDate"] == wanted[0].end_date and first["category"] and first["tags"]


async def test_the_feed_rate_is_changed_and_paused_through_the_control_route(
    start_server: ServerFactory,
) -> None:
    server = await start_server(auto_trades=True, trades_per_sec=0.0)
    async with aiohttp.ClientSession() as session:
        await asyncio.sleep(0.2)
        assert server.stats.trades_generated == 0  # started paused: nothing generated
        async with session.post(f"{server.clob_url}/_sim/rate", json={"trades_per_sec": 500}) as response:
            assert response.status == 200 and (await response.json())["trades_per_sec"] == 500
        for _ in range(100):
            await asyncio.sleep(0.02)
            if server.stats.trades_generated:
                break
        assert server.stats.trades_generated > 0
        async with session.post(f"{server.clob_url}/_sim/rate", json={"trades_per_sec": 0}) as response:
            assert response.status == 200
        await asyncio.sleep(0.1)  # a wake already under way may still count its trades
        paused_at = server.stats.trades_generated
        await asyncio.sleep(0.3)
        assert server.stats.trades_generated == paused_at
        async with session.post(f"{server.clob_url}/_sim/rate", json={"trades_per_sec": -1}) as response:
            assert response.status == 400
    assert server.trades_per_sec == 0
