"""The alerts sink (`polycopy alerts`): alerts, lost orders and kill-switch changes -> a Slack-compatible
webhook, each alert posted once.

At-least-once consumption through the shared consume loop: a batch's alerts are posted (with retries and
backoff) before its offsets commit, and every posted alert id is written to a small dedup store first read at
start-up, so a batch read again after a crash or a failed post does not post what already went out.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from polycopy.infra.kafka import Record
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.settings import PolycopySettings
from processors.core.alerts import alert_for_kill_switch, alert_for_order_event
from schemas.alerts import Alert, Severity
from schemas.control import KillSwitch
from schemas.orders import OrderEvent
from schemas.topics import ALERTS, CONTROL, ORDER_EVENTS
from sinks.base import ConsumeLoop, Rejection

log = logging.getLogger(__name__)

_ICONS = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}


class AlertNotPosted(RuntimeError):  # noqa: N818 - reads as the event it reports
    """The webhook refused an alert after every retry: nothing is committed, the batch will be read again."""


def format_slack_message(alert: Alert) -> dict[str, str]:
    """The webhook body: Slack's (and Mattermost's, Rocket.Chat's) `{"text": ...}` with light markdown."""
    lines = [f"{_ICONS[alert.severity]} *{alert.severity.value.upper()}* {alert.summary}"]
    if alert.detail:
        lines.append(alert.detail)
    lines.append(f"_{alert.kind.value} · {alert.source or 'polycopy'} · alert {alert.alert_id[:12]}_")
    return {"text": "\n".join(lines)}


class SentAlerts:
    """Alert ids already posted, kept in a file (one id per line) and in memory for the most recent ones."""

    def __init__(self, path: Path, keep: int = 10_000) -> None:
        self._path, self._keep = path, keep
        self._ids: OrderedDict[str, None] = OrderedDict()
        if path.exists():
            for line in path.read_text().splitlines()[-keep:]:
                self._ids[line.strip()] = None
        path.parent.mkdir(parents=True, exist_ok=True)

    def __contains__(self, alert_id: str) -> bool:
        return alert_id in self._ids

    def add(self, alert_id: str) -> None:
        """Remember a posted alert, durably, before its offset can commit."""
        with self._path.open("a") as file:
            file.write(alert_id + "\n")
            file.flush()
        self._ids[alert_id] = None
        while len(self._ids) > self._keep:
            self._ids.popitem(last=False)


class Webhook(Protocol):
    """Where alerts are posted (`HttpWebhook`, or a fake in tests): raises on failure."""

    def post(self, body: dict[str, str]) -> None: ...


class HttpWebhook:
    """POST JSON to a webhook URL (standard library: one request per alert, no connection to keep)."""

    def __init__(self, url: str, timeout_secs: float = 10.0) -> None:
        self._url, self._timeout_secs = url, timeout_secs

    def post(self, body: dict[str, str]) -> None:
        request = urllib.request.Request(
            self._url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self._timeout_secs) as response:  # noqa: S310 - configured URL
            if response.status >= 300:
                raise urllib.error.HTTPError(
                    self._url, response.status, "webhook refused", response.headers, None
                )


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per alert and the backoff between them (doubling from `base_secs`, capped)."""

    attempts: int = 5
    base_secs: float = 0.5
    cap_secs: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.cap_secs, self.base_secs * 2**attempt)


class AlertsSink:
    """A `BatchSink` of the consume loop: decode (alert, order event or kill switch) -> dedup -> post."""

    stage = "alerts"

    def __init__(
        self,
        settings: PolycopySettings,
        *,
        loop: ConsumeLoop,
        webhook: Webhook | None,
        sent: SentAlerts,
        metrics: PipelineMetrics,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings, self._loop, self._webhook, self._sent = settings, loop, webhook, sent
        self._metrics, self._retry, self._sleep = metrics, retry, sleep
        self._pending: OrderedDict[str, Alert] = OrderedDict()
        self.posted: list[Alert] = []

    def stop(self, *_: object) -> None:
        self._loop.stop()

    def run(self, max_idle_secs: float | None = None) -> None:
        """Run until stopped (or idle for `max_idle_secs`)."""
        self._loop.run(self, max_idle_secs)

    # --- the consume loop's hooks ---------------------------------------------------------------------------
    def topics(self) -> Sequence[str]:
        return [self._settings.topic_name(spec) for spec in (ALERTS, ORDER_EVENTS, CONTROL)]

    def decode(self, record: Record) -> Alert | None:
        if record.topic == self._settings.topic_name(ALERTS):
            return Alert.model_validate_json(record.value or b"")
        if record.topic == self._settings.topic_name(ORDER_EVENTS):
            return alert_for_order_event(OrderEvent.model_validate_json(record.value or b""))
        if record.value is None:  # a control tombstone: nothing engaged or released to tell
            return None
        return alert_for_kill_switch(KillSwitch.model_validate_json(record.value))

    def write(self, alert: Alert, record: Record) -> None:
        if alert.alert_id in self._sent or alert.alert_id in self._pending:
            self._metrics.alerts.labels(alert.kind.value, "duplicate").inc()
            return
        self._pending[alert.alert_id] = alert

    def flush(self) -> Sequence[Rejection]:
        """Post every pending alert (oldest first); each one posted is remembered before the next."""
        while self._pending:
            alert_id, alert = next(iter(self._pending.items()))
            self._post(alert)
            self._sent.add(alert_id)
            del self._pending[alert_id]
            self.posted.append(alert)
            self._metrics.alerts.labels(alert.kind.value, "sent").inc()
        return ()

    def _post(self, alert: Alert) -> None:
        if self._webhook is None:
            log.warning("alert (no webhook configured): %s", format_slack_message(alert)["text"])
            return
        for attempt in range(self._retry.attempts):
            try:
                self._webhook.post(format_slack_message(alert))
                return
            except (OSError, urllib.error.URLError) as error:
                self._metrics.alerts.labels(alert.kind.value, "failed").inc()
                if attempt + 1 == self._retry.attempts:
                    raise AlertNotPosted(f"alert {alert.alert_id} not posted: {error}") from error
                delay = self._retry.delay(attempt)
                log.warning("webhook failed (%s); retry %d in %.1f s", error, attempt + 1, delay)
                self._sleep(delay)
