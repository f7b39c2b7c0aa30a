"""Faust's Kafka consumer, guarded against committing past records it never handled in a partition the group
has not committed yet.

Faust commits the first run of consecutive acked offsets of a partition. Once the partition has a committed
offset it checks that the run starts there; before that (a group's first seconds) it does not, so a worker
that skips the head of such a partition commits past it. The chaos run caught one: a worker killed in its
first seconds was replaced, the new one began reading raw-trade partitions at their end instead of at offset
0 and committed there, and 38 decisions were never made. So, for the source partitions without a committed
offset, the consumer learns on each assignment where they begin and reads them from there; at each commit it
seeks back to that beginning when what was acked does not start there, and commits nothing in that partition
until it does. What is read twice is deduplicated by the agents' ids."""

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
    """Whether what was acked in a partition misses records from its beginning `first` on."""
    return bool(acked) and min(acked) > first


def guarded_transport(sources: Collection[str]) -> type[faust_aiokafka.Transport]:
    """The aiokafka transport whose consumer guards the never-committed partitions of `sources`."""

    class GuardedConsumer(faust_aiokafka.Consumer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._first_offsets: dict[TP, int] = {}  # a source partition not committed yet -> its beginning
            self._rewound: set[TP] = set()  # sought back to their beginning, not read up to it again yet

        async def perform_seek(self) -> None:
            await super().perform_seek()
            unread = never_committed(self.assignment(), self._committed_offset, sources)
            self._rewound.clear()
            self._first_offsets = {}
            if unread:
                partitions = [TopicPartition(tp.topic, tp.partition) for tp in unread]
                beginnings = await self._thread.earliest_offsets(*partitions)
                self._first_offsets = {TP(tp.topic, tp.partition): int(o) for tp, o in beginnings.items()}
                await self._thread.seek_to_beginning(*partitions)

        async def _commit_tps(self, tps: Iterable[TP], start_new_transaction: bool) -> bool:
            safe = []
            for tp in tps:
                first = self._first_offsets.get(tp)
                if first is not None and self._committed_offset.get(tp):
                    del self._first_offsets[tp]  # committed from its beginning: Faust's own check applies now
                    first = None
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
