"""The commit gap watch: a partition whose acked offsets start past its committed offset (events cleared
unhandled by Faust's recovery race, faust-streaming/faust#596) is sought back to that offset once the gap is
seen twice, once per committed offset; a gap that closes meanwhile (an event being handled) and other topics
are left alone."""

from __future__ import annotations

from faust.types import TP

from processors.worker.commit_gap import CommitGapWatch, head_gaps

RAW, TARGETED, CHANGELOG = TP("raw", 1), TP("targeted", 1), TP("app-wallet-state-changelog", 1)
TOPICS = {"raw", "targeted"}


def test_a_head_gap_is_a_first_acked_offset_past_the_committed_one() -> None:
    committed = {RAW: 124, TARGETED: 40, CHANGELOG: 3}
    acked = {RAW: [130, 129], TARGETED: [40, 41], CHANGELOG: [9]}

    assert head_gaps(committed, acked, TOPICS) == {RAW: 124}
    assert head_gaps({RAW: None}, {RAW: [5]}, TOPICS) == {}  # nothing committed yet: nothing to compare
    assert head_gaps({RAW: 124}, {RAW: []}, TOPICS) == {}


def test_a_gap_seen_on_two_looks_is_sought_back_once_and_a_closed_one_is_forgotten() -> None:
    watch = CommitGapWatch(TOPICS)

    assert watch.to_reseek({RAW: 124}, {RAW: [129]}) == {}  # once: maybe 124 is being handled now
    assert watch.to_reseek({RAW: 124}, {RAW: [129, 130]}) == {RAW: 124}
    for _ in range(5):  # the re-read is slow: the gap stays visible, and seeking again would restart it
        assert watch.to_reseek({RAW: 124}, {RAW: [129, 130]}) == {}
    assert watch.to_reseek({RAW: 131}, {RAW: [135]}) == {}  # the commit moved; a new gap further on
    assert watch.to_reseek({RAW: 131}, {RAW: [135, 136]}) == {RAW: 131}
    assert watch.reseeks == 2

    other = CommitGapWatch(TOPICS)
    assert other.to_reseek({TARGETED: 40}, {TARGETED: [41]}) == {}
    assert other.to_reseek({TARGETED: 42}, {TARGETED: [43]}) == {}  # it moved: a new gap, seen once
    assert other.to_reseek({TARGETED: 44}, {TARGETED: [44]}) == {}  # closed
