"""The recorded fixtures: every file is listed in tests/fixtures/README.md, byte-identical to its source.

Only MIT-licensed recordings may be copied into the repository, unchanged and with their source named, so a
file the README does not list, or a copy whose bytes changed (a reformat, an edit), fails here.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
README = FIXTURES / "README.md"
LISTED_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| `(?P<sha256>[0-9a-f]{64})` \|", re.MULTILINE)


def listed_files() -> dict[str, str]:
    """README table rows: fixture path (relative to tests/fixtures) -> SHA-256."""
    return {
        match["path"]: match["sha256"] for match in LISTED_ROW.finditer(README.read_text(encoding="utf-8"))
    }


def stored_files() -> list[str]:
    return sorted(
        str(path.relative_to(FIXTURES)) for path in FIXTURES.rglob("*") if path.is_file() and path != README
    )


def test_every_stored_fixture_is_listed_and_every_listed_one_is_stored() -> None:
    assert stored_files() == sorted(listed_files())


@pytest.mark.parametrize("path", stored_files())
def test_a_fixture_is_byte_identical_to_its_source(path: str) -> None:
    assert hashlib.sha256((FIXTURES / path).read_bytes()).hexdigest() == listed_files().get(path)


def test_each_source_folder_names_its_repository_commit_and_license() -> None:
    readme = README.read_text(encoding="utf-8")
    for folder in {path.split("/")[0] for path in stored_files()}:
        owner, repository = folder.split("__")
        section = readme.split(f"## `{folder}/`", 1)[1].split("\n## ", 1)[0]
        assert f"github.com/{owner}/{repository}" in section
        assert re.search(r"commit\s+`[0-9a-f]{40}`", section) and "License: MIT" in section
        assert (FIXTURES / folder / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
