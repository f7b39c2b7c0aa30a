"""When the worker acks an event. Faust acks an event as its stream moves past it, and also as its stream
closes (a stop, a rebalance) even while an agent is still handling it; the agent therefore holds a reference
of its own while it handles an event and releases it with an ack: an event is acked only once its handling
finished (outputs in the log, or dead-lettered), and then always."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol


class Consumer(Protocol):
    """What a message's final ack marks the offset on (Faust's consumer)."""

    def ack(self, message: AckableMessage) -> bool: ...


class AckableMessage(Protocol):
    """Faust's `Message`: reference-counted; the last ack marks its offset safe to commit."""

    def incref(self, n: int = 1) -> None: ...

    def ack(self, consumer: Consumer, n: int = 1) -> bool: ...


async def handle_holding_a_reference(
    message: AckableMessage, consumer: Consumer, handling: Awaitable[None]
) -> None:
    """Run `handling` while holding a reference on `message`, then ack it. A stream closed meanwhile has
    already dropped its own reference (without acking: ours kept it); this ack is then the last one and
    marks the offset: a bare release would leave it unacked for good, and Faust commits a partition only up
    to its first unacked offset. A cancelled handling (a stop) is not acked: the next owner reads it."""
    message.incref()
    await handling
    message.ack(consumer)
