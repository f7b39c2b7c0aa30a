"""The CLOB user channel: its wire format (the subscription frame; `order` and `trade` events parsed into the
order ids they name; malformed frames reported, never raised), the simulator's `/ws/user` over real sockets
(credentials checked, the account's order and trade events pushed with the documented fields), and the
executor's follower of it (order ids handed on, one warning per outage, the connected gauge)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.ws import BackoffPolicy
from polycopy.polymarket.clob import ApiCredentials
from polycopy.polymarket.user_channel import (
    OrderEvent,
    TradeEvent,
    build_user_subscription,
    parse_user_message,
)
from polycopy.polymarket.user_feed import UserChannelFollower
from polycopy.simulator import SimulatorServer
from polycopy.simulator.clob_auth import ApiKey, derive_api_key
from polycopy.simulator.exchange import SubmittedOrder
from tests.unit.conftest import ServerFactory
from tests.unit.test_ws import free_port_url

D = Decimal
ORDER_A, ORDER_B, ORDER_C = "0x" + "a" * 64, "0x" + "b" * 64, "0x" + "c" * 64


def order_frame(**fields: Any) -> dict[str, Any]:
    """An `order` event as the venue documents it (reference 2.3)."""
    return {
        "event_type": "order",
        "id": ORDER_A,
        "owner": "key",
        "market": "0x" + "1" * 64,
        "asset_id": "123",
        "side": "BUY",
        "original_size": "10",
        "size_matched": "0",
        "price": "0.5",
        "type": "PLACEMENT",
        "status": "LIVE",
        "timestamp": "1700000000000",
        "order_type": "GTC",
        "associate_trades": [],
    } | fields


def trade_frame(**fields: Any) -> dict[str, Any]:
    """A `trade` event: our order as a maker of someone's taker order."""
    return {
        "event_type": "trade",
        "id": "trade-1",
        "taker_order_id": ORDER_B,
        "market": "0x" + "1" * 64,
        "asset_id": "123",
        "side": "SELL",
        "size": "4",
        "price": "0.5",
        "status": "MATCHED",
        "trader_side": "MAKER",
        "maker_orders": [{"order_id": ORDER_A, "matched_amount": "4", "price": "0.5"}],
    } | fields


# --- the wire format ----------------------------------------------------------------------------------------
def test_the_subscription_frame_carries_the_credentials_and_omits_markets_for_the_whole_account() -> None:
    whole = json.loads(build_user_subscription("k", "s", "p"))
    some = json.loads(build_user_subscription("k", "s", "p", ["0xcond"]))

    assert whole == {"auth": {"apiKey": "k", "secret": "s", "passphrase": "p"}, "type": "user"}
    assert some["markets"] == ["0xcond"] and some["type"] == "user"


def test_an_order_event_names_its_order_with_its_status_and_change() -> None:
    message = parse_user_message(json.dumps(order_frame(type="cancellation", status="CANCELED")))

    assert message.events == (OrderEvent(ORDER_A, "CANCELED", "CANCELLATION"),)
    assert message.order_ids == (ORDER_A,) and message.errors == ()


def test_a_trade_event_names_the_taker_order_and_every_maker_order() -> None:
    makers = [{"order_id": ORDER_A}, {"order_id": ORDER_C}]
    message = parse_user_message(json.dumps(trade_frame(status="MINED", maker_orders=makers)))

    assert message.events == (TradeEvent("trade-1", "MINED", ORDER_B, (ORDER_A, ORDER_C)),)
    assert message.order_ids == (ORDER_B, ORDER_A, ORDER_C)


def test_an_array_frame_gives_each_order_once_and_skips_other_event_types() -> None:
    frame = [order_frame(), trade_frame(), {"event_type": "heartbeat"}, order_frame(type="UPDATE")]

    message = parse_user_message(json.dumps(frame))

    assert len(message.events) == 3 and message.skipped == 1
    assert message.order_ids == (ORDER_A, ORDER_B)


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("{not json", "invalid JSON"),
        ("[1]", "not an object"),
        (json.dumps(order_frame(id="")), "without a id"),
        (json.dumps(order_frame(id=7)), "without a id"),
        (json.dumps(trade_frame(maker_orders="0xabc")), "maker_orders"),
        (json.dumps(trade_frame(maker_orders=[{"matched_amount": "1"}])), "without a order_id"),
        (json.dumps(trade_frame(taker_order_id="", maker_orders=[])), "names no order"),
        (json.dumps(trade_frame(id=None)), "without a id"),
    ],
)
def test_a_malformed_frame_is_reported_as_an_error_not_raised(frame: str, error: str) -> None:
    message = parse_user_message(frame)

    assert message.events == () and len(message.errors) == 1 and error in message.errors[0]


def test_a_malformed_event_does_not_spoil_the_good_ones_of_its_frame() -> None:
    message = parse_user_message(json.dumps([order_frame(id=None), trade_frame()]))

    assert message.order_ids == (ORDER_B, ORDER_A) and len(message.errors) == 1


# --- the simulator's /ws/user -------------------------------------------------------------------------------
@pytest.fixture
def start_server(start_server: ServerFactory) -> ServerFactory:
    return functools.partial(start_server, 11, 4)


def issue_key(server: SimulatorServer, who: str = "0x" + "12" * 20) -> ApiKey:
    key = derive_api_key(who, 0)
    server.clob_orders.register_key(key)
    return key


def rest_order(server: SimulatorServer, key: ApiKey, order_id: str, size: str = "10") -> None:
    """Place a resting BUY of the first token for `key`'s account, five ticks under the best bid."""
    market = server.simulator.markets[0]
    token = market.token_ids[0]
    bids, _ = server.simulator.book_levels(token) or ({}, {})
    price = max(bids) - 5 * market.tick_size
    submitted = SubmittedOrder(order_id, key.key, key.address, token, "BUY", price, D(size), "GTC", False)
    status, _ = server.clob_orders.exchange.submit(submitted, int(time.time() * 1000))
    assert status == 200


async def connect(
    session: aiohttp.ClientSession, server: SimulatorServer, key: ApiKey, *, secret: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    socket = await session.ws_connect(server.clob_user_ws_url)
    await socket.send_str(build_user_subscription(key.key, secret or key.secret, key.passphrase))
    await wait_for(lambda: server.user_channel.authenticated_clients > 0 or server.user_channel.refused > 0)
    return socket


async def wait_for(condition: Any, timeout_secs: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_secs
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def receive_events(socket: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        text = await socket.receive_str(timeout=5)
        if text != "PONG":
            events.append(json.loads(text))
    return events


async def test_the_fake_user_channel_pushes_placement_fill_settlement_and_cancellation(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    script = server.clob_orders.exchange.script
    script.mine_ms, script.confirm_ms = 100, 200
    key = issue_key(server)
    async with aiohttp.ClientSession() as session:
        socket = await connect(session, server, key)
        rest_order(server, key, ORDER_A)
        placed = await receive_events(socket, 1)
        server.clob_orders.exchange.fill_resting(ORDER_A, D("4"), int(time.time() * 1000))
        filled = await receive_events(
            socket, 4
        )  # the order's update, then its trade MATCHED, MINED, CONFIRMED
        server.clob_orders.exchange.cancel(key.key, [ORDER_A])
        cancelled = await receive_events(socket, 1)

    assert (placed[0]["event_type"], placed[0]["type"], placed[0]["status"]) == ("order", "PLACEMENT", "LIVE")
    assert placed[0]["id"] == ORDER_A and placed[0]["owner"] == key.key
    update, *trades = filled
    assert (update["type"], update["size_matched"]) == ("UPDATE", "4")
    assert [trade["status"] for trade in trades] == ["MATCHED", "MINED", "CONFIRMED"]
    assert trades[0]["maker_orders"][0]["order_id"] == ORDER_A and trades[0]["trader_side"] == "MAKER"
    assert (cancelled[0]["type"], cancelled[0]["status"]) == ("CANCELLATION", "CANCELED")
    # Every pushed event parses into the order it concerns.
    for event in [*placed, *filled, *cancelled]:
        assert ORDER_A in parse_user_message(json.dumps(event)).order_ids


async def test_the_fake_user_channel_closes_a_socket_with_a_wrong_secret_giving_the_reason(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    key = issue_key(server)
    async with aiohttp.ClientSession() as session:
        socket = await connect(session, server, key, secret="d3Jvbmc=")
        closing = await socket.receive(timeout=5)

    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert socket.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert closing.extra == "invalid authentication"
    assert server.user_channel.refused == 1 and server.user_channel.authenticated_clients == 0


async def test_the_fake_user_channel_pushes_only_the_accounts_own_orders_and_answers_ping(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    mine, theirs = issue_key(server), issue_key(server, "0x" + "34" * 20)
    async with aiohttp.ClientSession() as session:
        socket = await connect(session, server, mine)
        rest_order(server, theirs, ORDER_B)
        rest_order(server, mine, ORDER_A)
        await socket.send_str("PING")
        frames = [await socket.receive_str(timeout=5) for _ in range(2)]

    assert "PONG" in frames
    events = [json.loads(frame) for frame in frames if frame != "PONG"]
    assert [event["id"] for event in events] == [ORDER_A]


# --- the executor's follower --------------------------------------------------------------------------------
def credentials_of(key: ApiKey) -> ApiCredentials:
    return ApiCredentials(key.key, key.secret, key.passphrase)


async def test_the_follower_hands_on_the_order_ids_of_its_accounts_events(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    key = issue_key(server)
    metrics, named, lock = PipelineMetrics(), [], threading.Lock()

    def on_orders(order_ids: Any) -> None:
        with lock:
            named.extend(order_ids)

    follower = UserChannelFollower(server.clob_user_ws_url, credentials_of(key), metrics, on_orders)
    await asyncio.to_thread(follower.start)
    try:
        await wait_for(lambda: server.user_channel.authenticated_clients == 1)
        assert metrics.user_channel_connected._value.get() == 1
        rest_order(server, key, ORDER_A)
        await wait_for(lambda: ORDER_A in named)
    finally:
        await asyncio.to_thread(follower.stop)

    assert metrics.user_channel_connected._value.get() == 0


async def test_the_follower_warns_once_per_outage_and_shows_it_on_the_gauge(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server()
    key = issue_key(server)
    refused = derive_api_key("0x" + "56" * 20, 0)  # never issued by this venue: every socket is closed
    metrics = PipelineMetrics()
    fast = BackoffPolicy(base_secs=0.01, cap_secs=0.05)
    follower = UserChannelFollower(
        server.clob_user_ws_url, credentials_of(refused), metrics, lambda ids: None, backoff=fast
    )
    caplog.set_level(logging.DEBUG)
    await asyncio.to_thread(follower.start)
    try:
        await wait_for(lambda: server.user_channel.refused >= 3)
    finally:
        await asyncio.to_thread(follower.stop)
    unreachable = UserChannelFollower(
        free_port_url() + "ws/user", credentials_of(key), metrics, lambda ids: None, backoff=fast
    )
    await asyncio.to_thread(unreachable.start)
    try:
        await wait_for(lambda: metrics.reconnects.labels("error")._value.get() >= 3)
    finally:
        await asyncio.to_thread(unreachable.stop)

    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "user channel" in r.getMessage()
    ]
    assert len(warnings) == 2  # one per follower's outage, however many attempts failed
    assert metrics.user_channel_connected._value.get() == 0


# --- the wiring ---------------------------------------------------------------------------------------------
def test_the_wiring_starts_no_follower_when_the_channel_is_off_and_refuses_nothing_without_credentials() -> (
    None
):
    from polycopy.infra.settings import PolycopySettings
    from polycopy.wiring.live import start_user_channel

    off = PolycopySettings(live_user_channel=False)
    no_url = PolycopySettings(clob_user_ws_url="")
    no_key = PolycopySettings(
        clob_url="http://127.0.0.1:9"
    )  # paper settings: nothing to derive credentials from

    for settings in (off, no_url, no_key):
        assert start_user_channel(settings, PipelineMetrics(), lambda ids: None) is None


def test_the_wiring_follows_the_configured_url_with_the_configured_credentials() -> None:
    from polycopy.infra.settings import PolycopySettings
    from polycopy.wiring.live import start_user_channel

    settings = PolycopySettings(
        clob_user_ws_url=free_port_url() + "ws/user",
        clob_api_key="k",
        clob_api_secret="c2VjcmV0",
        clob_api_passphrase="p",
    )
    follower = start_user_channel(settings, PipelineMetrics(), lambda ids: None)
    try:
        assert follower is not None and follower.url == settings.clob_user_ws_url
        assert json.loads(follower._subscription_frames()[0])["auth"] == {
            "apiKey": "k",
            "secret": "c2VjcmV0",
            "passphrase": "p",
        }
    finally:
        follower.stop()
