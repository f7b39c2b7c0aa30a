"""The worker's consumer never commits past records it did not handle: when what was acked in a source
partition does not start where reading had to start (its committed offset, or its beginning when the group
never committed it, where Faust does not check at all), it seeks back there once and commits that partition
again when what was acked starts there."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from processors.worker.consumer import ReadOffsets, guarded_transport, never_committed, skipped_head

RAW = TP("raw", 0)
OTHER = TP("raw", 1)


def test_only_the_source_partitions_without_a_committed_offset_are_guarded() -> None:
    assigned = [RAW, OTHER, TP("raw", 2), TP("worker-recent-fills-changelog", 0)]
    committed = {OTHER: 12, TP("raw", 2): None}
    assert never_committed(assigned, committed, {"raw"}) == [RAW, TP("raw", 2)]
    assert skipped_head([26, 27], 0) and not skipped_head([0, 1, 26], 0) and not skipped_head([], 0)


def test_a_guarded_partition_drops_nothing_as_read_before() -> None:
    """Faust's fetch loop drops a record below the partition's last read offset; a batch fetched before the
    seek to the committed offset set it past the records fetched again after it."""
    read = ReadOffsets({"raw"})
    read[RAW] = 50
    read[TP("changelog", 0)] = 7
    assert read[RAW] is None and read[TP("changelog", 0)] == 7 and read[TP("changelog", 1)] is None


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Any:
    committed: list[list[TP]] = []

    async def record_commit(self: Any, tps: Any, start_new_transaction: bool) -> bool:
        committed.append(list(tps))
        return True

    monkeypatch.setattr(faust_aiokafka.Consumer, "_commit_tps", record_commit)
    cls = guarded_transport({"raw"}).Consumer
    consumer = object.__new__(cls)  # the guard's state only: no broker, no app
    consumer._first_offsets, consumer._rewound, consumer._unread = {RAW: 0}, set(), set()
    consumer._acked, consumer._committed_offset = defaultdict(list), defaultdict(lambda: None)
    consumer.seeks, consumer.commits = [], committed

    async def seek(partition: Any, offset: int) -> None:
        consumer.seeks.append((tuple(partition), offset))

    consumer.seek = seek
    return consumer


async def test_a_partition_whose_head_was_skipped_is_read_again_and_not_committed_until_it_is(
    consumer,
) -> None:  # type: ignore[no-untyped-def]
    consumer._acked[RAW] = [26, 27, 28, 29]  # offsets 0-25 never reached the agents
    consumer._acked[OTHER] = [0, 1]

    await consumer._commit_tps([RAW, OTHER], False)
    await consumer._commit_tps([RAW, OTHER], False)  # the next tick: still reading them again

    assert consumer.commits == [[OTHER], [OTHER]]
    assert consumer.seeks == [(("raw", 0), 0)]  # sought back once
    consumer._acked[RAW] = list(range(30))  # read again from the beginning
    await consumer._commit_tps([RAW], False)
    assert consumer.commits[-1] == [RAW] and not consumer._rewound


async def test_after_a_commit_reading_must_go_on_exactly_from_it(consumer) -> None:  # type: ignore[no-untyped-def]
    """Faust commits when the acked run starts within one of the last commit: a single skipped record."""
    consumer._acked[RAW] = [0, 1, 2]
    await consumer._commit_tps([RAW], False)
    consumer._committed_offset[RAW], consumer._acked[RAW] = 3, [4, 5]  # offset 3 never reached the agent
    await consumer._commit_tps([RAW], False)

    assert consumer.commits == [[RAW], []] and consumer.seeks == [(("raw", 0), 3)]


async def test_a_committed_partition_whose_next_records_were_skipped_is_read_again_from_its_offset(
    consumer,
) -> None:  # type: ignore[no-untyped-def]
    """Faust alone would block this partition's commits forever (its own check), and the lag would grow."""
    consumer._first_offsets = {RAW: 40}
    consumer._committed_offset[RAW] = 40
    consumer._acked[RAW] = [45, 46]

    await consumer._commit_tps([RAW], False)
    assert consumer.commits == [[]] and consumer.seeks == [(("raw", 0), 40)]
    consumer._acked[RAW] = [40, 41, 42, 43, 44, 45, 46]
    await consumer._commit_tps([RAW], False)
    consumer._committed_offset[RAW] = 47
    await consumer._commit_tps([RAW], False)
    assert consumer.commits[1:] == [[RAW], [RAW]]


async def test_a_never_committed_partition_asks_where_it_begins_once_something_was_acked(
    consumer,
) -> None:  # type: ignore[no-untyped-def]
    asked: list[Any] = []

    class Thread:
        async def earliest_offsets(self, *partitions: Any) -> dict[Any, int]:
            asked.extend(partitions)
            return {partitions[0]: 3}  # the log's head was deleted by retention

    consumer._thread, consumer._first_offsets, consumer._unread = Thread(), {}, {RAW}
    await consumer._commit_tps([RAW], False)  # nothing acked yet: nothing asked, nothing to commit
    assert asked == []
    consumer._acked[RAW] = [9, 10]
    await consumer._commit_tps([RAW], False)

    assert asked == [("raw", 0)] and consumer.seeks == [(("raw", 0), 3)] and consumer.commits[-1] == []
