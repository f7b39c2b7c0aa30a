"""`polycopy replay`, `capture`, `rtds` and `poll`: the commands that put venue trades onto the raw topic."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polycopy.cli.common import UsageError
from polycopy.cli.parser import CommandGroup
from polycopy.infra.settings import PolycopySettings


def cmd_replay(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_replay

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"capture file {path} not found")
    result = run_replay(
        settings,
        path,
        speed=None if args.speed == "max" else float(args.speed),
        on_progress=lambda f, t: print(f"replayed {f} frames, {t} trades", flush=True),
    )
    print(
        f"replayed {result.frames} frames: {result.trades} trades, {result.dead_letters} dead letters"
        + (f", {result.undelivered} NOT delivered" if result.undelivered else "")
    )
    return 1 if result.undelivered else 0


def cmd_capture(args: argparse.Namespace, settings: PolycopySettings) -> int:
    if args.from_rows:
        from producers.replay import frames_from_trade_rows, load_trade_rows, write_capture

        source = Path(args.from_rows)
        if not source.exists():
            raise UsageError(f"{source} not found")
        count = write_capture(Path(args.out), frames_from_trade_rows(load_trade_rows(source)))
        print(f"wrote {count} frames to {args.out}")
        return 0
    from polycopy.wiring import run_capture

    count = run_capture(settings, Path(args.out), args.url, args.duration_secs)
    print(f"captured {count} frames to {args.out}")
    return 0


def cmd_rtds(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_rtds

    result = run_rtds(settings, args.url)
    print(
        f"rtds producer stopped: {result.trades} trades published, {result.dead_letters} dead letters"
        + (f", {result.undelivered} NOT delivered" if result.undelivered else "")
    )
    return 1 if result.undelivered else 0


def cmd_poll(args: argparse.Namespace, settings: PolycopySettings) -> int:
    from polycopy.wiring import run_poller_loop, run_poller_once
    from producers.poller import PollerError

    try:
        if args.loop:
            runs = run_poller_loop(settings, args.interval_secs)
            print(f"poller stopped after {runs} runs")
            return 0
        summary = run_poller_once(settings)
    except PollerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"polled {summary.wallets} wallets: {summary.fetched} trades fetched, {summary.published} published"
        + (f", {summary.failed_wallets} wallets FAILED" if summary.failed_wallets else "")
    )
    return 1 if summary.failed_wallets else 0


def register(commands: CommandGroup) -> None:
    replay = commands.command(
        "replay", cmd_replay, "publish a capture file of RTDS frames onto the raw-trades topic"
    )
    replay.add_argument("file", help="capture file (JSON lines of frames with their receive times)")
    replay.add_argument(
        "--speed",
        default="max",
        choices=["1", "10", "max"],
        help="1 = recorded pace, 10 = ten times faster, max = as fast as possible",
    )
    capture = commands.command(
        "capture", cmd_capture, "record raw RTDS frames with their receive times to a capture file"
    )
    capture.add_argument("--out", required=True, help="capture file to write (JSON lines)")
    capture.add_argument("--url", help="WebSocket URL (default POLYCOPY_RTDS_URL)")
    capture.add_argument("--duration-secs", type=float, help="stop after this long (default: until Ctrl-C)")
    capture.add_argument(
        "--from-rows",
        metavar="ROWS",
        help="instead of recording, convert recorded Data API trade rows (.csv/.json)",
    )
    rtds = commands.command(
        "rtds", cmd_rtds, "run the RTDS producer (venue trade stream -> raw-trades topic)"
    )
    rtds.add_argument("--url", help="WebSocket URL (default POLYCOPY_RTDS_URL)")
    poll = commands.command(
        "poll", cmd_poll, "safety net: poll followed wallets' recent trades (Data API -> raw-trades)"
    )
    poll.add_argument("--loop", action="store_true", help="keep polling until SIGTERM (default: one run)")
    poll.add_argument("--interval-secs", type=float, help="with --loop (default POLYCOPY_POLL_INTERVAL_SECS)")
