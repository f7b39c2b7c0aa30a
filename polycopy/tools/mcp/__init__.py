"""The MCP server (`polycopy mcp`): read-only tools for operators' AI assistants. `server.py` is the SDK's
edge; `reader.py` and `explain.py` read the tables and topics; `replay.py` bounds `whatif`; `risk.py` and
`rules.py` are pure."""
