"""The `polycopy` command: one entry point for every component and operator task."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from polycopy.infra.settings import PolycopySettings


class UsageError(Exception):
    """A command-line or configuration problem, reported as one line per problem."""


def load_settings() -> PolycopySettings:
    """Settings from the environment; a bad value is refused with a line naming the field."""
    from polycopy.infra.settings import find_unknown_variables

    unknown = find_unknown_variables(os.environ)
    if unknown:
        raise UsageError("\n".join(unknown))
    try:
        return PolycopySettings()
    except ValidationError as error:
        raise UsageError("\n".join(_describe_setting_error(e) for e in error.errors())) from None


def _describe_setting_error(error) -> str:  # type: ignore[no-untyped-def]
    if not error["loc"]:  # a rule across several settings names them in its message
        return f"bad settings: {error['msg'].removeprefix('Value error, ')}"
    return f"bad setting POLYCOPY_{str(error['loc'][0]).upper()}: {error['msg']}"


def _setup_logging(settings: PolycopySettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per book request otherwise


def _metrics(settings: PolycopySettings, component: str):  # type: ignore[no-untyped-def]
    from polycopy.wiring import build_metrics

    return build_metrics(settings, component)


# --- topics and schemas -------------------------------------------------------------------------------------
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


# --- database -----------------------------------------------------------------------------------------------
def cmd_db_migrate(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.postgres import migrate
    from sinks import MIGRATIONS

    applied = migrate(settings.database_url, MIGRATIONS)
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


# --- wallets ------------------------------------------------------------------------------------------------
def load_wallet_file(path: Path):  # type: ignore[no-untyped-def]
    """Validate a wallet YAML file as a whole; every problem is one line naming its place."""
    import yaml

    from schemas.wallets import WalletConfigFile

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"{path}: cannot read: {error}") from None
    try:
        return WalletConfigFile.model_validate(document)
    except ValidationError as error:
        lines = [f"{path}: " + ".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in error.errors()]
        raise UsageError("\n".join(lines + [f"{path}: refused, nothing applied"])) from None


def cmd_wallets_apply(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.kafka import MessagePublisher
    from schemas.topics import WALLET_CONFIG

    config = load_wallet_file(Path(args.file))
    publisher = MessagePublisher(settings, client_id="polycopy-cli")
    for wallet in config.wallets:
        publisher.publish(WALLET_CONFIG, wallet.id, wallet)
    if publisher.flush(30) or publisher.delivery_failures:
        raise UsageError("wallet configuration not delivered to Kafka")
    for wallet in config.wallets:
        print(f"applied {wallet.id} ({wallet.mode.value}, {len(wallet.targets)} targets)")
    return 0


def _current_wallets(settings: PolycopySettings):  # type: ignore[no-untyped-def]
    from polycopy.infra.kafka import CompactedTopicReader
    from schemas.topics import WALLET_CONFIG
    from schemas.wallets import WalletConfig

    reader = CompactedTopicReader(settings, WALLET_CONFIG, WalletConfig.model_validate_json).start()
    try:
        return reader.snapshot()
    finally:
        reader.stop()


def cmd_wallets_list(args: argparse.Namespace, settings: PolycopySettings) -> int:
    for wallet_id, wallet in sorted(_current_wallets(settings).items()):
        print(
            f"{wallet_id:20} {wallet.mode.value:6} capital={wallet.capital_usdc} "
            f"targets={len(wallet.targets)} "
            f"sizing={wallet.sizing.mode.value}:{wallet.sizing.value}"
        )
    return 0


def cmd_wallets_show(args: argparse.Namespace, settings: PolycopySettings) -> int:
    wallet = _current_wallets(settings).get(args.id)
    if wallet is None:
        raise UsageError(f"no wallet {args.id!r} in the configuration topic")
    print(wallet.model_dump_json(indent=2))
    return 0


# --- components ---------------------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.kafka import MessagePublisher
    from producers.publisher import TradePublisher
    from producers.replay import read_capture, replay_capture

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"capture file {path} not found")
    metrics = _metrics(settings, "producer")
    publisher = TradePublisher(MessagePublisher(settings, client_id="polycopy-replay"), metrics)
    speed = None if args.speed == "max" else float(args.speed)
    frames, trades = replay_capture(
        read_capture(path),
        publisher,
        speed=speed,
        on_progress=lambda f, t: print(f"replayed {f} frames, {t} trades", flush=True),
    )
    undelivered = publisher.flush(60)
    print(
        f"replayed {frames} frames: {trades} trades, {publisher.dead_letters} dead letters"
        + (f", {undelivered} NOT delivered" if undelivered else "")
    )
    return 1 if undelivered else 0


def cmd_capture(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.metrics import PipelineMetrics
    from producers.replay import CaptureWriter, frames_from_trade_rows, load_trade_rows, write_capture

    if args.from_rows:
        source = Path(args.from_rows)
        if not source.exists():
            raise UsageError(f"{source} not found")
        count = write_capture(Path(args.out), frames_from_trade_rows(load_trade_rows(source)))
        print(f"wrote {count} frames to {args.out}")
        return 0
    with CaptureWriter(Path(args.out)) as writer:
        _run_feed(
            args.url or settings.rtds_url,
            settings,
            PipelineMetrics(),
            writer.write,
            duration_secs=args.duration_secs,
        )
    print(f"captured {writer.count} frames to {args.out}")
    return 0


def cmd_rtds(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.kafka import MessagePublisher
    from producers.publisher import TradePublisher
    from schemas.trades import TradeSource

    metrics = _metrics(settings, "producer")
    publisher = TradePublisher(MessagePublisher(settings, client_id="polycopy-rtds"), metrics)
    _run_feed(
        args.url or settings.rtds_url,
        settings,
        metrics,
        lambda frame, received_at_ms: publisher.publish_frame(frame, received_at_ms, TradeSource.RTDS),
    )
    undelivered = publisher.flush(30)
    print(
        f"rtds producer stopped: {publisher.trades} trades published, {publisher.dead_letters} dead letters"
        + (f", {undelivered} NOT delivered" if undelivered else "")
    )
    return 1 if undelivered else 0


def _run_feed(
    url: str,
    settings: PolycopySettings,
    metrics,
    on_frame,  # type: ignore[no-untyped-def]
    duration_secs: float | None = None,
) -> None:
    """Run the RTDS feed until SIGTERM/SIGINT (or `duration_secs`)."""
    from polycopy.polymarket.rtds import RtdsFeed

    feed = RtdsFeed(
        url, on_frame, metrics, ping_secs=settings.rtds_ping_secs, watchdog_secs=settings.rtds_watchdog_secs
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, feed.stop)
        if duration_secs is not None:
            loop.call_later(duration_secs, feed.stop)
        await feed.run()

    asyncio.run(main())


# --- safety net and reference data --------------------------------------------------------------------------
def _venue_client(settings: PolycopySettings, on_response=None):  # type: ignore[no-untyped-def]
    from polycopy.polymarket.http import VenueHttpClient

    return VenueHttpClient(
        settings.data_api_url, settings.gamma_url, settings.poll_requests_per_sec, on_response=on_response
    )


def _flush_or_fail(publisher, what: str) -> None:  # type: ignore[no-untyped-def]
    if publisher.flush(30) or publisher.delivery_failures:
        raise UsageError(f"{what} not delivered to Kafka")


def cmd_poll(args: argparse.Namespace, settings: PolycopySettings) -> int:
    import threading

    from polycopy.infra.kafka import MessagePublisher
    from polycopy.infra.metrics import PipelineMetrics
    from producers.poller import PollerError, SafetyNetPoller

    # A one-shot run (a CronJob) lives too briefly to be scraped; only the loop serves /metrics.
    metrics = _metrics(settings, "poller") if args.loop else PipelineMetrics()
    client = _venue_client(settings, on_response=lambda status: metrics.poller_requests.labels(status).inc())
    publisher = MessagePublisher(settings, client_id="polycopy-poller")
    poller = SafetyNetPoller(settings, client, publisher, metrics).start()
    try:
        if args.loop:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            runs = poller.run_forever(args.interval_secs or settings.poll_interval_secs, stop)
            print(f"poller stopped after {runs} runs")
            return 0
        summary = poller.run_once()
    except PollerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        poller.stop()
        client.close()
    print(
        f"polled {summary.wallets} wallets: {summary.fetched} trades fetched, {summary.published} published"
        + (f", {summary.failed_wallets} wallets FAILED" if summary.failed_wallets else "")
    )
    return 1 if summary.failed_wallets else 0


def _sync_reference(settings: PolycopySettings, what: str, sync):  # type: ignore[no-untyped-def]
    """Run one reference-data sync against the venue and make sure Kafka has what it published."""
    from polycopy.infra.kafka import MessagePublisher

    publisher = MessagePublisher(settings, client_id="polycopy-reference")
    with _venue_client(settings) as client:
        summary = sync(client, publisher)
    _flush_or_fail(publisher, what)
    return summary


def cmd_markets_sync(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from producers.reference import sync_markets

    summary = _sync_reference(
        settings,
        "markets",
        lambda client, publisher: sync_markets(
            client,
            publisher,
            condition_ids=tuple(args.condition_id or ()),
            page_size=args.page_size,
            max_pages=args.max_pages,
        ),
    )
    print(
        f"synced {summary.published} markets from {summary.pages} Gamma pages"
        + (f", {summary.refused} skipped (no condition id or bad fields)" if summary.refused else "")
    )
    return 0


def cmd_traders_sync(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from producers.reference import sync_traders

    summary = _sync_reference(
        settings,
        "traders",
        lambda client, publisher: sync_traders(
            client,
            publisher,
            limit=args.limit,
            time_period=args.time_period,
            order_by=args.order_by,
            category=args.category,
        ),
    )
    print(
        f"synced {summary.published} traders ({args.time_period} {args.order_by} leaderboard)"
        + (f", {summary.refused} rows skipped" if summary.refused else "")
    )
    return 0


def cmd_traders_import(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.infra.kafka import MessagePublisher, now_ms
    from producers.reference import ReferenceParseError, build_trader_file, publish_traders, read_trader_rows

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"{path} not found")
    try:
        result = build_trader_file(read_trader_rows(path), now_ms())
    except ReferenceParseError as error:
        raise UsageError(str(error)) from None
    if result.refused:
        lines = [f"{path}: row {number}: {reason}" for number, reason in result.refused]
        raise UsageError("\n".join(lines + [f"{path}: refused, nothing imported"]))
    if not result.traders:
        raise UsageError(f"{path}: no trader rows")
    publisher = MessagePublisher(settings, client_id="polycopy-reference")
    count = publish_traders(result.traders, publisher)
    _flush_or_fail(publisher, "traders")
    print(f"imported {count} traders from {path}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_worker

    run_worker(settings)
    return 0


def cmd_books(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_books

    if not settings.clob_market_ws_url:
        raise UsageError("polycopy books needs POLYCOPY_CLOB_MARKET_WS_URL (the CLOB market channel)")
    run_books(settings)
    return 0


def cmd_executor(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_executor

    run_executor(settings)
    return 0


def cmd_sink(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_sink

    run_sink(settings)
    return 0


def cmd_simulate(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.simulator.__main__ import main as simulate

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return int(simulate(rest) or 0)


def cmd_demo(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.tools.demo import DemoOptions, run_demo

    options = DemoOptions(
        duration_secs=args.duration_secs,
        capture=Path(args.capture) if args.capture else None,
        seed=args.seed,
        trades_per_sec=args.trades_per_sec,
        wallets=Path(args.wallets) if args.wallets else None,
    )
    if options.wallets is not None:
        load_wallet_file(options.wallets)  # refuse a bad file before anything starts
    run_demo(settings, options)
    return 0


def cmd_whatif(args: argparse.Namespace, settings: PolycopySettings) -> int:
    import time

    from polycopy.tools.whatif import parse_time_ms, run_whatif

    config = load_wallet_file(Path(args.wallets))
    now_ms = time.time_ns() // 1_000_000
    try:
        from_ms = parse_time_ms(args.from_time, now_ms)
        to_ms = parse_time_ms(args.to_time, now_ms) if args.to_time else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    run_whatif(settings, list(config.wallets), from_ms=from_ms, to_ms=to_ms, sandbox=args.sandbox)
    return 0


def cmd_bench(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.tools.bench import BenchOptions, run_bench

    run_bench(settings, BenchOptions(rate=args.rate, duration_secs=args.duration_secs, seed=args.seed))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polycopy",
        description="polycopy-stream: copy-trading pipeline for Polymarket on Kafka.",
        epilog="Settings come from the environment (POLYCOPY_*, KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL); "
        "see README.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler, help_text: str, parent=commands):  # type: ignore[no-untyped-def]
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    topics = commands.add_parser("topics", help="create, list or dump topics").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = add("create", cmd_topics_create, "create every topic (idempotent)", topics)
    create.add_argument("--wait-secs", type=float, default=60, help="wait this long for the broker")
    add("list", cmd_topics_list, "list topics with key, value model and purpose", topics)
    dump = add("dump", cmd_topics_dump, "print a topic's messages as JSON lines", topics)
    dump.add_argument("topic", help="full name or short form, e.g. decisions, trades.raw, orders.events")
    dump.add_argument("--from-beginning", action="store_true", help="from the start (default: the last 10)")
    dump.add_argument("--limit", type=int, help="stop after N messages")
    dump.add_argument("--idle-secs", type=float, default=2.0, help="stop when nothing arrives this long")

    schemas = commands.add_parser("schemas", help="JSON Schema files").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    export = add("export", cmd_schemas_export, "write every topic's JSON Schema", schemas)
    export.add_argument("--out", help="folder (default: schemas/json)")

    db = commands.add_parser("db", help="database").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add("migrate", cmd_db_migrate, "create or upgrade the PostgreSQL schema", db)

    wallets = commands.add_parser("wallets", help="copy-wallet configuration").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    apply = add("apply", cmd_wallets_apply, "validate a wallet YAML file and publish it", wallets)
    apply.add_argument("file")
    add("list", cmd_wallets_list, "list the configured wallets", wallets)
    show = add("show", cmd_wallets_show, "show one wallet's configuration", wallets)
    show.add_argument("id")

    replay = add("replay", cmd_replay, "publish a capture file of RTDS frames onto the raw-trades topic")
    replay.add_argument("file")
    replay.add_argument(
        "--speed",
        default="max",
        choices=["1", "10", "max"],
        help="1 = recorded pace, 10 = ten times faster, max = as fast as possible",
    )
    capture = add("capture", cmd_capture, "record raw RTDS frames with their receive times to a capture file")
    capture.add_argument("--out", required=True, help="capture file to write (JSON lines)")
    capture.add_argument("--url", help="WebSocket URL (default POLYCOPY_RTDS_URL)")
    capture.add_argument("--duration-secs", type=float, help="stop after this long (default: until Ctrl-C)")
    capture.add_argument(
        "--from-rows",
        metavar="ROWS",
        help="instead of recording, convert recorded Data API trade rows (.csv/.json)",
    )
    rtds = add("rtds", cmd_rtds, "run the RTDS producer (venue trade stream -> raw-trades topic)")
    rtds.add_argument("--url", help="WebSocket URL (default POLYCOPY_RTDS_URL)")
    poll = add("poll", cmd_poll, "safety net: poll followed wallets' recent trades (Data API -> raw-trades)")
    poll.add_argument("--loop", action="store_true", help="keep polling until SIGTERM (default: one run)")
    poll.add_argument("--interval-secs", type=float, help="with --loop (default POLYCOPY_POLL_INTERVAL_SECS)")
    markets = commands.add_parser("markets", help="market reference data").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    markets_sync = add(
        "sync", cmd_markets_sync, "publish Gamma market metadata to the markets topic", markets
    )
    markets_sync.add_argument(
        "--condition-id",
        action="append",
        metavar="ID",
        help="only this market (repeatable; default: every active market)",
    )
    markets_sync.add_argument("--max-pages", type=int, default=20, help="pages of active markets at most")
    markets_sync.add_argument("--page-size", type=int, default=500, help="markets per Gamma request")
    traders = commands.add_parser(
        "traders", help="leaderboard traders (followed by wallets without targets)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    traders_sync = add(
        "sync", cmd_traders_sync, "publish the Data API leaderboard to the traders topic", traders
    )
    traders_sync.add_argument("--limit", type=int, default=50, help="top N traders (default 50)")
    traders_sync.add_argument("--time-period", default="MONTH", choices=["DAY", "WEEK", "MONTH", "ALL"])
    traders_sync.add_argument("--order-by", default="PNL", choices=["PNL", "VOL"])
    traders_sync.add_argument("--category", default="OVERALL", help="leaderboard category, e.g. POLITICS")
    traders_import = add(
        "import",
        cmd_traders_import,
        "publish traders from a leaderboard JSON or a CSV (address,name,pnl,vol,win_rate)",
        traders,
    )
    traders_import.add_argument("file")
    add("worker", cmd_worker, "run the Faust processors (target filter, evaluation, order lifecycle)")
    add("books", cmd_books, "run the books producer (CLOB market channel -> books topic)")
    add("executor", cmd_executor, "run the executor sink (paper by default)")
    add("sink", cmd_sink, "run the PostgreSQL sink")
    simulate = add(
        "simulate", cmd_simulate, "run the market simulator (fake RTDS + CLOB); see --help after --"
    )
    simulate.add_argument("rest", nargs=argparse.REMAINDER)

    demo = add("demo", cmd_demo, "run simulator + pipeline for a bounded demo and print a summary")
    demo.add_argument("--duration-secs", type=float, default=60, help="how long trades flow (default 60)")
    demo.add_argument("--capture", help="replay this capture file instead of the simulated feed")
    demo.add_argument("--seed", type=int, default=7, help="simulator seed")
    demo.add_argument("--trades-per-sec", type=float, default=20, help="simulated feed rate")
    demo.add_argument(
        "--wallets", help="wallet YAML file (default: three demo wallets following the top traders)"
    )
    whatif = add(
        "whatif",
        cmd_whatif,
        "replay the raw-trade log from a time through a wallet file, into sandbox "
        "topics no executor reads, and print a per-wallet report",
    )
    whatif.add_argument(
        "--from",
        dest="from_time",
        required=True,
        help="start: ISO 8601, epoch seconds/ms, or an age such as 2h",
    )
    whatif.add_argument("--to", dest="to_time", help="end (default: now)")
    whatif.add_argument("--wallets", required=True, help="wallet YAML file to try")
    whatif.add_argument("--sandbox", help="sandbox topic namespace (default whatif-<unix time>)")
    bench = add("bench", cmd_bench, "benchmark the pipeline over the real broker and print figures")
    bench.add_argument("--rate", type=float, default=50, help="trades per second fed in")
    bench.add_argument("--duration-secs", type=float, default=30)
    bench.add_argument("--seed", type=int, default=11)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        _setup_logging(settings)
        return int(args.handler(args, settings) or 0)
    except UsageError as error:
        print(f"error: {error}".replace("\n", "\nerror: "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - setup errors are one readable line, not a traceback
        from polycopy.infra.kafka import KafkaSetupError
        from polycopy.infra.postgres import DatabaseError
        from polycopy.polymarket.http import VenueHttpError

        if isinstance(error, KafkaSetupError | DatabaseError | VenueHttpError):
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
