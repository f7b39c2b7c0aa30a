"""The fake Data API: a user's or market's `/trades` from the fills the simulator has published, and the
`/v1/leaderboard` of its most active wallets (reference section 4.1)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from polycopy.simulator.market import MarketSimulator
from polycopy.simulator.rest import json_error, split_query

MAX_PAGE = 10_000  # the venue's largest `limit` and `offset` on /trades


class DataApiService:
    """Keeps the latest fills (payload, whether the wallet was the taker) and pages them as the venue does."""

    def __init__(self, simulator: MarketSimulator, history_size: int = 20_000) -> None:
        self._simulator = simulator
        self._history: deque[tuple[dict[str, Any], bool]] = deque(maxlen=history_size)

    def record(self, fills: Iterable[tuple[dict[str, Any], bool]]) -> None:
        """Add fills, as (trade payload, is taker), to the history `/trades` answers from."""
        self._history.extend(fills)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register `/trades` and `/v1/leaderboard`."""
        router.add_get("/trades", self._handle_trades)
        router.add_get("/v1/leaderboard", self._handle_leaderboard)

    async def _handle_trades(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            limit, offset = int(query.get("limit", 100)), int(query.get("offset", 0))
            start, end = int(query.get("start", 0)), int(query.get("end", 0))  # epoch seconds; 0 = unbounded
        except ValueError:
            return json_error(400, "limit, offset, start and end must be integers")
        if not (0 <= limit <= MAX_PAGE and 0 <= offset <= MAX_PAGE):
            return json_error(400, f"limit and offset must be between 0 and {MAX_PAGE}")
        user, side = query.get("user", "").lower(), query.get("side", "").upper()
        markets = split_query(request, "market")
        taker_only = query.get("takerOnly", "true").lower() != "false"
        rows = [
            payload
            for payload, is_taker in reversed(self._history)
            if (is_taker or not taker_only)
            and (not user or str(payload.get("proxyWallet", "")).lower() == user)
            and (not side or payload.get("side") == side)
            and (not markets or payload.get("conditionId") in markets)
            and (not start or _trade_time(payload) >= start)
            and (not end or _trade_time(payload) <= end)
        ]
        rows.sort(key=_trade_time, reverse=True)
        return web.json_response([_to_data_api_row(payload) for payload in rows[offset : offset + limit]])

    async def _handle_leaderboard(self, request: web.Request) -> web.Response:
        try:
            limit, offset = int(request.query.get("limit", 25)), int(request.query.get("offset", 0))
        except ValueError:
            return json_error(400, "limit and offset must be integers")
        if not (1 <= limit <= 50 and 0 <= offset <= 1000):  # the venue's bounds
            return json_error(400, "limit must be between 1 and 50 and offset between 0 and 1000")
        return web.json_response(self._simulator.leaderboard(limit, offset))


def _trade_time(payload: dict[str, Any]) -> int:
    return int(float(payload.get("timestamp") or 0))


def _to_data_api_row(payload: dict[str, Any]) -> dict[str, Any]:
    # Data API rows carry no `fee` but do carry the optimized profile image.
    row = {key: value for key, value in payload.items() if key != "fee"}
    row.setdefault("profileImageOptimized", row.get("profileImage", ""))
    return row
