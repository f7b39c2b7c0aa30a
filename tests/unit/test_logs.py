"""Logging: the correlation context (nesting, binding, asyncio tasks kept apart), the ids a message carries,
the JSON and text line formats, secrets scrubbed from every line, the configuration a process applies, and
settings that hand no secret to a child process."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from polycopy.infra.logs import (
    OWN_LOGGERS,
    CorrelationFilter,
    JsonLineFormatter,
    TextLineFormatter,
    bind_log_context,
    build_logging_config,
    configured_secrets,
    correlation_ids,
    current_log_context,
    log_context,
    redact_url,
)
from polycopy.infra.settings import LogFormat, PolycopySettings
from schemas.trades import TargetedTrade
from tests.builders import WALLET_ID, build_decision, build_intent, build_report, build_trade

KEY = "0x" + "ab12" * 16
PASSWORD = "pg-Pa55word"
API_SECRET = "c2VjcmV0LWFwaS1zZWNyZXQ="
PASSPHRASE = 'pass"phrase\\42'  # JSON escapes both characters: the escaped form must go too


class Captured:
    """A handler writing formatted lines to memory, configured like a component's stderr handler."""

    def __init__(self, formatter: logging.Formatter, component: str = "executor") -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)
        self.handler.addFilter(CorrelationFilter(component))
        self.logger = logging.getLogger(f"polycopy.test.{id(self)}")
        self.logger.handlers, self.logger.propagate = [self.handler], False
        self.logger.setLevel(logging.DEBUG)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def json_lines() -> Iterator[Captured]:
    yield Captured(JsonLineFormatter(secrets=[KEY, PASSWORD, API_SECRET]))


def test_the_context_adds_ids_inside_the_block_only_and_nested_blocks_add_to_it() -> None:
    assert current_log_context() == {}
    with log_context(stage="executor", dedup_key="d1", intent_id=None):
        assert current_log_context() == {"stage": "executor", "dedup_key": "d1"}
        with log_context(intent_id="i1"):
            bind_log_context(order_id="o1")
            assert current_log_context() == {
                "stage": "executor",
                "dedup_key": "d1",
                "intent_id": "i1",
                "order_id": "o1",
            }
        assert current_log_context() == {"stage": "executor", "dedup_key": "d1"}
    assert current_log_context() == {}


def test_a_block_that_raises_still_drops_its_ids() -> None:
    with pytest.raises(RuntimeError), log_context(dedup_key="d1"):
        bind_log_context(order_id="o1")
        raise RuntimeError("boom")
    assert current_log_context() == {}


async def test_interleaved_asyncio_tasks_each_log_their_own_ids(json_lines: Captured) -> None:
    """The Faust agents are tasks on one loop: one agent's ids never leak onto another's lines."""

    async def handle(dedup_key: str) -> None:
        with log_context(stage="evaluate", dedup_key=dedup_key):
            for step in range(3):
                await asyncio.sleep(0)  # let the other task run in between
                json_lines.logger.info("step %d", step)

    await asyncio.gather(handle("trade-a"), handle("trade-b"))

    records = json_lines.records()
    assert len(records) == 6
    for key in ("trade-a", "trade-b"):
        assert [r["message"] for r in records if r["dedup_key"] == key] == ["step 0", "step 1", "step 2"]


def test_every_message_names_its_correlation_ids() -> None:
    trade = build_trade()
    intent = build_intent(dedup_key=trade.dedup_key)
    report = build_report(intent=intent)
    assert correlation_ids(trade) == {"dedup_key": trade.dedup_key}
    targeted = TargetedTrade(wallet_id=WALLET_ID, trade=trade, book_id=None)
    assert correlation_ids(targeted) == {"dedup_key": trade.dedup_key, "wallet_id": WALLET_ID}
    assert correlation_ids(build_decision()) == {"dedup_key": trade.dedup_key, "wallet_id": WALLET_ID}
    assert correlation_ids(intent) == {
        "dedup_key": trade.dedup_key,
        "wallet_id": WALLET_ID,
        "intent_id": intent.intent_id,
    }
    assert correlation_ids(report) == {
        "dedup_key": trade.dedup_key,
        "wallet_id": WALLET_ID,
        "intent_id": intent.intent_id,
        "order_id": report.order_id,
    }
    assert correlation_ids(object()) == {}


def test_a_json_line_has_time_level_logger_message_component_and_the_known_ids(json_lines: Captured) -> None:
    with log_context(stage="executor", dedup_key="d1", intent_id="i1"):
        json_lines.logger.debug("order %s", "filled")
    json_lines.logger.warning("outside")

    inside, outside = json_lines.records()
    assert list(inside)[:4] == ["time", "level", "logger", "message"]
    assert inside["time"].endswith("+00:00")  # type: ignore[union-attr]
    assert inside | {"time": None} == {
        "time": None,
        "level": "DEBUG",
        "logger": json_lines.logger.name,
        "message": "order filled",
        "component": "executor",
        "stage": "executor",
        "dedup_key": "d1",
        "intent_id": "i1",
    }
    assert outside["component"] == "executor" and "dedup_key" not in outside


def test_an_exception_stays_on_its_json_line(json_lines: Captured) -> None:
    with log_context(dedup_key="d1"):
        try:
            raise ValueError("bad value")
        except ValueError:
            json_lines.logger.exception("failed")
    [line] = json_lines.lines()  # one line, whatever the traceback's length
    record = json.loads(line)
    assert "ValueError: bad value" in record["exc_info"] and record["dedup_key"] == "d1"


def test_a_text_line_ends_with_the_stage_and_ids_and_a_traceback_keeps_its_lines() -> None:
    captured = Captured(TextLineFormatter())
    with log_context(stage="evaluate", dedup_key="d1", wallet_id="w1"):
        captured.logger.info("decided copy")
        try:
            raise ValueError("bad")
        except ValueError:
            captured.logger.exception("failed")
    captured.logger.info("plain")
    first, second, *trace, last = captured.lines()
    assert first.endswith(
        f"INFO {captured.logger.name}: decided copy [stage=evaluate dedup_key=d1 wallet_id=w1]"
    )
    assert second.endswith("failed [stage=evaluate dedup_key=d1 wallet_id=w1]")
    assert trace[0] == "Traceback (most recent call last):" and trace[-1] == "ValueError: bad"
    assert last.endswith(": plain")


@pytest.mark.parametrize(
    "message",
    [
        f"connecting to postgresql://polycopy:{PASSWORD}@db:5432/polycopy",
        f"signer {KEY}",
        f"signer without prefix {KEY.removeprefix('0x')}",
        f"header POLY_PASSPHRASE={API_SECRET}",
        f'quoted "{PASSWORD}"',
        f"passphrase {PASSPHRASE}",
    ],
)
def test_a_configured_secret_never_reaches_a_line_in_either_format(message: str) -> None:
    secrets = configured_secrets(
        PolycopySettings(
            private_key=SecretStr(KEY),
            clob_api_key=SecretStr("key-id-123"),
            clob_api_secret=SecretStr(API_SECRET),
            clob_api_passphrase=SecretStr(PASSPHRASE),
            database_url=f"postgresql://polycopy:{PASSWORD}@db:5432/polycopy",
        )
    )
    for formatter in (JsonLineFormatter(secrets), TextLineFormatter(secrets)):
        captured = Captured(formatter)
        captured.logger.info(message)
        try:
            raise ConnectionError(message)
        except ConnectionError:
            captured.logger.exception("in a traceback: %r", {"detail": message})
        output = captured.stream.getvalue()
        for secret in (
            KEY,
            KEY.removeprefix("0x"),
            PASSWORD,
            API_SECRET,
            PASSPHRASE,
            json.dumps(PASSPHRASE)[1:-1],
        ):
            assert secret not in output
        assert "***" in output


def test_the_configured_secrets_are_the_keys_the_credentials_the_database_password_and_the_webhook() -> None:
    settings = PolycopySettings(
        private_key=SecretStr(KEY),
        database_url=f"postgresql://polycopy:{PASSWORD}@db/polycopy",
        alert_webhook_url="https://hooks.slack.com/services/T0/B0/token-token",
    )
    assert set(configured_secrets(settings)) == {
        KEY,
        KEY.removeprefix("0x"),
        PASSWORD,
        "https://hooks.slack.com/services/T0/B0/token-token",
    }
    # Nothing configured, nothing to scrub; a two-letter password is not scrubbed out of every word.
    assert configured_secrets(PolycopySettings(database_url="postgresql://polycopy@db/polycopy")) == []
    assert configured_secrets(PolycopySettings(database_url="postgresql://u:pw@db/polycopy")) == []


def test_a_database_url_is_printed_without_its_password() -> None:
    assert redact_url(f"postgresql://polycopy:{PASSWORD}@db:5432/x") == "postgresql://polycopy:***@db:5432/x"
    assert redact_url("postgresql://polycopy@db:5432/x") == "postgresql://polycopy@db:5432/x"
    assert redact_url("not a url") == "not a url"


def test_debug_turns_on_our_own_lines_while_libraries_stay_at_info() -> None:
    config = build_logging_config(PolycopySettings(log_level="DEBUG", log_format=LogFormat.JSON), "worker")
    assert config["root"]["level"] == logging.INFO
    assert {name: config["loggers"][name]["level"] for name in ("polycopy", "sinks", "processors")} == {
        "polycopy": logging.DEBUG,
        "sinks": logging.DEBUG,
        "processors": logging.DEBUG,
    }
    assert config["formatters"]["line"]["()"] is JsonLineFormatter
    assert config["filters"]["correlation"] == {"()": CorrelationFilter, "component": "worker"}
    assert not config["disable_existing_loggers"]  # loggers made at import (and their filters) keep working
    quiet = build_logging_config(PolycopySettings(log_level="WARNING"), "sink")
    assert quiet["root"]["level"] == quiet["loggers"]["sinks"]["level"] == logging.WARNING
    assert quiet["formatters"]["line"]["()"] is TextLineFormatter


def test_the_applied_configuration_writes_json_lines_with_the_component(capsys) -> None:  # type: ignore[no-untyped-def]
    settings = PolycopySettings(log_format=LogFormat.JSON, log_level="DEBUG")
    previous = logging.root.handlers[:], logging.root.level
    try:
        logging.config.dictConfig(build_logging_config(settings, "sink"))
        with log_context(stage="postgres-sink", dedup_key="d9"):
            logging.getLogger("sinks.postgres_sink").debug("row")
        logging.getLogger("aiokafka").debug("library debugging stays off")
    finally:
        logging.root.handlers, logging.root.level = previous
        for name in (*OWN_LOGGERS, "httpx"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line) | {"time": None} == {
        "time": None,
        "level": "DEBUG",
        "logger": "sinks.postgres_sink",
        "message": "row",
        "component": "sink",
        "stage": "postgres-sink",
        "dedup_key": "d9",
    }


def test_under_the_applied_configuration_the_clob_clients_404_line_stays_dropped(capsys) -> None:  # type: ignore[no-untyped-def]
    """A missing book is an ordinary answer: the client's ERROR line for it would flood every component's log.
    Reconfiguring logging (ours, and Faust's with the same dictConfig) must not undo the adapter's filter."""
    from polycopy.polymarket.clob import CLIENT_LOGGER

    previous = logging.root.handlers[:], logging.root.level
    try:
        logging.config.dictConfig(build_logging_config(PolycopySettings(log_format=LogFormat.JSON), "worker"))
        client = logging.getLogger(CLIENT_LOGGER)
        for status in (404, 500):
            client.error("[py_clob_client_v2] request error status=%s url=%s body=%s", status, "/book", "{}")
    finally:
        logging.root.handlers, logging.root.level = previous
        for name in (*OWN_LOGGERS, "httpx"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "[py_clob_client_v2] request error status=500 url=/book body={}"


def test_child_processes_get_every_setting_but_no_secret() -> None:
    settings = PolycopySettings(
        private_key=SecretStr(KEY),
        clob_api_key=SecretStr("key-id-123"),
        clob_api_secret=SecretStr(API_SECRET),
        clob_api_passphrase=SecretStr("passphrase-42"),
        log_format=LogFormat.JSON,
    )
    env = settings.to_env()
    assert not {"POLYCOPY_PRIVATE_KEY", "POLYCOPY_CLOB_API_SECRET", "POLYCOPY_CLOB_API_PASSPHRASE"} & set(env)
    assert not any(secret in value for value in env.values() for secret in (KEY, API_SECRET, "passphrase-42"))
    assert env["POLYCOPY_LOG_FORMAT"] == "json" and env["POLYCOPY_EXECUTION_MODE"] == "paper"


def test_the_kafka_clients_own_lines_go_through_python_logging(caplog) -> None:  # type: ignore[no-untyped-def]
    """A raw `%3|...|FAIL|` line on stderr would break a JSON log stream; it comes as a record instead."""
    import socket

    from polycopy.infra.kafka import MessagePublisher

    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    publisher = MessagePublisher(PolycopySettings(kafka_bootstrap_servers=f"127.0.0.1:{port}"))
    with caplog.at_level(logging.INFO, logger="librdkafka"):
        for _ in range(300):  # until the client has tried to connect, and polled its log out
            publisher.poll(0.1)
            if any(r.name == "librdkafka" for r in caplog.records):
                break
    failed = [r for r in caplog.records if r.name == "librdkafka"]
    assert failed and f"127.0.0.1:{port}" in failed[0].getMessage()


def test_every_secret_setting_is_scrubbed_from_the_logs() -> None:
    """A new SecretStr setting (the MCP server's bearer token) is a secret the logs must not show either."""
    names = [
        name for name, field in PolycopySettings.model_fields.items() if "SecretStr" in str(field.annotation)
    ]
    assert "mcp_token" in names
    values = {name: SecretStr(f"https://secret-of-{name}.test/0123456789") for name in names}
    settings = PolycopySettings(**values)  # type: ignore[arg-type]
    assert set(configured_secrets(settings)) >= {value.get_secret_value() for value in values.values()}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, message: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_a_kafka_clients_repeated_line_goes_out_once_per_window_and_then_says_how_many_were_held() -> None:
    """A worker logged 90-100 lines a second while its broker was down in the chaos runs (27,000 in one)."""
    from polycopy.infra.logs import RepeatLimiter

    clock = FakeClock()
    limiter = RepeatLimiter(window_secs=10, clock=clock)
    refused = "Unable connect to node with id %s: %s"

    errno = "[Errno 111] Connection refused"
    passed = [limiter.filter(record("aiokafka", refused, 1, errno)) for _ in range(50)]
    other = limiter.filter(record("aiokafka.consumer.group_coordinator", "Group Coordinator Request failed"))
    ours = [limiter.filter(record("processors.worker.app", "evaluate failed")) for _ in range(3)]
    clock.now = 10.0
    after = record("aiokafka", refused, 1, errno)

    assert passed == [True] + [False] * 49 and other and ours == [True] * 3
    assert limiter.filter(after)
    assert after.getMessage() == (
        "Unable connect to node with id 1: [Errno 111] Connection refused (49 more like it in the last 10 s)"
    )


def test_librdkafka_lines_that_differ_only_in_numbers_are_repeats_and_other_facilities_are_not() -> None:
    from polycopy.infra.logs import RepeatLimiter

    limiter = RepeatLimiter(window_secs=10, clock=FakeClock())
    fail = "FAIL [rdkafka#consumer-2] [thrd:127.0.0.1:%d/bootstrap]: Connect failed (after %dms)"

    assert limiter.filter(record("librdkafka", fail % (59697, 0)))
    assert not limiter.filter(record("librdkafka", fail % (59697, 12)))
    assert limiter.filter(
        record("librdkafka", "SESSTMOUT [rdkafka#consumer-2]: Consumer group session timed out")
    )
    assert limiter.filter(record("librdkafka", fail % (59697, 0), level=logging.WARNING))  # another level


def test_under_the_applied_configuration_a_brokers_outage_is_a_few_lines(capsys) -> None:  # type: ignore[no-untyped-def]
    previous = logging.root.handlers[:], logging.root.level
    try:
        logging.config.dictConfig(build_logging_config(PolycopySettings(log_format=LogFormat.JSON), "worker"))
        for _ in range(100):
            logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 1, "refused")
        logging.getLogger("processors.worker.app").warning("an own line")
    finally:
        logging.root.handlers, logging.root.level = previous
        for name in (*OWN_LOGGERS, "httpx"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["component"]) for line in lines] == [
        ("aiokafka", "worker"),
        ("processors.worker.app", "worker"),
    ]
