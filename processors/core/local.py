"""The copy pipeline in one process, without Kafka: the engine's target filter, evaluation and lifecycle
around paper execution, with every wallet's state in memory. `polycopy whatif` and the bench run on it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from processors.core import engine
from processors.core.ids import build_paper_order_id
from processors.core.paper import execute_on_paper
from processors.core.policy import Evaluation
from processors.core.wallet_state import WalletState
from schemas.books import OrderBook
from schemas.decisions import DecisionAction
from schemas.orders import ExecutionReport, OrderEvent
from schemas.portfolio import MarketResolution
from schemas.trades import RawTrade


@dataclass(frozen=True)
class Settlement:
    """What paper execution and the lifecycle made of one copy: the executor's reports and the events."""

    reports: tuple[ExecutionReport, ...]
    events: tuple[OrderEvent, ...]


class LocalPipeline:
    """Feeds trades, in log order, through the engine for every follower; copies fill on paper against the
    levels their intent carries, and the reports go through the same lifecycle as live. The reference's
    wallets and synced traders stay the same for its life: each trader's followers are found once."""

    def __init__(self, reference: engine.ReferenceView) -> None:
        self.reference = reference
        self.states: dict[str, WalletState] = {}
        self.seen: set[str] = set()
        self.followers: dict[
            str, tuple[str, ...]
        ] = {}  # trader -> following wallets (the reference is fixed)

    def state_of(self, wallet_id: str) -> WalletState:
        """The wallet's state (a new one with its configured capital on first use)."""
        if wallet_id not in self.states:
            self.states[wallet_id] = WalletState.new(self.reference.wallets()[wallet_id].capital_usdc)
        return self.states[wallet_id]

    def decide(self, trade: RawTrade, book: OrderBook | None, now_ms: int) -> list[Evaluation]:
        """Every follower's evaluation of one trade (none when the fill was seen before)."""
        return self.decide_choosing(trade, lambda: book, now_ms)

    def decide_choosing(
        self, trade: RawTrade, choose_book: Callable[[], OrderBook | None], now_ms: int
    ) -> list[Evaluation]:
        """`decide`, choosing the book only when the trade has followers (as the live target filter does)."""
        targeting = engine.target(trade, self.seen, self.reference, self.followers)
        if not targeting.followers:
            return []
        book, wallets = choose_book(), self.reference.wallets()
        return [
            engine.evaluate(trade, wallets[wallet_id], self.state_of(wallet_id), self.reference, book, now_ms)
            for wallet_id in targeting.followers
        ]

    def resolve(self, resolution: MarketResolution, now_ms: int) -> list[OrderEvent]:
        """Apply a market's resolution to every configured wallet, as the worker's settlement agent does."""
        events = []
        for wallet_id, wallet in sorted(self.reference.wallets().items()):
            state = self.state_of(wallet_id)
            events += engine.settle(state, wallet_id, resolution, wallet.mode, now_ms)
        return events

    def settle(self, evaluations: Iterable[Evaluation], now_ms: int) -> list[Settlement]:
        """Execute each copy on paper and apply its reports, as the executor and the lifecycle agent do."""
        settlements = []
        for evaluation in evaluations:
            intent = evaluation.intent
            if intent is None or evaluation.decision.action is not DecisionAction.COPY:
                continue
            order_id = build_paper_order_id(intent.intent_id)
            reports = execute_on_paper(intent, order_id, sent_at_ms=now_ms, reported_at_ms=now_ms)
            state = self.state_of(intent.wallet_id)
            events = [event for report in reports for event in engine.apply_report(state, report, now_ms)]
            settlements.append(Settlement(tuple(reports), tuple(events)))
        return settlements
