"""The asyncio reference client: `RoomClient.connect(url, key=..., token=...)`."""

from roomhub.protocol.errors import ErrorCode, RoomError

from .backoff import Backoff
from .client import RoomClient
from .options import ClientOptions
from .resume import Resync
from .state import ConnectionLost, State

__all__ = [
    "Backoff",
    "ClientOptions",
    "ConnectionLost",
    "ErrorCode",
    "Resync",
    "RoomClient",
    "RoomError",
    "State",
]
