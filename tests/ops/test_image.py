"""The container image: the Dockerfile passes hadolint, is multi-stage with a pinned base, installs only
wheels into a non-root final stage, and the wheel built from the copied files carries everything."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from polycopy.infra.metrics import DEFAULT_PORTS
from tests.ops.helpers import REPO_ROOT

DOCKERFILE = REPO_ROOT / "infra" / "docker" / "Dockerfile"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "hadolint"
    return subprocess.run([str(binary), "--no-color", str(path)], capture_output=True, text=True, timeout=120)


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), one list per stage."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    found: list[list[str]] = [[]]
    for line in lines:
        if line.upper().startswith("FROM "):
            found.append([])
        found[-1].append(line)
    return found


def build_stage_copies() -> list[str]:
    return [source for line in stages()[1] if line.startswith("COPY ") for source in line.split()[1:-1]]


def test_the_dockerfile_passes_hadolint() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_a_dockerfile_that_breaks_its_rules(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root\nRUN apt-get install gcc"))
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3008" in result.stdout and "DL3002" in result.stdout


def test_two_stages_on_a_pinned_base_and_a_final_stage_that_installs_only_wheels_as_a_non_root_user() -> None:
    preamble, build, final = stages()
    [base] = [line.split("=", 1)[1] for line in preamble if line.startswith("ARG PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    assert build[0] == "FROM ${PYTHON_IMAGE} AS build" and final[0] == "FROM ${PYTHON_IMAGE}"
    assert any("pip wheel" in line for line in build)
    assert not any(line.startswith(("COPY", "ADD")) for line in final), "the final stage gets no source"
    [install] = [line for line in final if "pip install" in line]
    assert "--mount=type=bind,from=build" in install and "--no-index" in install and ".whl" in install
    assert not any(re.search(r"apt-get|gcc|build-essential|\bmake\b", line) for line in final)
    [user] = [line for line in final if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert final[-2:] == ['ENTRYPOINT ["polycopy"]', 'CMD ["--help"]']
    [expose] = [line for line in final if line.startswith("EXPOSE ")]
    low, high = (int(port) for port in expose.split()[1].split("-"))
    assert set(DEFAULT_PORTS.values()) <= set(range(low, high + 1))


def test_the_dockerignore_allows_exactly_what_the_build_stage_copies() -> None:
    lines = [
        line.strip()
        for line in (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == set(build_stage_copies())


def test_the_wheel_built_from_the_copied_files_carries_the_packages_data_and_console_script(
    tmp_path: Path,
) -> None:
    source = tmp_path / "context"
    source.mkdir()
    for name in build_stage_copies():
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = (tmp_path / "dist").glob("polycopy_stream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("polycopy", "producers", "processors", "sinks", "schemas"):
        assert f"{package}/__init__.py" in names
    schemas = {n for n in names if n.startswith("schemas/json/") and n.endswith(".json")}
    migrations = {n for n in names if n.startswith("sinks/migrations/") and n.endswith(".sql")}
    assert len(schemas) == len(list((REPO_ROOT / "schemas" / "json").glob("*.json"))) > 0
    assert len(migrations) == len(list((REPO_ROOT / "sinks" / "migrations").glob("*.sql"))) > 0
    assert not any(n.startswith("tests/") for n in names)
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert f"polycopy = {scripts['polycopy']}" in text
