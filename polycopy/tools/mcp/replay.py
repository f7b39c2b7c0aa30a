"""`whatif`: a bounded replay of a wallet file (inline YAML or a path) over a window of the raw-trade log, on
`polycopy whatif`'s engine (`polycopy.tools.whatif.run_whatif`), publishing nothing."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from polycopy.infra.settings import PolycopySettings
from polycopy.tools.mcp.models import ToolInputError, WhatIfAnswer, WhatIfWallet
from polycopy.tools.whatif import WhatIfTooLargeError, parse_time_ms, run_whatif
from schemas.wallets import WalletConfig, WalletConfigFile

MAX_WALLETS = 20


def parse_wallet_yaml(text: str, source: str) -> list[WalletConfig]:
    """A wallet file's wallets, or a tool error with one line per problem (as `polycopy wallets apply`)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ToolInputError(f"{source}: not YAML: {error}") from None
    try:
        wallets = list(WalletConfigFile.model_validate(document).wallets)
    except ValidationError as error:
        lines = [f"{source}: " + ".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in error.errors()]
        raise ToolInputError("\n".join(lines)) from None
    if len(wallets) > MAX_WALLETS:
        raise ToolInputError(f"{source}: {len(wallets)} wallets; a what-if replays {MAX_WALLETS} at most")
    return wallets


def read_wallets(wallets_yaml: str | None, wallets_path: str | None) -> list[WalletConfig]:
    """The wallets of an inline YAML document or of a YAML file on the server's machine (one of the two)."""
    if (wallets_yaml is None) == (wallets_path is None):
        raise ToolInputError("give exactly one of wallets_yaml (the file's text) and wallets_path")
    if wallets_yaml is not None:
        return parse_wallet_yaml(wallets_yaml, "wallets_yaml")
    path = Path(wallets_path or "")
    if path.suffix not in (".yaml", ".yml"):
        raise ToolInputError(f"wallets_path {wallets_path!r} is not a .yaml or .yml file")
    try:
        text = path.read_text()
    except OSError as error:
        raise ToolInputError(f"cannot read {wallets_path}: {error.strerror}") from None
    return parse_wallet_yaml(text, str(path))


def run_bounded_whatif(
    settings: PolycopySettings,
    wallets: list[WalletConfig],
    from_time: str,
    to_time: str | None,
    now_ms: int | None = None,
) -> WhatIfAnswer:
    """Replay [from, to] (to: now by default) when the window and its trade count are within the settings'
    limits (`POLYCOPY_MCP_WHATIF_MAX_WINDOW_SECS`, `POLYCOPY_MCP_WHATIF_MAX_TRADES`); else a tool error."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    try:
        from_ms = parse_time_ms(from_time, now_ms)
        to_ms = parse_time_ms(to_time, now_ms) if to_time else now_ms
    except ValueError as error:
        raise ToolInputError(str(error)) from None
    if to_ms <= from_ms:
        raise ToolInputError(f"the window is empty: to ({to_ms} ms) is not after from ({from_ms} ms)")
    window_secs = (to_ms - from_ms) / 1000
    if window_secs > settings.mcp_whatif_max_window_secs:
        raise ToolInputError(
            f"the window is {window_secs / 3600:.1f} h, longer than the "
            f"{settings.mcp_whatif_max_window_secs / 3600:.1f} h allowed "
            "(POLYCOPY_MCP_WHATIF_MAX_WINDOW_SECS): run `polycopy whatif` for longer windows"
        )
    lines: list[str] = []  # the printed report: stdout is the MCP channel over stdio
    try:
        result = run_whatif(
            settings,
            wallets,
            from_ms=from_ms,
            to_ms=to_ms,
            out=lines.append,
            max_trades=settings.mcp_whatif_max_trades,
            publish=False,
        )
    except WhatIfTooLargeError as error:
        raise ToolInputError(f"{error} (POLYCOPY_MCP_WHATIF_MAX_TRADES)") from None
    return WhatIfAnswer(
        from_ms=from_ms,
        to_ms=to_ms,
        trades=result.trades,
        books_pinned=result.books.pinned,
        books_rebuilt=result.books.rebuilt,
        books_missing=result.books.missing,
        settled_markets=result.settled_markets,
        wallets=tuple(
            WhatIfWallet(
                wallet_id=report.wallet_id,
                considered=report.considered,
                copied=report.copied,
                skipped=dict(report.skipped),
                capital_used_usdc=report.capital_used_usdc,
                realised_pnl_usdc=report.realised_pnl_usdc,
                unrealised_pnl_usdc=report.unrealised_pnl_usdc,
                snapshot=report.snapshot,
            )
            for report in result.reports
        ),
    )
