"""`polycopy mcp`: the read-only MCP server for operators' AI assistants (Cursor, Claude), over stdio or
streamable HTTP with a bearer token."""

from __future__ import annotations

import argparse

from polycopy.cli.common import UsageError
from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings


def cmd_mcp(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.tools.mcp.server import run_http, run_stdio

    if not args.http:
        run_stdio(settings)
        return 0
    if settings.mcp_token is None or not settings.mcp_token.get_secret_value():
        raise UsageError(
            "polycopy mcp --http needs POLYCOPY_MCP_TOKEN: the bearer token every client must send"
        )
    run_http(settings, args.host, args.port)
    return 0


def register(commands: CommandGroup) -> None:
    mcp = commands.command(
        "mcp",
        cmd_mcp,
        "read-only MCP server for AI assistants: strategies, orders, decisions explained, bounded what-if "
        "(stdio; --http for streamable HTTP with a bearer token)",
    )
    mcp.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP: address to listen on")
    mcp.add_argument("--port", type=int, default=8765, help="HTTP: port to listen on")
