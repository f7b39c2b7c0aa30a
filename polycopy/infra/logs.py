"""Logging for every component: text or JSON lines (python-json-logger), correlation ids, secrets scrubbed,
and the Kafka clients' repeated lines held back (`RepeatLimiter`).

Configured once per process (`configure_logging`, from the CLI; the Faust worker hands the same dictConfig to
its own logging setup). Each stage sets the ids of the event it handles with `log_context` at its per-event
entry (the trade's dedup key, the intent id, the order id, the wallet), and every line logged while it
handles that event carries them, whichever module or library logs it. Contextvars keep them apart between
asyncio tasks (the Faust agents) and threads.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import logging.config
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from pythonjsonlogger.json import JsonFormatter

from polycopy.infra.settings import LogFormat, PolycopySettings

# The ids that follow one trade through the stages, in the order a line shows them.
CORRELATION_FIELDS = ("dedup_key", "wallet_id", "intent_id", "order_id")
# Our own packages log at POLYCOPY_LOG_LEVEL; libraries (Faust, aiokafka, websockets, ...) at INFO or above,
# so that DEBUG turns on our per-event lines without the libraries' own debugging flood.
OWN_LOGGERS = ("polycopy", "producers", "processors", "sinks", "schemas")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "***"
# Kafka clients log every reconnection attempt: about 100 lines a second from one worker while a broker is
# down. A line of theirs goes out once per window; the repeats in between are counted on the next one.
CHATTY_LOGGERS = ("aiokafka", "librdkafka")
REPEAT_WINDOW_SECS = 10.0
# A configured secret shorter than this is not scrubbed: replacing two letters everywhere would make every
# line unreadable, and a secret that short protects nothing anyway.
MIN_SECRET_CHARS = 6

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "polycopy_log_context", default=MappingProxyType({})
)


class log_context:  # noqa: N801 - a context manager named, and used, like the function it replaced
    """Add `fields` (empty ones ignored) to every line logged inside the block, in this task or thread.

    A class rather than a `@contextmanager` generator: the consume loops and the worker enter one per record,
    and the generator's machinery cost about half as much again as the context change itself."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: str | None) -> None:
        self._fields = fields
        self._token: contextvars.Token[Mapping[str, str]] | None = None

    def __enter__(self) -> None:
        merged = dict(_context.get())
        for name, value in self._fields.items():
            if value:
                merged[name] = value
        self._token = _context.set(merged)

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _context.reset(self._token)
            self._token = None


def bind_log_context(**fields: str | None) -> None:
    """Add `fields` to the current block's context, e.g. an order id known only half-way through an event.
    Call it inside `log_context`: the block's end drops them again."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})


def current_log_context() -> Mapping[str, str]:
    """The fields every line logged now would carry."""
    return _context.get()


def correlation_ids(message: object) -> dict[str, str]:
    """The correlation ids a topic's message carries (its own, else those of the trade it wraps)."""
    ids: dict[str, str] = {}
    names, wraps_trade = _carried_fields(type(message))
    sources = (message, getattr(message, "trade", None)) if wraps_trade else (message,)
    for source in sources:
        for name in names if source is message else _carried_fields(type(source))[0]:
            value = getattr(source, name, None)
            if isinstance(value, str) and value and name not in ids:
                ids[name] = value
    return ids


@functools.cache
def _carried_fields(cls: type) -> tuple[tuple[str, ...], bool]:
    """The correlation fields a message class declares, and whether it declares a `trade`; looked up once
    per class. Asking a pydantic model for an attribute it lacks raises and catches an AttributeError
    inside pydantic, which made this lookup a sixth of the PostgreSQL sink's time per record."""
    fields = getattr(cls, "model_fields", None)
    if not isinstance(fields, Mapping):  # not a pydantic model: ask every instance
        return CORRELATION_FIELDS, True
    return tuple(name for name in CORRELATION_FIELDS if name in fields), "trade" in fields


def configured_secrets(settings: PolycopySettings) -> list[str]:
    """Every secret value the settings hold: the signer key (with and without 0x), the CLOB API credentials,
    the database password, the webhook URL (a Slack webhook URL is its own token) and the MCP bearer token."""
    values = [
        secret.get_secret_value()
        for secret in (
            settings.private_key,
            settings.clob_api_key,
            settings.clob_api_secret,
            settings.clob_api_passphrase,
            settings.alert_webhook_url,
            settings.mcp_token,
        )
        if secret is not None
    ]
    values += [value.removeprefix("0x") for value in values if value.startswith("0x")]
    password = _url_password(settings.database_url)
    values += [password] if password else []
    return sorted({value for value in values if len(value) >= MIN_SECRET_CHARS}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***` (for printing a database URL)."""
    password = _url_password(url)
    return url.replace(f":{password}@", f":{REDACTED}@", 1) if password else url


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class _Scrubber:
    """Replaces every configured secret in a formatted line (raw, and as JSON escapes it)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        variants = {form for secret in secrets for form in (secret, json.dumps(secret)[1:-1])}
        self._secrets = sorted(variants, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        return line


class CorrelationFilter(logging.Filter):
    """Puts the component name and the current correlation ids on every record a handler emits."""

    def __init__(self, component: str = "") -> None:
        super().__init__()
        self._component = component

    def filter(self, record: logging.LogRecord) -> bool:
        if self._component and not hasattr(record, "component"):
            record.component = self._component
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class RepeatLimiter(logging.Filter):
    """Lets a line of the `CHATTY_LOGGERS` through once per `window_secs`; lines that differ only in their
    numbers (ports, offsets, milliseconds) are repeats. The next one let through says how many were held."""

    def __init__(self, window_secs: float = REPEAT_WINDOW_SECS, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._window, self._clock = window_secs, clock
        self._last: dict[tuple[str, int, str], float] = {}
        self._held: Counter[tuple[str, int, str]] = Counter()
        self._lock = threading.Lock()  # librdkafka logs from its own threads

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(CHATTY_LOGGERS):
            return True
        message = record.getMessage()
        key = (record.name, record.levelno, re.sub(r"\d+", "#", message))
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._window:
                self._held[key] += 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            record.msg, record.args = f"{message} ({held} more like it in the last {self._window:g} s)", ()
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, component, stage, the
    correlation ids that are known, exc_info when an exception is logged; secrets scrubbed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            json_ensure_ascii=False,
        )
        self._scrub = _Scrubber(secrets)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {"time": log_data.pop("time", None), **log_data}  # the time first, as every collector shows it

    def format(self, record: logging.LogRecord) -> str:
        return self._scrub(super().format(record))


class TextLineFormatter(logging.Formatter):
    """`time LEVEL logger: message [dedup_key=... intent_id=...]`; secrets scrubbed."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(TEXT_FORMAT)
        self._scrub = _Scrubber(secrets)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(
            f"{name}={getattr(record, name)}"
            for name in ("stage", *CORRELATION_FIELDS)
            if getattr(record, name, None)
        )
        if ids:
            head, newline, rest = line.partition("\n")  # a traceback keeps its own lines
            line = f"{head} [{ids}]{newline}{rest}"
        return self._scrub(line)


def build_logging_config(settings: PolycopySettings, component: str) -> dict[str, Any]:
    """The `logging.config.dictConfig` of one component: one stderr handler with the chosen format."""
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    formatter = JsonLineFormatter if settings.log_format is LogFormat.JSON else TextLineFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "correlation": {"()": CorrelationFilter, "component": component},
            "repeats": {"()": RepeatLimiter},
        },
        "formatters": {"line": {"()": formatter, "secrets": configured_secrets(settings)}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["repeats", "correlation"],
            }
        },
        "root": {"level": max(level, logging.INFO), "handlers": ["stderr"]},
        "loggers": {
            **{name: {"level": level} for name in OWN_LOGGERS},
            "httpx": {"level": max(level, logging.WARNING)},  # one INFO line per book request otherwise
        },
    }


def configure_logging(settings: PolycopySettings, component: str) -> None:
    """Configure this process's logging (format, level, correlation ids, scrubbing) for `component`."""
    logging.config.dictConfig(build_logging_config(settings, component))
    logging.captureWarnings(True)  # a library's warning is a log line too, in the same format
