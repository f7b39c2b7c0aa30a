"""Topic value models: exported JSON Schemas match the models; models are frozen, strict and Decimal-safe."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from processors.core.books import stamp_book
from schemas.alerts import Alert, AlertKind, Severity
from schemas.base import Message
from schemas.books import BookSource
from schemas.control import KillSwitch
from schemas.deadletter import DeadLetter, build_dead_letter
from schemas.export import SCHEMA_DIR, render_schemas, write_schemas
from schemas.portfolio import WalletResolution
from schemas.reference import MarketReference, PollerWatermark, TraderReference
from schemas.topics import ALL_TOPICS, WALLET_PARTITIONS, TopicSpec, find_topic
from schemas.trades import RawTrade, TargetedTrade
from schemas.wallets import WalletConfig, WalletConfigFile
from tests.builders import (
    CONDITION_ID,
    TRADER,
    build_book,
    build_decision,
    build_intent_on_book,
    build_order_event,
    build_position_view,
    build_report,
    build_resolution,
    build_trade,
    build_wallet,
    build_wallet_snapshot,
)

D = Decimal

SAMPLES: dict[str, Callable[[], Message]] = {
    "RawTrade": lambda: build_trade(fee=D("0.0125")),
    "TargetedTrade": lambda: TargetedTrade(wallet_id="copy-1", trade=build_trade(), book_id="b" * 32),
    "Decision": lambda: build_decision(
        action="copy",
        reason="copy",
        size=D("19.23"),
        limit_price=D("0.52"),
        available_size=D("3000"),
        book_id="b" * 32,
    ),
    "OrderIntent": lambda: build_intent_on_book(build_book()),
    "OrderBook": lambda: stamp_book(build_book(), BookSource.CHANNEL, 1),
    "ExecutionReport": lambda: build_report(matched_size=D("8"), average_price=D("0.5")),
    "OrderEvent": lambda: build_order_event("cancelled", 3, matched_size=D("8"), released_usdc=D("6.24")),
    "WalletConfig": lambda: build_wallet(max_order_usdc=D("25"), max_daily_loss_usdc=D("50")),
    "MarketReference": lambda: MarketReference(
        condition_id=CONDITION_ID,
        question="Rain?",
        tick_size=D("0.001"),
        min_order_size=D("5"),
        token_ids=("1", "2"),
        updated_at_ms=1,
    ),
    "TraderReference": lambda: TraderReference(
        wallet=TRADER, pnl_usdc=D("12345.67"), win_rate=D("0.61"), updated_at_ms=1
    ),
    "PollerWatermark": lambda: PollerWatermark(
        wallet=TRADER, last_trade_timestamp=1_784_327_295, updated_at_ms=1
    ),
    "DeadLetter": lambda: build_dead_letter(
        "rtds-parse", "invalid JSON", b"{\xff", occurred_at_ms=1, topic="raw", partition=0, offset=7
    ),
    "KillSwitch": lambda: KillSwitch(wallet_id="*", engaged=True, reason="drill", set_by="ops", set_at_ms=1),
    "Alert": lambda: Alert(
        alert_id="a1", kind=AlertKind.ORDER_LOST, severity=Severity.CRITICAL, summary="lost", occurred_at_ms=1
    ),
    "MarketResolution": lambda: build_resolution(),
    "WalletResolution": lambda: WalletResolution(wallet_id="copy-1", resolution=build_resolution(None)),
    "PositionView": lambda: build_position_view(),
    "WalletSnapshot": lambda: build_wallet_snapshot(),
}


def sample_of(spec: TopicSpec) -> Message:
    name = spec.value_model.__name__
    assert name in SAMPLES, f"add a sample {name} for topic {spec.name} to this test"
    instance = SAMPLES[name]()
    assert type(instance) is spec.value_model
    return instance


TOPIC_IDS = [spec.name for spec in ALL_TOPICS]


# --- exported files ------------------------------------------------------------------------------------
def test_exported_json_schema_files_match_the_models() -> None:
    rendered = render_schemas()

    on_disk = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.json")}

    assert sorted(on_disk) == sorted(rendered), "run `make schemas` to re-export"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{name} is stale: run `make schemas` to re-export"


def test_rendering_is_deterministic_and_names_every_topic() -> None:
    rendered = render_schemas()

    assert rendered == render_schemas()
    assert sorted(rendered) == sorted(f"{spec.name}.schema.json" for spec in ALL_TOPICS)
    for spec in ALL_TOPICS:
        schema = json.loads(rendered[f"{spec.name}.schema.json"])
        assert schema["$id"] == spec.name
        assert schema["x-topic"] == {
            "key": spec.key,
            "partitions": spec.partitions,
            "compacted": spec.compacted,
        }
        assert schema["title"] == spec.value_model.__name__


def test_write_schemas_writes_exactly_the_rendered_text(tmp_path: Any) -> None:
    paths = write_schemas(tmp_path)

    assert {path.name: path.read_text() for path in paths} == render_schemas()


def test_amounts_are_strings_in_the_exported_schema() -> None:
    schema = json.loads(render_schemas()["polycopy.trades.raw.v1.schema.json"])

    assert schema["properties"]["price"]["type"] == "string"
    assert schema["properties"]["size"]["type"] == "string"
    assert schema["additionalProperties"] is False


# --- model behaviour ------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ALL_TOPICS, ids=TOPIC_IDS)
def test_topic_models_are_frozen(spec: TopicSpec) -> None:
    instance = sample_of(spec)

    with pytest.raises(ValidationError, match="frozen"):
        instance.schema_version = 2  # type: ignore[misc]


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=TOPIC_IDS)
def test_topic_models_forbid_unknown_fields(spec: TopicSpec) -> None:
    document = json.loads(sample_of(spec).to_bytes())

    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        spec.value_model.model_validate(document | {"surprise": 1})


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=TOPIC_IDS)
def test_topic_models_round_trip_through_the_wire_and_carry_a_version(spec: TopicSpec) -> None:
    instance = sample_of(spec)

    data = instance.to_bytes()

    assert spec.value_model.from_bytes(data) == instance
    assert json.loads(data)["schema_version"] == 1


def _numbers_in(document: Any) -> list[Any]:
    if isinstance(document, dict):
        return [n for value in document.values() for n in _numbers_in(value)]
    if isinstance(document, list):
        return [n for value in document for n in _numbers_in(value)]
    return [document] if isinstance(document, float) else []


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=TOPIC_IDS)
def test_no_float_ever_reaches_the_wire(spec: TopicSpec) -> None:
    assert _numbers_in(json.loads(sample_of(spec).to_bytes())) == []


def test_decimals_serialise_as_their_exact_strings() -> None:
    trade = build_trade(size=D("30974.624038"), price=D("0.968534758"))
    wallet = build_wallet(capital_usdc=D("1000.10"), sizing={"mode": "ratio", "value": "0.25"})

    trade_json, wallet_json = json.loads(trade.to_bytes()), json.loads(wallet.to_bytes())
    nested = json.loads(TargetedTrade(wallet_id="w", trade=trade).to_bytes())

    assert (trade_json["size"], trade_json["price"]) == ("30974.624038", "0.968534758")
    assert (wallet_json["capital_usdc"], wallet_json["sizing"]["value"]) == ("1000.10", "0.25")
    assert nested["trade"]["price"] == "0.968534758"
    assert trade.model_dump()["price"] == D("0.968534758")  # Python mode keeps the Decimal


def test_decimals_are_read_from_strings_without_float_rounding() -> None:
    document = json.loads(build_trade().to_bytes()) | {"price": "0.1", "size": "0.3"}

    trade = RawTrade.model_validate(document)

    assert trade.size - trade.price * 3 == 0


def test_raw_trade_rejects_prices_outside_zero_one_and_upper_case_wallets() -> None:
    for bad in ({"price": D("1")}, {"price": D("0")}, {"size": D("0")}, {"proxy_wallet": TRADER.upper()}):
        with pytest.raises(ValidationError):
            build_trade(**bad)


# --- wallet configuration -------------------------------------------------------------------------------
def test_wallet_targets_are_lower_cased() -> None:
    wallet = build_wallet(targets=["0x" + "AB" * 20])

    assert wallet.targets == (TRADER,)
    assert wallet.follows(TRADER)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"price_min": D("0.6"), "price_max": D("0.4")}, "price_min must not exceed price_max"),
        ({"order_type": "GTD"}, "order_type GTD needs expiry_secs"),
        ({"sides": ()}, "sides must name BUY, SELL or both"),
        ({"id": "has space"}, "String should match pattern"),
        ({"capital_usdc": D("0")}, "greater than 0"),
        ({"sizing": {"mode": "fixed_usdc", "value": "0"}}, "greater than 0"),
        ({"liquidity_min_fill_ratio": D("1.5")}, "less than or equal to 1"),
        ({"max_slippage": D("1")}, "less than 1"),
    ],
)
def test_bad_wallet_configuration_is_refused_with_a_message(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_wallet(**fields)


def test_wallet_file_refuses_duplicate_ids() -> None:
    with pytest.raises(ValidationError, match="duplicate wallet id 'copy-1'"):
        WalletConfigFile(wallets=(build_wallet(), build_wallet()))


def test_wallet_defaults_are_paper_buy_only_and_fak() -> None:
    wallet = WalletConfig(id="w", capital_usdc=D("100"))

    assert (wallet.mode.value, wallet.sides, wallet.order_type.value) == ("paper", ("BUY",), "FAK")
    assert wallet.sizing.mode.value == "fixed_usdc" and wallet.sizing.value == D("10")


# --- topics and dead letters ----------------------------------------------------------------------------
def test_wallet_keyed_topics_share_one_partition_count() -> None:
    keyed_by_wallet = [spec for spec in ALL_TOPICS if spec.key == "copy-wallet id" and not spec.compacted]

    assert len(keyed_by_wallet) == 7
    assert {spec.partitions for spec in keyed_by_wallet} == {WALLET_PARTITIONS}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("decisions", "polycopy.decisions.v1"),
        ("trades.raw", "polycopy.trades.raw.v1"),
        ("polycopy.orders.events.v1", "polycopy.orders.events.v1"),
        ("config.wallets", "polycopy.config.wallets.v1"),
    ],
)
def test_find_topic_accepts_full_and_short_names(name: str, expected: str) -> None:
    assert find_topic(name).name == expected


def test_find_topic_lists_the_known_topics_on_a_typo() -> None:
    with pytest.raises(KeyError, match="polycopy.decisions.v1"):
        find_topic("decision")


def test_topic_broker_config_follows_compaction_and_retention() -> None:
    assert find_topic("config.wallets").broker_config() == {"cleanup.policy": "compact"}
    assert find_topic("decisions").broker_config() == {
        "cleanup.policy": "delete",
        "retention.ms": str(28 * 86_400_000),
    }


def test_dead_letter_keeps_undecodable_bytes_with_replacement() -> None:
    letter = build_dead_letter("rtds-parse", "invalid JSON", b"{\xff", occurred_at_ms=5)

    assert letter.payload == "{\ufffd"
    assert (letter.error_type, letter.source_topic) == ("ParseError", None)
    assert isinstance(DeadLetter.from_bytes(letter.to_bytes()), DeadLetter)
