"""The fake CLOB's scripted faults: 5xx storms, 425 windows, 503 cancel-only, time-outs and 429 with
Retry-After, per endpoint group (`post`, `read`, `cancel`: the order API; `book`: the public `GET /book` and
`POST /books`), consumed in the order they were added."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from polycopy.simulator.rest import json_error

GROUPS = ("post", "read", "cancel")  # the order API's groups; `book` is the public book routes'


@dataclass
class FaultRule:
    """One scripted fault: an HTTP status (None: stall without answering in time) on some endpoint groups,
    for the next `count` requests or until `until_ms`. `process_first`: handle the request, then misbehave
    (the order is placed, the answer is lost)."""

    groups: tuple[str, ...]
    status: int | None = 500
    count: int | None = 1
    until_ms: int | None = None
    retry_after_secs: float | None = None
    stall_secs: float = 0.0
    process_first: bool = False
    message: str = ""


class ClobFaults:
    """The scripted faults, consumed in the order they were added."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self._clock_ms = clock_ms
        self.rules: list[FaultRule] = []
        self.injected = 0

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def fail_next(self, count: int, status: int = 500, groups: tuple[str, ...] = ("post",)) -> None:
        """The next `count` requests of `groups` answer `status` (a 5xx storm)."""
        self.add(FaultRule(groups, status, count))

    def stall_next(
        self,
        count: int,
        stall_secs: float,
        groups: tuple[str, ...] = ("post",),
        *,
        process_first: bool = True,
    ) -> None:
        """The next `count` requests answer only after `stall_secs` (past the client's time-out)."""
        self.add(FaultRule(groups, None, count, stall_secs=stall_secs, process_first=process_first))

    def restart_window(self, secs: float) -> None:
        """A matching-engine restart: every order endpoint answers 425 for `secs`."""
        until = self._clock_ms() + int(secs * 1000)
        self.add(FaultRule(GROUPS, 425, None, until, message="the matching engine is restarting"))

    def cancel_only(self, secs: float) -> None:
        """Trading disabled for `secs`: `POST /order` answers 503; cancels and reads work."""
        until = self._clock_ms() + int(secs * 1000)
        self.add(FaultRule(("post",), 503, None, until, message="trading is disabled"))

    def throttle_next(self, count: int, retry_after_secs: float, groups: tuple[str, ...] = ("post",)) -> None:
        """The next `count` requests answer 429 with a Retry-After header."""
        self.add(FaultRule(groups, 429, count, retry_after_secs=retry_after_secs))

    def clear(self) -> None:
        self.rules.clear()

    def take(self, group: str) -> FaultRule | None:
        """The fault that applies to the next request of `group` (consuming one use of it), or None."""
        now = self._clock_ms()
        self.rules = [
            r
            for r in self.rules
            if (r.count is None or r.count > 0) and (r.until_ms is None or now < r.until_ms)
        ]
        for rule in self.rules:
            if group in rule.groups:
                if rule.count is not None:
                    rule.count -= 1
                self.injected += 1
                return rule
        return None


async def fault_response(rule: FaultRule) -> web.Response:
    """The answer a fault gives: its status (with Retry-After when set), or a 504 after a stall."""
    if rule.status is None:
        await asyncio.sleep(rule.stall_secs)
        return json_error(504, "gateway time-out")
    headers = {"Retry-After": f"{rule.retry_after_secs:g}"} if rule.retry_after_secs is not None else None
    text = rule.message or {500: "Internal Server Error", 502: "Bad Gateway"}.get(rule.status, "error")
    return web.json_response({"error": text}, status=rule.status, headers=headers)
