"""Export every topic's value model as a JSON Schema file, for data engineers."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.topics import ALL_TOPICS

SCHEMA_DIR = Path(__file__).parent / "json"


def render_schemas() -> dict[str, str]:
    """Map file name -> JSON Schema text for every topic."""
    rendered = {}
    for spec in ALL_TOPICS:
        schema = spec.value_model.model_json_schema(mode="serialization")
        schema["$id"] = spec.name
        schema["x-topic"] = {"key": spec.key, "partitions": spec.partitions, "compacted": spec.compacted}
        rendered[f"{spec.name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write the files and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths
