"""The demo stops its children along the flow: the PostgreSQL sink after every component whose events it
writes (else the last order events stay on the topic, never in PostgreSQL), and the fake venue last (else a
live executor finds it gone and opens its breakers on the way out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from polycopy.tools.demo import Processes


def test_the_sink_stops_after_the_worker_and_the_simulator_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    processes = Processes(tmp_path)
    started = ["simulator", "books", "worker", "sink", "executor", "producer", "alerts"]
    processes.running = dict.fromkeys(started)  # type: ignore[arg-type]
    stopped: list[str] = []
    monkeypatch.setattr(processes, "stop", lambda name, timeout=20.0: stopped.append(name))

    processes.stop_all()

    assert stopped == ["alerts", "producer", "executor", "worker", "books", "sink", "simulator"]


def test_the_last_warnings_of_a_child_leave_out_the_kafka_clients_reconnection_lines(tmp_path: Path) -> None:
    lines = [
        "2026-11-29 12:07:41,000 INFO polycopy.sinks: batch written",
        "2026-11-29 12:07:42,024 WARNING polycopy.infra.postgres.connection: PostgreSQL unavailable",
        "2026-11-29 12:07:43,000 ERROR librdkafka: FAIL [consumer-1]: Connect failed: Connection refused",
        "2026-11-29 12:07:43,100 ERROR aiokafka.consumer.fetcher: Unable connect to node with id 1",
        "2026-11-29 12:07:44,000 ERROR polycopy.sinks.base: flush failed, nothing committed",
    ]
    (tmp_path / "sink.log").write_text("\n".join(lines) + "\n")
    processes = Processes(tmp_path)

    assert processes.last_warnings("sink", 8) == [lines[1], lines[4]]
    assert processes.last_warnings("sink", 1) == [lines[4]]
    assert processes.last_warnings("executor", 8) == []
