"""The worker acks an event once its handling finished, and then always: also when its stream closed (and
let the event go) while the agent was still handling it; a cancelled handling leaves it unacked."""

from __future__ import annotations

import asyncio

import pytest
from faust.types.tuples import ConsumerMessage, Message

from processors.worker.acks import handle_holding_a_reference


class RecordingConsumer:
    """Faust's consumer as far as acks go: the final ack marks the offset once."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: Message) -> bool:
        if message.acked:
            return False
        message.acked = True
        self.acked.append(message.offset)
        return True


def delivered(offset: int = 32) -> Message:
    message = ConsumerMessage("raw", 1, offset, 0.0, 0, None, b"k", b"v", None)
    message.incref()  # the reference Faust's conductor adds for the one stream reading the topic
    return message


async def test_an_event_its_stream_let_go_mid_handling_is_acked_when_the_handling_finishes() -> None:
    consumer, message = RecordingConsumer(), delivered()

    async def handling() -> None:
        message.ack(consumer)  # the stream closes (a rebalance): its `finally` acks the current event
        assert consumer.acked == []  # our reference holds it while the outputs are in flight
        await asyncio.sleep(0)

    await handle_holding_a_reference(message, consumer, handling())

    assert consumer.acked == [32]  # no later ack comes from a closed stream: this one must mark it


async def test_an_event_is_acked_once_after_its_handling_when_the_stream_moves_on() -> None:
    consumer, message = RecordingConsumer(), delivered()

    async def handling() -> None:
        assert consumer.acked == []

    await handle_holding_a_reference(message, consumer, handling())
    assert consumer.acked == []  # the stream's own reference remains until it moves past the event
    message.ack(consumer)
    message.ack(consumer)

    assert consumer.acked == [32]


async def test_a_cancelled_handling_leaves_the_event_unacked_for_the_next_owner() -> None:
    consumer, message = RecordingConsumer(), delivered()
    started = asyncio.Event()

    async def handling() -> None:
        started.set()
        await asyncio.Event().wait()  # outputs in flight when the stop comes

    task = asyncio.create_task(handle_holding_a_reference(message, consumer, handling()))
    await started.wait()
    message.ack(consumer)  # the stream closes on the stop
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert consumer.acked == [] and not message.acked
