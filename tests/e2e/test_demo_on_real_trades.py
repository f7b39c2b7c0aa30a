"""End to end, as a user runs it: `polycopy demo --capture` on real recorded Polymarket trades.

The Data API rows in ../shared/data carry the RTDS trade payload's fields, so they wrap into RTDS frames; the
simulator serves books for their markets. The summary the demo prints must agree with PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polycopy.infra.postgres import query
from polycopy.tools.chaos_servers import free_port
from polycopy.tools.demo import DemoOptions, run_demo
from producers.parsing import parse_rtds_frame
from producers.replay import CapturedFrame, frames_from_trade_rows, load_trade_rows, write_capture
from schemas.deadletter import DeadLetter
from schemas.topics import DEAD_LETTERS
from tests.builders import SHARED_DATA
from tests.integration.helpers import read_all

pytestmark = pytest.mark.e2e

TRADES_CSV = SHARED_DATA / "ibalgo__insider-trading-prediction" / "polymarket_trades.csv"
MALFORMED = '{"topic":"activity","type":"trades","timestamp":1760090000000,"payload":{"proxyWallet":"0xabc"'


def simulator_urls() -> dict[str, str]:
    """Settings that point the demo's simulator (and the worker's market channel) at free ports."""
    clob_port = free_port()
    return {
        "rtds_url": f"ws://127.0.0.1:{free_port()}",
        "clob_url": f"http://127.0.0.1:{clob_port}",
        "clob_market_ws_url": f"ws://127.0.0.1:{clob_port}/ws/market",
        "clob_user_ws_url": f"ws://127.0.0.1:{clob_port}/ws/user",
    }


@pytest.fixture
def capture(tmp_path: Path) -> tuple[Path, set[str]]:
    """The real trades as a capture, with one truncated frame in the middle; and their unique dedup keys."""
    frames = frames_from_trade_rows(load_trade_rows(TRADES_CSV))
    middle = len(frames) // 2
    frames.insert(middle, CapturedFrame(frames[middle].received_at_ms, MALFORMED))
    path = tmp_path / "capture.jsonl"
    write_capture(path, frames)
    keys = {t.dedup_key for f in frames for t in parse_rtds_frame(f.frame, f.received_at_ms).trades}
    return path, keys


def test_demo_on_real_trades_places_orders_and_its_summary_matches_postgres(
    settings_factory, capture
) -> None:  # type: ignore[no-untyped-def]
    path, unique_fills = capture
    settings = settings_factory(**simulator_urls())
    lines: list[str] = []
    result = run_demo(settings, DemoOptions(capture=path, duration_secs=120, drain_secs=30), out=lines.append)
    summary = result.summary
    printed = "\n".join(lines)
    assert "== summary" in printed and "orders" in printed

    # Every unique real fill was seen once; the API's repeated rows were dropped as duplicates.
    assert summary.trades_seen == len(unique_fills) > 1000
    assert summary.duplicate_trades > 0
    db = settings.database_url
    assert query(db, "SELECT count(*) FROM trades")[0][0] == summary.trades_seen
    assert {r[0] for r in query(db, "SELECT dedup_key FROM trades")} == unique_fills

    # Decisions by reason, orders by final status: the summary and the tables agree, and orders were placed.
    assert dict(query(db, "SELECT reason, count(*) FROM decisions GROUP BY reason")) == dict(
        summary.decisions_by_reason
    )
    assert dict(query(db, "SELECT status, count(*) FROM orders GROUP BY status")) == dict(
        summary.orders_by_status
    )
    assert summary.decisions_by_reason["copy"] == summary.orders > 0
    assert query(db, "SELECT count(*) FROM order_intents")[0][0] == summary.orders
    assert query(db, "SELECT count(*) FROM executor_journal")[0][0] == summary.orders

    # The malformed frame is in the dead-letter topic with its reason, and trades after it flowed.
    letters = read_all(settings, DEAD_LETTERS, DeadLetter)
    assert summary.dead_letters == 1
    assert [(letter.stage, letter.payload) for letter in letters] == [("rtds-parse", MALFORMED)]
    assert "invalid JSON" in letters[0].reason
    latest = max(json.loads(line)["received_at_ms"] for line in path.read_text().splitlines())
    assert query(db, "SELECT max(received_at_ms) FROM trades")[0][0] == latest


def test_replaying_the_same_capture_twice_yields_identical_decisions(
    settings_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Same ids, sizes, limits and reasons. BUY-only wallets with ample capital: SELL mirroring and capital
    limits also depend on when fills are reported, which a live pipeline does not fix."""
    from collections import Counter

    import yaml

    from schemas.decisions import Decision
    from schemas.topics import DECISIONS

    frames = frames_from_trade_rows(load_trade_rows(TRADES_CSV))[:1500]
    path = tmp_path / "capture.jsonl"
    write_capture(path, frames)
    leaders = Counter(parse_rtds_frame(f.frame, 1).trades[0].proxy_wallet for f in frames)
    wallets = tmp_path / "wallets.yaml"
    wallets.write_text(
        yaml.safe_dump(
            {
                "wallets": [
                    {
                        "id": "fixed",
                        "capital_usdc": "1000000",
                        "targets": [w for w, _ in leaders.most_common(15)],
                        "sizing": {"mode": "fixed_usdc", "value": "10"},
                        "max_slippage": "0.02",
                    },
                    {
                        "id": "ratio",
                        "capital_usdc": "1000000",
                        "targets": [w for w, _ in leaders.most_common(5)],
                        "sizing": {"mode": "ratio", "value": "0.1"},
                        "max_slippage": "0.01",
                        "min_leader_usdc": "5",
                    },
                ]
            }
        )
    )

    def replay() -> set[tuple[object, ...]]:
        settings = settings_factory(**simulator_urls())
        run_demo(settings, DemoOptions(capture=path, wallets=wallets, duration_secs=120), out=lambda _: None)
        return {
            (d.decision_id, d.wallet_id, d.reason, d.size, d.limit_price)
            for d in read_all(settings, DECISIONS, Decision)
        }

    first, second = replay(), replay()
    assert len(first) > 100
    assert {reason for _, _, reason, _, _ in first} >= {"copy"}
    assert first == second
