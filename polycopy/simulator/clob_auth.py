"""The fake CLOB's authentication, written from the venue's documented formats (reference 3.3, 3.7) and not
from the client, so that the real client is checked against it: L1 EIP-712 `ClobAuth` signatures, API keys
derived per (address, nonce), L2 HMAC-SHA256 over timestamp + METHOD + path + body, and V2 order signatures
and hashes (EIP-712, exchange domain version "2")."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

EXCHANGE_V2 = "0xE111180000d2663C0091e4f400237545B87B996B"
NEG_RISK_EXCHANGE_V2 = "0xe2222d279d744050d28e00520010520000310F59"
CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"
ORDER_FIELDS = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
UNITS = Decimal(1_000_000)  # pUSD and outcome shares both have 6 decimals


class AuthError(Exception):
    """A request the venue would refuse with 401 (or 400 for a bad order signature): the text to answer."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiKey:
    """An issued API key and the address that owns it."""

    key: str
    secret: str
    passphrase: str
    address: str


def derive_api_key(address: str, nonce: int) -> ApiKey:
    """The deterministic key for (address, nonce), as the venue derives it again on request."""
    seed = hashlib.sha256(f"{address.lower()}|{nonce}".encode()).digest()
    h = hashlib.sha256(b"key" + seed).hexdigest()
    return ApiKey(
        key=f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
        secret=base64.urlsafe_b64encode(hashlib.sha256(b"secret" + seed).digest()).decode(),
        passphrase=hashlib.sha256(b"pass" + seed).hexdigest()[:32],
        address=address,
    )


def verify_l1(headers: Mapping[str, str], chain_id: int) -> tuple[str, int]:
    """(address, nonce) of a request whose `ClobAuth` signature recovers to its POLY_ADDRESS."""
    try:
        address, signature = headers["POLY_ADDRESS"], headers["POLY_SIGNATURE"]
        timestamp, nonce = headers["POLY_TIMESTAMP"], int(headers.get("POLY_NONCE", "0"))
    except (KeyError, ValueError) as error:
        raise AuthError("Invalid L1 Request headers") from error
    typed = {
        "primaryType": "ClobAuth",
        "types": {
            "EIP712Domain": [f for f in _DOMAIN_FIELDS if f["name"] != "verifyingContract"],
            "ClobAuth": [
                {"name": "address", "type": "address"},
                {"name": "timestamp", "type": "string"},
                {"name": "nonce", "type": "uint256"},
                {"name": "message", "type": "string"},
            ],
        },
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {"address": address, "timestamp": timestamp, "nonce": nonce, "message": CLOB_AUTH_MESSAGE},
    }
    if _recover(typed, signature).lower() != address.lower():
        raise AuthError("Invalid L1 Request headers")
    return address, nonce


def build_hmac(secret: str, timestamp: str, method: str, path: str, body: str) -> str:
    """HMAC-SHA256 with the urlsafe-base64 secret over timestamp + METHOD + path + body, urlsafe-base64."""
    message = f"{timestamp}{method}{path}{body}".encode()
    digest = hmac.new(base64.urlsafe_b64decode(secret), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def verify_l2(
    headers: Mapping[str, str], keys: Mapping[str, ApiKey], method: str, path: str, body: str
) -> ApiKey:
    """The API key of a request whose five POLY_* headers check out; AuthError otherwise."""
    try:
        key = keys[headers["POLY_API_KEY"]]
        address, passphrase = headers["POLY_ADDRESS"], headers["POLY_PASSPHRASE"]
        signature, timestamp = headers["POLY_SIGNATURE"], headers["POLY_TIMESTAMP"]
    except KeyError as error:
        raise AuthError("Unauthorized/Invalid api key") from error
    if address.lower() != key.address.lower() or passphrase != key.passphrase:
        raise AuthError("Unauthorized/Invalid api key")
    if not hmac.compare_digest(signature, build_hmac(key.secret, timestamp, method, path, body)):
        raise AuthError("Unauthorized/Invalid api key")
    return key


def order_typed_data(order: Mapping[str, Any], neg_risk: bool, chain_id: int) -> dict[str, Any]:
    """The EIP-712 typed data of a wire order (`POST /order` body's `order`)."""
    return {
        "primaryType": "Order",
        "types": {"EIP712Domain": _DOMAIN_FIELDS, "Order": ORDER_FIELDS},
        "domain": {
            "name": "Polymarket CTF Exchange",
            "version": "2",
            "chainId": chain_id,
            "verifyingContract": NEG_RISK_EXCHANGE_V2 if neg_risk else EXCHANGE_V2,
        },
        "message": {
            "salt": int(order["salt"]),
            "maker": order["maker"],
            "signer": order["signer"],
            "tokenId": int(order["tokenId"]),
            "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]),
            "side": 0 if order["side"] == "BUY" else 1,
            "signatureType": int(order["signatureType"]),
            "timestamp": int(order["timestamp"]),
            "metadata": bytes.fromhex(str(order["metadata"])[2:].rjust(64, "0")),
            "builder": bytes.fromhex(str(order["builder"])[2:].rjust(64, "0")),
        },
    }


def verify_order(order: Mapping[str, Any], key: ApiKey, neg_risk: bool, chain_id: int) -> str:
    """The order's hash (its id) once its signature recovers to its signer, the API key's address."""
    if int(order.get("signatureType", 0)) not in (0, 1, 2):
        raise AuthError("the simulator accepts signature types 0, 1 and 2 only", 400)
    if str(order.get("signer", "")).lower() != key.address.lower():
        raise AuthError("the order signer address has to be the address of the API KEY", 400)
    typed = order_typed_data(order, neg_risk, chain_id)
    if _recover(typed, str(order.get("signature", ""))).lower() != key.address.lower():
        raise AuthError("invalid signature", 400)
    message = encode_typed_data(full_message=typed)
    return "0x" + bytes(keccak(b"\x19" + message.version + message.header + message.body)).hex()


def order_price_and_size(order: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """(price, shares) from the signed amounts: BUY pays makerAmount pUSD for takerAmount shares."""
    maker, taker = Decimal(str(order["makerAmount"])), Decimal(str(order["takerAmount"]))
    if order["side"] == "BUY":
        return (maker / taker if taker else Decimal(0)), taker / UNITS
    return (taker / maker if maker else Decimal(0)), maker / UNITS


def _recover(typed: dict[str, Any], signature: str) -> str:
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))
    except Exception as error:  # noqa: BLE001 - any malformed signature is the same refusal
        raise AuthError("invalid signature", 400) from error
