"""The Kafka and PostgreSQL of a chaos run's own (infra/local.sh on free ports and a data dir of the run's),
which the run restarts and stops: never the shared ones."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ChaosServers:
    """A Kafka and a PostgreSQL of the run's own (infra/local.sh on free ports and its own data dir)."""

    def __init__(self, data_dir: Path) -> None:
        self.ports = {name: free_port() for name in ("kafka", "controller", "postgres")}
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
        self._env = env | {
            "POLYCOPY_DATA_DIR": str(data_dir),
            "POLYCOPY_KAFKA_PORT": str(self.ports["kafka"]),
            "POLYCOPY_KAFKA_CONTROLLER_PORT": str(self.ports["controller"]),
            "POLYCOPY_PG_PORT": str(self.ports["postgres"]),
            # A broker restarted on a busy shared machine can take minutes to serve again: wait, do not die.
            "POLYCOPY_KAFKA_READY_TIMEOUT": "600",
        }
        self._log = data_dir / "servers.log"
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['kafka']}"

    @property
    def database_url(self) -> str:
        return f"postgresql://polycopy@127.0.0.1:{self.ports['postgres']}/polycopy"

    def run(self, command: str) -> None:
        with self._log.open("ab") as log:
            subprocess.run(
                ["bash", str(REPO / "infra" / "local.sh"), command],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=600,
            )
