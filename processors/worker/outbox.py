"""Where the worker's agents send: the app's topics (each send answers with its delivery future, so an agent
can wait for the broker's acknowledgement before it writes its state), or a recorder in tests."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

import faust

from schemas.topics import TopicSpec

Output = tuple[TopicSpec, str, bytes]  # (topic, key, value) of one message an agent sends


class Outbox(Protocol):
    """Where the agents send their messages: the app's topics, or a recorder in tests."""

    async def send(self, spec: TopicSpec, key: str, value: bytes) -> Awaitable[object]:
        """Queue one message; the returned awaitable completes once the broker acknowledged it."""
        ...


class TopicOutbox:
    """Sends to the app's topics (raw bytes, explicit keys)."""

    def __init__(self, topics: dict[str, faust.TopicT]) -> None:
        self._topics = topics

    async def send(self, spec: TopicSpec, key: str, value: bytes) -> Awaitable[object]:
        # Faust's Topic.send queues on the producer and answers with the message's delivery future.
        return await self._topics[spec.name].send(key=key.encode(), value=value)
