"""The executor sink: order intents -> (journal claim) -> paper fill or venue -> execution reports.

Money safety: an intent is claimed in the PostgreSQL journal before anything is sent, so a re-delivered
intent is never placed twice; offsets commit only after the reports are delivered, so none is lost.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from pydantic import ValidationError

from polycopy.infra.kafka import MessagePublisher, build_consumer, consume_batch, now_ms
from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import ExecutionJournal
from polycopy.infra.settings import PolycopySettings
from processors.core.ids import build_paper_order_id
from processors.core.paper import build_execution_report, execute_on_paper
from schemas.deadletter import build_dead_letter
from schemas.orders import ExecutionMode, ExecutionReport, OrderIntent, ReportKind
from schemas.topics import EXECUTION_REPORTS, ORDER_INTENTS

log = logging.getLogger(__name__)


class Executor:
    """Consumes intents and publishes what happened to each order."""

    def __init__(self, settings: PolycopySettings, metrics: PipelineMetrics) -> None:
        self._settings, self._metrics = settings, metrics
        self._journal = ExecutionJournal(settings.database_url)
        self._publisher = MessagePublisher(settings, client_id="polycopy-executor")
        self._consumer = build_consumer(settings, settings.consumer_group("executor"))
        self._stop = threading.Event()
        self.handled = 0

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, max_idle_secs: float | None = None) -> None:
        """Run until stopped (or idle for `max_idle_secs`); commit after each delivered batch."""
        self._consumer.subscribe([self._settings.topic_name(ORDER_INTENTS)])
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                messages = consume_batch(self._consumer, 100, timeout=0.1)
                if not messages:
                    if max_idle_secs is not None and time.monotonic() - idle_since > max_idle_secs:
                        return
                    continue
                idle_since = time.monotonic()
                for message in messages:
                    if message.error():
                        log.warning("consumer error: %s", message.error())
                        continue
                    self._handle(message.value(), message.topic(), message.partition(), message.offset())
                if self._publisher.flush(30) != 0:
                    raise RuntimeError("reports not delivered; not committing (intents will be re-read)")
                self._consumer.commit(asynchronous=False)
        finally:
            self._publisher.flush(30)
            self._consumer.close()
            self._journal.close()

    def _handle(self, value: bytes | None, topic: str, partition: int, offset: int) -> None:
        try:
            intent = OrderIntent.model_validate_json(value or b"")
        except ValidationError as error:
            self._metrics.dead_letters.labels("executor").inc()
            self._publisher.publish_dead_letter(
                build_dead_letter(
                    "executor",
                    str(error),
                    value,
                    occurred_at_ms=now_ms(),
                    topic=topic,
                    partition=partition,
                    offset=offset,
                )
            )
            return
        order_id = build_paper_order_id(intent.intent_id)
        earlier = self._journal.claim(intent.intent_id, order_id, intent.mode.value)
        if earlier is not None and not (earlier == "claimed" and intent.mode is ExecutionMode.PAPER):
            # Already sent (or ambiguous live claim): never send again; live reconciliation resolves it.
            self._metrics.duplicate_intents.inc()
            return
        for report in self._execute(intent, order_id):
            self._metrics.reports.labels(report.kind.value).inc()
            self._publisher.publish(EXECUTION_REPORTS, intent.wallet_id, report)
        self._journal.mark(intent.intent_id, "sent")
        self.handled += 1

    def _execute(self, intent: OrderIntent, order_id: str) -> list[ExecutionReport]:
        sent_at = now_ms()
        self._metrics.signal_to_order.observe(max(sent_at - intent.received_at_ms, 0) / 1000)
        if intent.mode is not ExecutionMode.PAPER or self._settings.execution_mode is not ExecutionMode.PAPER:
            detail = "live execution is not available in this release; order refused"
            return [
                build_execution_report(
                    intent,
                    order_id,
                    ReportKind.REJECTED,
                    intent.mode,
                    detail=detail,
                    sent_at_ms=sent_at,
                    reported_at_ms=now_ms(),
                )
            ]
        # Paper fills take the book levels the liquidity gate saw (carried by the intent), not a book fetched
        # now: a replay of the log then fills exactly as this run did.
        return execute_on_paper(intent, order_id, sent_at_ms=sent_at, reported_at_ms=now_ms())


def run_executor(settings: PolycopySettings, metrics: PipelineMetrics) -> None:
    """Entry point of `polycopy executor`: stops cleanly on SIGTERM/SIGINT."""
    executor = Executor(settings, metrics)
    signal.signal(signal.SIGTERM, executor.stop)
    signal.signal(signal.SIGINT, executor.stop)
    log.info("executor running in %s mode", settings.execution_mode.value)
    executor.run()
