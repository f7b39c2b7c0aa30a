"""The Faust worker's agents in process: the app built as `polycopy worker` builds it, with an in-memory
store, an outbox that records what the agents send, and agents driven through `agent.test_context()`
(faust's docs/userguide/testing.rst). No broker is involved."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from processors.core.engine import StaticReference
from processors.worker.app import create_app
from processors.worker.book_cache import BookCache
from schemas.base import Message
from schemas.topics import TopicSpec
from tests.builders import NOW_MS, build_book_payload


@dataclass
class RecordingOutbox:
    """What the broker acknowledged, in order: (topic, key, value).

    `refuse` / `lose` name topics whose next message fails: refused as it is queued (the send raises), or
    lost in delivery (the send queues it, its delivery future raises and the broker never has it). `hold`
    (when set) is an event every delivery (of `hold_keys`, when set) waits for, to interleave the agents."""

    sent: list[tuple[str, str, bytes]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lose: set[str] = field(default_factory=set)
    hold: asyncio.Event | None = None
    hold_keys: set[str] | None = None  # when set, only these keys' deliveries wait for `hold`
    held: int = 0  # deliveries waiting for `hold`

    async def send(self, spec: TopicSpec, key: str, value: bytes) -> asyncio.Future[None]:
        if spec.name in self.refuse:
            self.refuse.discard(spec.name)
            raise ConnectionError(f"{spec.name}: the producer refused the message")
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if spec.name in self.lose:
            self.lose.discard(spec.name)
            delivery.set_exception(ConnectionError(f"{spec.name}: the message was not delivered"))
        elif self.hold is None or (self.hold_keys is not None and key not in self.hold_keys):
            self.sent.append((spec.name, key, value))
            delivery.set_result(None)
        else:
            self.held += 1
            release = self._deliver_when_released(delivery, spec.name, key, value)
            asyncio.get_running_loop().create_task(release)
        return delivery

    async def _deliver_when_released(
        self, delivery: asyncio.Future[None], name: str, key: str, value: bytes
    ) -> None:
        assert self.hold is not None
        await self.hold.wait()
        self.sent.append((name, key, value))
        delivery.set_result(None)

    def messages(self, spec: TopicSpec) -> list[tuple[str, Any]]:
        """(key, decoded value) of everything sent to one topic."""
        return [
            (key, spec.value_model.model_validate_json(value))
            for name, key, value in self.sent
            if name == spec.name
        ]


class CountingFetcher:
    """GET /book stand-in: a venue book payload (None: the venue has none) or an error; counts requests."""

    def __init__(self, payload: dict[str, Any] | None = None, *, error: Exception | None = None) -> None:
        self.payload, self.error, self.calls = payload, error, 0

    def __call__(self, token_id: str) -> dict[str, Any] | None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.payload


@dataclass
class Worker:
    """One in-process worker: its app, what it sent, its book cache and metrics."""

    app: faust.App
    outbox: RecordingOutbox
    books: BookCache
    metrics: PipelineMetrics
    fetcher: CountingFetcher

    def agent(self, name: str) -> Any:
        return self.app.agents[name]

    async def put(
        self, agent_name: str, *values: Message | bytes, until: Callable[[], bool] | None = None
    ) -> None:
        """Feed values to one agent, in order. `put` returns once the agent has taken a value, so a test
        whose agent awaits something (a thread, a wait for a pinned book) says what to wait `until`."""
        async with self.agent(agent_name).test_context() as agent:
            for value in values:
                raw = value if isinstance(value, bytes) else value.to_bytes()
                await agent.put(raw, key=b"test")
            for lanes in self.app.lanes:  # the wallet-keyed agents handle an event after taking it
                await lanes.drain()
            for _ in range(1000):
                if until is None or until():
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"{agent_name}: the awaited effect did not happen within 10 s")


@pytest.fixture
def changelog_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The table of every changelog record the agents' table writes send, in order."""
    from faust.tables.base import Collection

    writes: list[str] = []
    send_changelog = Collection.send_changelog

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        writes.append(self.name)
        return send_changelog(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "send_changelog", counted)
    return writes


@pytest.fixture
async def worker_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Worker]]:
    def build(
        reference: StaticReference,
        *,
        fetcher: CountingFetcher | None = None,
        clock_ms: Callable[[], int] = lambda: NOW_MS,
        with_settings: dict[str, Any] | None = None,
        **options: Any,
    ) -> Worker:
        settings = PolycopySettings(data_dir=tmp_path, metrics_enabled=False, **(with_settings or {}))
        outbox, metrics = RecordingOutbox(), PipelineMetrics()
        fetcher = fetcher or CountingFetcher(build_book_payload())
        books = BookCache(fetcher, 500, channel_max_age_ms=30_000, metrics=metrics, clock_ms=clock_ms)
        app = create_app(
            settings, reference=reference, books=books, metrics=metrics, outbox=outbox, clock_ms=clock_ms,
            **options,
        )  # fmt: skip
        # As faust's testing guide says: bind the app to this test's loop, finish its configuration, and let
        # the agents' queues flow (they start suspended).
        app.loop = asyncio.get_running_loop()
        app.finalize()
        app.flow_control.resume()
        return Worker(app, outbox, books, metrics, fetcher)

    yield build
