"""The benchmark's pure helpers: wallets, dedup in receive order, first report per order, latency splits."""

from __future__ import annotations

import pytest

from polycopy.tools.bench_figures import (
    LatencyStats,
    StepFigures,
    build_bench_wallets,
    first_report_per_order,
    judge_step,
    knee,
    measure_step,
    ratio,
    split_by_receive_time,
    unique_in_receive_order,
)
from polycopy.tools.profiles import frame_name, top_frames
from polycopy.tools.progress import render_bar
from polycopy.tools.soak import growth_after
from schemas.decisions import Decision
from schemas.orders import OrderType, ReportKind
from tests.builders import (
    OTHER_TRADER,
    RECEIVED_AT_MS,
    TRADER,
    WALLET_ID,
    build_decision,
    build_intent,
    build_report,
    build_trade,
)


def test_bench_wallets_are_fak_with_half_liquidity_and_follow_the_top_traders() -> None:
    wallets = build_bench_wallets([TRADER, OTHER_TRADER], count=4)

    assert len({wallet.id for wallet in wallets}) == len(wallets) == 4
    assert all(wallet.order_type is OrderType.FAK for wallet in wallets)
    assert all(str(wallet.liquidity_min_fill_ratio) == "0.5" for wallet in wallets)
    assert all(wallet.follows(TRADER) for wallet in wallets)


def test_twenty_bench_wallets_follow_every_one_of_a_thousand_traders_twice() -> None:
    traders = [f"0x{number:040x}" for number in range(1000)]

    wallets = build_bench_wallets(traders, count=20)

    assert len(wallets) == 20
    assert {len(wallet.targets) for wallet in wallets} == {100}
    assert all(sum(wallet.follows(trader) for wallet in wallets) == 2 for trader in traders)
    assert len({wallet.sizing.mode for wallet in wallets}) == 3  # the styles differ between wallets


def _decided(trade_ms: int, latency_ms: int, wallet: str = WALLET_ID) -> Decision:
    trade = build_trade(received_at_ms=trade_ms, transaction_hash=f"0x{trade_ms:064x}")
    return build_decision(
        wallet_id=wallet,
        dedup_key=trade.dedup_key,
        decision_id=f"{wallet}-{trade_ms}",
        received_at_ms=trade_ms,
        decided_at_ms=trade_ms + latency_ms,
    )


def test_a_step_keeps_up_when_every_due_decision_is_made_quickly() -> None:
    wallets = build_bench_wallets([TRADER, OTHER_TRADER], count=1)
    trades = [
        build_trade(received_at_ms=RECEIVED_AT_MS + i * 100, transaction_hash=f"0x{i:064x}")
        for i in range(40)
    ]
    decisions = {d.decision_id: d for d in (_decided(t.received_at_ms, 20) for t in trades)}

    figures = measure_step(50, (RECEIVED_AT_MS, RECEIVED_AT_MS + 4_000), trades, decisions, [], wallets)

    assert (figures.unique_trades, figures.decisions_due, figures.decisions) == (40, 40, 40)
    assert figures.kept_up and figures.verdict == "kept up"
    decided = figures.stages["receive -> decision"]
    assert decided is not None and decided.p99 == 20.0


def test_a_step_with_missing_decisions_or_a_slow_tail_or_a_backlog_did_not_keep_up() -> None:
    decided = LatencyStats(10.0, 300.0, 400.0, 10)

    slow = StepFigures(50, 10, 10, 10, 10, stages={"receive -> decision": decided})
    missing = StepFigures(50, 10, 10, 10, 9, stages={"receive -> decision": LatencyStats(1, 1, 1, 9)})
    growing = StepFigures(
        50,
        10,
        10,
        10,
        10,
        stages={"receive -> decision": LatencyStats(100, 200, 200, 10)},
        early_p50_ms=20,
        late_p50_ms=180,
    )

    assert judge_step(slow) == (False, "receive -> decision p99 300 ms > 250 ms")
    assert judge_step(missing) == (False, "only 9 of 10 decisions made")
    assert judge_step(growing)[0] is False and "backlog" in judge_step(growing)[1]


def test_the_knee_is_the_last_rate_kept_up_before_the_first_failure() -> None:
    def step(rate: float, kept_up: bool) -> StepFigures:
        figures = StepFigures(rate, 10)
        figures.kept_up = kept_up
        return figures

    assert knee([step(100, True), step(200, True), step(400, False), step(700, True)]) == 200
    assert knee([step(100, False)]) is None
    assert knee([]) is None


def test_collapsed_stacks_rank_frames_by_own_and_inclusive_samples() -> None:
    lines = [
        "main (a.py:1);handle (app.py:10);dump (json/encoder.py:5) 6",
        "main (a.py:1);handle (app.py:12);send (faust/topics.py:7) 3",
        "main (a.py:2) 1",
        "not a stack line",
    ]

    profile = top_frames(lines, top=2)

    assert profile.samples == 10
    assert profile.own == [("dump (json/encoder.py)", 0.6), ("send (faust/topics.py)", 0.3)]
    assert profile.inclusive == [("main (a.py)", 1.0), ("handle (app.py)", 0.9)]
    assert frame_name("f (/work/x/.venv/lib/python3.11/site-packages/faust/app.py:3)") == "f (faust/app.py)"


def test_the_progress_bar_shows_share_rate_and_time_left() -> None:
    assert render_bar(250, 1000, 2.0, "trades") == (
        "[#######.......................]  25%  250/1,000 trades  125/s  ETA 0m06s"
    )
    assert render_bar(0, 0, 0.0).startswith("[" + "#" * 30 + "] 100%")


def test_rss_growth_counts_from_the_first_sample_after_warm_up() -> None:
    samples = [(10.0, 100), (60.0, 200), (130.0, 220), (600.0, 231)]

    assert growth_after(samples, 120) == (220, 231)
    assert growth_after(samples, 1000) == (231, 231)
    assert growth_after([], 120) == (0, 0)


def test_duplicate_fills_keep_their_first_copy_and_trades_come_out_in_receive_order() -> None:
    late = build_trade(received_at_ms=RECEIVED_AT_MS + 10)
    early = build_trade(received_at_ms=RECEIVED_AT_MS, transaction_hash="0x" + "f2" * 32)
    late_copy = build_trade(received_at_ms=RECEIVED_AT_MS + 20)

    assert unique_in_receive_order([late, early, late_copy]) == [early, late]


def test_only_the_first_report_of_an_order_is_kept() -> None:
    intent = build_intent()
    fill = build_report(ReportKind.FILL, intent=intent)
    cancel = build_report(ReportKind.CANCELLED, intent=intent)
    other = build_report(intent=build_intent(dedup_key="d" * 32))

    assert first_report_per_order([fill, cancel, other]) == [fill, other]


def test_latency_stats_of_no_samples_is_none_and_of_samples_is_nearest_rank() -> None:
    assert LatencyStats.of([]) is None
    assert LatencyStats.of([float(v) for v in range(1, 101)]) == LatencyStats(50.0, 99.0, 100.0, 100)


@pytest.mark.parametrize(("numerator", "denominator", "expected"), [(10, 4, 2.5), (1, 0, float("inf"))])
def test_ratio_over_zero_is_infinite(numerator: float, denominator: float, expected: float) -> None:
    assert ratio(numerator, denominator) == expected


def test_a_growing_latency_shows_in_the_last_window_and_not_in_the_first() -> None:
    samples = [(t, 10.0 + t) for t in range(0, 20_000, 100)]

    early, late = split_by_receive_time(samples, 5_000)

    assert early is not None and late is not None
    assert early < 5_100 < late
    assert split_by_receive_time([], 5_000) == (None, None)


def test_only_picks_bench_parts_and_an_unknown_part_names_the_choices() -> None:
    from polycopy.cli import build_parser
    from polycopy.tools.bench_figures import BENCH_PARTS, BenchOptions, parse_parts

    assert parse_parts("sink, whatif") == {"sink", "whatif"}
    with pytest.raises(ValueError, match="unknown bench part.*sinks: choose from stages, sweep, producer"):
        parse_parts("sinks")
    args = build_parser().parse_args(["bench", "--only", "sink"])
    assert args.only == {"sink"}
    assert build_parser().parse_args(["bench"]).only == set(BENCH_PARTS)  # default: every part
    options = BenchOptions(only=args.only)
    assert [part for part in BENCH_PARTS if options.runs(part)] == ["sink"]
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["bench"].format_help().split())  # type: ignore[union-attr]
    assert "from: stages" in help_text and "sweep, producer, sink, whatif, live" in help_text
