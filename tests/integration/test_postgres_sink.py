"""The PostgreSQL sink on the real broker and database: everything lands once, re-delivery changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.infra.postgres import query
from polycopy.infra.settings import PolycopySettings
from polycopy.wiring import build_postgres_sink
from schemas.deadletter import DeadLetter
from schemas.orders import OrderStatus
from schemas.topics import DEAD_LETTERS, DECISIONS, ORDER_EVENTS, ORDER_INTENTS, RAW_TRADES
from schemas.trades import RawTrade
from sinks.postgres_sink import PostgresSink
from tests.builders import build_book, build_decision, build_intent_on_book, build_order_event, build_trade
from tests.integration.helpers import count_rows, publish, read_all

pytestmark = pytest.mark.integration


def run_sink_until_idle(settings: PolycopySettings) -> PostgresSink:
    sink = build_postgres_sink(settings, PipelineMetrics())
    sink.run(max_idle_secs=3)
    return sink


def publish_everything(settings: PolycopySettings) -> None:
    trades = [build_trade(transaction_hash="0x" + f"{i:064x}") for i in range(5)]
    publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in trades])
    decision = build_decision(book_id="b" * 32)
    intent = build_intent_on_book(build_book(asks=[("0.50", "8"), ("0.51", "3")]))
    publish(settings, DECISIONS, [(decision.wallet_id, decision)])
    publish(settings, ORDER_INTENTS, [(intent.wallet_id, intent)])
    events = [
        build_order_event(sequence=1, status=OrderStatus.PLACED),
        build_order_event(sequence=2, status=OrderStatus.FILLED, matched_size=Decimal("10")),
    ]
    publish(settings, ORDER_EVENTS, [(e.wallet_id, e) for e in events])


def test_sink_writes_every_message_to_its_table(settings: PolycopySettings) -> None:
    publish_everything(settings)
    run_sink_until_idle(settings)
    assert count_rows(settings, "trades") == 5
    assert count_rows(settings, "decisions") == 1
    assert count_rows(settings, "order_intents") == 1
    assert count_rows(settings, "order_events") == 2
    assert query(settings.database_url, "SELECT status, matched_size FROM orders") == [
        ("filled", Decimal("10"))
    ]
    # Which book the gate saw, and what the order could take at its limit, are in the tables too.
    assert query(settings.database_url, "SELECT book_id FROM decisions") == [("b" * 32,)]
    assert query(settings.database_url, "SELECT book_levels FROM order_intents") == [
        ([{"price": "0.50", "size": "8"}, {"price": "0.51", "size": "3"}],)
    ]


def test_redelivered_messages_change_nothing(settings: PolycopySettings) -> None:
    publish_everything(settings)
    run_sink_until_idle(settings)
    before = {t: count_rows(settings, t) for t in ("trades", "decisions", "order_intents", "order_events")}
    # Re-delivery: the same messages arrive again (a producer retry or a replay), even an old event last.
    publish_everything(settings)
    publish(settings, ORDER_EVENTS, [("w1", build_order_event(sequence=1, status=OrderStatus.PLACED))])
    run_sink_until_idle(settings)
    after = {t: count_rows(settings, t) for t in before}
    assert after == before
    assert query(settings.database_url, "SELECT status FROM orders") == [("filled",)]


def test_a_malformed_message_goes_to_the_dead_letter_topic_and_the_rest_is_written(
    settings: PolycopySettings,
) -> None:
    from polycopy.infra.kafka import MessagePublisher

    publisher = MessagePublisher(settings)
    publisher._producer.produce(settings.topic_name(DECISIONS), key=b"w1", value=b'{"not": "a decision"}')
    publisher.flush()
    decision = build_decision()
    publish(settings, DECISIONS, [(decision.wallet_id, decision)])
    run_sink_until_idle(settings)
    assert count_rows(settings, "decisions") == 1
    letters = read_all(settings, DEAD_LETTERS, DeadLetter)
    assert [(letter.stage, letter.source_topic) for letter in letters] == [
        ("postgres-sink", settings.topic_name(DECISIONS))
    ]
    assert "not" in letters[0].payload


def test_sigterm_makes_the_sink_write_and_commit_what_it_has_read(
    settings: PolycopySettings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import subprocess
    import sys

    from polycopy.infra.kafka import MessagePublisher, wait_for_consumer_group
    from tests.integration.helpers import wait_until

    log_path = tmp_path / "sink.log"
    env = os.environ | settings.to_env() | {"POLYCOPY_SINK_FLUSH_SECS": "3600"}  # only the stop flushes
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "polycopy.cli", "sink"], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            assert wait_for_consumer_group(settings, settings.consumer_group("postgres-sink"), 90)
            decisions = [build_decision(dedup_key=f"{n:032x}") for n in range(3)]
            publish(settings, DECISIONS, [(d.wallet_id, d) for d in decisions])
            publisher = MessagePublisher(settings)
            publisher._producer.produce(settings.topic_name(DECISIONS), key=b"w1", value=b"{last")
            publisher.flush()
            # A dead letter goes out as soon as its record is read: then every record before it was read too.
            wait_until(lambda: len(read_all(settings, DEAD_LETTERS, DeadLetter)) == 1, 60, "the sink to read")
            assert count_rows(settings, "decisions") == 0  # nothing flushed yet

            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0, log_path.read_text()
        finally:
            process.kill()
    assert count_rows(settings, "decisions") == 3
    assert run_sink_until_idle(settings).rows_written == 0  # the offsets were committed: nothing re-read


def test_rows_postgresql_refuses_are_dead_lettered_and_every_other_row_is_written(
    settings: PolycopySettings,
) -> None:
    # Issue 8, defect 3: a NUL in a text or an int32 overflow failed the whole batch at every restart.
    trades = [build_trade(transaction_hash="0x" + f"{i:064x}") for i in range(6)]
    trades[1] = trades[1].model_copy(update={"title": "nul \x00 inside"})
    trades[4] = trades[4].model_copy(update={"outcome_index": 2**31})
    publish(settings, RAW_TRADES, [(t.proxy_wallet, t) for t in trades])

    run_sink_until_idle(settings)

    assert {r[0] for r in query(settings.database_url, "SELECT transaction_hash FROM trades")} == {
        t.transaction_hash for n, t in enumerate(trades) if n not in (1, 4)
    }
    letters = read_all(settings, DEAD_LETTERS, DeadLetter)
    assert sorted(letter.source_offset or 0 for letter in letters) == sorted(
        offset for offset in _offsets_of(settings, trades, (1, 4))
    )
    assert all(letter.reason.startswith("PostgreSQL refused the row") for letter in letters)
    assert run_sink_until_idle(settings).rows_written == 0  # committed past them: nothing read again


def _offsets_of(settings: PolycopySettings, trades: list, numbers: tuple[int, ...]) -> list[int]:  # type: ignore[type-arg]
    from polycopy.infra.kafka import read_topic

    wanted = {trades[n].dedup_key for n in numbers}
    return [
        record.offset
        for record in read_topic(settings, RAW_TRADES, idle_secs=3)
        if record.value and RawTrade.model_validate_json(record.value).dedup_key in wanted
    ]


def test_the_sink_reconnects_when_its_database_connection_is_killed(settings: PolycopySettings) -> None:
    # Issue 8, defect 8: one connection and no reconnect, so a database restart stopped the sink.
    import threading

    from tests.integration.helpers import kill_database_connections, wait_until

    sink = build_postgres_sink(settings, PipelineMetrics())
    failures: list[BaseException] = []

    def run() -> None:
        try:
            sink.run()
        except BaseException as error:  # noqa: BLE001 - the test reports it
            failures.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        first = build_decision(dedup_key="1" * 32)
        publish(settings, DECISIONS, [(first.wallet_id, first)])
        wait_until(lambda: count_rows(settings, "decisions") == 1 or bool(failures), 60, "the first row")
        assert kill_database_connections(settings) >= 1
        second = build_decision(dedup_key="2" * 32)
        publish(settings, DECISIONS, [(second.wallet_id, second)])
        wait_until(lambda: count_rows(settings, "decisions") == 2 or bool(failures), 60, "the second row")
    finally:
        sink.stop()
        thread.join(60)
    assert failures == []
    assert read_all(settings, DEAD_LETTERS, DeadLetter) == []
