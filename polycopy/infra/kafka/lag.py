"""Consumer lag: how many records a group member still has to read, per partition (high watermark - where it
reads next). The rule is shared by the sinks' confluent-kafka consumers and the Faust worker's consumer."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from confluent_kafka import TopicPartition

TopicPartitionKey = tuple[str, int]


def partition_lag(
    high: int | None, *, position: int | None = None, committed: int | None = None, low: int | None = None
) -> int | None:
    """`high` minus the offset the member reads next: its position, else the group's committed offset, else
    the low watermark (the group starts at the earliest record). Negative offsets are the clients' "unknown".
    Never below 0 (a watermark read before the position moved), and None while the high watermark is unknown.
    """
    if high is None or high < 0:
        return None
    known_low = low if low is not None and low >= 0 else 0
    start = next(
        (offset for offset in (position, committed) if offset is not None and offset >= 0), known_low
    )
    # Below the low watermark the records are gone (retention): the member resets to the earliest one.
    return max(high - max(start, known_low), 0)


def measure_lag(
    consumer: Any, committed_cache: MutableMapping[TopicPartitionKey, int], timeout_secs: float = 5.0
) -> dict[TopicPartitionKey, int]:
    """The lag of every partition assigned to a confluent-kafka consumer.

    The high watermark comes from the last fetch (no request) where the consumer has one; the position from
    the consumer itself. A partition with no record read since it was assigned has no position: the group's
    committed offset stands in, read once per assignment (`committed_cache`, which the caller clears when
    partitions are revoked).
    """
    assigned = consumer.assignment()
    if not assigned:
        return {}
    positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(assigned)}
    unknown = [tp for tp in assigned if positions.get((tp.topic, tp.partition), -1) < 0]
    missing = [tp for tp in unknown if (tp.topic, tp.partition) not in committed_cache]
    if missing:
        for tp in consumer.committed([TopicPartition(t.topic, t.partition) for t in missing], timeout_secs):
            committed_cache[(tp.topic, tp.partition)] = tp.offset
    lags = {}
    for tp in assigned:
        key = (tp.topic, tp.partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout_secs, cached=True) or (-1, -1)
        if high < 0:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_secs, cached=False) or (-1, -1)
        lag = partition_lag(high, position=positions.get(key), committed=committed_cache.get(key), low=low)
        if lag is not None:
            lags[key] = lag
    return lags
