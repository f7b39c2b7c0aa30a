"""Live reference data for the processors (the engine's `ReferenceView`): wallet configs, market metadata
and followed traders, each kept current from its compacted topic in a background reader."""

from __future__ import annotations

import threading

from polycopy.infra.kafka import CompactedTopicReader
from polycopy.infra.settings import PolycopySettings
from processors.core.engine import build_trader_stats
from processors.core.policy import TraderStats
from schemas.reference import MarketReference, TraderReference
from schemas.topics import MARKETS, TRADERS, WALLET_CONFIG
from schemas.wallets import WalletConfig


class LiveReferenceData:
    """Follows the wallet, market and trader topics; lookups are in-memory and lock-protected."""

    def __init__(self, settings: PolycopySettings, on_wallet_change=None) -> None:  # type: ignore[no-untyped-def]
        self._lock = threading.Lock()
        self._markets_by_token: dict[str, MarketReference] = {}
        self._wallets = CompactedTopicReader(
            settings, WALLET_CONFIG, WalletConfig.model_validate_json, on_change=on_wallet_change
        )
        self._markets = CompactedTopicReader(
            settings, MARKETS, MarketReference.model_validate_json, on_change=self._index_market
        )
        self._traders = CompactedTopicReader(settings, TRADERS, TraderReference.model_validate_json)

    def start(self) -> LiveReferenceData:
        """Follow the three topics, loading them at once; return once each is loaded."""
        return self.begin().wait_caught_up()

    def begin(self) -> LiveReferenceData:
        for reader in (self._wallets, self._markets, self._traders):
            reader.begin()
        return self

    def wait_caught_up(self, wait_secs: float = 30.0) -> LiveReferenceData:
        for reader in (self._wallets, self._markets, self._traders):
            reader.wait_caught_up(wait_secs)
        return self

    def stop(self) -> None:
        for reader in (self._wallets, self._markets, self._traders):
            reader.stop()

    def _index_market(self, _condition_id: str, market: MarketReference | None) -> None:
        if market is None:
            return
        with self._lock:
            for token in market.token_ids:
                self._markets_by_token[token] = market

    def wallets(self) -> dict[str, WalletConfig]:
        return self._wallets.snapshot()

    def market_for_token(self, token_id: str) -> MarketReference | None:
        with self._lock:
            return self._markets_by_token.get(token_id)

    def followed_traders(self) -> frozenset[str]:
        return frozenset(self._traders.snapshot())

    def trader_stats(self, wallet: str) -> TraderStats | None:
        return build_trader_stats(self._traders.snapshot().get(wallet))
