"""`make soak`: the bench's pipeline fed at a steady rate for minutes while the worker's resident memory is
sampled; prints the RSS growth after warm-up (the target: under 10 %)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from polycopy.infra.settings import PolycopySettings
from polycopy.tools.bench import bench_settings, bench_wallets, clean_up_run
from polycopy.tools.bench_figures import BenchOptions, Out, describe_load, describe_machine
from polycopy.tools.bench_pipeline import BenchPipeline

SAMPLE_SECS = 10.0


@dataclass(frozen=True)
class SoakOptions:
    rate: float = 200
    duration_secs: float = 600
    warm_up_secs: float = 120
    seed: int = 11


@dataclass(frozen=True)
class SoakResult:
    samples: list[tuple[float, int]]  # (seconds since the feed started, worker RSS in KiB)
    warm_rss_kib: int
    final_rss_kib: int

    @property
    def growth(self) -> float:
        return (self.final_rss_kib - self.warm_rss_kib) / self.warm_rss_kib if self.warm_rss_kib else 0.0


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (0 when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def growth_after(samples: list[tuple[float, int]], warm_up_secs: float) -> tuple[int, int]:
    """(RSS at the first sample after warm-up, RSS at the last sample)."""
    warm = next((rss for at, rss in samples if at >= warm_up_secs), samples[-1][1] if samples else 0)
    return warm, samples[-1][1] if samples else 0


def run_soak(settings: PolycopySettings, options: SoakOptions, out: Out = print) -> SoakResult:
    bench_options = BenchOptions(rate=options.rate, duration_secs=options.duration_secs, seed=options.seed)
    bench, database = bench_settings(settings, bench_options, "soak")
    out(f"polycopy soak: {describe_machine()}")
    out(
        f"  {options.rate:g} trades/s for {options.duration_secs:g} s, worker RSS every {SAMPLE_SECS:g} s, "
        f"growth counted after {options.warm_up_secs:g} s; topics {bench.topic_prefix}*"
    )
    wallets = bench_wallets(bench_options)
    pipeline = BenchPipeline(
        bench, wallets, seed=options.seed, simulator_wallets=bench_options.simulator_wallets, out=out
    )
    samples: list[tuple[float, int]] = []
    try:
        pipeline.start()
        worker = pipeline.pid("worker")
        pipeline.set_rate(options.rate)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < options.duration_secs:
            time.sleep(min(SAMPLE_SECS, max(options.duration_secs - elapsed, 0.05)))
            pipeline.processes.check()
            at = time.monotonic() - started
            samples.append((at, rss_kib(worker)))
            out(
                f"  [{at:5.0f} s] worker RSS {samples[-1][1] / 1024:7.1f} MiB | {pipeline.progress()} | "
                f"{describe_load()}"
            )
        pipeline.set_rate(0)
    finally:
        pipeline.stop()
        clean_up_run(settings, bench, database)
    warm, final = growth_after(samples, options.warm_up_secs)
    result = SoakResult(samples, warm, final)
    out(
        f"\n  worker RSS {warm / 1024:.1f} MiB after {options.warm_up_secs:g} s warm-up, "
        f"{final / 1024:.1f} MiB at the end: growth {result.growth:+.1%} (target < 10 %)"
    )
    return result
