"""The live CLOB order client: one intent -> one signed order whose hash is known before sending, and every
venue call (place, look up, open orders, account trades, cancel) answered as values with what the call means
to the circuit breaker. Blocking; no retries and no breaker here (the caller above owns both).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from polycopy.polymarket.clob import (
    ApiCredentials,
    OrderSigner,
    OrderTerms,
    RequestAuthenticator,
    SignedOrder,
    derive_order_salt,
)
from polycopy.polymarket.http import ClobHttp, HttpAnswer
from polycopy.polymarket.orders import (
    END_CURSOR,
    FIRST_CURSOR,
    classify_call,
    classify_lookup,
    classify_placement,
    parse_account_fills,
    parse_cancel,
    parse_decimal,
    parse_order,
    parse_page,
)
from schemas.orders import OrderIntent, OrderType
from schemas.venue import CallOutcome, CallResult, CancelResult, OrderFill, OrderLookup, Placement, VenueOrder

log = logging.getLogger(__name__)

POST_ORDER, CANCEL_ORDER, CANCEL_ORDERS = "/order", "/order", "/orders"
GET_ORDER, OPEN_ORDERS, TRADES = "/data/order/", "/data/orders", "/data/trades"
MAX_PAGES = 20
SIGNED_ORDERS_KEPT = 10_000  # re-signing is deterministic, so forgetting an old one costs only time


def build_order_terms(intent: OrderIntent) -> OrderTerms:
    """The order for an intent, from the intent alone (salt from its id, timestamp from its creation), so a
    retry, a re-delivery or a restart signs exactly the same order: the same hash, never a second order."""
    expiration = 0
    if intent.order_type is OrderType.GTD and intent.expiry_secs:
        expiration = intent.created_at_ms // 1000 + intent.expiry_secs
    return OrderTerms(
        token_id=intent.asset,
        side=intent.side.value,
        price=intent.limit_price,
        size=intent.size,
        tick_size=intent.tick_size,
        neg_risk=intent.neg_risk,
        salt=derive_order_salt(intent.intent_id),
        timestamp_ms=intent.created_at_ms,
        expiration_secs=expiration,
        order_type=intent.order_type.value,
    )


@dataclass(frozen=True)
class MarketParameters:
    """A market's trading parameters at the venue (`GET /clob-markets/{condition id}`)."""

    tick_size: Decimal
    neg_risk: bool
    min_order_size: Decimal


def check_terms(terms: OrderTerms, market: MarketParameters | None) -> str | None:
    """Why the venue would refuse these terms for sure (a coarser tick, neg-risk mismatch, below the minimum
    size of a resting order); None when they look fine or the market is unknown."""
    if market is None:
        return None
    if terms.tick_size < market.tick_size:
        return f"tick size changed: the market now trades in {market.tick_size}"
    if terms.neg_risk != market.neg_risk:
        return "neg-risk flag differs from the market's"
    if terms.order_type in ("GTC", "GTD") and terms.size < market.min_order_size:
        return f"size below the market's minimum of {market.min_order_size} shares"
    return None


class LiveClobClient:
    """Signs and sends one wallet's orders; every answer is a value (see `polycopy.polymarket.orders`)."""

    def __init__(
        self,
        http: ClobHttp,
        signer: OrderSigner,
        authenticator: RequestAuthenticator,
        *,
        market_ttl_secs: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http, self._signer, self._auth = http, signer, authenticator
        self._market_ttl_secs, self._clock = market_ttl_secs, clock
        self._markets: dict[str, tuple[float, MarketParameters | None]] = {}
        self._signed: OrderedDict[str, SignedOrder] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        host: str,
        chain_id: int,
        private_key: str,
        credentials: ApiCredentials,
        *,
        signature_type: int = 0,
        funder: str | None = None,
        timeout_secs: float = 5.0,
    ) -> LiveClobClient:
        """A client for the venue at `host` (credentials from settings or `derive_api_credentials`)."""
        return cls(
            ClobHttp(host, timeout_secs=timeout_secs),
            OrderSigner(private_key, chain_id, signature_type=signature_type, funder=funder),
            RequestAuthenticator(private_key, chain_id, credentials),
        )

    def close(self) -> None:
        self._http.close()

    @property
    def address(self) -> str:
        return self._signer.address

    # --- orders --------------------------------------------------------------------------------------------
    def prepare(self, intent: OrderIntent) -> SignedOrder:
        """The intent's signed order (computed once per process; the same on every process)."""
        with self._lock:
            signed = self._signed.get(intent.intent_id)
        if signed is None:
            signed = self._signer.sign(build_order_terms(intent), self._auth.api_key)
            with self._lock:
                self._signed[intent.intent_id] = signed
                while len(self._signed) > SIGNED_ORDERS_KEPT:
                    self._signed.popitem(last=False)
        return signed

    def order_id_for(self, intent: OrderIntent) -> str:
        """The venue's id of the intent's order (its EIP-712 hash), known before anything is sent."""
        return self.prepare(intent).order_id

    def forget(self, intent_id: str) -> None:
        """Drop a signed order kept for retries (once the order is settled either way)."""
        with self._lock:
            self._signed.pop(intent_id, None)

    def place(self, intent: OrderIntent) -> tuple[Placement, CallOutcome]:
        """`POST /order` once; the placement and what the call means to the breaker."""
        signed = self.prepare(intent)
        answer = self._send("POST", POST_ORDER, body=signed.body)
        return classify_placement(signed.order_id, intent.side, answer), classify_call(answer)

    def look_up(self, order_id: str) -> tuple[OrderLookup, CallOutcome]:
        """`GET /data/order/{id}`: found, definitively not found, or unavailable."""
        answer = self._send("GET", GET_ORDER + order_id)
        return classify_lookup(answer), classify_call(answer)

    def open_orders(self, asset: str | None = None) -> tuple[list[VenueOrder] | None, CallOutcome]:
        """`GET /data/orders`: the account's resting orders (None when the call failed)."""
        params = [("asset_id", asset)] if asset else []
        rows, outcome = self._read_pages(OPEN_ORDERS, params)
        if rows is None:
            return None, outcome
        return [order for order in map(parse_order, rows) if order is not None], outcome

    def fills_since(
        self, after_ms: int, order_id: str | None = None
    ) -> tuple[list[OrderFill] | None, CallOutcome]:
        """`GET /data/trades?after=`: our orders' fills in the account's trades since `after_ms` (the venue
        filters by whole seconds), each with its settlement status. None when the call failed."""
        params = [("after", str(max(after_ms // 1000, 0)))]
        rows, outcome = self._read_pages(TRADES, params)
        if rows is None:
            return None, outcome
        fills = [
            fill for row in rows for fill in parse_account_fills(row, self._auth.api_key, self._signer.funder)
        ]
        return [fill for fill in fills if order_id is None or fill.order_id == order_id], outcome

    def cancel(self, order_ids: Sequence[str]) -> tuple[CancelResult, CallOutcome]:
        """`DELETE /order` (one id) or `DELETE /orders` (several)."""
        if len(order_ids) == 1:
            body = json.dumps({"orderID": order_ids[0]}, separators=(",", ":"))
            answer = self._send("DELETE", CANCEL_ORDER, body=body)
        else:
            answer = self._send(
                "DELETE", CANCEL_ORDERS, body=json.dumps(list(order_ids), separators=(",", ":"))
            )
        return parse_cancel(answer, order_ids), classify_call(answer)

    # --- market parameters ---------------------------------------------------------------------------------
    def market_parameters(self, condition_id: str, token_id: str) -> MarketParameters | None:
        """The market's tick, neg-risk flag and minimum size, cached `market_ttl_secs`; None if unknown."""
        now = self._clock()
        cached = self._markets.get(condition_id)
        if cached is not None and now - cached[0] < self._market_ttl_secs:
            return cached[1]
        answer = self._http.send("GET", f"/clob-markets/{condition_id}")
        parameters = parse_market_parameters(answer.body) if answer.status == 200 else None
        if answer.status in (200, 404):  # a failed call is not cached: ask again next time
            self._markets[condition_id] = (now, parameters)
        return parameters

    def refusal_for(self, intent: OrderIntent) -> str | None:
        """Why the venue would refuse the intent's order for sure (see `check_terms`), or None."""
        return check_terms(
            build_order_terms(intent), self.market_parameters(intent.condition_id, intent.asset)
        )

    # --- transport -----------------------------------------------------------------------------------------
    def _send(
        self, method: str, path: str, *, body: str | None = None, params: Sequence[tuple[str, str]] = ()
    ) -> HttpAnswer:
        headers = self._auth.headers(method, path, body)
        return self._http.send(method, path, headers=headers, params=params, body=body)

    def _read_pages(self, path: str, params: list[tuple[str, str]]) -> tuple[list[Any] | None, CallOutcome]:
        rows: list[Any] = []
        cursor, outcome = FIRST_CURSOR, CallOutcome(CallResult.ANSWERED, 200)
        for _ in range(MAX_PAGES):
            answer = self._send("GET", path, params=[*params, ("next_cursor", cursor)])
            outcome = classify_call(answer)
            if answer.status != 200:
                return None, outcome
            page, cursor = parse_page(answer.body)
            rows.extend(page)
            if cursor == END_CURSOR or not page:
                break
        return rows, outcome


def parse_market_parameters(body: Any) -> MarketParameters | None:
    """`GET /clob-markets/{condition id}` -> tick (`mts`), neg-risk (`nr`), minimum order size (`mos`)."""
    if not isinstance(body, dict) or "mts" not in body:
        return None
    return MarketParameters(
        tick_size=parse_decimal(body.get("mts")),
        neg_risk=bool(body.get("nr", False)),
        min_order_size=parse_decimal(body.get("mos")),
    )
