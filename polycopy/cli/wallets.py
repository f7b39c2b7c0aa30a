"""`polycopy wallets`: validate and publish a copy-wallet file, list the configured wallets, show one wallet's
money, PnL, positions and orders."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from polycopy.cli.common import UsageError, deliver_or_fail, load_wallet_file
from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings


def cmd_wallets_apply(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_publish
    from schemas.topics import WALLET_CONFIG

    config = load_wallet_file(Path(args.file))

    def publish(publisher: Any) -> None:
        for wallet in config.wallets:
            publisher.publish(WALLET_CONFIG, wallet.id, wallet)

    deliver_or_fail(lambda: run_publish(settings, "polycopy-cli", "wallet configuration", publish))
    for wallet in config.wallets:
        print(f"applied {wallet.id} ({wallet.mode.value}, {len(wallet.targets)} targets)")
    return 0


def _current_wallets(settings: PolycopySettings) -> dict[str, Any]:
    from polycopy.wiring import read_table
    from schemas.topics import WALLET_CONFIG
    from schemas.wallets import WalletConfig

    return read_table(settings, WALLET_CONFIG, WalletConfig.model_validate_json)


def cmd_wallets_list(args: argparse.Namespace, settings: PolycopySettings) -> int:
    for wallet_id, wallet in sorted(_current_wallets(settings).items()):
        print(
            f"{wallet_id:20} {wallet.mode.value:6} capital={wallet.capital_usdc} "
            f"targets={len(wallet.targets)} "
            f"sizing={wallet.sizing.mode.value}:{wallet.sizing.value}"
        )
    return 0


def cmd_wallets_show(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import read_table
    from schemas.portfolio import WalletSnapshot
    from schemas.topics import WALLET_SNAPSHOTS

    wallet = _current_wallets(settings).get(args.id)
    if wallet is None:
        raise UsageError(f"no wallet {args.id!r} in the configuration topic")
    if args.config:
        print(wallet.model_dump_json(indent=2))
        return 0
    snapshot = read_table(settings, WALLET_SNAPSHOTS, WalletSnapshot.model_validate_json).get(args.id)
    if args.json:
        print(snapshot.model_dump_json(indent=2) if snapshot else "null")
        return 0
    if snapshot is None:
        print(f"{args.id}: no snapshot yet (the worker publishes one when the wallet's state first changes)")
        return 0
    print(render_snapshot(snapshot, wallet.max_daily_loss_usdc))
    return 0


def render_snapshot(snapshot: Any, daily_cap: Decimal | None = None) -> str:
    """A wallet snapshot for people: money, PnL, the day's figures, settlements, positions and orders."""
    s = snapshot
    as_of = datetime.fromtimestamp(s.as_of_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    win_rate = f"{s.win_rate * 100:.1f}%" if s.win_rate is not None else "-"
    cap = f" (cap {daily_cap})" if daily_cap is not None else ""
    lines = [
        f"wallet {s.wallet_id} ({s.mode}), state version {s.version}, as of {as_of}",
        f"  capital         {s.capital_usdc:>12.2f} USDC",
        f"  available       {s.available_usdc:>12.2f}",
        f"  reserved        {s.reserved_usdc:>12.2f}",
        f"  deployed        {s.deployed_usdc:>12.2f}",
        f"  realised PnL    {s.realised_pnl_usdc:>12.2f}  (fees {s.fees_usdc:.2f})",
        f"  unrealised PnL  {s.unrealised_pnl_usdc:>12.2f}",
        f"  redeemable      {s.redeemable_usdc:>12.2f}",
        f"  {s.day or 'today'}: realised {s.daily_realised_pnl_usdc:.2f}, unrealised change "
        f"{s.daily_unrealised_pnl_usdc:.2f}, loss {s.daily_loss_usdc:.2f}{cap}",
        f"  settled positions {s.settled_positions}, winning {s.winning_positions}, win rate {win_rate}",
        f"open positions ({len(s.open_positions)}):",
    ]
    for p in s.open_positions:
        mark = f"{p.mark_price:.4f}" if p.mark_price is not None else "-"
        lines.append(
            f"  {_short(p.asset)}  {p.status.value:10} shares {p.shares:>10.2f}  cost {p.cost_usdc:>9.2f}  "
            f"avg {p.average_price:.4f}  mark {mark}  unrealised {p.unrealised_pnl_usdc:>8.2f}  "
            f"market {_short(p.condition_id)}"
        )
    lines.append(f"open orders ({len(s.open_orders)}):")
    for o in s.open_orders:
        lines.append(
            f"  {o.intent_id[:12]}  {o.status:16} {o.side.value:4} {_short(o.asset)}  size {o.size:>9.2f}  "
            f"matched {o.matched_size:>9.2f}  limit {o.limit_price}  reserved {o.reserved_usdc:.2f}"
        )
    return "\n".join(lines)


def _short(identifier: str) -> str:
    return identifier if len(identifier) <= 14 else f"{identifier[:6]}..{identifier[-6:]}"


def register(commands: CommandGroup) -> None:
    wallets = commands.group("wallets", "copy-wallet configuration")
    apply = wallets.command("apply", cmd_wallets_apply, "validate a wallet YAML file and publish it")
    apply.add_argument("file", help="wallet YAML file")
    wallets.command("list", cmd_wallets_list, "list the configured wallets")
    show = wallets.command(
        "show",
        cmd_wallets_show,
        "show one wallet's capital, PnL, open positions and orders (its latest snapshot)",
    )
    show.add_argument("id", help="copy-wallet id")
    show.add_argument("--config", action="store_true", help="print the wallet's configuration instead")
    show.add_argument("--json", action="store_true", help="print the snapshot as JSON")
