"""A text progress bar for long tool runs (the what-if replay, the bench's synthesis): redrawn in place on a
terminal, one line per tenth of the way otherwise (logs and pipes stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30


def render_bar(done: int, total: int, elapsed_secs: float, unit: str = "trades", extra: str = "") -> str:
    """`[#########.....]  45%  450,000/1,000,000 trades  3,210/s  ETA 2m51s  extra`."""
    fraction = min(done / total, 1.0) if total > 0 else 1.0
    filled = int(fraction * BAR_WIDTH)
    rate = done / elapsed_secs if elapsed_secs > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    minutes, seconds = divmod(int(round(eta)), 60)
    text = (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%}  {done:,}/{total:,} {unit}  "
        f"{rate:,.0f}/s  ETA {minutes}m{seconds:02d}s"
    )
    return f"{text}  {extra}" if extra else text


class ProgressBar:
    """Call `update(done)` as often as wanted; it redraws at most every `interval_secs`."""

    def __init__(
        self,
        total: int,
        *,
        unit: str = "trades",
        stream: TextIO | None = None,
        interval_secs: float = 0.5,
        indent: str = "  ",
    ) -> None:
        self.total, self.unit, self._indent = total, unit, indent
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval_secs
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._tenth = -1

    def update(self, done: int, extra: str = "") -> None:
        now = time.monotonic()
        tenth = int(10 * done / self.total) if self.total > 0 else 10
        if self._tty:
            if now - self._drawn_at < self._interval and done < self.total:
                return
            self._stream.write(
                "\r" + self._indent + render_bar(done, self.total, now - self._started, self.unit, extra)
            )
        else:
            if tenth == self._tenth:
                return
            self._stream.write(
                self._indent + render_bar(done, self.total, now - self._started, self.unit, extra) + "\n"
            )
        self._tenth, self._drawn_at = tenth, now
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line (on a terminal)."""
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()
