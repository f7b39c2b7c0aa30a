"""Resolutions from the venue: Gamma markets (closed, final UMA status, outcome prices that are payouts), the
market channel's `market_resolved` event, the markets sync reaching the closed markets the wallets hold, and
the books producer publishing channel resolutions."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from polycopy.infra.metrics import PipelineMetrics
from polycopy.polymarket.books import MarketResolved, parse_market_message
from polycopy.polymarket.market_channel import build_initial_subscription, build_subscription_change
from polycopy.polymarket.reference import build_market_resolution
from producers.books import BooksProducer
from producers.reference import sync_markets
from schemas.portfolio import ResolutionSource
from schemas.topics import MARKETS, RESOLUTIONS
from tests.builders import ASSET, CONDITION_ID, OTHER_ASSET, build_gamma_market, build_gamma_markets

D = Decimal
OBSERVED_MS = 1_790_000_000_000


def resolved_market(prices: tuple[str, str] = ("1", "0"), **overrides: Any) -> dict[str, Any]:
    """A Gamma market as a resolved one comes back (closed, UMA resolved, closedTime as Gamma writes it)."""
    fields: dict[str, Any] = {
        "closed": True,
        "active": True,
        "acceptingOrders": False,
        "umaResolutionStatus": "resolved",
        "outcomePrices": json.dumps(list(prices)),
        "closedTime": "2026-07-18 12:31:07+00",
    }
    return build_gamma_market(**(fields | overrides))


def test_a_closed_market_with_a_final_resolution_pays_its_winner_one_and_the_other_zero() -> None:
    resolution = build_market_resolution(resolved_market(("0", "1")), OBSERVED_MS)
    assert resolution is not None
    assert resolution.payouts == {ASSET: D(0), OTHER_ASSET: D(1)}
    assert (resolution.condition_id, resolution.winning_token_id, resolution.winning_outcome) == (
        CONDITION_ID,
        OTHER_ASSET,
        "No",
    )
    assert resolution.source is ResolutionSource.GAMMA
    assert resolution.resolved_at_ms == 1_784_377_867_000  # closedTime, not when it was observed


def test_a_fifty_fifty_resolution_pays_half_to_each_and_names_no_winner() -> None:
    resolution = build_market_resolution(resolved_market(("0.5", "0.5")), OBSERVED_MS)
    assert resolution is not None and resolution.payouts == {ASSET: D("0.5"), OTHER_ASSET: D("0.5")}
    assert resolution.winning_token_id is None


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"closed": False, "umaResolutionStatus": None}, "still open"),
        ({"umaResolutionStatus": "proposed"}, "a proposal can still be disputed"),
        ({"umaResolutionStatus": "disputed"}, "disputed"),
        ({"outcomePrices": json.dumps(["0.9999997005", "0.0000002995"])}, "last prices of an old AMM market"),
        (
            {"outcomePrices": json.dumps(["0.2535", "0.7465"]), "umaResolutionStatus": None},
            "closed, unresolved",
        ),
        ({"outcomePrices": json.dumps(["1"])}, "fewer prices than tokens"),
        ({"outcomePrices": json.dumps(["1", "1"])}, "payouts adding up to two"),
    ],
)
def test_no_resolution_is_made_from_a_market_that_has_not_surely_resolved(
    overrides: dict[str, Any], why: str
) -> None:
    assert build_market_resolution(resolved_market(**overrides), OBSERVED_MS) is None, why


def test_a_market_older_than_the_uma_states_resolves_from_its_prices_and_the_observation_time() -> None:
    market = resolved_market(without=("umaResolutionStatus", "closedTime"))
    resolution = build_market_resolution(market, OBSERVED_MS)
    assert resolution is not None and resolution.resolved_at_ms == OBSERVED_MS


def test_protocol_v2_position_ids_get_the_payout_of_their_outcome() -> None:
    market = resolved_market(positionIds=["111", "222"])
    resolution = build_market_resolution(market, OBSERVED_MS)
    assert resolution is not None and resolution.payouts == {
        ASSET: D(1),
        OTHER_ASSET: D(0),
        "111": D(1),
        "222": D(0),
    }


def test_each_market_of_a_neg_risk_event_resolves_on_its_own() -> None:
    listing = build_gamma_markets(40, closed=20, neg_risk=40, seed=9)
    resolutions = [build_market_resolution(market, OBSERVED_MS) for market in listing]
    made = [r for r in resolutions if r is not None]
    assert len(made) == 20 and all(r.neg_risk for r in made)
    assert all(sorted(r.payouts.values()) == [0, 1] for r in made)


# --- the market channel ------------------------------------------------------------------------------------
def market_resolved_frame(**overrides: Any) -> str:
    event: dict[str, Any] = {
        "event_type": "market_resolved",
        "id": "1031769",
        "question": "Will it rain in Lisbon tomorrow?",
        "market": CONDITION_ID.upper().replace("0X", "0x"),
        "slug": "will-it-rain-in-lisbon-tomorrow",
        "assets_ids": [ASSET, OTHER_ASSET],
        "outcomes": ["Yes", "No"],
        "winning_asset_id": ASSET,
        "winning_outcome": "Yes",
        "timestamp": "1784377867000",
        "tags": ["weather"],
    }
    return json.dumps(event | overrides)


def test_a_market_resolved_event_is_the_winner_paying_one_and_the_markets_other_tokens_zero() -> None:
    [event] = parse_market_message(market_resolved_frame()).events
    assert isinstance(event, MarketResolved)
    resolution = event.to_resolution(received_at_ms=OBSERVED_MS)
    assert resolution.condition_id == CONDITION_ID
    assert resolution.payouts == {ASSET: D(1), OTHER_ASSET: D(0)}
    assert (resolution.winning_outcome, resolution.resolved_at_ms) == ("Yes", 1_784_377_867_000)
    assert resolution.source is ResolutionSource.MARKET_CHANNEL


def test_a_market_resolved_event_spelling_asset_ids_or_without_them_still_names_its_winner() -> None:
    [spelled] = parse_market_message(
        market_resolved_frame(assets_ids=None, asset_ids=[ASSET, OTHER_ASSET])
    ).events
    assert isinstance(spelled, MarketResolved) and spelled.assets == (ASSET, OTHER_ASSET)
    [bare] = parse_market_message(market_resolved_frame(assets_ids=None, timestamp=None)).events
    assert isinstance(bare, MarketResolved)
    assert bare.to_resolution(OBSERVED_MS).payouts == {ASSET: D(1)}
    assert bare.to_resolution(OBSERVED_MS).resolved_at_ms == OBSERVED_MS


def test_a_market_resolved_event_without_a_winner_is_reported_malformed() -> None:
    message = parse_market_message(market_resolved_frame(winning_asset_id=""))
    assert message.events == () and "market_resolved" in message.errors[0]


def test_custom_features_are_asked_for_only_when_resolutions_are_wanted() -> None:
    assert json.loads(build_initial_subscription(["1"]))["custom_feature_enabled"] is False
    assert json.loads(build_initial_subscription(["1"], True))["custom_feature_enabled"] is True
    assert json.loads(build_subscription_change("subscribe", ["1"], True))["custom_feature_enabled"] is True


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, Any]] = []

    def publish(self, spec, key, message, *, timestamp_ms: int = 0) -> None:  # type: ignore[no-untyped-def]
        self.sent.append((spec.name, key, message))


def test_the_books_producer_publishes_a_channel_resolution_keyed_by_condition_id() -> None:
    sink = RecordingSink()
    producer = BooksProducer(None, sink, PipelineMetrics(), clock_ms=lambda: OBSERVED_MS)  # type: ignore[arg-type]
    [event] = parse_market_message(market_resolved_frame()).events
    assert isinstance(event, MarketResolved)
    producer.on_resolved(event)
    [(topic, key, resolution)] = sink.sent
    assert (topic, key, resolution.winning_token_id) == (RESOLUTIONS.name, CONDITION_ID, ASSET)


# --- the markets sync --------------------------------------------------------------------------------------
class ClosedAwareVenue:
    """Gamma by condition id: closed markets only when asked for with closed=true."""

    def __init__(self, markets: list[dict[str, Any]]) -> None:
        self.markets, self.requests = markets, []  # type: list[dict[str, Any]], list[dict[str, Any]]

    def fetch_markets(self, condition_ids: Any = (), **query: Any) -> list[dict[str, Any]]:
        self.requests.append({"condition_ids": tuple(condition_ids)} | query)
        closed = query.get("closed")
        return [
            m
            for m in self.markets
            if (not condition_ids or m["conditionId"] in condition_ids)
            and (not query.get("active_only") or not m["closed"])
            and (closed is None or m["closed"] == closed)
        ][: query.get("limit", 500)]


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, Any]] = []

    def publish(self, spec, key, message, *, timestamp_ms: int = 0) -> None:  # type: ignore[no-untyped-def]
        self.sent.append((spec.name, key, message))


def test_the_sync_asks_for_the_held_markets_that_closed_and_publishes_each_new_resolution_once() -> None:
    listing = build_gamma_markets(30, closed=10, neg_risk=0, seed=11)
    open_one = next(m["conditionId"] for m in listing if not m["closed"])
    held = [m["conditionId"] for m in listing if m["closed"]][:4] + [open_one]
    venue, publisher = ClosedAwareVenue(listing), Recorder()

    summary = sync_markets(venue, publisher, held=held, page_size=100, clock_ms=lambda: OBSERVED_MS)  # type: ignore[arg-type]

    assert venue.requests[-1]["closed"] is True and len(venue.requests[-1]["condition_ids"]) == 5
    resolutions = {key: message for topic, key, message in publisher.sent if topic == RESOLUTIONS.name}
    assert set(resolutions) == {c.lower() for c in held[:4]} and summary.resolutions == 4
    assert sum(topic == MARKETS.name for topic, _, _ in publisher.sent) == summary.published == 20 + 4

    again = Recorder()
    repeat = sync_markets(venue, again, held=held, known=resolutions, clock_ms=lambda: OBSERVED_MS + 1)  # type: ignore[arg-type]
    assert repeat.resolutions == 0 and all(topic == MARKETS.name for topic, _, _ in again.sent)
