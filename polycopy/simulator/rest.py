"""What the fake REST services share: JSON error bodies, multi-valued query parameters, and the route-table
shape (`add_routes`) by which the server puts several services on one port."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class RestService(Protocol):
    """A fake venue service that answers some routes of a port's application."""

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the service's routes on `router`."""


def json_error(status: int, message: str) -> web.Response:
    """An error response as the venue sends them: `{"error": message}` with the status."""
    return web.json_response({"error": message}, status=status)


def split_query(request: web.Request, name: str) -> set[str]:
    """Every value of a query parameter: both `?a=1,2` and `?a=1&a=2` occur in clients' requests."""
    return {part for value in request.query.getall(name, []) for part in value.split(",") if part}
