"""End to end, as a user runs it: `polycopy demo --live-fake` (`make run LIVE_FAKE=1`). The live wallet's
orders are signed with a throwaway key by the live executor and accepted by the simulator's fake CLOB; the
summary lists them by status as PostgreSQL holds them, every order event of theirs is in PostgreSQL, and the
key appears nowhere: not in the output, the logs, or the wallet file."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycopy.infra.postgres import query
from polycopy.tools import demo
from polycopy.tools.demo import DemoOptions, run_demo
from schemas.orders import ExecutionMode, OrderEvent
from schemas.topics import ORDER_EVENTS
from tests.e2e.test_demo_on_real_trades import simulator_urls
from tests.integration.helpers import read_all

pytestmark = pytest.mark.e2e

KEY_HEX = "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"


def test_the_live_fake_demo_sends_signed_orders_to_the_fake_clob_and_lists_them_by_status(
    settings_factory, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(demo.secrets, "token_hex", lambda _: KEY_HEX)  # to look for it everywhere after
    settings = settings_factory(**simulator_urls())
    lines: list[str] = []

    run_demo(settings, DemoOptions(duration_secs=40, drain_secs=30, live_fake=True), out=lines.append)

    printed = "\n".join(lines)
    db = settings.database_url
    live = dict(query(db, "SELECT status, count(*) FROM orders WHERE mode = 'live' GROUP BY status"))
    assert sum(live.values()) > 0, printed
    assert "== live orders at the fake CLOB" in printed
    for status, count in live.items():
        assert any(line.split()[:2] == [status, str(count)] for line in lines), printed
    # Every live order event on the topic is a row in PostgreSQL.
    events = [e for e in read_all(settings, ORDER_EVENTS, OrderEvent) if e.mode is ExecutionMode.LIVE]
    rows = {r[0] for r in query(db, "SELECT event_id FROM order_events WHERE left(order_id, 2) = '0x'")}
    assert events and {e.event_id for e in events} == rows
    # Venue order ids (the EIP-712 hashes computed before sending), not paper ids.
    assert all(r[0].startswith("0x") for r in query(db, "SELECT order_id FROM orders WHERE mode = 'live'"))
    # The throwaway key is nowhere to be read.
    logs = [path.read_text(errors="replace") for path in Path(settings.data_dir).rglob("*") if path.is_file()]
    assert KEY_HEX not in printed and not any(KEY_HEX in text for text in logs)
