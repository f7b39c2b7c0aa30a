"""PnL-over-time charts of a what-if run, one PNG per wallet (the one module that imports matplotlib, an
optional dependency: `pip install polycopy-stream[chart]`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from processors.core.whatif import WalletReport


class ChartUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def write_pnl_charts(reports: Iterable[WalletReport], directory: Path) -> list[Path]:
    """Write `<wallet>-pnl.png` into `directory` for every wallet: realised, unrealised and total PnL after
    each trade it evaluated and each settlement; returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ChartUnavailableError(
            "--chart needs matplotlib: pip install 'polycopy-stream[chart]'"
        ) from error
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for report in reports:
        times = [datetime.fromtimestamp(point.at_ms / 1000, UTC) for point in report.history]
        figure, axes = plt.subplots(figsize=(10, 4.5), dpi=100)
        if times:
            for label, values in (
                ("total", [float(p.total_usdc) for p in report.history]),
                ("realised", [float(p.realised_usdc) for p in report.history]),
                ("unrealised", [float(p.unrealised_usdc) for p in report.history]),
            ):
                axes.step(times, values, where="post", label=label, linewidth=2 if label == "total" else 1)
            axes.legend(loc="best")
        axes.axhline(0, color="grey", linewidth=0.5)
        axes.set_title(f"{report.wallet_id}: PnL over the replayed window (USDC)")
        axes.set_ylabel("USDC")
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=UTC))
        figure.autofmt_xdate()
        path = directory / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', report.wallet_id)}-pnl.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
