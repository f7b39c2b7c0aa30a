"""Helpers of the operations tests: free ports, and the operations tools (helm, promtool, prometheus)."""

from __future__ import annotations

import random
import shutil
import socket
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first of `count` consecutive free ports, below the kernel's ephemeral range (so no client socket
    takes one between this check and the bind)."""
    for _ in range(attempts):
        base = random.randrange(20000, 32000 - count)
        probes = []
        try:
            for port in range(base, base + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def find_tool(name: str) -> str:
    """A tool from `make tools` (.tools/bin) or the PATH; the message says how to get it when missing."""
    for candidate in (TOOLS_BIN / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise FileNotFoundError(
        f"{name} not found in {TOOLS_BIN} or on PATH: run `make tools` (as root on Debian)"
    )


def load_dashboard_generator():  # type: ignore[no-untyped-def]
    """infra/grafana/generate.py as a module (infra/ is not a Python package)."""
    import importlib.util
    import sys

    path = REPO_ROOT / "infra" / "grafana" / "generate.py"
    spec = importlib.util.spec_from_file_location("polycopy_dashboards_generator", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def exported_names() -> set[str]:
    """Every sample name the components' metrics bundle can export (labelled series included)."""
    from polycopy.infra.metrics import PipelineMetrics

    names = set()
    for family in PipelineMetrics().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names
