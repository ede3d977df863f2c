"""The shortest path a client takes: auth, create a room, see its system message."""

from ..support import RawClient


async def test_create_room_and_receive_its_system_message(connect: object) -> None:
    async with connect("json") as alice:  # type: ignore[operator]
        assert isinstance(alice, RawClient)
        welcome = await alice.auth("alice")
        assert welcome["user"] == "alice" and welcome["rooms"] == []
        room = await alice.call("room.create", {"room": "r1", "name": "Demo"})
        assert room["owner"] == "alice" and room["seq"] == 1
        message = await alice.event()
        assert message["type"] == "createRoom" and message["targets"] == ["alice"]
