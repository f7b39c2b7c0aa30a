"""Capture files (JSON lines of raw RTDS frames with their receive times) and their replay onto Kafka.

A replay publishes each frame with its recorded receive time, so the same file gives the same decisions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producers.publisher import TradePublisher
from schemas.trades import TradeSource


@dataclass(frozen=True)
class CapturedFrame:
    """One frame as received: its text and our receive time."""

    received_at_ms: int
    frame: str


class CaptureFormatError(ValueError):
    """A capture file line is not {"received_at_ms": int, "frame": str}."""


def read_capture(path: Path) -> Iterator[CapturedFrame]:
    """Read a capture file lazily; a bad line raises with its line number."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                yield CapturedFrame(int(record["received_at_ms"]), str(record["frame"]))
            except (ValueError, KeyError, TypeError) as error:
                raise CaptureFormatError(f"{path}:{number}: not a capture record ({error})") from error


def write_capture(path: Path, frames: Iterable[CapturedFrame]) -> int:
    """Write frames as a capture file; returns how many were written."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for item in frames:
            handle.write(json.dumps({"received_at_ms": item.received_at_ms, "frame": item.frame}) + "\n")
            count += 1
    return count


def wrap_as_rtds_frame(
    payload: dict[str, Any], feed_type: str = "trades", envelope_ms: int | None = None
) -> str:
    """Wrap a trade payload (or a Data API trade row: same fields) into an RTDS activity frame."""
    stamp = envelope_ms if envelope_ms is not None else int(payload["timestamp"]) * 1000
    return json.dumps(
        {
            "connection_id": "replay",
            "topic": "activity",
            "type": feed_type,
            "timestamp": stamp,
            "payload": payload,
        },
        separators=(",", ":"),
    )


def replay_capture(
    frames: Iterable[CapturedFrame],
    publisher: TradePublisher,
    *,
    speed: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Publish frames with their recorded receive times. `speed` None = as fast as possible, else a
    multiple of real time. Returns (frames, trades)."""
    first_recorded: int | None = None
    started = time.monotonic()
    frame_count = trade_count = 0
    for item in frames:
        if speed is not None:
            first_recorded = item.received_at_ms if first_recorded is None else first_recorded
            due = (item.received_at_ms - first_recorded) / 1000 / speed
            delay = due - (time.monotonic() - started)
            if delay > 0:
                sleep(delay)
        publisher.count_frame(TradeSource.REPLAY)
        trade_count += publisher.publish_frame(item.frame, item.received_at_ms, TradeSource.REPLAY)
        frame_count += 1
        if on_progress is not None and frame_count % 1000 == 0:
            on_progress(frame_count, trade_count)
    return frame_count, trade_count


# Data API numeric fields, sent as JSON numbers on the RTDS feed.
_NUMBER_FIELDS = {"size": float, "price": float, "timestamp": int, "outcomeIndex": int, "fee": float}
FEED_LAG_MS = 2000  # measured median delay between block time and the RTDS frame (brief, section 1.5)


def frames_from_trade_rows(rows: Iterable[dict[str, Any]]) -> list[CapturedFrame]:
    """Turn recorded Data API trade rows (same fields as the RTDS payload) into a capture, oldest first.

    Rows repeated by the Data API's offset pagination are kept: downstream dedup is what drops them.
    """
    frames = []
    for row in rows:
        payload: dict[str, Any] = {}
        for name, value in row.items():
            if value in (None, ""):
                continue
            convert = _NUMBER_FIELDS.get(name)
            payload[name] = convert(value) if convert is not None else value
        stamp = int(payload["timestamp"]) * 1000 + FEED_LAG_MS
        frames.append(CapturedFrame(stamp, wrap_as_rtds_frame(payload, "trades", envelope_ms=stamp)))
    return sorted(frames, key=lambda item: item.received_at_ms)


def load_trade_rows(path: Path) -> list[dict[str, Any]]:
    """Read Data API trade rows from a .csv or a .json (a bare array, or {"data": [...]}) file."""
    if path.suffix == ".csv":
        import csv

        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    document = json.loads(path.read_text(encoding="utf-8"))
    rows = document.get("data", []) if isinstance(document, dict) else document
    return [row for row in rows if isinstance(row, dict)]


class CaptureWriter:
    """Appends frames to a capture file as they arrive (flushed per frame: a crash loses nothing written)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.count = 0

    def __enter__(self) -> CaptureWriter:
        self._handle = self._path.open("w", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def write(self, frame: str | bytes, received_at_ms: int) -> None:
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        self._handle.write(json.dumps({"received_at_ms": received_at_ms, "frame": text}) + "\n")
        self._handle.flush()
        self.count += 1
