"""Log lines as a component writes them (JSON, with the component and the correlation ids), captured in
memory from our own loggers at DEBUG, for tests of what a stage logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from polycopy.infra.logs import OWN_LOGGERS, CorrelationFilter, JsonLineFormatter


class JsonLines:
    """The captured lines, decoded."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._stream.getvalue().splitlines()]

    def with_message(self, start: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if str(record["message"]).startswith(start)]


@contextmanager
def capture_json_lines(component: str = "test") -> Iterator[JsonLines]:
    """Every line our packages log inside the block, at DEBUG, formatted as `POLYCOPY_LOG_FORMAT=json`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(CorrelationFilter(component))
    loggers = [logging.getLogger(name) for name in OWN_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield JsonLines(stream)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
