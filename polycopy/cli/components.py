"""`polycopy worker`, `executor` and `sink`: the long-running pipeline components, built by the wiring."""

from __future__ import annotations

import argparse

from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings


def cmd_worker(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_worker

    run_worker(settings)
    return 0


def cmd_executor(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_executor

    run_executor(settings)
    return 0


def cmd_sink(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_sink

    run_sink(settings)
    return 0


def register(commands: CommandGroup) -> None:
    commands.command(
        "worker", cmd_worker, "run the Faust processors (target filter, evaluation, order lifecycle)"
    )
    commands.command("executor", cmd_executor, "run the executor sink (paper by default)")
    commands.command("sink", cmd_sink, "run the PostgreSQL sink")
