"""Faust's Kafka consumer, guarded against skipping records its agents never handled.

After each assignment Faust restores its tables while its fetch loop already runs, then seeks the stream
partitions to their committed offsets. The loop may still be going through a batch fetched before that seek,
and it records the batch's last offset as "read"; the records fetched again from the committed offset are
then below it and dropped. The chaos run showed both outcomes: a partition the group never committed was
committed past the dropped records (Faust checks where the acked run starts only once there is a committed
offset: 38 decisions never made), and a committed one never committed again (the worker's lag grew until
the run gave up). So for the source partitions this consumer keeps no "read" offset (a record read twice is
deduplicated by the agents' ids), reads never-committed ones from their beginning, and at each commit, when
what was acked does not start where reading had to start, seeks back there once and commits nothing in that
partition until it does. Compacted topics are not guarded: their offsets have holes."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)


def never_committed(
    assigned: Iterable[TP], committed: Mapping[TP, int | None], sources: Collection[str]
) -> list[TP]:
    """The assigned partitions of the source topics with no committed offset (Faust keeps 0 as None too)."""
    return sorted((tp for tp in assigned if tp.topic in sources and not committed.get(tp)), key=str)


def skipped_head(acked: Collection[int], first: int) -> bool:
    """Whether what was acked in a partition misses records from `first` (where reading had to start) on."""
    return bool(acked) and min(acked) > first


class ReadOffsets(dict[TP, int | None]):
    """Faust's "last offset read" per partition, always None for the guarded partitions, so that nothing is
    dropped as read before (see the module docstring)."""

    def __init__(self, sources: Collection[str]) -> None:
        super().__init__()
        self._sources = sources

    def __getitem__(self, tp: TP) -> int | None:
        return None if tp.topic in self._sources else self.get(tp)


def guarded_transport(sources: Collection[str]) -> type[faust_aiokafka.Transport]:
    """The aiokafka transport whose consumer guards the partitions of `sources` (not compacted topics)."""

    class GuardedConsumer(faust_aiokafka.Consumer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._first_offsets: dict[TP, int] = {}  # where reading a source partition had to start
            self._unread: set[TP] = set()  # never committed: read from their beginning, not asked yet
            self._rewound: set[TP] = set()  # sought back there, not read up to it again yet
            self._read_offset = ReadOffsets(sources)

        async def perform_seek(self) -> None:
            await super().perform_seek()
            self._rewound.clear()
            assigned = [tp for tp in self.assignment() if tp.topic in sources]
            committed = self._committed_offset
            self._first_offsets = {tp: offset for tp in assigned if (offset := committed.get(tp))}
            self._unread = set(never_committed(assigned, committed, sources))
            # Offset 0, not the beginning asked of the broker (1.5 s for a restarted worker): where retention
            # deleted it, the fetch is out of range and the consumer resets to the earliest kept offset.
            for tp in sorted(self._unread):
                await self.seek(TopicPartition(tp.topic, tp.partition), 0)

        async def _commit_tps(self, tps: Iterable[TP], start_new_transaction: bool) -> bool:
            safe = []
            for tp in tps:
                if tp.topic not in sources:
                    safe.append(tp)
                    continue
                if tp in self._unread and self._acked[tp]:
                    # Where it begins is asked only now: asked at every assignment, it cost a restarted
                    # worker seconds on a busy broker.
                    beginnings = await self._thread.earliest_offsets(TopicPartition(tp.topic, tp.partition))
                    self._first_offsets[tp] = int(next(iter(beginnings.values())))
                    self._unread.discard(tp)
                # Reading must go on from the last commit (Faust lets one record past it go: it checks the
                # acked run starts within one of it), else from where the partition had to be read from.
                committed = self._committed_offset.get(tp)
                first = committed if committed is not None else self._first_offsets.get(tp)
                if first is None or not skipped_head(self._acked[tp], first):
                    self._rewound.discard(tp)
                    safe.append(tp)
                elif tp not in self._rewound:
                    self._rewound.add(tp)
                    log.warning("%s[%d]: records from %d on were not handled; reading them again",
                                tp.topic, tp.partition, first)  # fmt: skip
                    await self.seek(TopicPartition(tp.topic, tp.partition), first)
            return await super()._commit_tps(safe, start_new_transaction)

    class GuardedTransport(faust_aiokafka.Transport):
        Consumer = GuardedConsumer

    return GuardedTransport
