"""Re-reads a partition whose commits are stuck behind events the worker never handled.

Faust's recovery race (faust-streaming/faust#596, open): when a worker starts or rebalances, events fetched
while recovery resumes the stream partitions can be cleared from its in-memory queues unhandled, while the
fetch position moves past them. Faust commits a partition only up to its first unacked offset, so from then on
that partition's commits stop for the life of the process, and the cleared events (whose decisions were never
made) wait for the next restart. The chaos run found it after worker restarts: one partition committed at the
first offset the new worker read, several events after it never decided, every later one decided.

This watch looks at Faust's consumer every few seconds: a partition whose acked offsets start past its
committed offset (a head gap; our agents handle a partition's events in order, so nothing before them is still
in flight) for two looks in a row is sought back to its committed offset. The cleared events are read and
handled; the ones after them are read again, which ack before state makes harmless (their outputs are sent
again with the same ids, or nothing when their state was saved)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import faust

log = logging.getLogger(__name__)

GAP_WATCH_SECS = 10.0


def head_gaps(
    committed: Mapping[Any, int | None], acked: Mapping[Any, Iterable[int]], topics: Collection[str]
) -> dict[Any, int]:
    """The partitions of `topics` whose first acked offset is past their committed offset (the next offset
    to read): the events in between were never acked, so nothing is committed; each with that offset."""
    gaps = {}
    for tp, offsets in acked.items():
        offsets = list(offsets)
        start = committed.get(tp)
        if tp.topic in topics and offsets and start is not None and min(offsets) > start:
            gaps[tp] = start
    return gaps


class CommitGapWatch:
    """Seeks a partition back to its committed offset when the same head gap is seen on two looks in a row
    (a gap seen once may be an event being handled right now), once per committed offset: the re-read events
    keep the acked offsets after them in Faust's list until the commit moves, so the gap stays visible while
    they are handled again, and seeking again would restart a slow re-read forever."""

    def __init__(self, topics: Collection[str]) -> None:
        self._topics = topics
        self._seen: dict[Any, int] = {}
        self._sought: dict[Any, int] = {}  # partition -> the committed offset it was last sought back to
        self.reseeks = 0

    def to_reseek(
        self, committed: Mapping[Any, int | None], acked: Mapping[Any, Iterable[int]]
    ) -> dict[Any, int]:
        """The partitions to seek back now, with their committed offsets."""
        gaps = head_gaps(committed, acked, self._topics)
        fresh = {tp: offset for tp, offset in gaps.items() if self._sought.get(tp) != offset}
        due = {tp: offset for tp, offset in fresh.items() if self._seen.get(tp) == offset}
        self._seen = {tp: offset for tp, offset in fresh.items() if tp not in due}
        self._sought.update(due)
        self.reseeks += len(due)
        return due


def watch_commit_gaps(app: faust.App, topics: Collection[str], interval_secs: float = GAP_WATCH_SECS) -> None:
    """Run a `CommitGapWatch` over the app's consumer every `interval_secs` while the worker runs."""
    watch = CommitGapWatch(topics)

    @app.timer(interval=interval_secs, name="commit-gap-watch")
    async def reseek_stuck_partitions() -> None:
        consumer = app.consumer
        try:
            # Faust keeps these privately (faust.transport.consumer.Consumer); read-only here.
            due = watch.to_reseek(dict(consumer._committed_offset), dict(consumer._acked))
            for tp, offset in due.items():
                log.warning(
                    "partition %s[%d]: commits stuck at %d behind events never handled (Faust's recovery "
                    "race); reading it again from there",
                    tp.topic,
                    tp.partition,
                    offset,
                )
                await consumer.seek(tp, offset)
        except Exception as error:  # noqa: BLE001 - a timer that raises would stop the worker
            log.warning("commit gap watch failed: %s", error)
