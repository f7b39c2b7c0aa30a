"""`polycopy wallets`: validate and publish a copy-wallet file, list and show the configured wallets."""

from __future__ import annotations

import argparse
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
    wallet = _current_wallets(settings).get(args.id)
    if wallet is None:
        raise UsageError(f"no wallet {args.id!r} in the configuration topic")
    print(wallet.model_dump_json(indent=2))
    return 0


def register(commands: CommandGroup) -> None:
    wallets = commands.group("wallets", "copy-wallet configuration")
    apply = wallets.command("apply", cmd_wallets_apply, "validate a wallet YAML file and publish it")
    apply.add_argument("file", help="wallet YAML file")
    wallets.command("list", cmd_wallets_list, "list the configured wallets")
    show = wallets.command("show", cmd_wallets_show, "show one wallet's configuration")
    show.add_argument("id", help="copy-wallet id")
