"""The one module that imports the Polymarket CLOB client (py-clob-client-v2): API keys, and the building,
signing and authenticating of live orders. (Books are public reads, `polycopy.polymarket.http`: the client
pulls in the signing libraries, seconds to import, and the worker never signs.)

The client is the reference implementation of the V2 order format, so orders, order hashes and the L1/L2
headers come from its public pieces. Two of its habits do not suit a live pipeline, so the order path does
not go through `ClobClient.post_order`: its salt is random (here it comes from the intent, so a retry is the
same order with the same hash), and after a match it polls trades for up to 30 s before returning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import coincurve
import eth_keys
from eth_keys.backends import NativeECCBackend
from eth_utils import keccak
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import ApiCreds, RequestArgs
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.exceptions import PolyApiException
from py_clob_client_v2.headers.headers import create_level_2_headers
from py_clob_client_v2.order_builder.builder import ROUNDING_CONFIG, OrderBuilder
from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2, SignatureTypeV2
from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ORDER_TYPE_HASH
from py_clob_client_v2.order_utils.model.order_data_v2 import OrderV2, SignedOrderV2, order_to_json_v2
from py_clob_client_v2.signer import Signer

log = logging.getLogger(__name__)

# The client logs every non-200 answer at ERROR; a 404 (no book, order not indexed yet) is an ordinary answer.
CLIENT_LOGGER = "py_clob_client_v2.http_helpers.helpers"
BYTES32_ZERO = "0x" + "0" * 64
# Order salts stay below 2^53: the venue's clients draw them as JavaScript-safe integers.
_SALT_MODULUS = 2**53


class _QuietNotFound(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.args and isinstance(record.args, tuple) and record.args[0] == 404)


def quiet_client_not_found_logs() -> None:
    """Drop the client's ERROR line for 404 answers (idempotent); other errors still log."""
    logger = logging.getLogger(CLIENT_LOGGER)
    if not any(isinstance(existing, _QuietNotFound) for existing in logger.filters):
        logger.addFilter(_QuietNotFound())


quiet_client_not_found_logs()


class ClobGatewayError(RuntimeError):
    """The CLOB refused a call of the client (an API key derivation)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class ApiCredentials:
    """L2 API credentials (the secret is urlsafe base64, as the venue issues it)."""

    api_key: str
    api_secret: str
    api_passphrase: str


def derive_api_credentials(host: str, chain_id: int, private_key: str, nonce: int = 0) -> ApiCredentials:
    """Create the signer's API key, or derive the existing one (`create_or_derive_api_key`); L1-signed."""
    client = ClobClient(host=host, chain_id=chain_id, key=private_key, retry_on_error=False)
    try:
        creds = client.create_or_derive_api_key(nonce=nonce)
    except PolyApiException as error:
        raise ClobGatewayError(f"API key derivation failed: {error}", error.status_code) from error
    return ApiCredentials(creds.api_key, creds.api_secret, creds.api_passphrase)


def derive_order_salt(intent_id: str) -> int:
    """The order's salt from its intent: the same intent always signs to the same order (and hash)."""
    return int.from_bytes(hashlib.sha256(f"salt|{intent_id}".encode()).digest()[:8], "big") % _SALT_MODULUS


@dataclass(frozen=True)
class OrderTerms:
    """Everything that goes into one signed limit order; equal terms sign to the same order hash."""

    token_id: str
    side: str  # "BUY" | "SELL"
    price: Decimal
    size: Decimal  # shares
    tick_size: Decimal
    neg_risk: bool
    salt: int
    timestamp_ms: int
    expiration_secs: int = 0  # GTD only; 0 = no expiry
    order_type: str = "FAK"
    post_only: bool = False


@dataclass(frozen=True)
class SignedOrder:
    """A signed order ready to post: its hash (the venue's order id) and the exact request body."""

    order_id: str
    body: str  # compact JSON, the bytes the L2 HMAC covers
    maker_amount: int
    taker_amount: int


class OrderSigner:
    """Builds and signs V2 orders: the client's builder for amounts, rounding and the request body, and a
    direct EIP-712 digest signed through libsecp256k1 (coincurve), which is what keeps build + sign well under
    a millisecond (the client's generic typed-data encoder costs several). Tests check that hashes and
    signatures are identical to the client's own."""

    def __init__(
        self,
        private_key: str,
        chain_id: int,
        *,
        signature_type: int = 0,
        funder: str | None = None,
        use_coincurve: bool = True,
    ) -> None:
        self._signer = Signer(private_key, chain_id)
        self._chain_id = chain_id
        self._signature_type = SignatureTypeV2(signature_type)
        self._builder = OrderBuilder(self._signer, signature_type=self._signature_type, funder=funder)
        contracts = get_contract_config(chain_id)
        self._exchanges = {
            neg_risk: ExchangeOrderBuilderV2(
                contracts.neg_risk_exchange_v2 if neg_risk else contracts.exchange_v2, chain_id, self._signer
            )
            for neg_risk in (False, True)
        }
        # A deposit wallet (POLY_1271) signs as itself (the funder); every other type as the key's address.
        self._order_signer = str(
            self._builder.funder
            if self._signature_type == SignatureTypeV2.POLY_1271
            else self._signer.address()
        )
        key = bytes.fromhex(private_key.removeprefix("0x"))
        self._sign_digest = _coincurve_signer(key) if use_coincurve else _native_signer(key)

    @property
    def address(self) -> str:
        """The signer's address (the API key's owner)."""
        return str(self._signer.address())

    @property
    def funder(self) -> str:
        """The address that holds the funds (the maker)."""
        return str(self._builder.funder)

    def sign(self, terms: OrderTerms, owner: str) -> SignedOrder:
        """The signed order for `terms`, posted on behalf of API key `owner`."""
        order = self.build(terms)
        exchange = self._exchanges[terms.neg_risk]
        if self._signature_type == SignatureTypeV2.POLY_1271:
            # The deposit-wallet envelope is rare and intricate: the client's own (slower) code builds it.
            typed_data = exchange.build_order_typed_data(order)
            signature, order_id = (
                exchange.build_order_signature(typed_data),
                exchange.build_order_hash(typed_data),
            )
        else:
            digest = compute_order_digest(exchange.app_domain_separator, order)
            signature, order_id = "0x" + self._sign_digest(digest).hex(), "0x" + digest.hex()
        signed = SignedOrderV2(**{**dataclasses.asdict(order), "signature": signature})
        payload = order_to_json_v2(signed, owner, terms.order_type, terms.post_only, False)
        return SignedOrder(
            order_id=order_id,
            body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
            maker_amount=int(order.makerAmount),
            taker_amount=int(order.takerAmount),
        )

    def build(self, terms: OrderTerms) -> Any:
        """The unsigned order (the client's `OrderV2`) for `terms`: amounts rounded as the client rounds."""
        tick = format(terms.tick_size.normalize(), "f")
        side, maker_amount, taker_amount = self._builder.get_order_amounts(
            terms.side, float(terms.size), float(terms.price), ROUNDING_CONFIG[tick]
        )
        return OrderV2(
            salt=str(terms.salt),
            maker=str(self._builder.funder),
            signer=self._order_signer,
            tokenId=terms.token_id,
            makerAmount=str(maker_amount),
            takerAmount=str(taker_amount),
            side=side,
            signatureType=self._signature_type,
            timestamp=str(terms.timestamp_ms),
            metadata=BYTES32_ZERO,
            builder=BYTES32_ZERO,
            expiration=str(terms.expiration_secs),
        )

    def reference_signature(self, terms: OrderTerms) -> tuple[str, str]:
        """(order hash, signature) computed by the client's code alone: the yardstick of tests and bench."""
        exchange = self._exchanges[terms.neg_risk]
        typed_data = exchange.build_order_typed_data(self.build(terms))
        return exchange.build_order_hash(typed_data), exchange.build_order_signature(typed_data)


def compute_order_digest(domain_separator: bytes, order: Any) -> bytes:
    """The EIP-712 digest of a V2 order: keccak(0x1901 || domain separator || hashStruct(order))."""
    words = b"".join(
        (
            ORDER_TYPE_HASH,
            int(order.salt).to_bytes(32, "big"),
            bytes.fromhex(order.maker[2:]).rjust(32, b"\0"),
            bytes.fromhex(order.signer[2:]).rjust(32, b"\0"),
            int(order.tokenId).to_bytes(32, "big"),
            int(order.makerAmount).to_bytes(32, "big"),
            int(order.takerAmount).to_bytes(32, "big"),
            int(order.side).to_bytes(32, "big"),
            int(order.signatureType).to_bytes(32, "big"),
            int(order.timestamp).to_bytes(32, "big"),
            bytes.fromhex(order.metadata[2:]).rjust(32, b"\0"),
            bytes.fromhex(order.builder[2:]).rjust(32, b"\0"),
        )
    )
    return bytes(keccak(b"\x19\x01" + domain_separator + bytes(keccak(words))))


def _coincurve_signer(key: bytes) -> Callable[[bytes], bytes]:
    private_key = coincurve.PrivateKey(key)

    def sign(digest: bytes) -> bytes:
        signature = private_key.sign_recoverable(digest, hasher=None)  # r || s || recovery id
        return signature[:64] + bytes([signature[64] + 27])

    return sign


def _native_signer(key: bytes) -> Callable[[bytes], bytes]:
    # eth-keys' pure-Python backend: what signing costs on a machine without libsecp256k1.
    private_key = eth_keys.keys.PrivateKey(key, backend=NativeECCBackend())

    def sign(digest: bytes) -> bytes:
        signature = private_key.sign_msg_hash(digest)
        return signature.to_bytes()[:64] + bytes([signature.v + 27])

    return sign


class RequestAuthenticator:
    """L2 headers (HMAC-SHA256 over timestamp + METHOD + path + body) for the signer's API key."""

    def __init__(self, private_key: str, chain_id: int, credentials: ApiCredentials) -> None:
        self._signer = Signer(private_key, chain_id)
        self._creds = ApiCreds(credentials.api_key, credentials.api_secret, credentials.api_passphrase)

    @property
    def api_key(self) -> str:
        return str(self._creds.api_key)

    def headers(
        self, method: str, path: str, body: str | None = None, timestamp: int | None = None
    ) -> dict[str, str]:
        """The five POLY_* headers for one request (`path` without the query string, as the venue signs)."""
        args = RequestArgs(method=method, request_path=path, body=body, serialized_body=body)
        return {
            str(k): str(v)
            for k, v in create_level_2_headers(self._signer, self._creds, args, timestamp).items()
        }
