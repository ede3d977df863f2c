"""Which system messages a connection is written, in what order, after a resume or a gap.

The rules are plain code with no asyncio and no Redis, testable with plain calls:
`message` (a message, framed once; the membership walk-back), `inbox` (one connection's
floors and opening buffer), `resume` (the replay plan of an `auth`), `feed` (per room: seq
order, gaps and their healing, recipients). `fanout` is the I/O around them: it subscribes,
reads snapshots and logs, and hands what it read to the rules (imported from
`delivery.fanout`, so that importing the rules loads no I/O).
"""

from .feed import Drained, Locals, RoomFeed
from .inbox import Inbox
from .message import Message, resync_frame, visible_to
from .resume import ResumePlan

__all__ = [
    "Drained",
    "Inbox",
    "Locals",
    "Message",
    "ResumePlan",
    "RoomFeed",
    "resync_frame",
    "visible_to",
]
