"""The short seeded chaos run (issue 8): the whole pipeline on a Kafka and a PostgreSQL of its own under 10
faults (kill -9 of the worker and of the executor, SIGTERM of the worker, a broker restart, PostgreSQL
stopped, then others), and every invariant holds: each (trade, follower) pair decided exactly once, no intent
lost, no order doubled, no reservation leaked, every order event in PostgreSQL. `make chaos` is the long form.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polycopy.tools.chaos import ChaosOptions, run_chaos


@pytest.mark.timeout(2400)  # its own servers start, restart and stop; a busy machine makes that slow
def test_ten_seeded_faults_break_no_invariant(tmp_path: Path) -> None:
    lines: list[str] = []
    options = ChaosOptions(faults=10, seed=3, trades_per_sec=3, postgres_outage_secs=10, data_dir=tmp_path)

    findings = run_chaos(options, out=lines.append)

    print("\n".join(lines))  # the table, for whoever reads the test log
    assert sum(findings.faults.values()) == 10
    first = {"kill -9 worker", "kill -9 executor", "broker restart", "postgres stopped"}
    assert first <= set(findings.faults)
    assert findings.decisions_expected > 0 and findings.decisions_found == findings.decisions_expected
    assert findings.passed, findings.render()
