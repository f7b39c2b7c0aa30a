"""The replay loop of `polycopy whatif`: the logged trades, each with its book, through the copy engine into
the sandbox topics, in one process or split by wallet over several.

A wallet's decisions depend only on the trades it follows, the reference data, the books and its own state,
so a share of the wallets replayed apart decides exactly as it would among all of them: each worker process
replays every trade for its share (the target filter and settlements run per trade in each), publishes its
wallets' decisions and intents, and hands back their reports. The shares are balanced by the evaluations each
wallet will have (counted first from the followers of each trade's trader).
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from polycopy.infra.kafka import MessagePublisher
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.progress import ProgressBar
from processors.core.engine import StaticReference, target
from processors.core.whatif import WalletReport, WhatIfRun
from schemas.books import OrderBook
from schemas.decisions import Decision
from schemas.portfolio import MarketResolution
from schemas.topics import DECISIONS, ORDER_INTENTS
from schemas.trades import RawTrade

# Nobody waits on a sandbox message: long lingers send the decisions in large batches, and a deep queue
# keeps `publish` from blocking while they go (one produce per message cost more than its decision).
SANDBOX_PRODUCER = {"linger.ms": 200, "batch.num.messages": 10_000, "queue.buffering.max.messages": 1_000_000}
PROGRESS_EVERY = 1000  # trades between a worker's progress reports


@dataclass(frozen=True)
class ReplayInput:
    """Everything a replay reads: the trades in log order with the book each one gets, the reference data
    (with every wallet), the markets that resolve within the window, where to publish and the window end."""

    trades: Sequence[RawTrade]
    books: Sequence[OrderBook | None]
    reference: StaticReference
    resolutions: Sequence[MarketResolution]
    sandbox: PolycopySettings | None  # None: publish nothing
    end_ms: int
    keep_decisions: bool


@dataclass
class ReplayOutput:
    """What replaying a share of the wallets gave: their reports and (if kept) their decisions in order."""

    reports: list[WalletReport]
    decisions: list[Decision]
    decided: int
    settled: int


def replay(data: ReplayInput, workers: int = 1, progress: TextIO | None = None) -> ReplayOutput:
    """Replay every trade for every wallet, over `workers` processes (forked, so they share the trades
    without copying them) when there are that many wallets; one process otherwise."""
    wallets = sorted(data.reference.wallet_configs)
    shares = split_wallets(wallets, count_evaluations(data), workers) if workers > 1 else [wallets]
    # The trades, books and reference data live until the end: out of the collector's sight, full collections
    # stop walking a million objects again and again (and a forked worker stops copying their pages to do it).
    gc.freeze()
    try:
        if len(shares) > 1:
            return _replay_in_processes(data, shares, progress)
        bar = ProgressBar(len(data.trades), stream=progress) if progress is not None else None
        output = _replay_share(data, wallets, bar)
        if bar is not None:
            bar.close()
        return output
    finally:
        gc.unfreeze()


def count_evaluations(data: ReplayInput) -> Counter[str]:
    """How many trades each wallet will evaluate (the target filter's answer for every new fill)."""
    seen: set[str] = set()
    known: dict[str, tuple[str, ...]] = {}
    counts = Counter[str]()
    for trade in data.trades:
        counts.update(target(trade, seen, data.reference, known).followers)
    return counts


def split_wallets(wallets: Sequence[str], load: Counter[str], workers: int) -> list[list[str]]:
    """At most `workers` shares of the wallets with about equal evaluations (the heaviest wallet first into
    the lightest share), each in wallet-id order; no share is empty."""
    count = max(min(workers, len(wallets)), 1)
    heap = [(0, number) for number in range(count)]
    shares: list[list[str]] = [[] for _ in range(count)]
    for wallet in sorted(wallets, key=lambda w: (-load[w], w)):
        total, number = heapq.heappop(heap)
        shares[number].append(wallet)
        heapq.heappush(heap, (total + load[wallet] + 1, number))
    return [sorted(share) for share in shares if share]


def _replay_share(data: ReplayInput, wallets: Sequence[str], bar: ProgressBar | None = None) -> ReplayOutput:
    configs = data.reference.wallet_configs
    shared = data.reference
    reference = StaticReference(
        {wallet: configs[wallet] for wallet in wallets}, shared.markets_by_token, shared.traders
    )
    run = WhatIfRun(reference, data.resolutions)
    publisher = (
        MessagePublisher(data.sandbox, client_id="polycopy-whatif", **SANDBOX_PRODUCER)
        if data.sandbox is not None
        else None
    )
    decisions: list[Decision] = []
    decided = 0
    for number, (trade, book) in enumerate(zip(data.trades, data.books, strict=True), 1):
        for result in run.feed(trade, book):
            decided += 1
            if data.keep_decisions:
                decisions.append(result.decision)
            if publisher is None:
                continue
            publisher.publish(DECISIONS, result.decision.wallet_id, result.decision)
            if result.intent is not None:
                publisher.publish(ORDER_INTENTS, result.intent.wallet_id, result.intent)
        if bar is not None:
            bar.update(number, f"{decided:,} decisions")
        elif number % PROGRESS_EVERY == 0 and _PROGRESS is not None:
            _PROGRESS[_SHARE_NUMBER] = number
    if publisher is not None:
        publisher.flush(60)
    return ReplayOutput(run.finish(data.end_ms), decisions, decided, len(run.settled))


# A forked worker finds its input here (set by the parent just before the fork: the trades are shared, not
# pickled) and reports how far it got in the shared array.
_INPUT: ReplayInput | None = None
_SHARES: list[list[str]] = []
_PROGRESS: Any = None
_SHARE_NUMBER = 0


def _run_worker(number: int) -> ReplayOutput:
    global _SHARE_NUMBER
    assert _INPUT is not None
    _SHARE_NUMBER = number
    output = _replay_share(_INPUT, _SHARES[number])
    _PROGRESS[number] = len(_INPUT.trades)
    return output


def _replay_in_processes(data: ReplayInput, shares: list[list[str]], progress: TextIO | None) -> ReplayOutput:
    global _INPUT, _SHARES, _PROGRESS
    context = multiprocessing.get_context("fork")
    _INPUT, _SHARES, _PROGRESS = data, shares, context.Array("q", len(shares), lock=False)
    bar = ProgressBar(len(data.trades), stream=progress) if progress is not None else None
    try:
        with context.Pool(len(shares)) as pool:
            pending = pool.map_async(_run_worker, range(len(shares)))
            while not pending.ready():
                pending.wait(0.5)
                if bar is not None:
                    bar.update(min(_PROGRESS), f"{len(shares)} worker processes")
            outputs = pending.get()
    finally:
        _INPUT, _SHARES, _PROGRESS = None, [], None
    if bar is not None:
        bar.update(len(data.trades), f"{len(shares)} worker processes")
        bar.close()
    reports = sorted((r for output in outputs for r in output.reports), key=lambda r: r.wallet_id)
    return ReplayOutput(
        reports,
        _merge_decisions(data, [output.decisions for output in outputs]),
        sum(output.decided for output in outputs),
        outputs[0].settled,
    )


def _merge_decisions(data: ReplayInput, parts: list[list[Decision]]) -> list[Decision]:
    """The shares' decisions in the order one process makes them: by trade in log order, then wallet id."""
    if not data.keep_decisions:
        return []
    order: dict[str, int] = {}
    for number, trade in enumerate(data.trades):
        order.setdefault(trade.dedup_key, number)  # a fill logged twice is decided at its first copy
    merged = [decision for part in parts for decision in part]
    merged.sort(key=lambda d: (order[d.dedup_key], d.wallet_id))
    return merged
