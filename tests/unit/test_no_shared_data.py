"""Unit tests run in a bare clone: none reads ../shared/data, directly or through the shared loaders.

The recorded files under ../shared/data are unlicensed and stay out of the repository; a unit test that needs
venue data reads tests/fixtures (MIT-licensed copies) or a builder. Integration and end-to-end tests may read
../shared/data in place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import builders
from tests.unit.conftest import NO_SHARED_DATA

UNIT_TESTS = Path(__file__).resolve().parent
SHARED_NAMES = {"SHARED_DATA", "load_shared_json", "load_shared_csv_rows", "_shared_path"}
# Every unit test module and the conftest, but this one: it names the loaders to prove they fail.
MODULES = sorted(path for path in UNIT_TESTS.rglob("*.py") if path != Path(__file__).resolve())


def find_shared_data_uses(source: str) -> list[str]:
    """Where a module imports or names the shared loaders, or spells a path into the shared folder (prose in
    docstrings may name the folder)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [f"imports {alias.name}" for alias in node.names if alias.name in SHARED_NAMES]
        elif isinstance(node, ast.Attribute) and node.attr in SHARED_NAMES:
            found.append(f"uses .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in SHARED_NAMES:
            found.append(f"names {node.id}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value.replace("\\\\", "/")
            if "shared/data" in text or "../shared" in text:
                found.append(f"spells {node.value!r}")
    return found


@pytest.mark.parametrize("module", MODULES, ids=lambda path: str(path.relative_to(UNIT_TESTS)))
def test_no_unit_test_module_reaches_the_shared_data_folder(module: Path) -> None:
    assert find_shared_data_uses(module.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tests.builders import load_shared_json", ["imports load_shared_json"]),
        ("from tests.builders import SHARED_DATA as data", ["imports SHARED_DATA"]),
        (
            "import tests.builders\ntests.builders.load_shared_csv_rows('x.csv')",
            ["uses .load_shared_csv_rows"],
        ),
        ("ROWS = Path(__file__).parents[3] / 'shared/data/x.json'", ["spells 'shared/data/x.json'"]),
        ("ROOT = '../shared'", ["spells '../shared'"]),
        ('def f():\n    """Reads nothing from ../shared/data."""\n    return 1', []),
        ("from tests.builders import load_fixture_json\nload_fixture_json('a/b.json')", []),
    ],
)
def test_the_check_finds_every_way_to_reach_the_shared_folder(source: str, expected: list[str]) -> None:
    assert find_shared_data_uses(source) == expected


def test_the_shared_loaders_fail_loudly_in_a_unit_test() -> None:
    assert builders.SHARED_DATA == NO_SHARED_DATA and not NO_SHARED_DATA.exists()
    with pytest.raises(builders.SharedDataMissingError, match="unit tests never read ../shared/data"):
        builders.load_shared_json("ra1nty__polymarket-cli/book.json")
    with pytest.raises(builders.SharedDataMissingError, match="polymarket_trades.csv"):
        builders.load_shared_csv_rows("ibalgo__insider-trading-prediction/polymarket_trades.csv")
