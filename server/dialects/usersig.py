"""Tencent UserSig (TLSSigAPIv2) verification (docs/dialects.md §5, study §2.2): pure, no I/O.

A UserSig is zlib-compressed JSON in base64 with `+/=` written `*-_`. The vendor's minters
differ in JSON spacing, key order and compression level (Python: default level, spaces; Go:
stored blocks, compact), so the ticket is decoded and its fields checked, never compared as
bytes. The checks are those of the vendor's own verifier (tls-sig-api-v2-golang `verify`), in
its order, each failure with the code Tencent's REST API answers for it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from typing import Any

# Tencent's common error codes for a refused UserSig
EXPIRED = 70001
MALFORMED = 70003  # not decodable: truncated or garbled
SIG_MISMATCH = 70009  # signed with another key (or not a plain UserSig)
IDENTIFIER_MISMATCH = 70013
SDKAPPID_MISMATCH = 70014

# Bounds on what is decoded at all: a real ticket is about 200 characters and inflates to
# about 200 bytes; past these it is garbage (or a zip bomb), answered as MALFORMED.
MAX_USERSIG_CHARS = 4096
MAX_TICKET_BYTES = 4096
_FROM_URL = str.maketrans("*-_", "+/=")


class UserSigError(Exception):
    """A refused UserSig: `code` is Tencent's (70xxx), the message says why (never the sig)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode(usersig: str) -> dict[str, Any]:
    """The ticket's JSON document, or UserSigError(MALFORMED)."""
    if len(usersig) > MAX_USERSIG_CHARS:
        raise UserSigError(MALFORMED, "the UserSig is too long")
    try:
        compressed = base64.b64decode(usersig.translate(_FROM_URL), validate=True)
        inflater = zlib.decompressobj()
        data = inflater.decompress(compressed, MAX_TICKET_BYTES)
        if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
            raise UserSigError(MALFORMED, "the UserSig is truncated or garbled")
        document = json.loads(data)
    except (binascii.Error, ValueError, zlib.error):  # JSON and UTF-8 errors are ValueErrors
        raise UserSigError(MALFORMED, "the UserSig cannot be decoded") from None
    if not isinstance(document, dict):
        raise UserSigError(MALFORMED, "the UserSig is not a ticket")
    return document


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UserSigError(MALFORMED, f"the UserSig has no valid {name}")
    return value


def signature(secret_key: str, identifier: str, sdkappid: int, time: int, expire: int) -> bytes:
    """HMAC-SHA256 with the SecretKey (as UTF-8, not hex-decoded) over the ticket's lines."""
    content = (
        f"TLS.identifier:{identifier}\n"
        f"TLS.sdkappid:{sdkappid}\n"
        f"TLS.time:{time}\n"
        f"TLS.expire:{expire}\n"
    )
    return hmac.new(secret_key.encode(), content.encode(), hashlib.sha256).digest()


def verify(usersig: str, *, sdkappid: int, identifier: str, secret_key: str, now: int) -> None:
    """Accept `usersig` for `identifier` of app `sdkappid` at Unix time `now`, or raise
    UserSigError: sdkappid (70014), identifier (70013), expiry `now > time + expire` (70001,
    no allowance for a future time, like the vendor's verifier), no userbuf (a PrivateMapKey
    is not a UserSig: 70009), then the HMAC recomputed over the fields as carried and
    compared in constant time (70009)."""
    document = decode(usersig)
    ticket_app = _field(document, "TLS.sdkappid", int)
    ticket_user = _field(document, "TLS.identifier", str)
    time = _field(document, "TLS.time", int)
    expire = _field(document, "TLS.expire", int)
    sig = _field(document, "TLS.sig", str)
    if ticket_app != sdkappid:
        raise UserSigError(SDKAPPID_MISMATCH, "the UserSig was made for another SDKAppID")
    if ticket_user != identifier:
        raise UserSigError(IDENTIFIER_MISMATCH, "the UserSig was made for another identifier")
    if now > time + expire:
        raise UserSigError(EXPIRED, "the UserSig has expired")
    if "TLS.userbuf" in document:
        raise UserSigError(SIG_MISMATCH, "a ticket with a userbuf is not a UserSig")
    try:
        given = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise UserSigError(MALFORMED, "the UserSig has no valid TLS.sig") from None
    expected = signature(secret_key, ticket_user, ticket_app, time, expire)
    if not hmac.compare_digest(given, expected):
        raise UserSigError(SIG_MISMATCH, "the UserSig's signature does not verify")
