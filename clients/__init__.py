"""The asyncio reference client: `RoomClient.connect(url, key=..., token=...)`."""

from roomhub.protocol.errors import ErrorCode, RoomError

from .client import Backoff, ConnectionLost, Resync, RoomClient, State

__all__ = ["Backoff", "ConnectionLost", "ErrorCode", "Resync", "RoomClient", "RoomError", "State"]
