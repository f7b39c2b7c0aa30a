"""The simulator's `/_sim/` control routes a chaos run drives over HTTP: RTDS silence, disconnects and raw
frames, faults of the public book routes, the counters and the fake CLOB's accepted orders."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.unit.conftest import ServerFactory
from tests.unit.test_simulator_server import (
    assert_nothing_arrives,
    build_payload,
    connect_subscribed,
    sync_with_server,
)


async def test_the_rtds_stall_route_silences_open_sockets_for_its_seconds(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await connect_subscribed(session, server)
    async with session.post(f"{server.clob_url}/_sim/rtds/stall", json={"secs": 60}) as response:
        assert response.status == 200
    await server.publish_payloads([build_payload()])
    await assert_nothing_arrives(socket)
    assert not socket.closed and server.stats.frames_dropped == 2
    async with session.post(f"{server.clob_url}/_sim/rtds/stall", json={"secs": 0}) as response:
        assert response.status == 200
    await sync_with_server(socket)
    async with session.post(f"{server.clob_url}/_sim/rtds/stall", json={"secs": "soon"}) as response:
        assert response.status == 400


async def test_the_rtds_drop_route_closes_every_socket_from_the_server_side(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    socket = await connect_subscribed(session, server)
    async with session.post(f"{server.clob_url}/_sim/rtds/drop", json={}) as response:
        assert (await response.json()) == {"dropped": 1}
    message = await socket.receive(timeout=2)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_the_frames_route_pushes_raw_text_and_says_how_many_clients_got_it(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    url = f"{server.clob_url}/_sim/rtds/frames"
    async with session.post(url, json={"frames": ["x"]}) as response:
        assert (await response.json()) == {"clients": 0}  # nobody connected: nothing delivered
    socket = await session.ws_connect(server.rtds_url)
    await sync_with_server(socket)
    async with session.post(url, json={"frames": ['{"topic":"activity","pay', "second"]}) as response:
        assert (await response.json()) == {"clients": 1}
    assert await socket.receive_str(timeout=2) == '{"topic":"activity","pay'
    assert await socket.receive_str(timeout=2) == "second"
    server.stall(60)
    async with session.post(url, json={"frames": ["lost"]}) as response:
        assert (await response.json()) == {"clients": 0}  # a silent venue delivers nothing
    async with session.post(url, json={"frames": "not a list"}) as response:
        assert response.status == 400


async def test_book_faults_answer_5xx_or_late_then_the_book_comes_back(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    token = server.simulator.markets[0].token_ids[0]
    book_url = f"{server.clob_url}/book?token_id={token}"
    faults = f"{server.clob_url}/_sim/clob/faults"
    async with session.post(faults, json={"groups": ["book"], "status": 500, "count": 2}) as response:
        assert response.status == 200
    for _ in range(2):
        async with session.get(book_url) as response:
            assert response.status == 500
    async with session.post(f"{server.clob_url}/books", json=[{"token_id": token}]) as response:
        assert response.status == 200  # two uses consumed: books again
    stall = {"groups": ["book"], "status": None, "stall_secs": 0.3, "count": 1}
    async with session.post(faults, json=stall) as response:
        assert response.status == 200
    started = asyncio.get_running_loop().time()
    async with session.get(book_url) as response:
        assert response.status == 504
    assert asyncio.get_running_loop().time() - started >= 0.3
    async with session.get(book_url) as response:
        assert response.status == 200 and (await response.json()) == server.simulator.book(token)
    async with session.get(f"{server.clob_url}/_sim/stats") as response:
        stats = await response.json()
    assert stats["clob_faults_injected"] == 3 and stats["posts_received"] == 0
    assert stats["books_served"] == 2  # the two good answers; faulted ones serve no book


async def test_the_orders_route_lists_what_the_fake_clob_accepted(
    start_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await start_server()
    async with session.get(f"{server.clob_url}/_sim/clob/orders") as response:
        assert (await response.json()) == {"orders": [], "posts_received": 0}
