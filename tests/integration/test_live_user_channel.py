"""The live executor and the venue's user channel, with the real client against the fake CLOB (real
signatures, broker and PostgreSQL): with reconciliation passes an hour apart, a resting order the venue fills
later is still reported filled, then confirmed, promptly, because the channel's events name it; with the
channel unreachable, polling alone reconciles as before and nothing is refused at start-up."""

from __future__ import annotations

import socket
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from polycopy.infra.kafka import now_ms
from polycopy.infra.settings import PolycopySettings
from schemas.orders import ReportKind
from tests.integration.helpers import wait_until
from tests.integration.test_live_executor import (
    PRIVATE_KEY,
    LiveDeployment,
    RunningExecutor,
    book,
)

pytestmark = pytest.mark.integration

D = Decimal
HOUR_SECS = 3600.0


def deploy(
    simulator_factory: Callable[..., Any],
    settings_factory: Callable[..., PolycopySettings],
    **overrides: Any,
) -> LiveDeployment:
    sim = simulator_factory(seed=17, auto_trades=False, drift_interval_secs=3600.0)
    script = sim.server.clob_orders.exchange.script
    script.mine_ms, script.confirm_ms = 100, 400
    values: dict[str, Any] = {
        "clob_url": sim.server.clob_url,
        "clob_user_ws_url": sim.server.clob_user_ws_url,
        "execution_mode": "live",
        "private_key": PRIVATE_KEY,
        "clob_timeout_secs": 2.0,
    }
    return LiveDeployment(sim, settings_factory(**(values | overrides)))


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{probe.getsockname()[1]}/ws/user"


def test_a_resting_order_filled_later_is_reported_through_the_channels_hint_with_passes_an_hour_apart(
    simulator_factory: Callable[..., Any], settings_factory: Callable[..., PolycopySettings]
) -> None:
    live = deploy(simulator_factory, settings_factory, live_reconcile_secs=HOUR_SECS)
    intent = live.intent(marketable=False)
    with RunningExecutor(live.settings) as executor:
        wait_until(lambda: live.sim.server.user_channel.authenticated_clients == 1, 60, "the user channel")
        assert executor.metrics.user_channel_connected._value.get() == 1
        live.send(intent)
        order_id = live.wait_for(intent, lambda k: "accepted" in k)[0].order_id

        live.exchange.fill_resting(order_id, D("10"), now_ms())
        # The one pass since placement ran at once; the next is an hour away: only a hint can report these.
        reports = live.wait_for(intent, lambda k: "fill_confirmed" in k)

    assert [(r.kind, r.matched_size) for r in reports][:2] == [
        (ReportKind.ACCEPTED, D(0)),
        (ReportKind.FILL, D("10")),
    ]
    ledger, record, events = book(reports)
    assert events == ["OrderPlaced", "OrderFilled"]
    assert ledger.positions[intent.asset].shares == D("10") and ledger.reserved == 0
    assert live.exchange.posts_received == 1


def test_with_the_channel_unreachable_polling_alone_reconciles_and_nothing_is_refused(
    simulator_factory: Callable[..., Any], settings_factory: Callable[..., PolycopySettings]
) -> None:
    live = deploy(
        simulator_factory, settings_factory, clob_user_ws_url=closed_port_url(), live_reconcile_secs=0.2
    )
    intent = live.intent(marketable=False)
    with RunningExecutor(live.settings) as executor:
        live.send(intent)
        order_id = live.wait_for(intent, lambda k: "accepted" in k)[0].order_id
        live.exchange.fill_resting(order_id, D("4"), now_ms())
        live.wait_for(intent, lambda k: "fill" in k)
        live.exchange.fill_resting(order_id, D("6"), now_ms())
        reports = live.wait_for(intent, lambda k: k.count("fill_confirmed") >= 2)
        assert executor.metrics.user_channel_connected._value.get() == 0

    assert [r.matched_size for r in reports if r.kind is ReportKind.FILL] == [D("4"), D("10")]
    assert book(reports)[2] == ["OrderPlaced", "OrderPartialFill", "OrderFilled"]
    assert live.sim.server.user_channel.authenticated_clients == 0
