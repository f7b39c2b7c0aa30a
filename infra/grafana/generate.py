"""Grafana dashboards as code: `make dashboards` writes infra/grafana/dashboards/*.json from the specs below.

Built with grafana-foundation-sdk (Grafana's own builder library), never edited by hand: a test fails when the
committed JSON differs from this generator's output. Every panel names its queries here; a query over a
metric that a later issue adds carries `future=` (what brings it), so the test that runs a real Prometheus
over a demo checks it for validity only, while every other query must return data.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    VariableHide,
)

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
RANGE = "$__range"

# A query over a metric that a later issue adds names that issue with `future=` (none at present: every
# metric the dashboards draw is exported).


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel, with its legend; `future` names what will create its metric, if absent."""

    expr: str
    legend: str = ""
    future: str | None = None


@dataclass(frozen=True)
class Panel:
    """A panel: a time series (default) or a single stat, its unit and the queries it draws."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    height: int = 8


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: uid (also the file name), title, description and its rows of panels."""

    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[Panel, ...]], ...] = field(default_factory=tuple)


def _q(expr: str, legend: str = "", future: str | None = None) -> Query:
    return Query(expr, legend, future)


def _quantiles(metric: str, by: str = "", future: str | None = None) -> tuple[Query, ...]:
    group = f"le, {by}" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return tuple(
        _q(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
            future,
        )
        for q in (0.5, 0.99)
    )


OVERVIEW = Dashboard(
    "polycopy-overview",
    "polycopy: pipeline overview",
    "Is the pipeline up, is it copying, how fast and what does it cost to run.",
    (
        (
            "Now",
            (
                Panel(
                    "Trades in",
                    "Trades published to the raw topic per second, every source.",
                    (_q(f"sum(rate(polycopy_trades_published_total[{RATE}]))", "trades/s"),),
                    "reqps",
                    "stat",
                    width=6,
                    height=4,
                ),
                Panel(
                    "Orders out",
                    "Order intents emitted per second.",
                    (_q(f"sum(rate(polycopy_order_intents_total[{RATE}]))", "orders/s"),),
                    "reqps",
                    "stat",
                    width=6,
                    height=4,
                ),
                Panel(
                    "Signal to order p99",
                    "Trade received to order sent (or simulated), 99th percentile. Budget: 1 s.",
                    (
                        _q(
                            "histogram_quantile(0.99, sum by (le) "
                            f"(rate(polycopy_signal_to_order_seconds_bucket[{RATE}])))",
                            "p99",
                        ),
                    ),
                    "s",
                    "stat",
                    width=6,
                    height=4,
                ),
                Panel(
                    "Dead letters",
                    "Messages sent to the dead-letter topic over the dashboard's time range.",
                    (_q(f"sum(increase(polycopy_dead_letters_total[{RANGE}]))", "dead letters"),),
                    "short",
                    "stat",
                    width=6,
                    height=4,
                ),
            ),
        ),
        (
            "Flow",
            (
                Panel(
                    "Components up",
                    "Processes serving metrics, by component (the RTDS producer runs two: hot standby).",
                    (_q("sum by (component) (polycopy_build_info)", "{{component}}"),),
                ),
                Panel(
                    "Through the pipeline",
                    "Trades in, (trade, wallet) pairs, decisions, orders and rows written, per second.",
                    (
                        _q(f"sum(rate(polycopy_trades_published_total[{RATE}]))", "trades published"),
                        _q(f"sum(rate(polycopy_targeted_trades_total[{RATE}]))", "pairs targeted"),
                        _q(f"sum(rate(polycopy_decisions_total[{RATE}]))", "decisions"),
                        _q(f"sum(rate(polycopy_order_intents_total[{RATE}]))", "order intents"),
                        _q(f"sum(rate(polycopy_sink_rows_total[{RATE}]))", "rows written"),
                    ),
                    "reqps",
                ),
                Panel(
                    "Decisions by action",
                    "Copy or skip, per second.",
                    (_q(f"sum by (action) (rate(polycopy_decisions_total[{RATE}]))", "{{action}}"),),
                    "reqps",
                ),
            ),
        ),
        (
            "Resources",
            (
                Panel(
                    "Memory by component",
                    "Resident memory of each process.",
                    (_q("sum by (component) (process_resident_memory_bytes)", "{{component}}"),),
                    "bytes",
                ),
                Panel(
                    "CPU by component",
                    "CPU seconds per second of each process.",
                    (_q(f"sum by (component) (rate(process_cpu_seconds_total[{RATE}]))", "{{component}}"),),
                    "percentunit",
                ),
                Panel(
                    "Garbage collections",
                    "Python garbage collections per second, by component and generation.",
                    (
                        _q(
                            f"sum by (component, generation) (rate(python_gc_collections_total[{RATE}]))",
                            "{{component}} gen {{generation}}",
                        ),
                    ),
                    "reqps",
                ),
            ),
        ),
    ),
)

ORDERS = Dashboard(
    "polycopy-orders",
    "polycopy: orders and lost orders",
    "What was decided, what the venue (or the paper book) did with it, and any order we lost track of.",
    (
        (
            "Orders",
            (
                Panel(
                    "Lost orders",
                    "Orders whose submission had no clear answer and never showed up, over the time range. "
                    "Anything above 0 needs a look (alert PolycopyOrderLost).",
                    (
                        _q(
                            f'sum(increase(polycopy_order_events_total{{event="OrderLost"}}[{RANGE}]))',
                            "lost",
                        ),
                    ),
                    "short",
                    "stat",
                    width=6,
                    height=4,
                ),
                Panel(
                    "Order intents by side",
                    "Orders decided per second.",
                    (_q(f"sum by (side) (rate(polycopy_order_intents_total[{RATE}]))", "{{side}}"),),
                    "reqps",
                    width=9,
                ),
                Panel(
                    "Execution reports by kind",
                    "What the venue or the paper book answered, per second.",
                    (_q(f"sum by (kind) (rate(polycopy_execution_reports_total[{RATE}]))", "{{kind}}"),),
                    "reqps",
                    width=9,
                ),
                Panel(
                    "Order lifecycle events",
                    "Placed, partially filled, filled, cancelled, rejected and lost orders, per second.",
                    (_q(f"sum by (event) (rate(polycopy_order_events_total[{RATE}]))", "{{event}}"),),
                    "reqps",
                    width=12,
                ),
                Panel(
                    "Duplicate intents",
                    "Intents the executor had already handled (re-deliveries), never sent twice.",
                    (_q(f"sum(rate(polycopy_duplicate_intents_total[{RATE}]))", "duplicates"),),
                    "reqps",
                    width=6,
                ),
                Panel(
                    "Live orders watched",
                    "Open at the venue, lost (still watched for a late fill), deferred (not sent yet: a "
                    "breaker or the venue holds placement).",
                    (_q("sum by (state) (polycopy_live_orders)", "{{state}}"),),
                    "short",
                    width=6,
                ),
                Panel(
                    "User channel connected",
                    "1 while the live executor follows the venue's user channel (its events hurry "
                    "reconciliation along); 0 = live orders reconciled by polling alone.",
                    (_q("max(polycopy_user_channel_connected)", "connected"),),
                    "short",
                    width=6,
                ),
            ),
        ),
        (
            "Why not copied",
            (
                Panel(
                    "Decisions by reason",
                    "Every evaluation outcome by its recorded reason, per second.",
                    (
                        _q(
                            f"sum by (action, reason) (rate(polycopy_decisions_total[{RATE}]))",
                            "{{action}} {{reason}}",
                        ),
                    ),
                    "reqps",
                    width=12,
                ),
                Panel(
                    "Circuit breakers and venue pauses",
                    "Breaker: 1 while calls of a venue endpoint group are held after failures (open or "
                    "probing). Paused: 1 while the venue asked us to wait (425 restart, 429, 503 "
                    "cancel-only).",
                    (
                        _q("max by (endpoint) (polycopy_circuit_breaker_open)", "breaker {{endpoint}}"),
                        _q("max by (endpoint) (polycopy_venue_paused)", "paused {{endpoint}}"),
                    ),
                    width=12,
                ),
            ),
        ),
    ),
)

LATENCY = Dashboard(
    "polycopy-latency",
    "polycopy: latency per stage",
    "Where the time between a trade on the venue and our order goes.",
    (
        (
            "End to end",
            (
                Panel(
                    "Signal to order",
                    "Trade received to order sent (or simulated): the latency the product is about.",
                    _quantiles("polycopy_signal_to_order_seconds"),
                    "s",
                    width=12,
                ),
                Panel(
                    "Feed lag",
                    "Our receive time minus the venue's trade time, for socket trades (about 2 s is normal).",
                    _quantiles("polycopy_feed_lag_seconds"),
                    "s",
                    width=12,
                ),
            ),
        ),
        (
            "Stages",
            (
                Panel(
                    "Stage latency p99",
                    "99th percentile per stage: feed (venue trade time -> our receive), decision (receive -> "
                    "decision), order (decision -> order sent), ack (sent -> the venue's or the paper book's "
                    "first answer), signal (receive -> order sent, end to end).",
                    (
                        _q(
                            "histogram_quantile(0.99, sum by (le, stage) "
                            f"(rate(polycopy_stage_latency_seconds_bucket[{RATE}])))",
                            "{{stage}}",
                        ),
                    ),
                    "s",
                    width=12,
                ),
                Panel(
                    "Order book fetch",
                    "Time to get a book for an evaluation (streamed from memory or REST GET /book).",
                    _quantiles("polycopy_book_fetch_seconds"),
                    "s",
                    width=12,
                ),
                Panel(
                    "PostgreSQL flush",
                    "Time of one batch write of the sink.",
                    _quantiles("polycopy_sink_flush_seconds"),
                    "s",
                    width=12,
                ),
                Panel(
                    "Books by source",
                    "Books the target filter chose, per second: a fresh market-channel state from the books "
                    "topic, or GET /book (REST).",
                    (_q(f"sum by (source) (rate(polycopy_book_source_total[{RATE}]))", "{{source}}"),),
                    "reqps",
                    width=12,
                ),
            ),
        ),
    ),
)

FEED = Dashboard(
    "polycopy-feed",
    "polycopy: feed health",
    "Is every trade reaching us, once, and how late? The socket, the safety-net poller and the consumers.",
    (
        (
            "Socket",
            (
                Panel(
                    "Frames by source",
                    "Frames received per second: rtds (trades), market-channel (books), replay.",
                    (_q(f"sum by (source) (rate(polycopy_feed_frames_total[{RATE}]))", "{{source}}"),),
                    "reqps",
                ),
                Panel(
                    "Trades published by source",
                    "Trades put on the raw topic by the socket, the poller or a replay.",
                    (
                        _q(
                            f"sum by (source) (rate(polycopy_trades_published_total[{RATE}]))",
                            "{{source}}",
                        ),
                    ),
                    "reqps",
                ),
                Panel(
                    "Reconnects",
                    "watchdog: open but silent; closed: the venue closed it; error: connecting failed.",
                    (
                        _q(
                            f"sum by (reason) (increase(polycopy_feed_reconnects_total[{RATE}]))",
                            "{{reason}}",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Once, and only once",
            (
                Panel(
                    "First seen by source",
                    "Fills by the source that delivered them first; poll = the socket missed them.",
                    (
                        _q(
                            f"sum by (source) (rate(polycopy_trades_first_seen_total[{RATE}]))",
                            "{{source}}",
                        ),
                    ),
                    "reqps",
                ),
                Panel(
                    "Duplicates dropped",
                    "Fills the target filter dropped as already seen, by the source of the copy dropped.",
                    (
                        _q(
                            f"sum by (source) (rate(polycopy_duplicate_trades_total[{RATE}]))",
                            "{{source}}",
                        ),
                    ),
                    "reqps",
                ),
                Panel(
                    "Parse errors and dead letters",
                    "Malformed input by stage; each one is in the dead-letter topic with its reason.",
                    (
                        _q(
                            f"sum by (stage) (increase(polycopy_parse_errors_total[{RATE}]))",
                            "parse {{stage}}",
                        ),
                        _q(
                            f"sum by (stage) (increase(polycopy_dead_letters_total[{RATE}]))",
                            "dead letter {{stage}}",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Safety net and consumers",
            (
                Panel(
                    "Poller runs and trades read",
                    "Safety-net poller runs, and the trades it read inside its windows.",
                    (
                        _q(f"sum(increase(polycopy_poller_runs_total[{RATE}]))", "runs"),
                        _q(f"sum(increase(polycopy_poller_trades_fetched_total[{RATE}]))", "trades read"),
                    ),
                ),
                Panel(
                    "Poller requests by status",
                    "The Data API's answers to the poller (429 = throttled).",
                    (
                        _q(
                            f"sum by (status) (increase(polycopy_poller_requests_total[{RATE}]))",
                            "{{status}}",
                        ),
                    ),
                ),
                Panel(
                    "Consumer lag",
                    "Records each consumer group has still to read (high watermark - position), by topic: "
                    "the Faust worker, the executor, the PostgreSQL sink and the alerts sink.",
                    (_q("sum by (group, topic) (polycopy_consumer_lag)", "{{group}} {{topic}}"),),
                ),
                Panel(
                    "Sink failures",
                    "Batches a sink could not make durable, by stage: PostgreSQL writes (postgres-sink), "
                    "report delivery (executor), webhook posts (alerts). Nothing is committed: they are read "
                    "again.",
                    (_q(f"sum by (stage) (increase(polycopy_sink_failures_total[{RATE}]))", "{{stage}}"),),
                ),
            ),
        ),
    ),
)

WALLETS = Dashboard(
    "polycopy-wallets",
    "polycopy: per-wallet outcomes",
    "What each copy wallet decided, its capital and its profit and loss.",
    (
        (
            "Wallets",
            (
                Panel(
                    "Copy wallets",
                    "Copy wallets the worker currently knows.",
                    (_q("max(polycopy_copy_wallets)", "wallets"),),
                    "short",
                    "stat",
                    width=6,
                    height=6,
                ),
                Panel(
                    "Copies and skips",
                    "All wallets together: decisions per second by action.",
                    (_q(f"sum by (action) (rate(polycopy_decisions_total[{RATE}]))", "{{action}}"),),
                    "reqps",
                    width=9,
                    height=6,
                ),
                Panel(
                    "Decisions by wallet",
                    "Decisions per second for each copy wallet, by action.",
                    (
                        _q(
                            f"sum by (wallet, action) (rate(polycopy_wallet_decisions_total[{RATE}]))",
                            "{{wallet}} {{action}}",
                        ),
                    ),
                    "reqps",
                    width=9,
                    height=6,
                ),
            ),
        ),
        (
            "Capital and PnL",
            (
                Panel(
                    "Capital by wallet",
                    "Each wallet's configured capital and what it can still copy with (available: capital "
                    "plus realised PnL, less open orders' reservations and open positions' cost).",
                    (
                        _q("sum by (wallet) (polycopy_wallet_capital_usdc)", "{{wallet}} capital"),
                        _q("sum by (wallet) (polycopy_wallet_available_usdc)", "{{wallet}} available"),
                    ),
                    "currencyUSD",
                    width=12,
                ),
                Panel(
                    "Capital in use by wallet",
                    "Held for each wallet's open orders (reserved) and what its open positions cost "
                    "(deployed; positions in resolved markets count until paid out).",
                    (
                        _q("sum by (wallet) (polycopy_wallet_reserved_usdc)", "{{wallet}} reserved"),
                        _q("sum by (wallet) (polycopy_wallet_deployed_usdc)", "{{wallet}} deployed"),
                    ),
                    "currencyUSD",
                    width=12,
                ),
                Panel(
                    "PnL by wallet",
                    "Realised and unrealised profit and loss of each wallet.",
                    (
                        _q(
                            "sum by (wallet, kind) (polycopy_wallet_pnl_usdc)",
                            "{{wallet}} {{kind}}",
                        ),
                    ),
                    "currencyUSD",
                    width=12,
                ),
            ),
        ),
    ),
)

DASHBOARDS = (OVERVIEW, ORDERS, LATENCY, FEED, WALLETS)


def build_panel(panel: Panel, panel_id: int) -> timeseries.Panel | stat.Panel:
    """The SDK builder of one panel."""
    builder: timeseries.Panel | stat.Panel
    if panel.kind == "stat":
        builder = (
            stat.Panel()
            .graph_mode(common.BigValueGraphMode.AREA)
            .color_mode(common.BigValueColorMode.VALUE)
            .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
    else:
        builder = timeseries.Panel().fill_opacity(10).line_width(1)
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .description(
            panel.description + (f" Filled once the {_futures(panel)} land." if _futures(panel) else "")
        )
        .datasource(DATASOURCE)
        .unit(panel.unit)
        .span(panel.width)
        .height(panel.height)
    )
    for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
        builder = builder.with_target(
            Dataquery().expr(query.expr).legend_format(query.legend or "__auto").ref_id(ref).range()
        )
    return builder


def _futures(panel: Panel) -> str:
    return ", ".join(sorted({q.future for q in panel.queries if q.future}))


def build_dashboard(spec: Dashboard) -> gd.Dashboard:
    """The SDK builder of one dashboard, with a Prometheus data source variable and our tags."""
    builder = (
        gd.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["polycopy", "generated"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
        .with_variable(
            gd.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .hide(VariableHide.DONT_HIDE)
        )
        .link(
            gd.DashboardLink("polycopy dashboards")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["polycopy"])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(True)
        )
    )
    panel_id = 0
    for title, panels in spec.rows:
        panel_id += 1
        builder = builder.with_row(gd.Row(title).id(panel_id))
        for panel in panels:
            panel_id += 1
            builder = builder.with_panel(build_panel(panel, panel_id))
    return builder


def render(spec: Dashboard) -> str:
    """The dashboard's JSON exactly as written to its file."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build_dashboard(spec).build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every dashboard (or, with --check, report the ones whose file is out of date)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 when a file differs")
    args = parser.parse_args(argv)
    stale = []
    for spec in DASHBOARDS:
        path, text = OUT_DIR / f"{spec.uid}.json", render(spec)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
            continue
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    if stale:
        print("out of date (run `make dashboards`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
