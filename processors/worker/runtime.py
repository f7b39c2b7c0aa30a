"""Running the worker's Faust app: its tables' changelog topics laid out before it starts, uvloop, and the
Faust worker that runs it until SIGTERM. Faust is imported only to run the app: a starting worker loads its
reference data meanwhile."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mode.utils.times import want_seconds

from polycopy.infra.kafka import TopicLayout

if TYPE_CHECKING:
    import faust


# A restarted worker replays its changelogs from their start, so they must stay near one value per key. The
# broker only compacts closed segments, and by default closes one after 1 GB or 7 days: every write since the
# topic began stayed, and a 10-minute chaos run's worker took 20 s to restore 14,000 records (issue 8).
# Segments close after 15 s (the cleaner's default pause) and are cleaned once a tenth of them is stale.
COMPACTION = {"segment.ms": "15000", "min.cleanable.dirty.ratio": "0.1"}


def changelog_topics(app: faust.App) -> list[TopicLayout]:
    """The changelog topic of every table, laid out as Faust declares it (partitions, cleanup, retention).

    Created before the app starts (`create_named_topics(..., wait=True)`), so Faust finds them served: created
    by Faust itself, a changelog can be missing from the metadata it reads next, and a table whose changelog
    has "0 partitions" fails every write it makes from then on.
    """
    layouts = []
    for table in app.tables.values():
        topic = table.changelog_topic
        policy = [flag for flag, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on]
        config = {"cleanup.policy": ",".join(policy)} if policy else {}
        if topic.compacting:
            config |= COMPACTION
        if topic.retention:
            config["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        config |= {name: str(value) for name, value in (topic.config or {}).items()}  # extra_topic_configs
        layouts.append(TopicLayout(topic.get_topic_name(), table.partitions or topic.partitions, config))
    return layouts


def use_uvloop() -> bool:
    """Run this process's event loops on uvloop (call before the app is built): the worker spends a tenth of
    its time in asyncio's own scheduling (the profile in the README), which uvloop does in C."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency; asyncio's loop still works
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


# Python's collector, tuned for the decisions' p99: at the defaults (700, 10, 10) the worker paused twice per
# run of the bench for a full collection (104-182 ms) and ran 180 smaller ones; with start-up's objects frozen
# and these thresholds, two young collections of 24-40 ms (receive -> decision p99 at 20 trades/s: 259-263 ->
# 149-170 ms, `polycopy bench --only stages --rate 20`). Cycles are still collected, less often.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what start-up built (modules, the app, the reference data: never garbage) out of every later
    collection, and collect the young generation after GC_THRESHOLDS[0] allocations instead of 700."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_app(
    app: faust.App,
    log_level: str,
    on_stop: Callable[[], None] | None = None,
    logging_config: dict[str, Any] | None = None,
) -> None:
    """Run the app as a Faust worker in this process until SIGTERM/SIGINT. Faust sets logging up again as
    it starts: `logging_config` (a dictConfig, `polycopy.infra.logs.build_logging_config`) keeps ours."""
    import faust

    worker = faust.Worker(
        app,
        loglevel=log_level.lower().replace("warning", "warn"),
        quiet=True,
        redirect_stdouts=False,
        logging_config=logging_config,
    )
    tune_gc()
    try:
        worker.execute_from_commandline()
    finally:
        if on_stop is not None:
            on_stop()
