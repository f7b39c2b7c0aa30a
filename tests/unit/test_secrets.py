"""No secret in any output or child environment (issue 8, defect 9): the demo printed the whole
DATABASE_URL, password included, and `to_env()` handed the signer key to every child process."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from polycopy.infra.settings import SECRET_VARIABLES, PolycopySettings, display_url, without_secrets
from polycopy.tools.demo import Processes, where_to_look

KEY = "0x" + "4f" * 32
SECRET_SETTINGS = {
    "database_url": "postgresql://polycopy:hunter2@db.internal:5432/polycopy",
    "execution_mode": "live",
    "private_key": SecretStr(KEY),
    "clob_api_key": SecretStr("api-key-1"),
    "clob_api_secret": SecretStr("c2VjcmV0"),
    "clob_api_passphrase": SecretStr("pass-phrase"),
    "metrics_enabled": False,
}
SECRETS = (KEY, "api-key-1", "c2VjcmV0", "pass-phrase")


def test_child_environments_from_settings_carry_no_secret() -> None:
    env = PolycopySettings(**SECRET_SETTINGS).to_env()  # type: ignore[arg-type]

    assert not any(secret in value for value in env.values() for secret in SECRETS)
    assert not SECRET_VARIABLES & set(env)
    assert env["POLYCOPY_EXECUTION_MODE"] == "live"  # the rest is all there


def test_the_secret_variables_are_every_secret_setting() -> None:
    assert {
        "POLYCOPY_PRIVATE_KEY",
        "POLYCOPY_CLOB_API_KEY",
        "POLYCOPY_CLOB_API_SECRET",
        "POLYCOPY_CLOB_API_PASSPHRASE",
        "POLYCOPY_ALERT_WEBHOOK_URL",
        "POLYCOPY_MCP_TOKEN",
    } == SECRET_VARIABLES
    assert without_secrets({"POLYCOPY_PRIVATE_KEY": KEY, "PATH": "/bin"}) == {"PATH": "/bin"}


def test_the_demo_output_names_the_database_without_its_password(tmp_path: Path) -> None:
    settings = PolycopySettings(**SECRET_SETTINGS)  # type: ignore[arg-type]

    text = "\n".join(where_to_look(settings, tmp_path / "wallets.yaml"))

    assert "hunter2" not in text
    assert "psql postgresql://polycopy@db.internal:5432/polycopy -c" in text
    assert display_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_the_demo_starts_its_processes_without_the_secrets_of_its_own_environment(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("POLYCOPY_PRIVATE_KEY", KEY)
    processes = Processes(tmp_path)
    code = "import os; print(sorted(k for k in os.environ if k.startswith('POLYCOPY_')))"

    processes.start("child", "-c", code, env={"POLYCOPY_TOPIC_PREFIX": "x."}).wait(30)

    printed = (tmp_path / "child.log").read_text()
    assert "POLYCOPY_TOPIC_PREFIX" in printed and "POLYCOPY_PRIVATE_KEY" not in printed
