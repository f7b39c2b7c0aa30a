"""The fake CLOB's authenticated order API: API keys (L1), `POST /order`, `GET /data/order/{id}`,
`GET /data/orders`, `GET /data/trades`, `DELETE /order(s)` and `/cancel-all` (L2), served from the simulated
exchange; plus scripted faults (`clob_faults`: 5xx storms, 425 windows, 503 cancel-only, time-outs, 429 with
Retry-After) that tests drive in-process (`faults`, `exchange.script`) or over HTTP under `/_sim/clob/`.

The authenticated user channel (`/ws/user`) pushing these orders' events is `user_channel`, beside this one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import fields
from decimal import Decimal
from typing import Any

from aiohttp import web

from polycopy.simulator.clob_auth import (
    ApiKey,
    AuthError,
    derive_api_key,
    order_price_and_size,
    verify_l1,
    verify_l2,
    verify_order,
)
from polycopy.simulator.clob_faults import ClobFaults, FaultRule, fault_response
from polycopy.simulator.exchange import NOT_FOUND_TEXT, SimulatedExchange, SubmittedOrder
from polycopy.simulator.market import MarketSimulator
from polycopy.simulator.rest import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ClobOrderService:
    """Answers the authenticated order routes from a `SimulatedExchange`."""

    def __init__(self, simulator: MarketSimulator, clock_ms: Callable[[], int], chain_id: int = 137) -> None:
        self._simulator, self._clock_ms, self._chain_id = simulator, clock_ms, chain_id
        self.exchange = SimulatedExchange(simulator)
        self.faults = ClobFaults(clock_ms)
        self.keys: dict[str, ApiKey] = {}
        self.l1_requests = 0  # key creations and derivations asked for (each one L1-signed request)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the key, order, trade and cancel routes, and the `/_sim/clob/` control routes."""
        router.add_post("/auth/api-key", self._handle_create_key)
        router.add_get("/auth/derive-api-key", self._handle_derive_key)
        router.add_post("/order", self._guard("post", self._handle_post_order))
        router.add_get("/data/order/{order_id}", self._guard("read", self._handle_get_order))
        router.add_get("/data/orders", self._guard("read", self._handle_open_orders))
        router.add_get("/data/trades", self._guard("read", self._handle_trades))
        router.add_delete("/order", self._guard("cancel", self._handle_cancel_one))
        router.add_delete("/orders", self._guard("cancel", self._handle_cancel_many))
        router.add_delete("/cancel-all", self._guard("cancel", self._handle_cancel_all))
        router.add_post("/_sim/clob/faults", self._handle_control_faults)
        router.add_post("/_sim/clob/script", self._handle_control_script)
        router.add_post("/_sim/clob/fill", self._handle_control_fill)
        router.add_get("/_sim/clob/orders", self._handle_control_orders)

    # --- keys (L1) -----------------------------------------------------------------------------------------
    async def _handle_create_key(self, request: web.Request) -> web.Response:
        self.l1_requests += 1
        try:
            address, nonce = verify_l1(request.headers, self._chain_id)
        except AuthError as error:
            return json_error(error.status, str(error))
        key = derive_api_key(address, nonce)
        if key.key in self.keys:  # the venue creates a key once; the client then derives it
            return json_error(400, "Could not create api key")
        self.keys[key.key] = key
        return web.json_response(_key_body(key))

    async def _handle_derive_key(self, request: web.Request) -> web.Response:
        self.l1_requests += 1
        try:
            address, nonce = verify_l1(request.headers, self._chain_id)
        except AuthError as error:
            return json_error(error.status, str(error))
        key = derive_api_key(address, nonce)
        self.keys[key.key] = key
        return web.json_response(_key_body(key))

    def register_key(self, key: ApiKey) -> None:
        """Issue a key directly (tests that supply credentials in settings)."""
        self.keys[key.key] = key

    # --- faults around every L2 route ----------------------------------------------------------------------
    def _guard(
        self, group: str, handle: Callable[[web.Request, str, ApiKey], Awaitable[web.Response]]
    ) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            body = await request.text()
            rule = self.faults.take(group)
            if rule is not None and not rule.process_first:
                return await fault_response(rule)
            try:
                key = verify_l2(request.headers, self.keys, request.method, request.path, body)
            except AuthError as error:
                return json_error(error.status, str(error))
            response = await handle(request, body, key)
            return await fault_response(rule) if rule is not None else response

        return guarded

    # --- orders (L2) ---------------------------------------------------------------------------------------
    async def _handle_post_order(self, request: web.Request, body: str, key: ApiKey) -> web.Response:
        try:
            payload = json.loads(body)
            order, owner = payload["order"], payload["owner"]
            order_type, post_only = str(payload.get("orderType", "GTC")), bool(payload.get("postOnly", False))
        except (ValueError, KeyError, TypeError):
            return json_error(400, "Invalid order payload")
        if owner != key.key:
            return json_error(400, "the order owner has to be the owner of the API KEY")
        market = self._simulator.market_for_token(str(order.get("tokenId", "")))
        try:
            order_id = verify_order(order, key, market.neg_risk if market else False, self._chain_id)
        except AuthError as error:
            return json_error(error.status, str(error))
        price, size = order_price_and_size(order)
        submitted = SubmittedOrder(
            order_id=order_id,
            owner=key.key,
            maker_address=str(order["maker"]),
            asset=str(order["tokenId"]),
            side=str(order["side"]),
            price=price.quantize(market.tick_size) if market else price,
            size=size,
            order_type=order_type,
            post_only=post_only,
        )
        status, answer = self.exchange.submit(submitted, self._clock_ms())
        return web.json_response(answer, status=status)

    async def _handle_get_order(self, request: web.Request, body: str, key: ApiKey) -> web.Response:
        row = self.exchange.look_up(request.match_info["order_id"], key.key, self._clock_ms())
        return web.json_response(row) if row is not None else json_error(404, NOT_FOUND_TEXT)

    async def _handle_open_orders(self, request: web.Request, body: str, key: ApiKey) -> web.Response:
        query = request.query
        rows = self.exchange.open_orders(key.key, query.get("asset_id", ""), query.get("market", ""))
        return web.json_response(_page(rows))

    async def _handle_trades(self, request: web.Request, body: str, key: ApiKey) -> web.Response:
        try:
            after = int(request.query.get("after", "0") or 0)
        except ValueError:
            return json_error(400, "invalid after")
        rows = self.exchange.trade_rows(key.key, after, self._clock_ms())
        if request.query.get("id"):
            rows = [row for row in rows if row["id"] == request.query["id"]]
        return web.json_response(_page(rows))

    async def _handle_cancel_one(self, request: web.Request, body: str, key: ApiKey) -> web.Response:
        try:
            order_id = str(json.loads(body)["orderID"])
        except (ValueError, KeyError, TypeError):
            return json_error(400, "Invalid order id")
        return web.json_response(self.exchange.cancel(key.key, [order_id]))

    async def _handle_cancel_many(self, request: web.Request, body: str, key: ApiKey) -> web.Response:
        try:
            order_ids = [str(item) for item in json.loads(body)]
        except (ValueError, TypeError):
            return json_error(400, "Invalid order ids")
        return web.json_response(self.exchange.cancel(key.key, order_ids))

    async def _handle_cancel_all(self, request: web.Request, body: str, key: ApiKey) -> web.Response:
        owner = key.key
        open_ids = [row["id"] for row in self.exchange.open_orders(owner)]
        return web.json_response(self.exchange.cancel(owner, open_ids))

    # --- control (tests, demos) ----------------------------------------------------------------------------
    async def _handle_control_faults(self, request: web.Request) -> web.Response:
        spec = await request.json()
        if spec.get("clear"):
            self.faults.clear()
            return web.json_response({"rules": 0})
        window = spec.pop("window_secs", None)
        if window is not None:
            spec["until_ms"] = self._clock_ms() + int(float(window) * 1000)
            spec.setdefault("count", None)
        spec["groups"] = tuple(spec.get("groups") or ("post",))
        self.faults.add(FaultRule(**spec))
        return web.json_response({"rules": len(self.faults.rules)})

    async def _handle_control_script(self, request: web.Request) -> web.Response:
        spec = await request.json()
        known = {f.name for f in fields(self.exchange.script)}
        for name, value in spec.items():
            if name not in known:
                return json_error(400, f"unknown script field {name}")
            setattr(self.exchange.script, name, value)
        return web.json_response({"ok": True})

    async def _handle_control_orders(self, request: web.Request) -> web.Response:
        """Every order the venue accepted (id, type, status, matched size) and how many POSTs it received:
        what a chaos run checks its records against."""
        orders = [
            {
                "id": order.order_id,
                "order_type": order.order_type,
                "status": order.status,
                "size_matched": str(order.size_matched),
            }
            for order in self.exchange.orders.values()
        ]
        return web.json_response({"orders": orders, "posts_received": self.exchange.posts_received})

    async def _handle_control_fill(self, request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            self.exchange.fill_resting(str(spec["order_id"]), Decimal(str(spec["size"])), self._clock_ms())
        except (KeyError, ValueError) as error:
            return json_error(400, str(error))
        return web.json_response({"ok": True})


def _key_body(key: ApiKey) -> dict[str, str]:
    return {"apiKey": key.key, "secret": key.secret, "passphrase": key.passphrase}


def _page(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": rows, "next_cursor": "LTE=", "limit": 500, "count": len(rows)}
