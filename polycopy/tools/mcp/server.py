"""`polycopy mcp`: the read-only MCP server for operators' AI assistants, on the official MCP Python SDK (2.x,
`MCPServer`). The one module that imports the SDK (and starlette and uvicorn, which serve its HTTP transport).

Tools answer with structured output (the pipeline's own models in small answer models); an argument that names
nothing the pipeline knows is a tool error with a message, never a traceback. The topics' JSON Schemas are
resources (`polycopy://schemas/<topic>`). Over HTTP every request needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import TextResource
from mcp.types import ToolAnnotations
from pydantic import Field

from polycopy.infra.kafka import KafkaSetupError
from polycopy.infra.postgres import DatabaseError
from polycopy.infra.settings import PolycopySettings
from polycopy.tools.mcp.explain import DecisionExplainer
from polycopy.tools.mcp.models import (
    OrderList,
    OrderStatusAnswer,
    StrategyDetail,
    StrategyList,
    ToolInputError,
    TradeExplanations,
    WhatIfAnswer,
)
from polycopy.tools.mcp.reader import PipelineReader
from polycopy.tools.mcp.replay import read_wallets, run_bounded_whatif
from schemas.export import render_schemas
from schemas.orders import OrderStatus
from schemas.topics import ALL_TOPICS

log = logging.getLogger(__name__)
R = TypeVar("R")

INSTRUCTIONS = (
    "Read-only view of a polycopy-stream deployment (copy trading on Polymarket): its copy wallets "
    "(strategies), their money, PnL, caps and orders, why a wallet did or did not copy a trade, and what a "
    "wallet file would have done over a recent window. Money, prices and sizes are decimal strings in USDC "
    "and shares; times are epoch milliseconds. Nothing here places, changes or cancels anything."
)
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WalletId = Annotated[str, Field(description="copy-wallet id, as list_strategies names it")]


def answer(call: Callable[[], R]) -> R:
    """Run a tool body: a bad argument or an unreachable store becomes a tool error the caller can read."""
    try:
        return call()
    except ToolInputError as error:
        raise ToolError(str(error)) from None
    except (DatabaseError, KafkaSetupError) as error:
        log.warning("tool failed: %s", error)
        raise ToolError(f"the pipeline's data cannot be read now: {error}") from None


def build_server(settings: PolycopySettings, reader: PipelineReader | None = None) -> MCPServer:
    """The server with its tools and resources; `reader` follows the compacted topics from its first call."""
    reader = reader or PipelineReader(settings)
    explainer = DecisionExplainer(reader)
    server = MCPServer(
        "polycopy",
        title="polycopy-stream",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level=settings.log_level.upper(),  # type: ignore[arg-type]
    )

    @server.tool(annotations=READ_ONLY)
    def list_strategies() -> StrategyList:
        """Every copy wallet (strategy): enabled, disabled or removed, paper or live, its capital, what is
        available, and its realised and unrealised PnL from its latest snapshot."""
        return answer(reader.list_strategies)

    @server.tool(annotations=READ_ONLY)
    def get_strategy(wallet_id: WalletId) -> StrategyDetail:
        """One copy wallet: its configuration, its latest snapshot (capital, PnL, open positions and orders)
        and its risk state: available, reserved and deployed capital, open orders, every cap and how close it
        is (used, headroom, fraction used), and an engaged kill switch."""
        return answer(lambda: reader.get_strategy(wallet_id))

    @server.tool(annotations=READ_ONLY)
    def get_strategy_orders(
        wallet_id: WalletId,
        status: Annotated[
            list[OrderStatus] | None, Field(description="only orders in these states (default: all)")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=500, description="newest first, at most this many")] = 50,
    ) -> OrderList:
        """A copy wallet's orders, newest first: each intent with its order's latest state (pending until the
        executor reports), size, limit, matched size and average price."""
        return answer(lambda: reader.get_orders(wallet_id, status or [], limit))

    @server.tool(annotations=READ_ONLY)
    def get_order_status(
        order_id: Annotated[
            str | None, Field(description="the order id ('paper-...' or the venue's '0x...')")
        ] = None,
        intent_id: Annotated[str | None, Field(description="the intent id (32 hex digits)")] = None,
    ) -> OrderStatusAnswer:
        """One order, by its id or its intent's id: its state, the intent that placed it (with the book
        levels it could take), every lifecycle event, and the executor's claim on it."""
        return answer(lambda: reader.get_order_status(order_id, intent_id))

    @server.tool(annotations=READ_ONLY)
    def explain_decision(
        trade: Annotated[
            str, Field(description="the fill's dedup key (32 hex digits) or its transaction hash ('0x...')")
        ],
        wallet_id: Annotated[
            str | None, Field(description="one wallet (default: every wallet that decided or follows)")
        ] = None,
    ) -> TradeExplanations:
        """Why a copy wallet did or did not copy a trade: the decision, its reason and detail, the copy rule
        the reason comes from with the wallet's settings it reads, the book state the gate saw, and the order
        it placed. A transaction hash may name several fills; each is explained."""
        return answer(lambda: explainer.explain(trade, wallet_id))

    @server.tool(annotations=READ_ONLY)
    def whatif(
        from_time: Annotated[
            str, Field(description="window start: ISO 8601, epoch seconds or ms, or an age such as 2h")
        ],
        to_time: Annotated[str | None, Field(description="window end (default: now)")] = None,
        wallets_yaml: Annotated[
            str | None, Field(description="a wallet file's YAML text (`wallets: [...]`)")
        ] = None,
        wallets_path: Annotated[
            str | None, Field(description="or the path of a wallet YAML file on the server's machine")
        ] = None,
    ) -> WhatIfAnswer:
        """Replay the logged trades of a window through a wallet file on the live pipeline's copy engine, as
        `polycopy whatif` does, and answer per wallet: trades considered, copied, skipped by reason, capital
        used, realised and mark-to-market PnL. Bounded: a window or a trade count over the server's limits is
        refused. Publishes nothing."""

        def run() -> WhatIfAnswer:
            wallets = read_wallets(wallets_yaml, wallets_path)
            return run_bounded_whatif(settings, wallets, from_time, to_time)

        return answer(run)

    for name, text in render_schemas().items():
        topic = name.removesuffix(".schema.json")
        spec = next(spec for spec in ALL_TOPICS if spec.name == topic)
        server.add_resource(
            TextResource(
                uri=f"polycopy://schemas/{topic}",
                name=topic,
                title=f"JSON Schema of {topic}",
                description=f"{spec.value_model.__name__}, keyed by {spec.key}: {spec.description}",
                mime_type="application/schema+json",
                text=text,
            )
        )
    return server


def run_stdio(settings: PolycopySettings) -> None:
    """Serve over stdin/stdout until the client closes them (what Cursor and Claude start)."""
    reader = PipelineReader(settings)
    try:
        build_server(settings, reader).run("stdio")
    finally:
        reader.stop()


def run_http(settings: PolycopySettings, host: str, port: int) -> None:
    """Serve streamable HTTP at http://host:port/mcp, every request authenticated by the bearer token."""
    import anyio
    import uvicorn

    if settings.mcp_token is None or not settings.mcp_token.get_secret_value():
        raise ValueError("polycopy mcp --http needs POLYCOPY_MCP_TOKEN (the bearer token clients send)")
    reader = PipelineReader(settings)
    app = build_server(settings, reader).streamable_http_app(host=host)
    guarded = BearerTokenGuard(app, settings.mcp_token.get_secret_value())
    config = uvicorn.Config(
        guarded, host=host, port=port, log_level=settings.log_level.lower(), access_log=False
    )
    log.info("MCP server on http://%s:%d/mcp (bearer token required)", host, port)
    try:
        anyio.run(uvicorn.Server(config).serve)
    finally:
        reader.stop()


class BearerTokenGuard:
    """ASGI middleware: an HTTP request without `Authorization: Bearer <token>` is answered 401."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._authorised(scope):
            body = json.dumps(
                {"error": "unauthorized", "detail": "send Authorization: Bearer <token>"}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="polycopy"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _authorised(self, scope: dict[str, Any]) -> bool:
        supplied = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        return hmac.compare_digest(supplied, self._expected)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("polycopy-stream")
    except PackageNotFoundError:
        return "0"
