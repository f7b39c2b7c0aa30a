"""Operator controls on the compacted control topic: the kill switch, per copy wallet or for all of them."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Message

ALL_WALLETS = "*"


class KillSwitch(Message):
    """Whether new orders are stopped. Key on `polycopy.control.v1`: the wallet id, or `*` for every wallet;
    the latest value per key wins (the topic is compacted)."""

    wallet_id: str = Field(pattern=r"^(\*|[A-Za-z0-9_.-]{1,64})$")
    engaged: bool
    reason: str = ""
    set_by: str = ""
    set_at_ms: int
