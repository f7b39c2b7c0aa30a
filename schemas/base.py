"""Base class and shared types for every message on a topic."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# Money, prices and sizes travel as strings so that no float ever touches them.
Amount = Annotated[Decimal, PlainSerializer(lambda value: str(value), return_type=str, when_used="json")]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-f]{40}$")]


class Side(StrEnum):
    """Side of a fill or an order."""

    BUY = "BUY"
    SELL = "SELL"


class Message(BaseModel):
    """A topic value: frozen, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1

    def to_bytes(self) -> bytes:
        """Encode as compact JSON for the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Message:
        """Decode from the wire; raises pydantic.ValidationError on a bad payload."""
        return cls.model_validate_json(data)
