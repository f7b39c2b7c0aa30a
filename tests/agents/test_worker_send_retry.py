"""The worker's deliver: a broker outage is waited out (an event's outputs are never given up, which would let
Faust ack the event with its decision lost); a message the broker refuses raises for the dead-letter path."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NotLeaderForPartitionError

from processors.worker.outbox import Output, deliver
from schemas.topics import DECISIONS, ORDER_INTENTS


class FlakyOutbox:
    """Acknowledges sends once `failures` attempts have failed with `error`."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error = failures, error
        self.sends = 0
        self.acked: list[str] = []

    async def send(self, spec, key: str, value: bytes) -> Awaitable[object]:  # type: ignore[no-untyped-def]
        self.sends += 1
        attempt = (self.sends - 1) // len(OUTPUTS) + 1
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if attempt <= self.failures:
            future.set_exception(self.error)
        else:
            self.acked.append(key)
            future.set_result(None)
        return future


OUTPUTS: list[Output] = [(DECISIONS, "w1", b"decision"), (ORDER_INTENTS, "w1", b"intent")]


async def no_sleep(_: float) -> None:
    return None


@pytest.mark.parametrize(
    "error", [KafkaTimeoutError(), NotLeaderForPartitionError(), ConnectionError("reset")]
)
def test_an_outage_is_waited_out_and_every_output_sent_again_until_acknowledged(error: Exception) -> None:
    outbox = FlakyOutbox(failures=3, error=error)
    retries: list[BaseException] = []

    asyncio.run(deliver(outbox, OUTPUTS, on_retry=retries.append, sleep=no_sleep))

    assert len(retries) == 3
    assert outbox.acked == ["w1", "w1"]  # both outputs, in the attempt that succeeded


def test_a_refused_message_raises_for_the_dead_letter_path() -> None:
    outbox = FlakyOutbox(failures=1, error=MessageSizeTooLargeError())

    with pytest.raises(MessageSizeTooLargeError):
        asyncio.run(deliver(outbox, OUTPUTS, sleep=no_sleep))

    assert outbox.acked == []
