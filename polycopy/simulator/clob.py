"""The fake CLOB public REST routes: books, midpoint, market parameters (tick size, neg-risk, fee, compact
market info), and the implicit calls py-clob-client-v2 makes while building orders (reference 3.4-3.6).

Authenticated order routes (placing, reading back, cancelling) belong in a service of their own beside this
one, composed on the same port by SimulatorServer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from polycopy.simulator.catalog import SimulatedMarket
from polycopy.simulator.clob_faults import ClobFaults, fault_response
from polycopy.simulator.market import MarketSimulator, format_decimal
from polycopy.simulator.rest import json_error
from polycopy.simulator.stats import SimulatorStats

_NO_BOOK = {"error": "No orderbook exists for the requested token id"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ClobService:
    """Answers the CLOB's public market-data routes from the simulator's books and markets."""

    def __init__(
        self,
        simulator: MarketSimulator,
        stats: SimulatorStats,
        clock_ms: Callable[[], int],
        faults: ClobFaults | None = None,
    ) -> None:
        self._simulator = simulator
        self._stats = stats
        self._clock_ms = clock_ms
        # Scripted faults of the `book` group (5xx, slow answers), shared with the order API's faults.
        self._faults = faults if faults is not None else ClobFaults(clock_ms)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the book, price, market-parameter and server-info routes."""
        router.add_get("/book", self._faulty(self._handle_book))
        router.add_post("/books", self._faulty(self._handle_books))
        router.add_get("/tick-size", self._token_route(lambda m: {"minimum_tick_size": float(m.tick_size)}))
        router.add_get("/neg-risk", self._token_route(lambda m: {"neg_risk": m.neg_risk}))
        router.add_get("/fee-rate", self._token_route(lambda m: {"base_fee": 0}))
        router.add_get("/midpoint", self._handle_midpoint)
        router.add_get("/version", self._handle_version)
        router.add_get("/time", self._handle_time)
        router.add_get("/ok", self._handle_ok)
        router.add_get("/markets-by-token/{token_id}", self._handle_market_by_token)
        router.add_get("/clob-markets/{condition_id}", self._handle_clob_market)

    def _faulty(self, handle: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            rule = self._faults.take("book")
            return await fault_response(rule) if rule is not None else await handle(request)

        return guarded

    async def _handle_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": 2})

    async def _handle_time(self, request: web.Request) -> web.Response:
        return web.json_response(self._clock_ms() // 1000)

    async def _handle_ok(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    def _find_token(self, request: web.Request) -> tuple[str, SimulatedMarket]:
        token_id = request.query.get("token_id", "")
        if not token_id:
            raise web.HTTPBadRequest(text='{"error": "Invalid token id"}', content_type="application/json")
        market = self._simulator.market_for_token(token_id)
        if market is None:
            raise web.HTTPNotFound(text=json.dumps(_NO_BOOK), content_type="application/json")
        return token_id, market

    def _token_route(self, build: Callable[[SimulatedMarket], dict[str, Any]]) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            return web.json_response(build(self._find_token(request)[1]))

        return handle

    async def _handle_book(self, request: web.Request) -> web.Response:
        token_id, _ = self._find_token(request)
        self._stats.books_served += 1
        return web.json_response(self._simulator.book(token_id))

    async def _handle_books(self, request: web.Request) -> web.Response:
        try:
            params = await request.json()
            token_ids = [str(item["token_id"]) for item in params]
        except (ValueError, TypeError, KeyError):
            return json_error(400, "Invalid payload")
        books = [book for book in map(self._simulator.book, token_ids) if book is not None]
        self._stats.books_served += len(books)
        return web.json_response(books)

    async def _handle_midpoint(self, request: web.Request) -> web.Response:
        token_id, _ = self._find_token(request)
        return web.json_response({"mid": format_decimal(self._simulator.midpoint(token_id) or Decimal(0))})

    async def _handle_market_by_token(self, request: web.Request) -> web.Response:
        market = self._simulator.market_for_token(request.match_info["token_id"])
        if market is None:
            return json_error(404, "market not found")
        return web.json_response({"condition_id": market.condition_id})

    async def _handle_clob_market(self, request: web.Request) -> web.Response:
        condition_id = request.match_info["condition_id"]
        market = next((m for m in self._simulator.markets if m.condition_id == condition_id), None)
        if market is None:
            return json_error(404, "market not found")
        outcomes = zip(market.token_ids, market.outcomes, strict=True)
        tokens = [{"t": token, "o": outcome} for token, outcome in outcomes]
        return web.json_response(
            {
                "t": tokens,
                "mos": float(market.min_order_size),
                "mts": float(market.tick_size),
                "nr": market.neg_risk,
                "fd": {"r": 0, "e": 0, "to": True},
            }
        )
