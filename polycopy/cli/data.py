"""`polycopy topics`, `polycopy schemas` and `polycopy db`: the topics, their JSON Schemas, the database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from polycopy.cli.common import UsageError
from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings


def cmd_topics_create(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.kafka import create_topics, wait_for_broker
    from schemas.topics import ALL_TOPICS

    wait_for_broker(settings, timeout_secs=args.wait_secs)
    created = create_topics(settings, ALL_TOPICS)
    for spec in ALL_TOPICS:
        state = "created" if settings.topic_name(spec) in created else "exists"
        print(
            f"{state:8} {settings.topic_name(spec)}  ({spec.partitions} partitions, "
            f"{'compacted' if spec.compacted else 'delete'})"
        )
    return 0


def cmd_topics_list(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from schemas.topics import ALL_TOPICS

    for spec in ALL_TOPICS:
        print(f"{spec.name:32} key={spec.key:28} value={spec.value_model.__name__:16} {spec.description}")
    return 0


def cmd_topics_dump(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.kafka import read_topic
    from schemas.topics import find_topic

    try:
        spec = find_topic(args.topic)
    except KeyError as error:
        raise UsageError(str(error.args[0])) from None
    limit = args.limit if args.limit is not None else (None if args.from_beginning else 10)
    for record in read_topic(
        settings, spec, from_beginning=args.from_beginning, limit=limit, idle_secs=args.idle_secs
    ):
        value = json.loads(record.value) if record.value else None
        print(
            json.dumps(
                {
                    "partition": record.partition,
                    "offset": record.offset,
                    "timestamp_ms": record.timestamp_ms,
                    "key": record.key.decode() if record.key else None,
                    "value": value,
                }
            )
        )
    return 0


def cmd_schemas_export(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from schemas.export import SCHEMA_DIR, write_schemas

    for path in write_schemas(Path(args.out) if args.out else SCHEMA_DIR):
        print(path)
    return 0


def cmd_db_migrate(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.postgres import migrate
    from sinks import MIGRATIONS

    applied = migrate(settings.database_url, MIGRATIONS)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def register(commands: CommandGroup) -> None:
    topics = commands.group("topics", "create, list or dump topics")
    create = topics.command("create", cmd_topics_create, "create every topic (idempotent)")
    create.add_argument("--wait-secs", type=float, default=60, help="wait this long for the broker")
    topics.command("list", cmd_topics_list, "list topics with key, value model and purpose")
    dump = topics.command("dump", cmd_topics_dump, "print a topic's messages as JSON lines")
    dump.add_argument("topic", help="full name or short form, e.g. decisions, trades.raw, orders.events")
    dump.add_argument("--from-beginning", action="store_true", help="from the start (default: the last 10)")
    dump.add_argument("--limit", type=int, help="stop after N messages (default: no limit)")
    dump.add_argument("--idle-secs", type=float, default=2.0, help="stop when nothing arrives this long")

    schemas = commands.group("schemas", "JSON Schema files")
    export = schemas.command("export", cmd_schemas_export, "write every topic's JSON Schema")
    export.add_argument("--out", help="folder (default: schemas/json)")

    db = commands.group("db", "database")
    db.command("migrate", cmd_db_migrate, "create or upgrade the PostgreSQL schema")
