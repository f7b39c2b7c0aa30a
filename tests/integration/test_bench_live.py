"""The live part of `make bench` over the real broker and PostgreSQL: every intent becomes one order at the
fake CLOB, and both latencies are measured from the executor's own reports (no wall-clock figure asserted)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polycopy.infra.settings import PolycopySettings
from polycopy.tools.bench_live import run_live

pytestmark = pytest.mark.integration


def test_the_live_bench_sends_each_intent_once_and_measures_intent_to_post(
    settings_factory: Callable[..., PolycopySettings],
) -> None:
    lines: list[str] = []

    figures = run_live(settings_factory(), seed=5, out=lines.append, orders=10, rate=20.0)

    assert figures.orders_at_venue == 10
    assert figures.intent_to_post is not None and figures.intent_to_post.count == 10
    assert figures.post_to_answer is not None and figures.post_to_answer.count == 10
    assert 0 < figures.sign_p50_ms <= figures.sign_p99_ms
    printed = "\n".join(lines)
    assert "intent -> POST sent" in printed and "build + sign (coincurve)" in printed
