"""Orders signed the fast way are byte-identical to the reference client's, and the same intent always signs
to the same order."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from polycopy.polymarket.clob import OrderSigner, OrderTerms, derive_order_salt
from polycopy.polymarket.live import build_order_terms
from schemas.orders import OrderType
from tests.builders import build_intent

KEY = "0x" + "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d"
SIGNER = OrderSigner(KEY, 137)
NATIVE = OrderSigner(KEY, 137, use_coincurve=False)

TERMS = st.builds(
    OrderTerms,
    token_id=st.integers(1, 2**256 - 1).map(str),
    side=st.sampled_from(["BUY", "SELL"]),
    price=st.integers(1, 99).map(lambda cents: Decimal(cents) / 100),
    size=st.integers(500, 1_000_000).map(lambda hundredths: Decimal(hundredths) / 100),
    tick_size=st.just(Decimal("0.01")),
    neg_risk=st.booleans(),
    salt=st.integers(0, 2**53 - 1),
    timestamp_ms=st.integers(1_600_000_000_000, 1_900_000_000_000),
    expiration_secs=st.sampled_from([0, 1_900_000_000]),
)


@settings(max_examples=40, deadline=None)
@given(TERMS)
def test_the_fast_signature_and_hash_equal_the_reference_clients(terms: OrderTerms) -> None:
    signed = SIGNER.sign(terms, "owner")

    reference_hash, reference_signature = SIGNER.reference_signature(terms)

    assert signed.order_id == reference_hash
    assert json.loads(signed.body)["order"]["signature"] == reference_signature


@settings(max_examples=5, deadline=None)
@given(TERMS)
def test_without_coincurve_the_signature_is_the_same(terms: OrderTerms) -> None:
    assert NATIVE.sign(terms, "owner") == SIGNER.sign(terms, "owner")


def test_one_intent_always_signs_to_the_same_order_and_two_intents_never_do() -> None:
    intent = build_intent(order_type=OrderType.GTD, expiry_secs=300)
    other = build_intent(dedup_key="another-fill")

    first = SIGNER.sign(build_order_terms(intent), "owner")
    again = OrderSigner(KEY, 137).sign(build_order_terms(intent.model_copy()), "owner")

    assert first == again
    assert SIGNER.sign(build_order_terms(other), "owner").order_id != first.order_id
    order = json.loads(first.body)["order"]
    assert order["salt"] == derive_order_salt(intent.intent_id) < 2**53
    assert order["timestamp"] == str(intent.created_at_ms)
    assert order["expiration"] == str(intent.created_at_ms // 1000 + 300)


def test_the_signing_bench_measures_the_three_paths() -> None:
    from polycopy.tools.signing_bench import format_figures, measure_signing

    figures = measure_signing(orders=20)

    assert [f.path for f in figures] == [
        "coincurve (live client)",
        "pure Python (no coincurve)",
        "reference client typed data",
    ]
    assert all(0 < f.p50_ms <= f.p99_ms for f in figures)
    assert format_figures(figures).count("build + sign") == 3
