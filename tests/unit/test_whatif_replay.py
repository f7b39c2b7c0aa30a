"""`polycopy whatif`'s replay loop: wallets split over worker processes decide exactly as in one process,
and the shares are balanced by the evaluations each wallet will have."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

from polycopy.tools.whatif_replay import ReplayInput, count_evaluations, replay, split_wallets
from processors.core.engine import StaticReference
from schemas.base import Side
from tests.builders import (
    ASSET,
    OTHER_ASSET,
    OTHER_TRADER,
    TRADER,
    build_book,
    build_resolution,
    build_trade,
    build_wallet,
)

START_MS = 1_790_000_000_000
BOOK = build_book(asks=[("0.50", "40"), ("0.60", "60")], bids=[("0.45", "50"), ("0.40", "80")])


def build_input(trades: int = 300, *, keep: bool = True) -> ReplayInput:
    rng = random.Random(7)
    wallets = [
        build_wallet(id="fixed", capital_usdc=Decimal("200"), max_market_exposure_usdc=Decimal("60")),
        build_wallet(id="ratio", sizing={"mode": "ratio", "value": "0.3"}, max_order_usdc=Decimal("25")),
        build_wallet(id="other", targets=(OTHER_TRADER,), liquidity_min_fill_ratio=Decimal("0.9")),
        build_wallet(id="both", targets=(TRADER, OTHER_TRADER), capital_usdc=Decimal("40")),
        build_wallet(id="idle", targets=("0x" + "ee" * 20,)),
    ]
    logged = []
    for n in range(trades):
        logged.append(
            build_trade(
                transaction_hash="0x" + f"{n:064x}",
                proxy_wallet=rng.choice([TRADER, OTHER_TRADER]),
                asset=rng.choice([ASSET, OTHER_ASSET]),
                side=rng.choice([Side.BUY, Side.BUY, Side.SELL]),
                price=Decimal(rng.randint(30, 70)) / 100,
                size=Decimal(rng.randint(5, 200)),
                received_at_ms=START_MS + n * 1000,
                timestamp=(START_MS + n * 1000) // 1000 - 1,
            )
        )
    logged.insert(50, logged[10])  # a fill logged twice is decided once
    books = [None if n % 17 == 0 else BOOK for n in range(len(logged))]
    resolution = build_resolution(resolved_at_ms=START_MS + trades * 600)
    return ReplayInput(
        logged, books, StaticReference.build(wallets), [resolution], None, START_MS + trades * 1000, keep
    )


def test_wallets_split_over_processes_decide_and_report_exactly_as_in_one() -> None:
    data = build_input()
    alone, split = replay(data, workers=1), replay(data, workers=3)

    assert split.decisions == alone.decisions  # the same decisions, in the same order
    reasons = {"copy", "market_unknown", "no_position", "market_closed", "exposure_cap", "capital_exhausted"}
    assert {d.reason for d in alone.decisions} >= reasons  # settled, sold, capped: state matters
    assert split.decided == alone.decided == len(alone.decisions)
    assert split.settled == alone.settled == 1
    assert [r.wallet_id for r in split.reports] == ["both", "fixed", "idle", "other", "ratio"]
    for one, other in zip(alone.reports, split.reports, strict=True):
        assert (one.considered, one.copied, one.skipped) == (other.considered, other.copied, other.skipped)
        assert one.snapshot == other.snapshot and one.history == other.history


def test_a_run_that_keeps_no_decisions_still_counts_them() -> None:
    result = replay(build_input(keep=False), workers=2)
    assert result.decisions == [] and result.decided > 0


def test_shares_balance_the_evaluations_and_keep_wallet_id_order() -> None:
    load = Counter({"a": 900, "b": 500, "c": 400, "d": 10, "e": 0})
    shares = split_wallets(sorted(load), load, 2)
    assert sorted(shares) == [["a", "d"], ["b", "c", "e"]]  # 910 and 900 evaluations
    assert split_wallets(["x", "y"], Counter(), 4) == [["x"], ["y"]]  # never an empty share
    assert split_wallets(["x"], Counter(), 1) == [["x"]]


def test_the_evaluations_are_counted_per_wallet_as_the_target_filter_fans_out() -> None:
    counts = count_evaluations(build_input(40))
    assert counts["both"] == 40 and counts["idle"] == 0
    assert counts["fixed"] + counts["other"] == 40
