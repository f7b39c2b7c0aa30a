"""Dead letters: input we could not process, kept whole with the reason."""

from __future__ import annotations

from schemas.base import Message


class DeadLetter(Message):
    """One rejected input. Key: the stage that rejected it."""

    stage: str  # e.g. "rtds-parse", "target-filter", "executor"
    reason: str
    error_type: str
    payload: str  # the original bytes, decoded as UTF-8 with replacement
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    occurred_at_ms: int


def build_dead_letter(
    stage: str,
    reason: str,
    payload: bytes | str | None,
    *,
    occurred_at_ms: int,
    error_type: str = "ParseError",
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> DeadLetter:
    """A dead letter carrying the original payload, decoded leniently, and the reason."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else (payload or "")
    # A lone surrogate (half an emoji cut by JavaScript) cannot be encoded: the letter itself must always be.
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    reason = reason.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return DeadLetter(
        stage=stage,
        reason=reason,
        error_type=error_type,
        payload=text,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        occurred_at_ms=occurred_at_ms,
    )
