"""Helpers for integration tests: publish messages, wait for conditions, count rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from polycopy.infra.kafka import MessagePublisher, read_topic
from polycopy.infra.postgres import query
from polycopy.infra.settings import PolycopySettings
from schemas.base import Message, Side
from schemas.topics import TopicSpec
from schemas.wallets import WalletConfig

T = TypeVar("T", bound=Message)


def publish(settings: PolycopySettings, spec: TopicSpec, items: list[tuple[str, Message]]) -> None:
    publisher = MessagePublisher(settings, client_id="test")
    for key, message in items:
        publisher.publish(spec, key, message)
    assert publisher.flush(30) == 0 and publisher.delivery_failures == 0


def read_all(settings: PolycopySettings, spec: TopicSpec, model: type[T]) -> list[T]:
    return [model.model_validate_json(r.value) for r in read_topic(settings, spec, idle_secs=3) if r.value]


def wait_until(condition: Callable[[], bool], timeout_secs: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_secs} s waiting for {what}")


def kill_database_connections(settings: PolycopySettings) -> int:
    """Terminate every other session on the test's database, as a database restart does; how many."""
    rows = query(
        settings.database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    return sum(1 for (terminated,) in rows if terminated)


def count_rows(settings: PolycopySettings, table: str, where: str = "TRUE") -> int:
    return int(query(settings.database_url, f"SELECT count(*) FROM {table} WHERE {where}")[0][0])


def build_buying_wallet(leader: str, wallet_id: str = "w1") -> WalletConfig:
    """A paper wallet copying `leader`'s buys in a wide price band, with no liquidity requirement."""
    return WalletConfig(
        id=wallet_id,
        capital_usdc=Decimal("1000"),
        targets=(leader,),
        sides=(Side.BUY,),
        price_min=Decimal("0.05"),
        price_max=Decimal("0.95"),
        max_slippage=Decimal("0.05"),
        liquidity_min_fill_ratio=Decimal("0"),
    )


class WorkerProcess:
    """`polycopy worker` as a user starts it, with the test's settings, stopped at exit."""

    def __init__(self, settings: PolycopySettings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path

    def __enter__(self) -> WorkerProcess:
        import os
        import subprocess
        import sys

        from polycopy.infra.kafka import wait_for_consumer_group

        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "polycopy.cli", "worker"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=os.environ | self.settings.to_env(),
        )
        group = self.settings.consumer_group("processor")
        for _ in range(90):
            if self.process.poll() is not None or wait_for_consumer_group(self.settings, group, 1):
                break
        if self.process.poll() is not None or not wait_for_consumer_group(self.settings, group, 1):
            self.__exit__()
            raise AssertionError(f"worker did not start:\n{self.log_path.read_text()[-3000:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except Exception:  # noqa: BLE001
            self.process.kill()
        self._log.close()
