"""`polycopy worker`, `books`, `executor` and `sink`: the long-running pipeline components, built by the
wiring."""

from __future__ import annotations

import argparse

from polycopy.cli.common import UsageError
from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings


def cmd_worker(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_worker

    run_worker(settings)
    return 0


def cmd_books(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_books

    if not settings.clob_market_ws_url:
        raise UsageError("polycopy books needs POLYCOPY_CLOB_MARKET_WS_URL (the CLOB market channel)")
    run_books(settings)
    return 0


def cmd_executor(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_executor

    run_executor(settings)
    return 0


def cmd_sink(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_sink

    run_sink(settings)
    return 0


def cmd_alerts(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_alerts

    run_alerts(settings)
    return 0


def cmd_kill_switch(args: argparse.Namespace, settings: PolycopySettings) -> int:
    import getpass

    from polycopy.cli.common import deliver_or_fail
    from polycopy.infra.kafka import now_ms
    from polycopy.wiring import run_publish
    from schemas.control import ALL_WALLETS, KillSwitch
    from schemas.topics import CONTROL

    wallet = args.wallet or ALL_WALLETS
    switch = KillSwitch(
        wallet_id=wallet,
        engaged=args.state == "on",
        reason=args.reason,
        set_by=getpass.getuser(),
        set_at_ms=now_ms(),
    )
    deliver_or_fail(
        lambda: run_publish(
            settings, "polycopy-cli", "kill switch", lambda p: p.publish(CONTROL, wallet, switch)
        )
    )
    who = "every wallet" if wallet == ALL_WALLETS else f"wallet {wallet}"
    print(f"kill switch {args.state} for {who}")
    return 0


def register(commands: CommandGroup) -> None:
    commands.command(
        "worker", cmd_worker, "run the Faust processors (target filter, evaluation, order lifecycle)"
    )
    commands.command("books", cmd_books, "run the books producer (CLOB market channel -> books topic)")
    commands.command("executor", cmd_executor, "run the executor sink (paper by default)")
    commands.command("sink", cmd_sink, "run the PostgreSQL sink")
    commands.command(
        "alerts", cmd_alerts, "post lost orders, breaker, kill-switch and silent-feed alerts to the webhook"
    )
    kill = commands.command(
        "kill-switch", cmd_kill_switch, "stop new orders at once and cancel open ones (on), or resume (off)"
    )
    kill.add_argument("state", choices=("on", "off"), help="on stops trading, off resumes it")
    kill.add_argument("--wallet", help="one copy wallet (default: every wallet)")
    kill.add_argument("--reason", default="", help="why, for the alert and the record")
