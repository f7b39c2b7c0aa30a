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
