"""The recent keys (a fill seen, a pair decided, an order closed) in 6-hour buckets of the clock: a key counts
when marked in this bucket or the one before, is written once per bucket, and the buckets no longer kept sort
below `expired_below`, so a worker drops them from its store in one range (issue 8: Faust's windowed tables
expired only the keys a process set itself, so tables kept on disk across restarts grew for ever)."""

from __future__ import annotations

from typing import Any

from processors.worker.state import RECENT_BUCKET_MS, RECENT_BUCKETS_KEPT, BucketedKeys

HOUR_MS = 3_600_000
START_MS = 1_000 * RECENT_BUCKET_MS + HOUR_MS  # an hour into a bucket


class CountingTable(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_a_key_counts_in_its_bucket_and_the_next_and_no_longer() -> None:
    now = [START_MS]
    keys = BucketedKeys(CountingTable(), lambda: now[0])
    keys.add("fill-1")
    assert "fill-1" in keys and "fill-2" not in keys
    now[0] += 6 * HOUR_MS  # the next bucket
    assert "fill-1" in keys
    now[0] += 6 * HOUR_MS  # two buckets on
    assert "fill-1" not in keys


def test_a_key_marked_again_in_its_bucket_is_not_written_again() -> None:
    table, now = CountingTable(), [START_MS]
    keys = BucketedKeys(table, lambda: now[0])
    keys.add("intent-1")
    keys.add("intent-1")
    assert table.writes == 1
    now[0] += 6 * HOUR_MS
    keys.add("intent-1")  # a new bucket: marked there too, so it counts for another bucket
    assert table.writes == 2


def test_the_buckets_no_longer_kept_sort_below_the_expiry_key_and_the_kept_ones_do_not() -> None:
    table, now = CountingTable(), [START_MS]
    keys = BucketedKeys(table, lambda: now[0])
    for bucket in range(RECENT_BUCKETS_KEPT + 2):
        keys.add(f"key-{bucket}")
        now[0] += RECENT_BUCKET_MS
    now[0] -= RECENT_BUCKET_MS  # back in the bucket of the last key
    below = keys.expired_below()
    dropped = sorted(key for key in table if key < below)
    assert [key.split("|")[1] for key in dropped] == ["key-0", "key-1"]
    assert all(f"key-{n}" in keys for n in (RECENT_BUCKETS_KEPT, RECENT_BUCKETS_KEPT + 1))
