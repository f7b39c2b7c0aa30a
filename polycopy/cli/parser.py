"""The argument parser: sub-commands registered by the command modules, with defaults in every --help."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[..., int]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help, unless it has no default or its help already names one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return action.help
        return super()._get_help_string(action)


class CommandGroup:
    """Adds commands to one level of sub-commands (the top level, or a group such as `topics`)."""

    def __init__(self, subparsers: Any) -> None:
        self._subparsers = subparsers

    def command(self, name: str, handler: Handler, help_text: str, **options: Any) -> argparse.ArgumentParser:
        """A command running `handler(args, settings)`."""
        parser: argparse.ArgumentParser = self._subparsers.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter, **options
        )
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, help_text: str) -> CommandGroup:
        """A command with actions of its own, e.g. `polycopy topics create`."""
        parser = self._subparsers.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        return CommandGroup(parser.add_subparsers(dest="action", required=True, metavar="ACTION"))


def build_parser() -> argparse.ArgumentParser:
    from polycopy.cli import assistants, components, data, producers, reference, tools, wallets

    parser = argparse.ArgumentParser(
        prog="polycopy",
        description="polycopy-stream: copy-trading pipeline for Polymarket on Kafka.",
        epilog="Settings come from the environment (POLYCOPY_*, KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL); "
        "see README.md.",
        formatter_class=HelpFormatter,
    )
    commands = CommandGroup(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for area in (
        data,
        wallets,
        producers,
        reference,
        components,
        tools,
        assistants,
    ):  # the order of `polycopy --help`
        area.register(commands)
    return parser
