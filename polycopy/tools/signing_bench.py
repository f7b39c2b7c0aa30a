"""Build + sign cost of one live order, with and without libsecp256k1 (coincurve).

Run: `python -m polycopy.tools.signing_bench`.

Three paths over the same orders: ours through coincurve (what the live client uses), ours through eth-keys'
pure-Python backend (a machine without coincurve), and the reference client's own typed-data path. Each order
has a fresh salt, as each intent does. Prints p50 / p99 in milliseconds; `make bench` can print the same.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from polycopy.polymarket.clob import OrderSigner, OrderTerms, derive_order_salt

BENCH_KEY = "0x" + "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d"


@dataclass(frozen=True)
class SigningFigures:
    """Per-order build + sign time of one path."""

    path: str
    orders: int
    p50_ms: float
    p99_ms: float


def _terms(number: int) -> OrderTerms:
    return OrderTerms(
        token_id=str(10**70 + number),
        side="BUY" if number % 2 else "SELL",
        price=Decimal("0.53"),
        size=Decimal("18.87"),
        tick_size=Decimal("0.01"),
        neg_risk=number % 5 == 0,
        salt=derive_order_salt(f"bench-{number}"),
        timestamp_ms=1_790_000_000_000 + number,
    )


def _measure(path: str, sign: Callable[[OrderTerms], object], orders: int) -> SigningFigures:
    sign(_terms(-1))  # warm caches and imports outside the measurement
    samples = []
    for number in range(orders):
        terms = _terms(number)
        started = time.perf_counter()
        sign(terms)
        samples.append((time.perf_counter() - started) * 1000)
    cut = statistics.quantiles(samples, n=100)
    return SigningFigures(path, orders, statistics.median(samples), cut[98])


def measure_signing(orders: int = 500) -> list[SigningFigures]:
    """p50 / p99 of build + sign per order on this machine, for the three paths."""
    fast = OrderSigner(BENCH_KEY, 137)
    native = OrderSigner(BENCH_KEY, 137, use_coincurve=False)
    return [
        _measure("coincurve (live client)", lambda terms: fast.sign(terms, "owner"), orders),
        _measure(
            "pure Python (no coincurve)", lambda terms: native.sign(terms, "owner"), max(orders // 5, 20)
        ),
        _measure("reference client typed data", fast.reference_signature, max(orders // 5, 20)),
    ]


def format_figures(figures: list[SigningFigures]) -> str:
    """One line per path."""
    return "\n".join(
        f"build + sign, {f.path:30} p50 {f.p50_ms:6.2f} ms   p99 {f.p99_ms:6.2f} ms   ({f.orders} orders)"
        for f in figures
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m polycopy.tools.signing_bench", description=__doc__)
    parser.add_argument("--orders", type=int, default=500, help="orders signed on the fast path")
    print(format_figures(measure_signing(parser.parse_args(argv).orders)))


if __name__ == "__main__":
    main()
