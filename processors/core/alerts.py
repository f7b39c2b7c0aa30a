"""Alerts built from what happened, with deterministic ids so that a re-delivered event is posted once."""

from __future__ import annotations

import hashlib

from schemas.alerts import Alert, AlertKind, Severity
from schemas.control import ALL_WALLETS, KillSwitch
from schemas.orders import OrderEvent, OrderEventType

STOPPED_STATES = frozenset({"open", "paused", "half_open"})  # half-open: one probe, no other call


def _alert_id(*parts: str) -> str:
    return hashlib.sha256("|".join(("alert", *parts)).encode()).hexdigest()[:32]


def alert_for_order_event(event: OrderEvent) -> Alert | None:
    """An OrderLost event's alert (capital released); other order events raise none."""
    if event.event_type is not OrderEventType.ORDER_LOST:
        return None
    released = (
        f"{event.released_usdc} USDC released" if event.released_usdc is not None else "nothing reserved"
    )
    return Alert(
        alert_id=_alert_id("order_lost", event.event_id),
        kind=AlertKind.ORDER_LOST,
        severity=Severity.CRITICAL,
        summary=f"order lost: {event.wallet_id} {event.side.value} {event.size} @ {event.limit_price}",
        detail=f"order {event.order_id}: {event.detail}; {released}",
        wallet_id=event.wallet_id,
        source="lifecycle",
        occurred_at_ms=event.occurred_at_ms,
    )


def alert_for_breaker(group: str, previous: str, current: str, reason: str, at_ms: int) -> Alert | None:
    """A breaker that stops calls (open or paused) or works again (closed after stopping); a probe starting
    (half-open) raises none."""
    if current in STOPPED_STATES and previous not in STOPPED_STATES:
        kind, severity, summary = (
            AlertKind.BREAKER_OPEN,
            Severity.WARNING,
            f"venue calls stopped: {group} {current}",
        )
    elif current == "closed" and previous != "closed":
        kind, severity, summary = AlertKind.BREAKER_CLOSED, Severity.INFO, f"venue calls resumed: {group}"
    else:
        return None
    return Alert(
        alert_id=_alert_id(kind.value, group, current, str(at_ms)),
        kind=kind,
        severity=severity,
        summary=summary,
        detail=reason,
        source="executor",
        occurred_at_ms=at_ms,
    )


def alert_for_kill_switch(switch: KillSwitch) -> Alert:
    """A kill switch engaged or released."""
    who = "every wallet" if switch.wallet_id == ALL_WALLETS else f"wallet {switch.wallet_id}"
    state = "engaged: new orders stopped, open orders cancelled" if switch.engaged else "released"
    return Alert(
        alert_id=_alert_id("kill_switch", switch.wallet_id, str(switch.engaged), str(switch.set_at_ms)),
        kind=AlertKind.KILL_SWITCH,
        severity=Severity.CRITICAL if switch.engaged else Severity.INFO,
        summary=f"kill switch {state} for {who}",
        detail=" ".join(
            part for part in (switch.reason, f"(by {switch.set_by})" if switch.set_by else "") if part
        ),
        wallet_id=None if switch.wallet_id == ALL_WALLETS else switch.wallet_id,
        source="control",
        occurred_at_ms=switch.set_at_ms,
    )


def alert_for_feed_silence(source: str, silent_secs: float, since_ms: int, at_ms: int) -> Alert:
    """A trade feed that sent nothing for `silent_secs`; one alert per silence (keyed by when it began)."""
    return Alert(
        alert_id=_alert_id("feed_silent", source, str(since_ms)),
        kind=AlertKind.FEED_SILENT,
        severity=Severity.WARNING,
        summary=f"feed silent: {source} sent no trade for {silent_secs:.0f} s",
        source=source,
        occurred_at_ms=at_ms,
    )


class SilenceWatch:
    """Feed silence for one source: one alert when no trade arrived for `threshold_secs`, and one again only
    after trades resumed and stopped anew. The caller feeds it trade times and asks on its own clock."""

    def __init__(self, source: str, threshold_secs: float, started_at_ms: int) -> None:
        self._source, self._threshold_ms = source, int(threshold_secs * 1000)
        self._last_ms, self._alerted = started_at_ms, False

    def saw_trade(self, at_ms: int) -> None:
        """A trade arrived (ends any silence)."""
        self._last_ms, self._alerted = max(self._last_ms, at_ms), False

    def check(self, now_ms: int) -> Alert | None:
        """The silence alert, the first time `now_ms` is past the threshold; None otherwise."""
        if self._alerted or now_ms - self._last_ms < self._threshold_ms:
            return None
        self._alerted = True
        return alert_for_feed_silence(self._source, (now_ms - self._last_ms) / 1000, self._last_ms, now_ms)
