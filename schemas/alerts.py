"""Alerts for operators: what the alerts sink posts to the webhook (lost orders, breakers, kill switch,
silent feeds). Components publish them to `polycopy.alerts.v1`; order events and kill-switch changes are
turned into alerts by the sink itself."""

from __future__ import annotations

from enum import StrEnum

from schemas.base import Message


class AlertKind(StrEnum):
    """What happened."""

    ORDER_LOST = "order_lost"
    BREAKER_OPEN = "breaker_open"  # a venue endpoint group stopped calls (open or paused)
    BREAKER_CLOSED = "breaker_closed"  # it works again
    KILL_SWITCH = "kill_switch"
    FEED_SILENT = "feed_silent"


class Severity(StrEnum):
    """How loud."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Alert(Message):
    """One alert; `alert_id` is deterministic, so a re-delivered alert is posted once. Key: the kind."""

    alert_id: str
    kind: AlertKind
    severity: Severity
    summary: str
    detail: str = ""
    wallet_id: str | None = None
    source: str = ""
    occurred_at_ms: int
