"""The worker's REST book reader (`ClobBookReader`): its HTTP client is built at its first request, not when
the worker is built (its TLS context took 0.15 s of every worker start, issue 8)."""

from __future__ import annotations

from typing import Any

import httpx

from polycopy.polymarket.http import ClobBookReader


def test_the_book_reader_builds_its_http_client_at_its_first_request(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    built: list[Any] = []
    build = httpx.Client.__init__

    def counting(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        built.append(args)
        build(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", counting)
    reader = ClobBookReader("http://clob.test", transport=httpx.MockTransport(lambda _: httpx.Response(404)))
    assert built == []
    assert reader.fetch_book("1") is None and reader.fetch_book("2") is None
    assert len(built) == 1
    reader.close()
