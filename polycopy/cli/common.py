"""What every command shares: the usage error, settings from the environment, logging, wallet files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from polycopy.infra.settings import PolycopySettings

R = TypeVar("R")


class UsageError(Exception):
    """A command-line or configuration problem, reported as one line per problem."""


def load_settings() -> PolycopySettings:
    """Settings from the environment; a bad value is refused with a line naming the field."""
    from polycopy.infra.settings import find_unknown_variables

    unknown = find_unknown_variables(os.environ)
    if unknown:
        raise UsageError("\n".join(unknown))
    try:
        return PolycopySettings()
    except ValidationError as error:
        raise UsageError("\n".join(_describe_setting_error(e) for e in error.errors())) from None


def _describe_setting_error(error: Any) -> str:
    if not error["loc"]:  # a rule across several settings names them in its message
        return f"bad settings: {error['msg'].removeprefix('Value error, ')}"
    return f"bad setting POLYCOPY_{str(error['loc'][0]).upper()}: {error['msg']}"


# The component name on every log line: the metrics' component name where the command is one (the RTDS
# producer and a replay both publish trades as `producer`), else the command itself.
LOG_COMPONENTS = {"rtds": "producer", "replay": "producer", "poll": "poller"}


def setup_logging(settings: PolycopySettings, command: str = "polycopy") -> None:
    """Logging for this process (`POLYCOPY_LOG_FORMAT`, `POLYCOPY_LOG_LEVEL`), named after the command."""
    from polycopy.infra.logs import configure_logging

    configure_logging(settings, LOG_COMPONENTS.get(command, command))


def load_wallet_file(path: Path):  # type: ignore[no-untyped-def]
    """Validate a wallet YAML file as a whole; every problem is one line naming its place."""
    import yaml

    from schemas.wallets import WalletConfigFile

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"{path}: cannot read: {error}") from None
    try:
        return WalletConfigFile.model_validate(document)
    except ValidationError as error:
        lines = [f"{path}: " + ".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in error.errors()]
        raise UsageError("\n".join(lines + [f"{path}: refused, nothing applied"])) from None


def deliver_or_fail(run: Callable[[], R]) -> R:
    """Call `run()`; a message not delivered to Kafka becomes a usage error (one line, exit status 2)."""
    from polycopy.wiring import NotDeliveredError

    try:
        return run()
    except NotDeliveredError as error:
        raise UsageError(str(error)) from None
