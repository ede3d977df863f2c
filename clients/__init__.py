"""The asyncio reference client: `RoomClient.connect(url, key=..., token=...)`."""

from roomhub.protocol.errors import ErrorCode, RoomError

from .client import ConnectionLost, Resync, RoomClient

__all__ = ["ConnectionLost", "ErrorCode", "Resync", "RoomClient", "RoomError"]
