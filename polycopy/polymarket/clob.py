"""The one module that imports the Polymarket CLOB client (py-clob-client-v2): books now, orders when live."""

from __future__ import annotations

import logging
from typing import Any

from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.exceptions import PolyApiException

log = logging.getLogger(__name__)


class ClobGatewayError(RuntimeError):
    """The CLOB answered with an error other than 'not found'."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def is_not_found(error: PolyApiException) -> bool:
    """404 means the venue has no such book or order (yet)."""
    return getattr(error, "status_code", None) == 404


class ClobGateway:
    """Blocking calls to the CLOB; callers on an event loop wrap them in asyncio.to_thread."""

    def __init__(self, host: str, chain_id: int = 137) -> None:
        self.host = host
        self._client = ClobClient(host=host, chain_id=chain_id)

    def fetch_book(self, token_id: str) -> dict[str, Any] | None:
        """`GET /book`: the raw book payload, or None when the venue has no book for the token."""
        try:
            book = self._client.get_order_book(token_id)
        except PolyApiException as error:
            if is_not_found(error):
                return None
            raise ClobGatewayError(
                f"GET /book failed: {error}", getattr(error, "status_code", None)
            ) from error
        except Exception as error:  # transport errors (httpx) surface here
            raise ClobGatewayError(f"GET /book failed: {error}") from error
        return book if isinstance(book, dict) and book else None
