"""Tests of reference-data mapping on venue responses (Gamma markets, leaderboards) and file imports.

The BTC market is a real Gamma response (tests/fixtures); the listings and leaderboards are rebuilt by the
builders with the shapes and traps of recorded ones.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from polycopy.polymarket.reference import ReferenceParseError, build_market_reference, build_trader_reference
from producers.reference import build_trader_file, read_trader_rows, sync_markets, sync_traders
from schemas.reference import MarketReference, TraderReference
from schemas.topics import MARKETS, TRADERS
from tests.builders import (
    build_gamma_markets,
    build_leaderboard_row,
    build_leaderboard_rows,
    build_leaderboard_snapshots_csv,
    build_profit_leaderboard_row,
    load_fixture_json,
)

UPDATED_AT_MS = 1_790_000_000_000
BTC_MARKET = "ra1nty__polymarket-cli/market_detail.json"  # the one market whose trades and book we also have
CATEGORIES = ("Sports", "US-current-affairs", "NFTs")
TOP_WALLET = "0x" + "Ab12Cd34Ef" * 4  # mixed case, as the venue sends it


def gamma_listing() -> list[dict[str, Any]]:
    """600 Gamma markets as a listing returns them: half closed, 4 served twice, 6 without an end date."""
    return build_gamma_markets(
        600, closed=300, neg_risk=236, without_end_date=6, repeated=4, categories=CATEGORIES
    )


def leaderboard_page() -> list[dict[str, Any]]:
    """A full `/v1/leaderboard` page of 50 rows whose first row has known figures."""
    top = build_leaderboard_row(
        rank="1", proxyWallet=TOP_WALLET, userName="DeepPockets", vol=98765432.10987654, pnl=7512345.678901234
    )
    return [top, *build_leaderboard_rows(49, start_rank=2)]


class RecordingPublisher:
    """Stands in for MessagePublisher: keeps (topic, key, message) in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, Any]] = []

    def publish(self, spec: Any, key: str | None, message: Any, *, timestamp_ms: int = 0) -> None:
        self.sent.append((spec.name, key, message))


# --- Gamma markets ------------------------------------------------------------------------------------------
def test_the_real_btc_market_maps_field_by_field() -> None:
    market = build_market_reference(load_fixture_json(BTC_MARKET), UPDATED_AT_MS)

    assert market == MarketReference(
        condition_id="0xba3509c3c29a52bb2f8cf8204755314a38461825e61e77e6350f5abd4b848e05",
        question="Bitcoin Up or Down - March 22, 3:50AM-3:55AM ET",
        slug="btc-updown-5m-1774165800",
        end_date_ms=1_774_166_100_000,
        closed=False,
        accepting_orders=True,
        neg_risk=False,
        tick_size=Decimal("0.001"),
        min_order_size=Decimal("5"),
        token_ids=(
            "94242206871221370391055736153305071391564432448684801902267396130896523340261",
            "22943400237250229318795315882775337816951160275867284205243766113690886285726",
        ),
        outcomes=("Up", "Down"),
        updated_at_ms=UPDATED_AT_MS,
    )


def test_every_gamma_market_of_a_listing_maps_with_decoded_token_ids_and_outcomes() -> None:
    rows = gamma_listing()

    markets = [build_market_reference(row, UPDATED_AT_MS) for row in rows]

    assert len(markets) == 600 and len({market.condition_id for market in markets}) == 596  # served twice
    for row, market in zip(rows, markets, strict=True):
        assert market.token_ids == tuple(json.loads(row["clobTokenIds"]))  # decoded from the JSON text
        assert market.outcomes == tuple(json.loads(row["outcomes"])) and len(market.outcomes) == 2
        assert market.condition_id == row["conditionId"].lower()
        assert market.closed is row["closed"] and market.neg_risk is row.get("negRisk", False)
        assert market.tick_size in (Decimal("0.01"), Decimal("0.001"), None)
        assert market.tick_size == (
            Decimal(str(row["orderPriceMinTickSize"])) if "orderPriceMinTickSize" in row else None
        )
        if row.get("acceptingOrders") is not None:
            assert market.accepting_orders is row["acceptingOrders"]
    assert sum(market.closed for market in markets) == 300
    assert sum(market.neg_risk for market in markets) == 236
    assert sum(market.end_date_ms is not None for market in markets) == 594
    assert any(market.tick_size is None for market in markets)  # objects without a tick size are kept
    assert {market.outcomes for market in markets} > {("Yes", "No"), ("Over", "Under"), ("Up", "Down")}
    # category is mostly empty on Gamma markets; where the event carries one, it is used
    assert {market.category for market in markets} == {None, *CATEGORIES}
    from_event_only = [
        row for row, market in zip(rows, markets, strict=True) if market.category and "category" not in row
    ]
    assert len(from_event_only) == len(CATEGORIES) - 1


def test_a_market_already_decoded_maps_the_same_as_the_raw_one() -> None:
    raw = load_fixture_json(BTC_MARKET)
    decoded = raw | {name: json.loads(raw[name]) for name in ("outcomes", "clobTokenIds", "outcomePrices")}
    assert build_market_reference(decoded, 1) == build_market_reference(raw, 1)


def test_market_tags_come_from_labels_and_category_from_the_event_when_missing() -> None:
    raw = load_fixture_json(BTC_MARKET)
    tags = [{"label": "Crypto"}, {"slug": "bitcoin"}, {"label": "Crypto"}]
    market = build_market_reference(raw | {"tags": tags, "events": [{"category": "Crypto"}]}, 1)
    assert market.tags == ("Crypto", "bitcoin") and market.category == "Crypto"


def test_a_protocol_v2_market_trades_its_position_ids() -> None:
    raw = load_fixture_json(BTC_MARKET)
    v2 = {"clobTokenIds": "", "positionIds": ["11", "22"], "version": "v2"}
    market = build_market_reference(raw | v2, 1)
    assert market.token_ids == ("11", "22")


def test_a_market_without_accepting_orders_is_open_only_when_active_and_not_closed() -> None:
    raw = load_fixture_json(BTC_MARKET)
    del raw["acceptingOrders"]
    assert build_market_reference(raw, 1).accepting_orders is True
    assert build_market_reference(raw | {"closed": True}, 1).accepting_orders is False


@pytest.mark.parametrize(
    ("end_date", "expected"),
    [
        ("2026-01-23T18:30:00Z", 1_769_193_000_000),
        ("2026-01-22T00:03:11.698284Z", 1_769_040_191_698),
        ("2026-03-22", 1_774_137_600_000),
        ("", None),
        ("next week", None),
    ],
)
def test_end_dates_in_the_venues_forms_become_epoch_ms(end_date: str, expected: int | None) -> None:
    raw = load_fixture_json(BTC_MARKET) | {"endDate": end_date, "endDateIso": None}
    assert build_market_reference(raw, 1).end_date_ms == expected


@pytest.mark.parametrize("override", [{"conditionId": ""}, {"conditionId": None}, {"orderMinSize": "lots"}])
def test_a_market_without_a_condition_id_or_with_bad_numbers_is_refused(override: dict[str, Any]) -> None:
    raw = load_fixture_json(BTC_MARKET) | override
    with pytest.raises(ReferenceParseError):
        build_market_reference(raw, 1)


# --- leaderboard traders ------------------------------------------------------------------------------------
def test_a_leaderboard_page_maps_every_row_with_exact_figures() -> None:
    rows = leaderboard_page()

    traders = [build_trader_reference(row, source="leaderboard", updated_at_ms=UPDATED_AT_MS) for row in rows]

    assert len(traders) == 50 and [trader.rank for trader in traders] == list(range(1, 51))
    assert traders[0] == TraderReference(
        wallet=TOP_WALLET.lower(),
        name="DeepPockets",
        rank=1,
        pnl_usdc=Decimal("7512345.678901234"),
        volume_usdc=Decimal("98765432.10987654"),
        win_rate=None,
        source="leaderboard",
        updated_at_ms=UPDATED_AT_MS,
    )
    for row, trader in zip(rows, traders, strict=True):
        assert trader.wallet == row["proxyWallet"].lower() and trader.name == (row["userName"] or None)
        assert trader.pnl_usdc == Decimal(str(row["pnl"])) and trader.volume_usdc == Decimal(str(row["vol"]))
        assert trader.win_rate is None  # the leaderboard publishes no win rate
    assert any(trader.name is None for trader in traders) and any(
        trader.volume_usdc == 0 for trader in traders
    )


def test_the_older_profit_leaderboard_maps_amount_to_pnl() -> None:
    row = build_profit_leaderboard_row(
        proxyWallet="0x" + "5A6b" * 10, name="TopEarner", pseudonym="Top-Earner", amount=15234567.891234567
    )
    trader = build_trader_reference(row, source="import", updated_at_ms=1)
    assert trader.wallet == "0x" + "5a6b" * 10 and trader.name == "TopEarner"
    assert trader.pnl_usdc == Decimal("15234567.891234567")
    assert trader.volume_usdc is None and trader.rank is None


def test_a_csv_with_win_rates_imports_them_and_later_rows_win(tmp_path: Path) -> None:
    path = tmp_path / "traders.csv"
    path.write_text(
        "address,username,pnl,vol,win_rate\n"
        "0xB6D6E99D3BFE055874A04279F659F009FD57BE17,JPMorgan101,846963.01,2223966.42,0.95\n"
        "0xc8075693f48668a264b9fa313b47f52712fcc12b,texaskid,,,\n"
        "0xb6d6e99d3bfe055874a04279f659f009fd57be17,JPMorgan101,900000,2300000,0.9\n"
    )

    result = build_trader_file(read_trader_rows(path), UPDATED_AT_MS)

    assert result.refused == []
    by_wallet = {trader.wallet: trader for trader in result.traders}
    assert by_wallet["0xb6d6e99d3bfe055874a04279f659f009fd57be17"].win_rate == Decimal("0.9")
    assert by_wallet["0xb6d6e99d3bfe055874a04279f659f009fd57be17"].pnl_usdc == Decimal("900000")
    texaskid = by_wallet["0xc8075693f48668a264b9fa313b47f52712fcc12b"]
    assert texaskid.pnl_usdc is None and texaskid.win_rate is None and texaskid.source == "import"


def test_a_leaderboard_snapshot_csv_keeps_one_row_per_wallet(tmp_path: Path) -> None:
    path = tmp_path / "leaderboard_2026-07-02.csv"
    path.write_text(build_leaderboard_snapshots_csv(snapshots=108, per_snapshot=75, wallets=123))

    rows = read_trader_rows(path)
    result = build_trader_file(rows, UPDATED_AT_MS)

    assert len(rows) == 8100 and result.refused == []
    assert len(result.traders) == 123  # 108 snapshots of the same wallets
    last_row_of = {row["address"]: row for row in rows}
    for trader in result.traders:  # the latest snapshot's figures win
        assert trader.pnl_usdc == Decimal(last_row_of[trader.wallet]["pnl"])


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"userName": "nobody", "pnl": 1}, "no wallet"),
        ({"proxyWallet": "0x1234", "pnl": 1}, "wallet"),
        ({"address": "0x" + "ab" * 20, "win_rate": "63.3"}, "win_rate"),
        ({"address": "0x" + "ab" * 20, "pnl": "a lot"}, "not a number"),
        ({"address": "0x" + "ab" * 20, "rank": "1.5"}, "whole number"),
    ],
)
def test_bad_trader_rows_are_refused_with_the_reason(row: dict[str, Any], reason: str) -> None:
    with pytest.raises(ReferenceParseError, match=reason):
        build_trader_reference(row, source="import", updated_at_ms=1)


def test_a_file_with_bad_rows_lists_them_by_number(tmp_path: Path) -> None:
    path = tmp_path / "traders.json"
    path.write_text(json.dumps({"data": [{"proxyWallet": "0x" + "ab" * 20}, {"proxyWallet": "nope"}]}))
    result = build_trader_file(read_trader_rows(path), 1)
    assert len(result.traders) == 1 and [number for number, _ in result.refused] == [2]


def test_an_unreadable_file_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "traders.json"
    path.write_text("{not json")
    with pytest.raises(ReferenceParseError, match="cannot read"):
        read_trader_rows(path)


# --- syncs with a fake venue --------------------------------------------------------------------------------
class FakeVenue:
    """Serves a Gamma listing and a leaderboard page in pages; records requests."""

    def __init__(self) -> None:
        self.markets = gamma_listing()
        self.leaderboard = leaderboard_page()
        self.requests: list[dict[str, Any]] = []

    def fetch_markets(
        self,
        condition_ids: Any = (),
        *,
        active_only: bool = False,
        closed: bool | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        self.requests.append(
            {
                "condition_ids": tuple(condition_ids),
                "active_only": active_only,
                "closed": closed,
                "limit": limit,
                "offset": offset,
            }
        )
        rows = [
            m
            for m in self.markets
            if (not condition_ids or m["conditionId"] in condition_ids)
            and (not active_only or not m["closed"])
            and (closed is None or m["closed"] == closed)
        ]
        return rows[offset : offset + limit]

    def fetch_leaderboard(self, *, limit: int = 50, offset: int = 0, **filters: str) -> list[dict[str, Any]]:
        self.requests.append({"limit": limit, "offset": offset} | filters)
        return self.leaderboard[offset : offset + limit]


def test_market_sync_pages_through_active_markets_until_a_short_page() -> None:
    venue, publisher = FakeVenue(), RecordingPublisher()

    summary = sync_markets(venue, publisher, page_size=120, max_pages=10, clock_ms=lambda: UPDATED_AT_MS)  # type: ignore[arg-type]

    assert summary.published == 300 and summary.pages == 3 and summary.refused == 0
    assert [request["offset"] for request in venue.requests] == [0, 120, 240]
    assert all(
        topic == MARKETS.name and key == message.condition_id and not message.closed
        for topic, key, message in publisher.sent
    )


def test_market_sync_stops_at_max_pages() -> None:
    venue, publisher = FakeVenue(), RecordingPublisher()
    summary = sync_markets(venue, publisher, page_size=50, max_pages=2)  # type: ignore[arg-type]
    assert summary.published == 100 and summary.pages == 2


def test_market_sync_of_explicit_ids_asks_in_chunks_of_fifty() -> None:
    venue, publisher = FakeVenue(), RecordingPublisher()
    wanted = tuple(dict.fromkeys(market["conditionId"] for market in venue.markets))[:120]

    summary = sync_markets(venue, publisher, condition_ids=wanted)  # type: ignore[arg-type]

    assert summary.published == 120 and [len(r["condition_ids"]) for r in venue.requests] == [50, 50, 20]
    markets = [key for topic, key, _ in publisher.sent if topic == MARKETS.name]
    assert markets == [condition_id.lower() for condition_id in wanted]


def test_trader_sync_reads_the_leaderboard_in_pages_of_fifty_up_to_the_limit() -> None:
    venue, publisher = FakeVenue(), RecordingPublisher()

    summary = sync_traders(venue, publisher, limit=70, time_period="ALL", clock_ms=lambda: 5)  # type: ignore[arg-type]

    assert [(r["limit"], r["offset"]) for r in venue.requests] == [(50, 0), (20, 50)]
    assert venue.requests[0]["time_period"] == "ALL"
    assert summary.published == 50 and summary.pages == 2  # the venue had only 50
    assert all(
        topic == TRADERS.name and key == message.wallet and message.source == "leaderboard"
        for topic, key, message in publisher.sent
    )
