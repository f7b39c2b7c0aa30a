"""The bench's figures: its options and wallets, latency statistics, the pure helpers that read the pipeline's
output into per-stage figures, and the verdict of a sweep step (kept up or not) and the knee."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from polycopy.tools.summary import percentile
from processors.core.targeting import select_followers
from schemas.decisions import Decision
from schemas.orders import ExecutionReport
from schemas.trades import RawTrade
from schemas.wallets import WalletConfig

VENUE_TRADES_PER_SEC = 50.0  # the venue's observed fill rate; the producer must keep up with 100x that
DECISION_P99_LIMIT_MS = 250.0  # a sweep step keeps up when receive -> decision p99 stays under this
Out = Callable[[str], None]


# The parts of `polycopy bench`, in the order they run; `--only` picks some of them.
BENCH_PARTS = ("stages", "sweep", "producer", "sink", "whatif", "live")


def parse_parts(text: str) -> frozenset[str]:
    """`--only`'s comma-separated parts; an unknown one raises ValueError naming the choices."""
    parts = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(parts - set(BENCH_PARTS))
    if unknown or not parts:
        raise ValueError(
            f"unknown bench part(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(BENCH_PARTS)}"
        )
    return parts


@dataclass(frozen=True)
class BenchOptions:
    """What the benchmark runs: the measured rate and how long, the sweep, the wallets, the offline parts."""

    rate: float = 50
    duration_secs: float = 30
    seed: int = 11
    # From below the worker's knee today (20-35 trades/s) up to the 1,000 trades/s target and past it.
    sweep: tuple[float, ...] = (10, 20, 35, 50, 100, 200, 400, 700, 1000, 1500, 2000)
    step_secs: float = 15
    wallets: int = 20
    traders: int = 1000
    simulator_wallets: int = 2000  # the simulated venue's wallets; the top `traders` of them are followed
    whatif_trades: int = 200_000
    whatif_workers: int = 2  # processes the whatif replay splits the wallets over
    sink_rows: int = 100_000
    producer_frames: int = 20_000
    profile_dir: Path | None = None  # py-spy profiles of the worker and the executor during the main run
    ports: tuple[int, int] = (18865, 18180)  # RTDS, CLOB: away from the demo's 18765/18080
    only: frozenset[str] = frozenset(BENCH_PARTS)  # which parts run (`--only`)
    keep_topics: bool = False  # leave the run's topics on the broker, to read them back

    def runs(self, part: str) -> bool:
        """True when this part of the bench runs."""
        return part in self.only


@dataclass(frozen=True)
class LatencyStats:
    """Nearest-rank p50/p99 and the maximum of a sample, in its own unit."""

    p50: float
    p99: float
    max: float
    count: int

    @classmethod
    def of(cls, values: list[float]) -> LatencyStats | None:
        """Stats of a sample; None when it is empty."""
        if not values:
            return None
        return cls(percentile(values, 0.5) or 0.0, percentile(values, 0.99) or 0.0, max(values), len(values))


STAGES = (
    "feed -> receive",
    "receive -> decision",
    "decision -> order sent",
    "order sent -> reported",
    "receive -> order sent",
)


@dataclass
class StepFigures:
    """One window of the pipeline at one offered rate: counts, per-stage latency and the verdict."""

    offered: float
    secs: float
    unique_trades: int = 0
    decisions_due: int = 0
    decisions: int = 0
    orders: int = 0
    stages: dict[str, LatencyStats | None] = field(default_factory=dict)
    early_p50_ms: float | None = None
    late_p50_ms: float | None = None
    kept_up: bool = False
    verdict: str = ""
    cpu_secs: dict[str, float] = field(default_factory=dict)  # per component, over the step and its drain
    logged: dict[str, int] = field(default_factory=dict)  # decisions and reports logged over the same time

    @property
    def fed_per_sec(self) -> float:
        return ratio(self.unique_trades, self.secs)


@dataclass
class BenchResult:
    """Every figure the run printed, for callers that want numbers rather than text."""

    main: StepFigures | None = None
    sweep: list[StepFigures] = field(default_factory=list)
    inprocess_ms: LatencyStats | None = None
    inprocess_followed_ms: LatencyStats | None = None
    inprocess_trades_per_sec: float = 0.0
    publish_frames_per_sec: float = 0.0
    parse_frames_per_sec: float = 0.0
    sink_rows_per_sec: float = 0.0
    whatif_trades: int = 0
    whatif_trades_per_sec: float = 0.0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def knee(self) -> float | None:
        return knee(self.sweep)


def build_bench_wallets(traders: list[str], count: int = 20) -> list[WalletConfig]:
    """`count` paper wallets (FAK, liquidity ratio 0.5, capital that never runs out) over `traders`: wallet i
    follows a window of 2 * len(traders) / count traders starting at i * len(traders) / count, so together
    they follow every trader, each by two wallets (one when count is 1). Sizing and sides cycle through four
    styles, as a deployment's wallets would differ."""
    common = {"capital_usdc": "1000000", "order_type": "FAK", "liquidity_min_fill_ratio": "0.5"}
    styles: list[dict[str, object]] = [
        {"sizing": {"mode": "fixed_usdc", "value": "10"}},
        {
            "sides": ["BUY", "SELL"],
            "sizing": {"mode": "ratio", "value": "0.25"},
            "max_order_usdc": "50",
            "max_slippage": "0.03",
        },
        {"sizing": {"mode": "percent_of_capital", "value": "0.01"}},
        {"sides": ["BUY", "SELL"], "sizing": {"mode": "fixed_usdc", "value": "5"}},
    ]
    stride = max(len(traders) // count, 1)
    width = min(2 * stride, len(traders)) if count > 1 else len(traders)
    wallets = []
    for number in range(count):
        start = number * stride
        targets = [traders[(start + offset) % len(traders)] for offset in range(width)]
        spec = {"id": f"bench-{number:02d}", "targets": targets} | styles[number % len(styles)]
        wallets.append(WalletConfig.model_validate(common | spec))
    return wallets


def unique_in_receive_order(trades: Iterable[RawTrade]) -> list[RawTrade]:
    """The first copy of every fill (by dedup key), ordered by receive time (stable across partitions)."""
    first: dict[str, RawTrade] = {}
    for trade in trades:
        first.setdefault(trade.dedup_key, trade)
    return sorted(first.values(), key=lambda trade: trade.received_at_ms)


def first_report_per_order(reports: Iterable[ExecutionReport]) -> list[ExecutionReport]:
    """One report per order: the first read (an order's reports share a key, hence a partition and order)."""
    first: dict[str, ExecutionReport] = {}
    for report in reports:
        first.setdefault(report.order_id, report)
    return list(first.values())


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or infinity for a zero denominator (a tax over nothing)."""
    return numerator / denominator if denominator > 0 else float("inf")


def split_by_receive_time(samples: list[tuple[int, float]], window_ms: int) -> tuple[float | None, ...]:
    """p50 of the (received_at_ms, latency) samples in the first and in the last `window_ms` of the feed.

    A pipeline that keeps up shows about the same figure twice; a growing one means a backlog.
    """
    if not samples:
        return None, None
    first, last = min(t for t, _ in samples), max(t for t, _ in samples)
    return (
        percentile([v for t, v in samples if t < first + window_ms], 0.5),
        percentile([v for t, v in samples if t > last - window_ms], 0.5),
    )


def measure_step(
    offered: float,
    window: tuple[int, int],
    trades: Iterable[RawTrade],
    decisions: Mapping[str, Decision],
    reports: Iterable[ExecutionReport],
    wallets: list[WalletConfig],
) -> StepFigures:
    """The figures of the trades received in `window` (epoch ms, end excluded): per-stage latency, the
    decisions due (one per trade and follower) against those made, and whether the pipeline kept up."""
    start, end = window

    def inside(received_at_ms: int) -> bool:
        return start <= received_at_ms < end

    unique = [trade for trade in unique_in_receive_order(trades) if inside(trade.received_at_ms)]
    due = sum(len(select_followers(trade, wallets)) for trade in unique)
    made = [d for d in decisions.values() if inside(d.received_at_ms)]
    sent = [r for r in first_report_per_order(reports) if r.received_at_ms > 0 and inside(r.received_at_ms)]
    figures = StepFigures(offered, (end - start) / 1000, len(unique), due, len(made), len(sent))
    figures.stages = {
        "feed -> receive": LatencyStats.of([float(t.received_at_ms - t.timestamp * 1000) for t in unique]),
        "receive -> decision": LatencyStats.of([float(d.decided_at_ms - d.received_at_ms) for d in made]),
        "decision -> order sent": LatencyStats.of(
            [
                float(r.sent_at_ms - decisions[r.intent_id].decided_at_ms)
                for r in sent
                if r.intent_id in decisions
            ]
        ),
        "order sent -> reported": LatencyStats.of([float(r.reported_at_ms - r.sent_at_ms) for r in sent]),
        "receive -> order sent": LatencyStats.of([float(r.sent_at_ms - r.received_at_ms) for r in sent]),
    }
    early, late = split_by_receive_time(
        [(d.received_at_ms, float(d.decided_at_ms - d.received_at_ms)) for d in made],
        max(int((end - start) / 4), 1000),
    )
    figures.early_p50_ms, figures.late_p50_ms = early, late
    figures.kept_up, figures.verdict = judge_step(figures)
    return figures


def judge_step(figures: StepFigures) -> tuple[bool, str]:
    """Kept up: every due decision made, receive -> decision p99 within the limit, and the latency of the
    last quarter of the window not growing over the first (a backlog)."""
    decided = figures.stages.get("receive -> decision")
    if figures.decisions_due == 0:
        return False, "no decision was due (no trade from a followed trader)"
    if figures.decisions < figures.decisions_due:
        return False, f"only {figures.decisions} of {figures.decisions_due} decisions made"
    if decided is None or decided.p99 > DECISION_P99_LIMIT_MS:
        p99 = f"{decided.p99:.0f} ms" if decided else "n/a"
        return False, f"receive -> decision p99 {p99} > {DECISION_P99_LIMIT_MS:.0f} ms"
    early, late = figures.early_p50_ms or 0.0, figures.late_p50_ms or 0.0
    if late > 2 * early + 100:
        return False, f"backlog: p50 {early:.0f} ms early in the window, {late:.0f} ms late"
    return True, "kept up"


def knee(steps: Iterable[StepFigures]) -> float | None:
    """The highest offered rate of the ascending sweep before its first step that did not keep up."""
    best = None
    for step in steps:
        if not step.kept_up:
            break
        best = step.offered
    return best


def format_ms(stats: LatencyStats | None, digits: int = 0) -> str:
    if stats is None:
        return "n/a (no samples)"
    return (
        f"p50 {stats.p50:.{digits}f} ms, p99 {stats.p99:.{digits}f} ms, max {stats.max:.{digits}f} ms "
        f"(n={stats.count})"
    )


def cell(stats: LatencyStats | None, digits: int = 0) -> str:
    """`p50 / p99 ms` for a table cell."""
    return f"{stats.p50:.{digits}f} / {stats.p99:.{digits}f} ms" if stats else "n/a"


def load_average() -> tuple[float, float, float]:
    return os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)


def describe_load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*load_average())


def describe_machine() -> str:
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            model,
        )
    cpus = f"{os.cpu_count()} CPUs ({model or 'unknown CPU'})"
    return f"{cpus}, Python {platform.python_version()}, {describe_load()}"
