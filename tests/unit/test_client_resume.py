"""The client's resume state as plain calls: what is new, what a reconnect resumes from, what a
resync or an auth result changes (clients/resume.py), and the dispatch path that feeds it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from roomhub.clients import ClientOptions, Resync, RoomClient
from roomhub.clients.resume import MAX_RESUME_ROOMS, ResumeState, fit_resume
from roomhub.protocol.models import SystemMessage


def msg(room: str, seq: int, type: str = "updateMember", targets: tuple[str, ...] = ()) -> Any:
    return SystemMessage(
        room=room,
        seq=seq,
        type=type,  # type: ignore[arg-type]
        sender="alice",
        targets=list(targets),
        notify=False,
        time_ms=0,
    )


def feed(state: ResumeState, *messages: SystemMessage) -> list[tuple[str, int]]:
    return [(m.room, m.seq) for m in messages if state.accept(m)]


# --- de-duplication -----------------------------------------------------------------------------


def test_each_seq_is_accepted_once_per_room() -> None:
    state = ResumeState()
    got = feed(state, msg("a", 1), msg("a", 2), msg("b", 1), msg("a", 2), msg("a", 1), msg("b", 2))
    assert got == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    assert state.last_seqs == {"a": 2, "b": 2}


def test_a_replay_overlapping_what_was_delivered_is_invisible() -> None:
    state = ResumeState({"r": 5})
    assert feed(state, *(msg("r", s) for s in range(3, 9))) == [("r", 6), ("r", 7), ("r", 8)]


def test_a_jump_is_delivered_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    state = ResumeState({"r": 1})
    with caplog.at_level(logging.WARNING, "roomhub.client"):
        assert feed(state, msg("r", 4)) == [("r", 4)]
    assert "jumped from #1 to #4" in caplog.text
    assert feed(state, msg("r", 3)) == []


def test_seqs_are_ordered_by_recent_activity() -> None:
    state = ResumeState({"a": 1, "b": 1, "c": 1})
    feed(state, msg("a", 2))
    assert list(state.seqs) == ["b", "c", "a"]  # what fit_resume keeps first when cutting


# --- rooms forgotten ------------------------------------------------------------------------------


@pytest.mark.parametrize("gone", ["removeMember", "leaveRoom", "declineInvitation"])
def test_a_room_is_forgotten_when_the_user_leaves_it(gone: str) -> None:
    state = ResumeState({"r": 1})
    state.user = "bob"
    assert feed(state, msg("r", 2, gone, targets=("carol",))) == [("r", 2)]
    assert state.last_seqs == {"r": 2}  # someone else left: still ours
    assert feed(state, msg("r", 3, gone, targets=("bob",))) == [("r", 3)]  # delivered, then
    assert state.last_seqs == {}  # nothing to resume
    assert not state.knows("r")


def test_a_dismissed_room_is_forgotten_whoever_it_names() -> None:
    state = ResumeState({"r": 1, "s": 4})
    state.user = "dave"  # an invitee: not among the targets
    assert feed(state, msg("r", 2, "dismissRoom", targets=("alice", "bob"))) == [("r", 2)]
    assert state.last_seqs == {"s": 4}


def test_before_the_auth_reply_nobody_is_the_user() -> None:
    state = ResumeState({"r": 1})
    feed(state, msg("r", 2, "removeMember", targets=("bob",)))
    assert state.last_seqs == {"r": 2}


# --- resync -----------------------------------------------------------------------------------


def test_after_a_resync_its_seq_is_the_last_one() -> None:
    state = ResumeState({"r": 3})
    state.resync(Resync("r", 10))
    assert state.last_seqs == {"r": 10}
    assert feed(state, msg("r", 9), msg("r", 10), msg("r", 11)) == [("r", 11)]


def test_a_resync_may_move_the_resume_point_back() -> None:
    state = ResumeState({"r": 30})  # a Redis that lost its data
    state.resync(Resync("r", 2))
    assert feed(state, msg("r", 3)) == [("r", 3)]


def test_a_resync_to_zero_forgets_the_room_and_its_floor() -> None:
    state = ResumeState({"r": 3})
    state.floors["f"] = 7
    state.resync(Resync("r", 0))
    state.resync(Resync("f", 0))
    assert state.last_seqs == {}
    assert feed(state, msg("r", 1), msg("r", 2)) == [("r", 1), ("r", 2)]  # restarted empty


# --- floors: rooms with no message delivered yet -------------------------------------------------


def test_a_floor_resumes_until_the_first_message_and_seqs_win() -> None:
    state = ResumeState()
    state.floors["r"] = 4
    assert state.last_seqs == {"r": 4} and state.knows("r")
    feed(state, msg("r", 5))
    assert state.floors == {} and state.last_seqs == {"r": 5}


def test_a_created_room_resumes_from_zero_unless_its_message_came_first() -> None:
    state = ResumeState()
    state.created("mine")
    assert state.last_seqs == {"mine": 0}
    feed(state, msg("mine", 1, "createRoom"))
    assert state.last_seqs == {"mine": 1}
    early = ResumeState()
    feed(early, msg("fast", 1, "createRoom"))  # the message before the reply
    early.created("fast")
    assert early.last_seqs == {"fast": 1} and early.floors == {}


# --- adopting an auth result ---------------------------------------------------------------------


def test_untracked_are_the_rooms_with_no_resume_point() -> None:
    state = ResumeState({"a": 1})
    state.floors["b"] = 0
    assert state.untracked(["a", "b", "c", "d"]) == ["c", "d"]


def test_first_connection_untracked_rooms_resume_from_their_listed_seq() -> None:
    state = ResumeState()
    resyncs = state.adopt({"r": 3, "q": 1}, ["r", "q", "gone"], [], first=True)
    assert resyncs == [] and state.last_seqs == {"r": 3, "q": 1}


def test_on_a_reconnect_rooms_joined_while_away_get_a_resync() -> None:
    state = ResumeState({"old": 2})
    resyncs = state.adopt({"old": 2, "new": 5, "live": 1}, ["new", "live", "gone"], [], first=False)
    assert resyncs == [Resync("new", 5), Resync("live", 1)]
    assert state.last_seqs == {"old": 2}  # the caller applies them (resync) and announces them
    for resync in resyncs:
        state.resync(resync)
    assert state.last_seqs == {"old": 2, "new": 5, "live": 1}


def test_a_live_message_before_the_list_reply_needs_no_resync() -> None:
    state = ResumeState()
    feed(state, msg("new", 6))
    assert state.adopt({"new": 6}, ["new"], [], first=False) == []


def test_rooms_left_out_of_the_resume_map_are_resynced_or_forgotten() -> None:
    state = ResumeState({"kept": 1, "cut": 2, "lost": 3})
    resyncs = state.adopt({"kept": 1, "cut": 9}, [], ["cut", "lost"], first=False)
    assert resyncs == [Resync("cut", 9)]
    assert state.last_seqs == {"kept": 1, "cut": 2}


# --- the resume map that fits an auth frame -------------------------------------------------------


def test_fit_resume_keeps_a_map_that_fits() -> None:
    assert fit_resume(None) == (None, [])
    sent, left_out = fit_resume({"a": 1, "b": 2})
    assert sent == {"a": 1, "b": 2} and left_out == []


def test_fit_resume_keeps_the_most_recent_rooms() -> None:
    rooms = {f"r{i}": i for i in range(MAX_RESUME_ROOMS + 5)}
    sent, left_out = fit_resume(rooms)
    assert sent is not None and len(sent) == MAX_RESUME_ROOMS
    assert left_out == [f"r{i}" for i in range(5)]
    assert list(sent) == [f"r{i}" for i in range(5, MAX_RESUME_ROOMS + 5)]  # order kept


def test_fit_resume_stays_under_the_frame_size() -> None:
    rooms = {f"{i:03}" + "x" * 200: i for i in range(400)}  # ~85 KB of room ids
    sent, left_out = fit_resume(rooms)
    assert sent is not None and 0 < len(sent) < 400
    assert sum(len(r) + 12 for r in sent) <= 48 * 1024
    assert set(sent) | set(left_out) == set(rooms) and not set(sent) & set(left_out)


# --- the dispatch path: on_event sees the wire, the queue sees each seq once ----------------------


def system(room: str, seq: int) -> dict[str, Any]:
    return {"event": "system", "message": msg(room, seq).model_dump()}


async def test_on_event_sees_every_event_before_dedup() -> None:
    seen: list[Any] = []
    resynced: list[Resync] = []
    client = RoomClient(
        ["ws://127.0.0.1:1/ws"], key="k", token="t", on_event=seen.append, on_resync=resynced.append
    )
    for frame in (system("r", 1), system("r", 2), system("r", 1), system("r", 3)):
        client._dispatch(frame)
    client._dispatch({"event": "resync", "room": "r", "seq": 7})
    client._dispatch(system("r", 7))
    assert [e.seq for e in seen] == [1, 2, 1, 3, 7, 7]  # the repeat too
    assert isinstance(seen[4], Resync) and resynced == [Resync("r", 7)]
    queued = [client._events.get_nowait() for _ in range(client._events.qsize())]
    assert [m.seq for m in queued] == [1, 2, 3]  # type: ignore[union-attr]
    assert client.last_seqs == {"r": 7}


async def test_a_failing_on_event_does_not_stop_delivery(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("app bug")

    options = ClientOptions(key="k", token="t", on_event=broken)
    client = RoomClient(["ws://127.0.0.1:1/ws"], options)
    with caplog.at_level(logging.ERROR, "roomhub.client"):
        client._dispatch(system("r", 1))
    assert "on_event callback failed" in caplog.text
    assert (await client.next_message(timeout=1)).seq == 1


def test_options_are_checked_when_built() -> None:
    with pytest.raises(ValueError, match="encoding"):
        ClientOptions(key="k", token="t", encoding="xml")
    with pytest.raises(TypeError, match="token"):
        ClientOptions(key="k", token=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff"):
        ClientOptions(key="k", token="t", backoff=(2.0, 1.0))


def test_connect_keywords_build_the_options_and_the_rest_go_to_websockets() -> None:
    base = ClientOptions(key="k", token="t", encoding="json")
    built = ClientOptions.build(base, {"reconnect": True, "open_timeout": 5})
    assert built.reconnect and built.encoding.value == "roomhub.v1.json"  # type: ignore[union-attr]
    assert built.ws_options == {"compression": None, "open_timeout": 5}
    assert ClientOptions.build(base, {}) is base
    fresh = ClientOptions.build(None, {"key": "k", "token": "t", "ping_interval": None})
    assert fresh.ws_options == {"compression": None, "ping_interval": None}
    assert fresh.new_backoff() is not fresh.new_backoff()  # a tuple: each client its own
