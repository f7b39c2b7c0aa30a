"""`polycopy mcp` as an assistant starts it: the official MCP client spawns it over stdio (and reaches it over
streamable HTTP with and without the bearer token) against PostgreSQL and Kafka filled by a short demo run;
every tool's answer is checked against the tables it reads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from polycopy.infra.kafka import create_topics, delete_topics, wait_for_broker
from polycopy.infra.postgres import create_database, drop_database, migrate, query
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.chaos_servers import free_port
from polycopy.tools.demo import DemoOptions, DemoResult, run_demo
from polycopy.wiring import read_table
from schemas.export import SCHEMA_DIR
from schemas.portfolio import WalletSnapshot
from schemas.topics import ALL_TOPICS, WALLET_SNAPSHOTS
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.e2e


class Demo:
    """Settings of a namespace a short demo filled, and what the demo said."""

    def __init__(self, settings: PolycopySettings, result: DemoResult, wallet_file: Path, logs: Path) -> None:
        self.settings, self.result, self.wallet_file, self.logs = settings, result, wallet_file, logs

    @property
    def db(self) -> str:
        return self.settings.database_url

    def rows(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        return query(self.db, statement, params)


@pytest.fixture(scope="module")
def demo(servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One short demo on the simulator (free ports, own topics and database), shared by the module's tests."""
    kafka, admin_url = servers
    namespace = "t" + uuid.uuid4().hex[:10]
    folder = tmp_path_factory.mktemp("mcp")
    clob_port = free_port()
    settings = PolycopySettings(
        kafka_bootstrap_servers=kafka,
        database_url=create_database(admin_url, f"polycopy_{namespace}"),
        topic_prefix=f"{namespace}.",
        consumer_group_prefix=namespace,
        data_dir=folder / "data",
        metrics_enabled=False,
        sink_flush_secs=0.2,
        rtds_url=f"ws://127.0.0.1:{free_port()}",
        clob_url=f"http://127.0.0.1:{clob_port}",
        clob_market_ws_url=f"ws://127.0.0.1:{clob_port}/ws/market",
    )
    try:
        wait_for_broker(settings)
        create_topics(settings, ALL_TOPICS)
        migrate(settings.database_url, settings_migrations())
        lines: list[str] = []
        result = run_demo(settings, DemoOptions(duration_secs=25, drain_secs=30), out=lines.append)
        assert result.summary.orders > 0, "\n".join(lines)
        # The sink writes each wallet's newest snapshot soon after the worker publishes it.
        wait_until(lambda: snapshots_in_sync(settings), 60, "the snapshots table to match the topic")
        yield Demo(settings, result, settings.data_dir / "demo" / "wallets.yaml", folder)
    finally:
        drop_database(admin_url, f"polycopy_{namespace}")
        delete_topics(
            PolycopySettings(kafka_bootstrap_servers=kafka),
            lambda name: name.startswith((namespace + ".", namespace + "-")) or f".{namespace}." in name,
        )


def settings_migrations():  # type: ignore[no-untyped-def]
    from sinks import MIGRATIONS

    return MIGRATIONS


def snapshots_in_sync(settings: PolycopySettings) -> bool:
    topic = read_table(settings, WALLET_SNAPSHOTS, WalletSnapshot.model_validate_json)
    table = dict(query(settings.database_url, "SELECT wallet_id, version FROM wallet_snapshots"))
    return bool(topic) and {w: s.version for w, s in topic.items()} == table


def stdio_server(demo: Demo, **env: str) -> Client:
    """The official client, spawning `polycopy mcp` with the demo's settings (its stderr to a log file)."""
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "polycopy.cli", "mcp"],
        env=demo.settings.to_env() | env,
    )
    errlog = (demo.logs / f"mcp-{uuid.uuid4().hex[:6]}.log").open("w")
    return Client(stdio_client(parameters, errlog=errlog), read_timeout_seconds=120)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_of(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = " ".join(block.text for block in result.content if block.type == "text")
    assert "Traceback" not in text
    return text


def dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


async def test_the_tools_and_resources_are_listed_read_only(demo: Demo) -> None:
    async with stdio_server(demo) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {
            "list_strategies",
            "get_strategy",
            "get_strategy_orders",
            "get_order_status",
            "explain_decision",
            "whatif",
        }
        assert all(tool.annotations and tool.annotations.read_only_hint for tool in tools.values())
        assert all(tool.output_schema for tool in tools.values())
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert set(resources) == {f"polycopy://schemas/{spec.name}" for spec in ALL_TOPICS}
        uri = "polycopy://schemas/polycopy.decisions.v1"
        content = (await client.read_resource(uri)).contents[0]
        assert json.loads(content.text) == json.loads(
            (SCHEMA_DIR / "polycopy.decisions.v1.schema.json").read_text()
        )


async def test_list_strategies_gives_every_wallet_with_the_pnl_of_its_snapshot_row(demo: Demo) -> None:
    async with stdio_server(demo) as client:
        answer = await call(client, "list_strategies")
        configured = yaml.safe_load(demo.wallet_file.read_text())["wallets"]
        by_id = {s["wallet_id"]: s for s in answer["strategies"]}
        assert set(by_id) == {w["id"] for w in configured}
        table = {
            row[0]: row[1:]
            for row in demo.rows(
                "SELECT wallet_id, capital_usdc, available_usdc, realised_pnl_usdc, unrealised_pnl_usdc, "
                "open_positions, open_orders, as_of_ms FROM wallet_snapshots"
            )
        }
        assert table, "the demo wrote no snapshot"
        for wallet in configured:
            strategy = by_id[wallet["id"]]
            assert strategy["status"] == "enabled" and strategy["mode"] == "paper"
            assert dec(strategy["capital_usdc"]) == Decimal(wallet["capital_usdc"])
            capital, available, realised, unrealised, positions, orders, as_of = table[wallet["id"]]
            assert dec(strategy["available_usdc"]) == available
            assert dec(strategy["realised_pnl_usdc"]) == realised
            assert dec(strategy["unrealised_pnl_usdc"]) == unrealised
            assert dec(strategy["total_pnl_usdc"]) == realised + unrealised
            assert (strategy["open_positions"], strategy["open_orders"], strategy["as_of_ms"]) == (
                positions,
                orders,
                as_of,
            )


async def test_get_strategy_gives_config_snapshot_and_each_cap_with_its_usage(demo: Demo) -> None:
    async with stdio_server(demo) as client:
        answer = await call(client, "get_strategy", wallet_id="demo-ratio")
        configured = next(
            w for w in yaml.safe_load(demo.wallet_file.read_text())["wallets"] if w["id"] == "demo-ratio"
        )
        assert answer["status"] == "enabled"
        assert answer["config"]["targets"] == [t.lower() for t in configured["targets"]]
        assert dec(answer["config"]["max_market_exposure_usdc"]) == Decimal(
            configured["max_market_exposure_usdc"]
        )
        (available, reserved, deployed, realised, orders, version) = demo.rows(
            "SELECT available_usdc, reserved_usdc, deployed_usdc, realised_pnl_usdc, open_orders, version "
            "FROM wallet_snapshots WHERE wallet_id = 'demo-ratio'"
        )[0]
        risk = answer["risk"]
        assert answer["snapshot"]["version"] == version
        assert (dec(risk["available_usdc"]), dec(risk["reserved_usdc"]), dec(risk["deployed_usdc"])) == (
            available,
            reserved,
            deployed,
        )
        assert risk["open_orders"] == orders
        caps = risk["caps"]
        capital = next(c for c in caps if c["cap"] == "capital_usdc")
        assert dec(capital["headroom"]) == available
        assert dec(capital["limit"]) == Decimal(configured["capital_usdc"]) + realised
        assert any(c["cap"] == "max_order_usdc" and c["used"] is None for c in caps)
        # A market's exposure: what the snapshot's open positions cost plus what its open orders reserve; the
        # positions table agrees for every position no change newer than the snapshot touched (the worker
        # may stop before it publishes the snapshot of its last change: the table can be ahead).
        held: dict[str, Decimal] = {}
        for position in answer["snapshot"]["open_positions"]:
            held[position["condition_id"]] = held.get(position["condition_id"], Decimal(0)) + Decimal(
                position["cost_usdc"]
            )
        table = {
            asset: (cost, row_version)
            for asset, cost, row_version in demo.rows(
                "SELECT asset, cost_usdc, version FROM positions WHERE wallet_id = 'demo-ratio' "
                "AND status IN ('open', 'redeemable')"
            )
        }
        settled = [
            p
            for p in answer["snapshot"]["open_positions"]
            if p["asset"] in table and table[p["asset"]][1] <= version
        ]
        assert settled, "positions the table holds at the snapshot's version"
        for position in settled:
            assert Decimal(position["cost_usdc"]) == table[position["asset"]][0]
        reserved_by_market: dict[str, Decimal] = {}
        for order in answer["snapshot"]["open_orders"]:
            reserved_by_market[order["condition_id"]] = reserved_by_market.get(
                order["condition_id"], Decimal(0)
            ) + Decimal(order["reserved_usdc"])
        expected = {
            m: held.get(m, Decimal(0)) + reserved_by_market.get(m, Decimal(0))
            for m in {*held, *reserved_by_market}
        }
        markets = {
            c["scope"].removeprefix("market "): dec(c["used"])
            for c in caps
            if c["cap"] == "max_market_exposure_usdc"
        }
        assert markets == expected and markets, "demo-ratio holds positions after the demo"
        for cap in (c for c in caps if c["cap"] == "max_market_exposure_usdc"):
            assert dec(cap["headroom"]) == Decimal(configured["max_market_exposure_usdc"]) - dec(cap["used"])


async def test_get_strategy_orders_filters_by_status_and_limits(demo: Demo) -> None:
    async with stdio_server(demo) as client:
        wallet = "demo-fixed"
        answer = await call(client, "get_strategy_orders", wallet_id=wallet, status=["filled"], limit=500)
        expected = {
            row[0]: row[1:]
            for row in demo.rows(
                "SELECT order_id, matched_size, average_price, intent_id FROM orders "
                "WHERE wallet_id = %s AND status = 'filled'",
                wallet,
            )
        }
        assert expected, "the demo filled orders of demo-fixed"
        assert {o["order_id"] for o in answer["orders"]} == set(expected) and not answer["truncated"]
        for order in answer["orders"]:
            assert order["status"] == "filled" and order["wallet_id"] == wallet
            matched, average, intent = expected[order["order_id"]]
            assert (dec(order["matched_size"]), dec(order["average_price"]), order["intent_id"]) == (
                matched,
                average,
                intent,
            )
        every = await call(client, "get_strategy_orders", wallet_id=wallet, limit=500)
        assert (
            len(every["orders"])
            == demo.rows("SELECT count(*) FROM order_intents WHERE wallet_id = %s", wallet)[0][0]
        )
        one = await call(client, "get_strategy_orders", wallet_id=wallet, limit=1)
        assert len(one["orders"]) == 1 and one["truncated"] is True
        newest = max(every["orders"], key=lambda o: o["updated_at_ms"] or o["created_at_ms"])
        assert one["orders"][0]["updated_at_ms"] == newest["updated_at_ms"]


async def test_get_order_status_by_order_or_intent_gives_its_intent_events_and_journal(demo: Demo) -> None:
    async with stdio_server(demo) as client:
        order_id, intent_id, status = demo.rows(
            "SELECT order_id, intent_id, status FROM orders WHERE status = 'filled' ORDER BY order_id LIMIT 1"
        )[0]
        by_order = await call(client, "get_order_status", order_id=order_id)
        by_intent = await call(client, "get_order_status", intent_id=intent_id)
        assert by_order == by_intent
        assert by_order["order"]["status"] == status and by_order["order"]["order_id"] == order_id
        events = demo.rows(
            "SELECT event_id, event_type, sequence, status FROM order_events WHERE intent_id = %s "
            "ORDER BY sequence",
            intent_id,
        )
        assert [(e["event_id"], e["event_type"], e["sequence"], e["status"]) for e in by_order["events"]] == [
            tuple(row) for row in events
        ]
        size, limit, dedup_key, levels = demo.rows(
            "SELECT size, limit_price, dedup_key, book_levels FROM order_intents WHERE intent_id = %s",
            intent_id,
        )[0]
        intent = by_order["intent"]
        assert (dec(intent["size"]), dec(intent["limit_price"]), intent["dedup_key"]) == (
            size,
            limit,
            dedup_key,
        )
        assert intent["book_levels"] == levels
        assert (
            by_order["journal_state"]
            == demo.rows("SELECT state FROM executor_journal WHERE intent_id = %s", intent_id)[0][0]
        )


async def test_explain_decision_gives_the_reason_the_rule_and_the_book_the_gate_saw(demo: Demo) -> None:
    async with stdio_server(demo) as client:
        wallet, dedup_key, book_id, limit = demo.rows(
            "SELECT wallet_id, dedup_key, book_id, limit_price FROM decisions WHERE action = 'copy' "
            "AND book_id IS NOT NULL ORDER BY decision_id LIMIT 1"
        )[0]
        answer = await call(client, "explain_decision", trade=dedup_key, wallet_id=wallet)
        assert [t["dedup_key"] for t in answer["trades"]] == [dedup_key]
        (explanation,) = answer["explanations"]
        assert explanation["outcome"] == "copied" and explanation["reason"] == "copy"
        assert explanation["rule"]["position"] == 0
        book = explanation["book"]
        assert book["book_id"] == book_id and book["book"]["book_id"] == book_id
        # The levels the intent could take are the pinned book's asks (or bids) within its limit.
        side = explanation["decision"]["side"]
        taken = [lvl for lvl in book["book"]["asks" if side == "BUY" else "bids"]]
        within = [
            lvl
            for lvl in taken
            if (dec(lvl["price"]) <= limit if side == "BUY" else dec(lvl["price"]) >= limit)
        ]
        assert book["levels_at_limit"] == within
        intent_id = demo.rows(
            "SELECT intent_id FROM order_intents WHERE wallet_id = %s AND dedup_key = %s", wallet, dedup_key
        )[0][0]
        assert explanation["order"]["intent_id"] == intent_id

        skip_wallet, skip_key, reason, detail = demo.rows(
            "SELECT wallet_id, dedup_key, reason, detail FROM decisions WHERE action = 'skip' "
            "ORDER BY decision_id LIMIT 1"
        )[0]
        answer = await call(client, "explain_decision", trade=skip_key, wallet_id=skip_wallet)
        (explanation,) = answer["explanations"]
        assert (explanation["outcome"], explanation["reason"], explanation["detail"]) == (
            "skipped",
            reason,
            detail,
        )
        assert explanation["rule"]["reason"] == reason and explanation["rule"]["position"] >= 1
        assert explanation["order"] is None


async def test_explain_decision_by_transaction_hash_covers_every_fill_and_every_wallet(demo: Demo) -> None:
    async with stdio_server(demo) as client:
        (transaction,) = demo.rows(
            "SELECT t.transaction_hash FROM trades t JOIN decisions d USING (dedup_key) "
            "ORDER BY t.dedup_key LIMIT 1"
        )[0]
        answer = await call(client, "explain_decision", trade=transaction)
        fills = {
            row[0]
            for row in demo.rows("SELECT dedup_key FROM trades WHERE transaction_hash = %s", transaction)
        }
        assert {t["dedup_key"] for t in answer["trades"]} == fills
        decided = set(
            demo.rows(
                "SELECT dedup_key, wallet_id, reason FROM decisions WHERE dedup_key = ANY(%s)", list(fills)
            )
        )
        explained = {(e["dedup_key"], e["wallet_id"], e["reason"]) for e in answer["explanations"]}
        assert decided <= explained
        wallets = {w["id"] for w in yaml.safe_load(demo.wallet_file.read_text())["wallets"]}
        assert {(e["dedup_key"], e["wallet_id"]) for e in answer["explanations"]} == {
            (f, w) for f in fills for w in wallets
        }
        # A trade of a trader no wallet follows has no decision: each wallet says it does not follow them.
        targets = [
            t.lower() for w in yaml.safe_load(demo.wallet_file.read_text())["wallets"] for t in w["targets"]
        ]
        (unfollowed,) = demo.rows(
            "SELECT dedup_key FROM trades WHERE proxy_wallet <> ALL(%s) ORDER BY dedup_key LIMIT 1", targets
        )[0]
        answer = await call(client, "explain_decision", trade=unfollowed)
        assert {e["outcome"] for e in answer["explanations"]} == {"not_followed"}
        assert {e["reason"] for e in answer["explanations"]} == {"not_target"}
        assert all("not among the wallet's targets" in e["detail"] for e in answer["explanations"])
        # A trade of a followed trader that no decision names (the demo stopped before deciding it) says so.
        pending = demo.rows(
            "SELECT dedup_key, proxy_wallet FROM trades WHERE proxy_wallet = ANY(%s) "
            "AND dedup_key NOT IN (SELECT dedup_key FROM decisions) ORDER BY dedup_key LIMIT 1",
            targets,
        )
        if pending:
            answer = await call(client, "explain_decision", trade=pending[0][0])
            outcomes = {e["outcome"] for e in answer["explanations"]}
            assert "not_decided" in outcomes and outcomes <= {"not_decided", "not_followed"}


async def test_whatif_replays_the_window_like_polycopy_whatif_and_refuses_what_is_too_large(
    demo: Demo,
) -> None:
    async with stdio_server(demo) as client:
        from polycopy.tools.whatif import run_whatif
        from schemas.wallets import WalletConfigFile

        wallets_yaml = demo.wallet_file.read_text()
        start = demo.result.started_ms - 60_000
        end = int(time.time() * 1000)
        answer = await call(
            client, "whatif", from_time=str(start), to_time=str(end), wallets_yaml=wallets_yaml
        )
        expected = run_whatif(
            demo.settings,
            list(WalletConfigFile.model_validate(yaml.safe_load(wallets_yaml)).wallets),
            from_ms=start,
            to_ms=end,
            out=lambda line: None,
            publish=False,
        )
        assert answer["trades"] == expected.trades > 0
        assert (
            answer["books_pinned"],
            answer["books_rebuilt"],
            answer["books_missing"],
            answer["settled_markets"],
        ) == (expected.books.pinned, expected.books.rebuilt, expected.books.missing, expected.settled_markets)
        for mine, theirs in zip(answer["wallets"], expected.reports, strict=True):
            assert mine["wallet_id"] == theirs.wallet_id
            assert (mine["considered"], mine["copied"], mine["skipped"]) == (
                theirs.considered,
                theirs.copied,
                dict(theirs.skipped),
            )
            assert dec(mine["realised_pnl_usdc"]) == theirs.realised_pnl_usdc
        assert sum(w["copied"] for w in answer["wallets"]) > 0
        by_path = await call(
            client, "whatif", from_time=str(start), to_time=str(end), wallets_path=str(demo.wallet_file)
        )
        assert by_path["trades"] == answer["trades"]
        # Read-only: no sandbox topics were created for the runs.
        from confluent_kafka.admin import AdminClient

        topics = AdminClient({"bootstrap.servers": demo.settings.kafka_bootstrap_servers}).list_topics(
            timeout=10
        )
        sandbox = f".{demo.settings.topic_prefix}"
        assert [name for name in topics.topics if name.startswith("whatif-") and sandbox in name] == []

        too_long = await error_of(client, "whatif", from_time="3d", wallets_yaml=wallets_yaml)
        assert "longer than the 24.0 h allowed" in too_long
        async with stdio_server(demo, POLYCOPY_MCP_WHATIF_MAX_TRADES="5") as small:
            too_many = await error_of(
                small, "whatif", from_time=str(start), to_time=str(end), wallets_yaml=wallets_yaml
            )
        assert "the window holds more than the 5 logged trades allowed: choose a shorter window" in too_many


async def test_bad_arguments_get_a_clear_tool_error(demo: Demo) -> None:
    async with stdio_server(demo) as client:
        assert (
            "unknown wallet 'nobody'; configured wallets: demo-cautious, demo-fixed, demo-ratio"
            in await error_of(client, "get_strategy", wallet_id="nobody")
        )
        assert "malformed wallet id" in await error_of(
            client, "get_strategy_orders", wallet_id="no such wallet"
        )
        assert "unknown wallet" in await error_of(client, "get_strategy_orders", wallet_id="ghost")
        assert "pending" in await error_of(
            client, "get_strategy_orders", wallet_id="demo-fixed", status=["bogus"]
        )
        assert "limit" in await error_of(client, "get_strategy_orders", wallet_id="demo-fixed", limit=0)
        assert "malformed order id" in await error_of(
            client, "get_order_status", order_id="12; DROP TABLE orders"
        )
        assert "exactly one of order_id and intent_id" in await error_of(client, "get_order_status")
        assert "no order 'paper-" in await error_of(client, "get_order_status", order_id="paper-" + "0" * 40)
        assert "malformed trade" in await error_of(client, "explain_decision", trade="0x1234")
        assert "no trade with dedup key" in await error_of(client, "explain_decision", trade="f" * 32)
        assert "exactly one of wallets_yaml" in await error_of(client, "whatif", from_time="1h")
        assert "wallets.0.capital_usdc: Field required" in await error_of(
            client, "whatif", from_time="1h", wallets_yaml="wallets: [{id: x}]"
        )
        assert "cannot read time 'yesterday'" in await error_of(
            client, "whatif", from_time="yesterday", wallets_yaml=demo.wallet_file.read_text()
        )
        assert "not a .yaml or .yml file" in await error_of(
            client, "whatif", from_time="1h", wallets_path="/etc/passwd"
        )


async def test_streamable_http_needs_the_bearer_token(demo: Demo) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    port = free_port()
    token = "test-token-" + uuid.uuid4().hex
    log = (demo.logs / "mcp-http.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "polycopy.cli", "mcp", "--http", "--port", str(port)],
        env=os.environ | demo.settings.to_env() | {"POLYCOPY_MCP_TOKEN": token},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until(lambda: port_open(port) or process.poll() is not None, 60, "the MCP HTTP server")
        assert process.poll() is None, (demo.logs / "mcp-http.log").read_text()
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        headers = {"Accept": "application/json, text/event-stream"}
        async with httpx2.AsyncClient() as http:
            missing = await http.post(url, json=initialize, headers=headers)
            wrong = await http.post(url, json=initialize, headers=headers | {"Authorization": "Bearer nope"})
        assert missing.status_code == wrong.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")

        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            answer = await call(client, "list_strategies")
        assert {s["wallet_id"] for s in answer["strategies"]} == {"demo-cautious", "demo-fixed", "demo-ratio"}
    finally:
        process.terminate()
        process.wait(20)
    assert token not in (demo.logs / "mcp-http.log").read_text()


def test_http_without_a_token_is_refused_at_start(demo: Demo) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "polycopy.cli", "mcp", "--http"],
        env=os.environ | demo.settings.to_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: polycopy mcp --http needs POLYCOPY_MCP_TOKEN: the bearer token every client must send"
    )


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_snapshot_rebuilt_from_the_tables_matches_the_topics(demo: Demo) -> None:
    """The reader's fallback when the table holds a newer version than the topic: the wallet_snapshots row,
    its open positions from the positions table and its open orders from the row's jsonb."""
    from polycopy.tools.mcp.reader import PipelineReader

    reader = PipelineReader(demo.settings)
    try:
        from_tables = {s.wallet_id: s for s in reader._snapshots_from_database(None)}
        from_topic = read_table(demo.settings, WALLET_SNAPSHOTS, WalletSnapshot.model_validate_json)
        assert set(from_tables) == set(from_topic) == {"demo-cautious", "demo-fixed", "demo-ratio"}
        for wallet_id, snapshot in from_topic.items():
            rebuilt = from_tables[wallet_id]
            figures = {"open_positions", "open_orders", "schema_version"}
            assert rebuilt.model_dump(exclude=figures) == snapshot.model_dump(exclude=figures)
            assert rebuilt.open_orders == snapshot.open_orders
            # The positions table may be ahead of the snapshot (the worker can stop before it publishes the
            # snapshot of its last change): compare the positions no newer change touched.
            newer = {
                row[0]
                for row in demo.rows(
                    "SELECT asset FROM positions WHERE wallet_id = %s AND version > %s",
                    wallet_id,
                    snapshot.version,
                )
            }
            held = {(p.asset, p.shares, p.cost_usdc) for p in snapshot.open_positions if p.asset not in newer}
            assert {
                (p.asset, p.shares, p.cost_usdc) for p in rebuilt.open_positions if p.asset not in newer
            } == held
        assert any(s.open_positions for s in from_topic.values())
        newest = reader.snapshots()
        assert {w: s.version for w, (s, _) in newest.items()} == {w: s.version for w, s in from_topic.items()}
    finally:
        reader.stop()


async def test_get_strategy_shows_the_wallets_engaged_kill_switch(demo: Demo) -> None:
    from schemas.control import KillSwitch
    from schemas.topics import CONTROL
    from tests.integration.helpers import publish

    switch = KillSwitch(
        wallet_id="demo-cautious", engaged=True, reason="operator pause", set_by="test", set_at_ms=1
    )
    publish(demo.settings, CONTROL, [("demo-cautious", switch)])
    async with stdio_server(demo) as client:
        paused = await call(client, "get_strategy", wallet_id="demo-cautious")
        running = await call(client, "get_strategy", wallet_id="demo-fixed")
    assert paused["risk"]["kill_switch"] == switch.model_dump(mode="json")
    assert running["risk"]["kill_switch"] is None
