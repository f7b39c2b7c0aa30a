"""Settings: bad values, unknown variables and unsafe combinations are refused with a line naming them."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycopy.cli import UsageError, load_settings
from polycopy.infra.settings import PolycopySettings, find_unknown_variables


def test_a_misspelled_variable_is_named_with_the_likely_intended_one() -> None:
    problems = find_unknown_variables({"POLYCOPY_BOOK_MAX_AGEMS": "5", "POLYCOPY_PG_PORT": "1", "HOME": "/"})
    assert problems == ["unknown setting POLYCOPY_BOOK_MAX_AGEMS (did you mean POLYCOPY_BOOK_MAX_AGE_MS?)"]


def test_every_setting_and_infra_variable_is_known() -> None:
    environ = {f"POLYCOPY_{name.upper()}": "x" for name in PolycopySettings.model_fields}
    assert find_unknown_variables(environ | {"POLYCOPY_KAFKA_PORT": "1"}) == []


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"POLYCOPY_BOOK_MAX_AGE_MS": "-1"}, "bad setting POLYCOPY_BOOK_MAX_AGE_MS: Input should be greater"),
        (
            {"POLYCOPY_EXECUTION_MODE": "live"},
            "bad settings: POLYCOPY_EXECUTION_MODE=live needs POLYCOPY_PRIVATE_KEY",
        ),
        (
            {"POLYCOPY_EXECUTION_MODE": "yolo"},
            "bad setting POLYCOPY_EXECUTION_MODE: Input should be 'paper' or 'live'",
        ),
        (
            {"POLYCOPY_CLOB_API_KEY": "k", "POLYCOPY_CLOB_API_SECRET": "s"},
            "bad settings: CLOB API credentials are all three or none: POLYCOPY_CLOB_API_PASSPHRASE missing",
        ),
        (
            {"POLYCOPY_SIGNATURE_TYPE": "2"},
            "bad settings: POLYCOPY_SIGNATURE_TYPE=2 needs POLYCOPY_FUNDER",
        ),
        (
            {"POLYCOPY_SIGNATURE_TYPE": "4"},
            "bad setting POLYCOPY_SIGNATURE_TYPE: Input should be less than or equal to 3",
        ),
        (
            {"POLYCOPY_SINK_FLUSH_SEC": "1"},
            "unknown setting POLYCOPY_SINK_FLUSH_SEC (did you mean POLYCOPY_SINK_FLUSH_SECS?)",
        ),
    ],
)
def test_bad_configuration_is_refused_with_a_line_naming_it(monkeypatch, variables, expected) -> None:  # type: ignore[no-untyped-def]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError) as refused:
        load_settings()
    assert str(refused.value).startswith(expected)


def test_live_mode_with_a_key_is_accepted_and_paper_is_the_default(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert load_settings().execution_mode.value == "paper"
    monkeypatch.setenv("POLYCOPY_EXECUTION_MODE", "live")
    monkeypatch.setenv("POLYCOPY_PRIVATE_KEY", "0x" + "11" * 32)
    assert load_settings().execution_mode.value == "live"


def test_local_state_defaults_to_the_repositorys_data_dir_as_infra_local_sh_does(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Not inside the `polycopy` package: the image and wheel copy the package, and a chaos run's sockets
    there broke the copy."""
    monkeypatch.delenv("POLYCOPY_DATA_DIR", raising=False)
    repo = Path(__file__).resolve().parents[2]
    assert PolycopySettings().data_dir == repo / ".data"
    assert 'DATA_DIR="${POLYCOPY_DATA_DIR:-$REPO_ROOT/.data}"' in (repo / "infra" / "local.sh").read_text()
