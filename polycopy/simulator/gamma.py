"""The fake Gamma API: `/markets` objects for the simulator's markets, filtered as the venue filters them,
with the JSON-text fields clients decode twice (reference section 4.3)."""

from __future__ import annotations

import json
import zlib
from decimal import Decimal
from typing import Any

from aiohttp import web

from polycopy.simulator.catalog import SimulatedMarket
from polycopy.simulator.market import MarketSimulator, format_decimal
from polycopy.simulator.rest import json_error, split_query


class GammaService:
    """Answers `/markets` from the simulator's markets and books (simulated markets never close)."""

    def __init__(self, simulator: MarketSimulator) -> None:
        self._simulator = simulator

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register `/markets`."""
        router.add_get("/markets", self._handle_markets)

    async def _handle_markets(self, request: web.Request) -> web.Response:
        condition_ids = split_query(request, "condition_ids")
        token_ids, slugs = split_query(request, "clob_token_ids"), split_query(request, "slug")
        if request.query.get("closed", "").lower() == "true":
            return web.json_response([])  # simulated markets never close
        markets = [
            market
            for market in self._simulator.markets
            if (not condition_ids or market.condition_id in condition_ids)
            and (not token_ids or token_ids & set(market.token_ids))
            and (not slugs or market.slug in slugs)
        ]
        try:
            offset, limit = int(request.query.get("offset", 0)), int(request.query.get("limit", 500))
        except ValueError:
            return json_error(400, "limit and offset must be integers")
        page = markets[offset : offset + limit]
        return web.json_response([self._to_gamma_market(market) for market in page])

    def _to_gamma_market(self, market: SimulatedMarket) -> dict[str, Any]:
        simulator = self._simulator
        book = simulator.book(market.token_ids[0]) or {}
        best_bid = float(book["bids"][-1]["price"]) if book.get("bids") else 0.0
        best_ask = float(book["asks"][-1]["price"]) if book.get("asks") else 1.0
        prices = [format_decimal(simulator.midpoint(token) or Decimal(0)) for token in market.token_ids]
        return {
            "id": market.gamma_id,
            "question": market.question,
            "conditionId": market.condition_id,
            "slug": market.slug,
            "description": f"This market resolves to Yes if: {market.question}",
            "category": market.category,
            "icon": market.icon,
            "image": market.icon,
            "active": True,
            "closed": False,
            "archived": False,
            "acceptingOrders": True,
            "enableOrderBook": True,
            "negRisk": market.neg_risk,
            "endDate": market.end_date,
            "outcomes": json.dumps(list(market.outcomes)),
            "outcomePrices": json.dumps(prices),
            "clobTokenIds": json.dumps(list(market.token_ids)),
            "orderMinSize": float(market.min_order_size),
            "orderPriceMinTickSize": float(market.tick_size),
            "bestBid": best_bid,
            "bestAsk": best_ask,
            "spread": round(best_ask - best_bid, 6),
            "lastTradePrice": float(book.get("last_trade_price", 0)),
            "events": [{"id": market.gamma_id, "slug": market.event_slug, "title": market.question}],
            "tags": [_to_gamma_tag(market.category)] if market.category else [],
        }


def _to_gamma_tag(category: str) -> dict[str, str]:
    return {"id": str(zlib.crc32(category.encode()) % 10_000), "slug": category.lower(), "label": category}
