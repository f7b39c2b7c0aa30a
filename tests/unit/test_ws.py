"""The resilient WebSocket session over real local sockets: subscriptions on every connect, frames on the live
socket, PING keepalive, the watchdog, backoff and a clean stop."""

from __future__ import annotations

import asyncio
import socket as sockets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import WSCloseCode, WSMsgType, web

from polycopy.infra.ws import CLOSED, ERROR, STOPPED, WATCHDOG, BackoffPolicy, WebSocketSession, is_keepalive

FAST = BackoffPolicy(base_secs=0.01, cap_secs=0.05)


@dataclass
class FakeVenue:
    """A WebSocket server that records what clients send and can answer PINGs, push frames or hang up."""

    answer_pings: bool = True
    received: list[list[str]] = field(default_factory=list)  # per connection, in order
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        texts: list[str] = []
        self.received.append(texts)
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                texts.append(message.data)
                if message.data == "PING" and self.answer_pings:
                    await socket.send_str("PONG")
        return socket

    async def push(self, text: str) -> None:
        await self.sockets[-1].send_str(text)

    async def hang_up(self) -> None:
        await self.sockets[-1].close(code=WSCloseCode.GOING_AWAY, message=b"bye")


@pytest.fixture
async def venue() -> AsyncIterator[FakeVenue]:
    fake = FakeVenue()
    app = web.Application()
    app.router.add_get("/", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"ws://127.0.0.1:{runner.addresses[0][1]}/"
    yield fake
    for socket in fake.sockets:
        await socket.close()
    await runner.cleanup()


@dataclass
class Run:
    session: WebSocketSession
    task: asyncio.Task[None]
    frames: list[str | bytes]
    closes: list[str]

    async def stop(self) -> None:
        self.session.stop()
        await asyncio.wait_for(self.task, timeout=5)


def start(url: str, **options: object) -> Run:
    frames: list[str | bytes] = []
    closes: list[str] = []
    values: dict[str, object] = {"ping_secs": 5.0, "watchdog_secs": 5.0, "backoff": FAST} | options
    session = WebSocketSession(url, frames.append, on_close=closes.append, **values)  # type: ignore[arg-type]
    return Run(session, asyncio.get_running_loop().create_task(session.run()), frames, closes)


async def eventually(condition: Callable[[], bool], timeout_secs: float = 5.0) -> None:
    for _ in range(int(timeout_secs / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def free_port_url() -> str:
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{probe.getsockname()[1]}/"


async def test_subscription_frames_are_sent_first_on_every_connect(venue: FakeVenue) -> None:
    topics = ["a"]
    run = start(venue.url, subscribe_frames=lambda: [f"sub:{topic}" for topic in topics])
    await eventually(lambda: venue.received and venue.received[0] == ["sub:a"])
    topics.append("b")  # state changed while connected: the next connect subscribes to both
    await venue.hang_up()
    await eventually(lambda: len(venue.received) == 2 and venue.received[1] == ["sub:a", "sub:b"])
    assert run.session.connections == 2 and run.closes == [CLOSED]
    await run.stop()


async def test_frames_sent_on_the_live_socket_arrive_and_are_refused_when_disconnected(
    venue: FakeVenue,
) -> None:
    run = start(venue.url, subscribe_frames=lambda: ["hello"])
    assert not run.session.send("too early")  # nothing to send on yet
    await eventually(lambda: run.session.connected)
    assert run.session.send("more")
    await eventually(lambda: venue.received[0] == ["hello", "more"])
    await run.stop()
    assert not run.session.connected and not run.session.send("too late")


async def test_data_frames_are_handed_on_and_ping_replies_are_not(venue: FakeVenue) -> None:
    run = start(venue.url, ping_secs=0.05)
    await eventually(lambda: venue.received and venue.received[0].count("PING") >= 2)
    await venue.push("data-1")
    await venue.push("")  # some venues answer PING with an empty frame
    await venue.push("data-2")
    await eventually(lambda: len(run.frames) == 2)
    await run.stop()
    assert run.frames == ["data-1", "data-2"] and run.closes == [STOPPED]


async def test_a_socket_that_only_answers_pings_trips_the_data_watchdog(venue: FakeVenue) -> None:
    run = start(venue.url, ping_secs=0.05, watchdog_secs=0.3)
    await eventually(lambda: WATCHDOG in run.closes)
    await eventually(lambda: run.session.connections >= 2)
    await run.stop()


async def test_ping_replies_keep_a_quiet_channel_alive_when_they_count(venue: FakeVenue) -> None:
    run = start(venue.url, ping_secs=0.05, watchdog_secs=0.3, watchdog_counts_keepalive=True)
    await asyncio.sleep(1.0)
    assert run.closes == [] and run.session.connections == 1
    venue.answer_pings = False  # now silent: the watchdog notices
    await eventually(lambda: WATCHDOG in run.closes)
    await run.stop()


async def test_an_unreachable_host_is_retried_with_backoff_until_stopped() -> None:
    run = start(free_port_url())
    await eventually(lambda: len(run.closes) >= 3)
    await run.stop()
    assert set(run.closes) == {ERROR} and run.session.connections == 0


async def test_stop_during_backoff_returns_at_once() -> None:
    run = start(free_port_url(), backoff=BackoffPolicy(base_secs=30, cap_secs=30))
    await eventually(lambda: run.closes == [ERROR])
    await run.stop()  # would take 15-30 s if the backoff wait ignored the stop


async def test_open_and_close_callbacks_bracket_each_connection(venue: FakeVenue) -> None:
    events: list[str] = []
    session = WebSocketSession(
        venue.url,
        lambda frame: None,
        backoff=FAST,
        on_open=lambda: events.append(f"open:{session.connected}"),
        on_close=lambda reason: events.append(f"close:{reason}"),
    )
    task = asyncio.get_running_loop().create_task(session.run())
    await eventually(lambda: events == ["open:True"])
    await venue.hang_up()
    await eventually(lambda: events == ["open:True", f"close:{CLOSED}", "open:True"])
    session.stop()
    await task
    assert events[-1] == f"close:{STOPPED}"


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(0, 0.25, 0.5), (1, 0.5, 1.0), (3, 2.0, 4.0), (40, 15, 30)]
)
@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_backoff_doubles_per_attempt_up_to_the_cap_with_jitter(
    attempt: int, low: float, high: float, draw: float
) -> None:
    delay = BackoffPolicy(base_secs=0.5, cap_secs=30).delay(attempt, random_fn=lambda: draw)
    assert low <= delay <= high
    assert delay == pytest.approx(low + (high - low) * draw)


@pytest.mark.parametrize(
    ("frame", "expected"), [("PONG", True), ("pong\n", True), ("", True), ("{}", False), (b"PONG", False)]
)
def test_ping_replies_are_recognised(frame: str | bytes, expected: bool) -> None:
    assert is_keepalive(frame) is expected
