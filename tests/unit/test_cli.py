"""The `polycopy` command without a broker: every --help shows its defaults, the command list and entry points
are as documented, and failures become one line with the documented exit status."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import polycopy.wiring
from polycopy.cli import build_parser, main
from schemas.topics import ALL_TOPICS
from sinks.base import SinkFlushError
from tests.builders import REPO_ROOT

COMMANDS = [
    "topics",
    "schemas",
    "db",
    "wallets",
    "replay",
    "capture",
    "rtds",
    "poll",
    "markets",
    "traders",
    "worker",
    "books",
    "executor",
    "sink",
    "alerts",
    "kill-switch",
    "simulate",
    "demo",
    "whatif",
    "bench",
    "soak",
    "chaos",
    "mcp",
]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def every_command(
    parser: argparse.ArgumentParser, path: str = "polycopy"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for name, sub in subcommands(parser).items():
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            yield from every_command(sub, f"{path} {name}")
        else:
            yield f"{path} {name}", sub


def test_the_commands_are_listed_in_the_documented_order() -> None:
    assert list(subcommands(build_parser())) == COMMANDS


@pytest.mark.parametrize(("command", "parser"), list(every_command(build_parser())), ids=lambda v: str(v))
def test_every_option_with_a_default_shows_it_in_help(command: str, parser: argparse.ArgumentParser) -> None:
    text = " ".join(parser.format_help().split())  # help lines wrap anywhere
    for action in parser._actions:
        if action.default in (None, False, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
            continue
        assert f"default: {action.default}" in text, f"{command} {action.option_strings}: default not shown"


def test_every_option_has_help_text() -> None:
    for command, parser in every_command(build_parser()):
        for action in parser._actions:
            assert action.help, f"{command} {action.dest}: no help text"


def test_the_console_script_and_python_dash_m_both_reach_main() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"polycopy": "polycopy.cli:main"}
    result = subprocess.run(
        [sys.executable, "-m", "polycopy.cli", "topics", "list"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == [spec.name for spec in ALL_TOPICS]


def test_a_sink_whose_flush_failed_ends_with_one_line_and_status_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(settings: object) -> None:
        raise SinkFlushError(
            "postgres-sink: flush failed, nothing committed (the batch will be read again): x"
        )

    monkeypatch.setattr(polycopy.wiring, "run_sink", fail)

    assert main(["sink"]) == 1
    assert capsys.readouterr().err == (
        "error: postgres-sink: flush failed, nothing committed (the batch will be read again): x\n"
    )


def test_a_wallet_file_kafka_did_not_take_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def lost(settings: object, client_id: str, what: str, publish: object) -> None:
        raise polycopy.wiring.NotDeliveredError(f"{what} not delivered to Kafka")

    monkeypatch.setattr(polycopy.wiring, "run_publish", lost)
    path = tmp_path / "wallets.yaml"
    path.write_text('wallets:\n  - id: alice\n    capital_usdc: "100"\n')

    assert main(["wallets", "apply", str(path)]) == 2
    assert capsys.readouterr().err == "error: wallet configuration not delivered to Kafka\n"


def test_a_missing_capture_file_is_refused_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(polycopy.wiring, "run_replay", lambda *a, **k: pytest.fail("nothing to replay"))

    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_bench_profile_path_that_is_a_file_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import polycopy.tools.bench

    monkeypatch.setattr(polycopy.tools.bench, "run_bench", lambda *a, **k: pytest.fail("nothing to bench"))
    taken = tmp_path / "profile.txt"
    taken.write_text("")

    assert main(["bench", "--profile", str(taken)]) == 2
    assert capsys.readouterr().err == f"error: --profile {taken}: a file is there; give a directory\n"
