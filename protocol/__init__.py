"""roomhub wire protocol v1: pure models, codecs, error codes and role rules. No I/O."""

from .codec import SUBPROTOCOLS, Encoding, decode, encode
from .errors import CloseCode, ErrorCode, RoomError
from .models import (
    Ack,
    AuthResult,
    HistoryPage,
    Invitation,
    Member,
    Room,
    SystemMessage,
    User,
)
from .ops import OPS, Request, lookup, parse_request, validate_args
from .roles import RANK, RULES, check

PROTOCOL_VERSION = 1

__all__ = [
    "OPS",
    "PROTOCOL_VERSION",
    "RANK",
    "RULES",
    "SUBPROTOCOLS",
    "Ack",
    "AuthResult",
    "Encoding",
    "CloseCode",
    "ErrorCode",
    "HistoryPage",
    "Invitation",
    "Member",
    "Request",
    "Room",
    "RoomError",
    "SystemMessage",
    "User",
    "check",
    "decode",
    "encode",
    "lookup",
    "parse_request",
    "validate_args",
]
