"""The MCP server's pure parts and edges without a broker: caps and how close each is, the rule behind every
decision reason (in the policy's order), wallet files, the bearer-token guard, and tool errors as the official
client sees them from an in-process server."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from mcp import Client

from polycopy.infra.postgres import DatabaseError
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.mcp.models import StrategyList, ToolInputError
from polycopy.tools.mcp.reader import ORDER_ID, check_wallet_id
from polycopy.tools.mcp.replay import parse_wallet_yaml, read_wallets, run_bounded_whatif
from polycopy.tools.mcp.risk import build_market_exposures, build_risk_state
from polycopy.tools.mcp.rules import RULES, explain_reason
from polycopy.tools.mcp.server import BearerTokenGuard, build_server
from schemas.base import Side
from schemas.control import KillSwitch
from schemas.decisions import SkipReason
from schemas.portfolio import OpenOrderView
from tests.builders import REPO_ROOT, build_position_view, build_wallet, build_wallet_snapshot

MARKET_A, MARKET_B = "0x" + "a" * 64, "0x" + "b" * 64


def open_order(condition_id: str, reserved: str) -> OpenOrderView:
    return OpenOrderView(
        intent_id="i" * 32,
        status="placed",
        side=Side.BUY,
        asset="123",
        condition_id=condition_id,
        size=Decimal("20"),
        matched_size=Decimal("0"),
        limit_price=Decimal("0.5"),
        reserved_usdc=Decimal(reserved),
    )


def test_market_exposure_is_position_cost_plus_reserved_orders_per_market() -> None:
    snapshot = build_wallet_snapshot(
        open_positions=(
            build_position_view(asset="1", condition_id=MARKET_A, cost_usdc=Decimal("10")),
            build_position_view(asset="2", condition_id=MARKET_A, cost_usdc=Decimal("5")),
            build_position_view(asset="3", condition_id=MARKET_B, cost_usdc=Decimal("7")),
        ),
        open_orders=(open_order(MARKET_B, "3"), open_order(MARKET_A, "1.5")),
    )
    assert build_market_exposures(snapshot) == {MARKET_A: Decimal("16.5"), MARKET_B: Decimal("10")}


def test_every_configured_cap_is_reported_with_its_usage_and_headroom() -> None:
    wallet = build_wallet(
        max_order_usdc=Decimal("25"),
        max_total_exposure_usdc=Decimal("100"),
        max_market_exposure_usdc=Decimal("20"),
        max_daily_loss_usdc=Decimal("50"),
        max_open_orders=4,
    )
    snapshot = build_wallet_snapshot(
        capital_usdc=Decimal("1000"),
        realised_pnl_usdc=Decimal("-30"),
        reserved_usdc=Decimal("3"),
        deployed_usdc=Decimal("17"),
        available_usdc=Decimal("950"),
        daily_loss_usdc=Decimal("40"),
        open_positions=(
            build_position_view(asset="1", condition_id=MARKET_A, cost_usdc=Decimal("10")),
            build_position_view(asset="3", condition_id=MARKET_B, cost_usdc=Decimal("7")),
        ),
        open_orders=(open_order(MARKET_B, "3"),),
    )
    risk = build_risk_state(wallet, snapshot)
    caps = {(c.cap, c.scope): c for c in risk.caps}
    capital = caps["capital_usdc", "wallet"]
    assert (capital.limit, capital.used, capital.headroom) == (Decimal("970"), Decimal("20"), Decimal("950"))
    assert caps["max_order_usdc", "per order"].used is None
    total = caps["max_total_exposure_usdc", "wallet"]
    assert (total.used, total.headroom, total.used_fraction) == (Decimal("20"), Decimal("80"), Decimal("0.2"))
    assert [(c.scope, c.used) for c in risk.caps if c.cap == "max_market_exposure_usdc"] == [
        (f"market {MARKET_A}", Decimal("10")),
        (f"market {MARKET_B}", Decimal("10")),
    ]
    daily = caps["max_daily_loss_usdc", "day 2026-07-17"]
    assert (daily.used, daily.used_fraction) == (Decimal("40"), Decimal("0.8"))
    orders = caps["max_open_orders", "wallet"]
    assert (orders.used, orders.headroom) == (Decimal("1"), Decimal("3"))
    assert risk.kill_switch is None


def test_a_wallet_without_caps_reports_its_capital_only_and_an_engaged_kill_switch() -> None:
    engaged = KillSwitch(wallet_id="*", engaged=True, reason="venue incident", set_at_ms=1)
    risk = build_risk_state(build_wallet(), build_wallet_snapshot(), engaged)
    assert [c.cap for c in risk.caps] == ["capital_usdc"]
    assert risk.kill_switch == engaged
    released = KillSwitch(wallet_id="*", engaged=False, set_at_ms=2)
    assert build_risk_state(build_wallet(), build_wallet_snapshot(), released).kill_switch is None


def test_every_skip_reason_has_a_rule_in_the_order_the_readme_documents() -> None:
    assert set(RULES) == set(SkipReason)
    readme = (REPO_ROOT / "README.md").read_text()
    paragraph = readme[readme.index("recorded reason:") : readme.index("otherwise `copy`")]
    assert list(RULES) == re.findall(r"`([a-z_]+)`", paragraph)


@pytest.mark.parametrize("reason", [*SkipReason, "copy"])
def test_a_reason_is_explained_with_the_wallet_settings_it_reads(reason: str) -> None:
    wallet = build_wallet(max_market_exposure_usdc=Decimal("200"), categories_deny=("sports",))
    rule = explain_reason(reason, wallet)
    assert rule.reason == reason and rule.rule
    assert rule.position == (0 if reason == "copy" else list(RULES).index(reason) + 1)
    configured = wallet.model_dump(mode="json")
    for name in rule.settings:
        assert name in configured
    if reason == SkipReason.EXPOSURE_CAP:
        assert rule.settings == {"max_market_exposure_usdc": "200", "max_total_exposure_usdc": None}
    if reason == SkipReason.CATEGORY_DENIED:
        assert rule.settings == {"categories_allow": None, "categories_deny": "sports"}


def test_an_unknown_reason_or_a_removed_wallet_still_gets_an_answer() -> None:
    assert explain_reason("future_rule", None).position == -1
    assert explain_reason(SkipReason.PRICE_OUT_OF_BAND, None).settings == {
        "price_min": None,
        "price_max": None,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wallets: [", "wallets_yaml: not YAML"),
        ("wallets: [{id: x}]", "wallets_yaml: wallets.0.capital_usdc: Field required"),
        ("wallets: [{id: a, capital_usdc: '1'}, {id: a, capital_usdc: '1'}]", "duplicate wallet id 'a'"),
        ("[]", "wallets_yaml: : Input should be a valid dictionary"),
    ],
)
def test_a_bad_wallet_file_is_a_tool_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ToolInputError, match=re.escape(message)):
        parse_wallet_yaml(text, "wallets_yaml")


def test_too_many_wallets_and_ambiguous_sources_are_refused(tmp_path: Any) -> None:
    many = "wallets:\n" + "".join(f"  - {{id: w{n}, capital_usdc: '1'}}\n" for n in range(21))
    with pytest.raises(ToolInputError, match="21 wallets; a what-if replays 20 at most"):
        parse_wallet_yaml(many, "x")
    with pytest.raises(ToolInputError, match="exactly one of wallets_yaml"):
        read_wallets("wallets: []", "w.yaml")
    with pytest.raises(ToolInputError, match="cannot read .*missing.yaml: No such file"):
        read_wallets(None, str(tmp_path / "missing.yaml"))
    path = tmp_path / "w.yml"
    path.write_text("wallets: [{id: a, capital_usdc: '5'}]")
    assert [w.id for w in read_wallets(None, str(path))] == ["a"]


@pytest.mark.parametrize(
    ("from_time", "to_time", "message"),
    [
        (
            "2026-11-20T00:00:00Z",
            "2026-11-22T00:00:00Z",
            "the window is 48.0 h, longer than the 24.0 h allowed",
        ),
        ("2026-11-20T02:00:00Z", "2026-11-20T01:00:00Z", "the window is empty"),
        ("last week", None, "cannot read time 'last week'"),
    ],
)
def test_a_window_too_long_empty_or_unreadable_is_refused_before_anything_is_read(
    from_time: str, to_time: str | None, message: str
) -> None:
    settings = PolycopySettings(kafka_bootstrap_servers="127.0.0.1:1")  # never reached
    with pytest.raises(ToolInputError, match=re.escape(message)):
        run_bounded_whatif(settings, [build_wallet()], from_time, to_time, now_ms=1_795_000_000_000)


@pytest.mark.parametrize(
    ("order_id", "valid"),
    [
        ("paper-" + "0" * 40, True),
        ("0x" + "aB" * 32, True),
        ("paper-" + "0" * 39, False),
        ("0x123", False),
        ("x'; DROP TABLE orders; --", False),
    ],
)
def test_order_ids_are_paper_or_venue_hashes(order_id: str, valid: bool) -> None:
    assert bool(ORDER_ID.match(order_id)) is valid


def test_a_wallet_id_outside_the_configuration_pattern_is_malformed() -> None:
    assert check_wallet_id("demo-fixed_1.a") == "demo-fixed_1.a"
    with pytest.raises(ToolInputError, match="malformed wallet id"):
        check_wallet_id("two words")


async def guarded_call(headers: list[tuple[bytes, bytes]], scope_type: str = "http") -> tuple[int, bool]:
    reached: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard = BearerTokenGuard(app, "s3cret")
    await guard({"type": scope_type, "headers": headers}, None, send)
    status = sent[0]["status"] if sent else 200
    return status, bool(reached)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"authorization", b"Bearer s3cret")], (200, True)),
        ([], (401, False)),
        ([(b"authorization", b"Bearer wrong")], (401, False)),
        ([(b"authorization", b"s3cret")], (401, False)),
        ([(b"authorization", b"bearer s3cret ")], (401, False)),
    ],
)
async def test_the_guard_lets_only_the_bearer_token_through(headers: Any, expected: tuple[int, bool]) -> None:
    assert await guarded_call(headers) == expected


async def test_the_guard_passes_lifespan_events_to_the_app() -> None:
    assert await guarded_call([], scope_type="lifespan") == (200, True)


class FailingReader:
    """A reader whose wallets are unknown and whose database is down."""

    settings = PolycopySettings()

    def list_strategies(self) -> StrategyList:
        raise DatabaseError("cannot connect to PostgreSQL at 127.0.0.1:1/polycopy: refused")

    def get_strategy(self, wallet_id: str) -> Any:
        raise ToolInputError(f"unknown wallet {wallet_id!r}; configured wallets: a, b")


async def test_tool_errors_reach_the_client_as_messages_not_tracebacks() -> None:
    server = build_server(PolycopySettings(), reader=FailingReader())  # type: ignore[arg-type]
    async with Client(server) as client:
        unknown = await client.call_tool("get_strategy", {"wallet_id": "zed"})
        down = await client.call_tool("list_strategies", {})
        invalid = await client.call_tool("get_strategy_orders", {"wallet_id": "a", "limit": 501})
    assert unknown.is_error and "unknown wallet 'zed'; configured wallets: a, b" in unknown.content[0].text
    assert down.is_error and "the pipeline's data cannot be read now: cannot connect" in down.content[0].text
    assert invalid.is_error and "less than or equal to 500" in invalid.content[0].text
    for result in (unknown, down, invalid):
        assert "Traceback" not in result.content[0].text
