"""The `polycopy` command: one entry point for every component and operator task.

`parser.py` builds the arguments from the command modules (one per area); each command parses, calls the
composition root (`polycopy.wiring`) or a tool, and prints. Heavy imports happen inside the commands, so
`polycopy --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from polycopy.cli.common import UsageError, load_settings, load_wallet_file, setup_logging
from polycopy.cli.parser import build_parser

__all__ = ["UsageError", "build_parser", "load_settings", "load_wallet_file", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings, args.command)
        return int(args.handler(args, settings) or 0)
    except UsageError as error:
        print(f"error: {error}".replace("\n", "\nerror: "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - setup errors are one readable line, not a traceback
        from polycopy.infra.kafka import KafkaSetupError
        from polycopy.infra.postgres import DatabaseError
        from polycopy.polymarket.http import VenueHttpError
        from sinks.base import SinkFlushError

        if isinstance(error, KafkaSetupError | DatabaseError | VenueHttpError | SinkFlushError):
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise
