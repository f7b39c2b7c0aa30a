"""Venue-side faults for `polycopy chaos`, driven through the simulator's `/_sim/` control API: RTDS
silence (sockets open, no data), RTDS disconnects, malformed feed frames, CLOB book 5xx and slow answers,
and (live-fake runs) POST /order 5xx and answers lost after the order was placed."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from schemas.topics import DECISIONS, EXECUTION_REPORTS, RAW_TRADES, TopicSpec

VENUE_FAULTS = ["rtds silence", "rtds disconnect", "malformed frames", "book 5xx", "book slow"]
LIVE_VENUE_FAULTS = ["order 5xx", "order slow"]
# What shows a venue fault is over: the topic its victims write to grows again.
VENUE_OUTPUT = {
    "rtds silence": RAW_TRADES,
    "rtds disconnect": RAW_TRADES,
    "malformed frames": RAW_TRADES,
    "book 5xx": DECISIONS,
    "book slow": DECISIONS,
    "order 5xx": EXECUTION_REPORTS,
    "order slow": EXECUTION_REPORTS,
}
MALFORMED_STAGE = "rtds-parse"


@dataclass(frozen=True)
class VenueFaultTiming:
    """How long each venue fault lasts; an RTDS silence outlasts the producer's watchdog: it reconnects."""

    rtds_silence_secs: float = 12.0
    book_fault_secs: float = 10.0
    book_stall_secs: float = 3.0  # past the book client's time-out
    order_faults: int = 3  # POSTs answered 500, or (slow) placed and answered only after `order_stall_secs`
    order_stall_secs: float = 12.0


@dataclass
class VenueFaults:
    """Injects venue faults into one simulator over HTTP and remembers what the checks need: the markers of
    the malformed frames that reached a client."""

    clob_url: str
    timing: VenueFaultTiming = field(default_factory=VenueFaultTiming)
    malformed_sent: list[str] = field(default_factory=list)
    _frames: int = 0

    def inject(self, fault: str) -> float:
        """Inject one venue fault, wait out its window, and return when the venue is well (monotonic)."""
        timing = self.timing
        if fault == "rtds silence":
            self.post("/_sim/rtds/stall", {"secs": timing.rtds_silence_secs})
            time.sleep(timing.rtds_silence_secs)
        elif fault == "rtds disconnect":
            self.post("/_sim/rtds/drop", {})
        elif fault == "malformed frames":
            markers, frames = self.malformed_frames()
            if self.post("/_sim/rtds/frames", {"frames": frames}).get("clients", 0) > 0:
                self.malformed_sent += markers
        elif fault in ("book 5xx", "book slow"):
            status = 500 if fault == "book 5xx" else None
            rule = {"groups": ["book"], "status": status, "window_secs": timing.book_fault_secs}
            self.post("/_sim/clob/faults", rule | {"stall_secs": timing.book_stall_secs})
            time.sleep(timing.book_fault_secs)
        elif fault == "order 5xx":
            self.post("/_sim/clob/faults", {"groups": ["post"], "status": 500, "count": timing.order_faults})
        elif fault == "order slow":
            rule = {"groups": ["post"], "status": None, "count": timing.order_faults, "process_first": True}
            self.post("/_sim/clob/faults", rule | {"stall_secs": timing.order_stall_secs})
        else:
            raise ValueError(f"unknown venue fault {fault!r}")
        return time.monotonic()

    def malformed_frames(self) -> tuple[list[str], list[str]]:
        """Three frames the feed must dead-letter, each carrying a marker the checks look for: a trade whose
        price is not a number, a frame cut mid-JSON, an activity frame whose payload is no trade."""
        self._frames += 1
        markers = [f"chaos-malformed-{self._frames}-{n}" for n in range(3)]
        trade = {
            "proxyWallet": "0x" + "ab" * 20,
            "transactionHash": markers[0],
            "asset": "1",
            "conditionId": "0x" + "cd" * 32,
            "side": "BUY",
            "price": "not a number",
            "size": 10,
            "timestamp": int(time.time()),
        }
        frames = [
            json.dumps({"topic": "activity", "type": "trades", "payload": trade}),
            f'{{"topic":"activity","type":"trades","payload":{{"transactionHash":"{markers[1]}","pri',
            json.dumps({"topic": "activity", "type": "trades", "payload": {"note": markers[2]}}),
        ]
        return markers, frames

    def stats(self) -> dict[str, Any]:
        """The simulator's counters (`GET /_sim/stats`)."""
        with urllib.request.urlopen(self.clob_url + "/_sim/stats", timeout=10) as response:  # noqa: S310 - local
            return dict(json.loads(response.read()))

    def venue_orders(self) -> dict[str, Any]:
        """Every order the fake CLOB accepted and its POST count (`GET /_sim/clob/orders`)."""
        with urllib.request.urlopen(self.clob_url + "/_sim/clob/orders", timeout=10) as response:  # noqa: S310
            return dict(json.loads(response.read()))

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.clob_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the run's own simulator
            return dict(json.loads(response.read()))


def output_topic(fault: str) -> TopicSpec:
    """The topic whose growth shows the venue fault is over."""
    return VENUE_OUTPUT[fault]
