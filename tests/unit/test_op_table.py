"""The op table (protocol/ops.py) against everything that must agree with it: the hub's
dispatch, docs/protocol.md, the Python client's methods, the service's handlers, and the Lua
scripts (the params they read, the message kinds they emit)."""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest
from pydantic import BaseModel

from roomhub.protocol import models
from roomhub.protocol.errors import ErrorCode, RoomError
from roomhub.protocol.ops import OPS, OpSpec, validate_args
from roomhub.server.service import Caller, Service
from roomhub.server.settings import Settings
from roomhub.server.store import Store, lua, scripts
from roomhub.server.store.scripts import Idempotency

from ..spec import MINIMAL_ARGS
from ..support import APP, SECRET, RawClient, ws_url

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_MD = (ROOT / "docs" / "protocol.md").read_text("utf-8")
OPS_BUT_AUTH = sorted(name for name in OPS if name != "auth")
ROOM_SCRIPTS = {kind.script for kind in scripts.SCRIPTS}


def _section(title: str) -> str:
    """The text of the docs section headed `title` up to the next heading of any level."""
    start = PROTOCOL_MD.index(title)
    rest = PROTOCOL_MD[start + len(title) :]
    end = re.search(r"^#{2,3} ", rest, re.M)
    return rest[: end.start() if end else None]


def _table(text: str) -> list[list[str]]:
    """The rows of the first table in `text`, without its header."""
    lines = text[text.index("\n|") + 1 :].splitlines()
    rows = lines[: next((i for i, line in enumerate(lines) if not line.startswith("|")), None)]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


# --- docs/protocol.md ----------------------------------------------------------------------


def test_every_op_has_a_section_and_nothing_else_does() -> None:
    ops_sections = re.findall(r"^### 5\.\d+ `([^`]+)`", PROTOCOL_MD, re.M)
    assert sorted(ops_sections) == OPS_BUT_AUTH
    assert re.search(r"^### 3\.\d+ `auth`$", PROTOCOL_MD, re.M)


def _documented_fields(cell: str) -> set[str]:
    text = cell.strip("`")
    quoted = re.findall(r'"(\w+)":', text)
    if quoted:
        return set(quoted)
    return {name.strip() for name in text.strip("{}").split(",") if name.strip()}


def test_the_summary_table_is_the_op_table() -> None:
    rows = {row[0].strip("`"): row for row in _table(_section("### 5.1 Summary"))}
    assert sorted(rows) == sorted(OPS)
    for name, (_, mutating, result, who) in rows.items():
        spec = OPS[name]
        assert (mutating == "✓") is spec.mutating, name
        assert ("server tokens only" in who) is spec.server_only, name
        if result == "Room":
            assert spec.result is models.Room, name
        else:
            assert _documented_fields(result) == set(spec.result.model_fields), name


def test_the_message_kinds_table_is_what_the_ops_emit() -> None:
    start = PROTOCOL_MD.index("| `type` | emitted by |")
    rows = _table(PROTOCOL_MD[start - 1 :])
    documented = {row[0].strip("`"): set(re.findall(r"`([a-z]+\.[a-z]+)`", row[1])) for row in rows}
    emitted_by = {
        kind: {spec.name for spec in OPS.values() if kind in spec.emits}
        for kind in models.MESSAGE_KINDS
    }
    assert documented == emitted_by


# --- the hub, the service, the client ------------------------------------------------------


def test_every_op_is_a_service_method_and_a_client_method() -> None:
    from roomhub.clients import RoomClient

    for spec in OPS.values():
        if spec.name == "auth":  # the hub's own; the client sends it on connecting
            assert spec.method is None
            continue
        assert spec.method is not None, spec.name
        assert inspect.iscoroutinefunction(getattr(Service, spec.method)), spec.name
        assert inspect.iscoroutinefunction(getattr(RoomClient, spec.method)), spec.name
    methods = [spec.method for spec in OPS.values() if spec.method]
    assert len(set(methods)) == len(methods)


async def test_server_only_ops_are_refused_to_users_from_the_table() -> None:
    # the store is never reached: the check comes before the handler, from `server_only`
    service = Service(typing.cast(Any, None), Settings(port=0, apps={APP: SECRET}))
    user = Caller(APP, "alice")
    server_only = [spec for spec in OPS.values() if spec.server_only]
    assert [spec.name for spec in server_only] == [
        "user.upsert",
        "room.watch",
        "room.unwatch",
        "app.rooms",
    ]
    for spec in server_only:
        run = service.handler(spec.name)
        with pytest.raises(RoomError) as refused:
            await run(user, validate_args(spec, MINIMAL_ARGS[spec.name]), *([None] * spec.stream))
        assert refused.value.code is ErrorCode.FORBIDDEN
        # `operator` on a user token: 100002 before 100006 (docs/protocol.md §7); the ops
        # that act as nobody take no operator at all
        with pytest.raises(RoomError) as invalid:
            with_operator = validate_args(spec, {**MINIMAL_ARGS[spec.name], "operator": "alice"})
            await run(user, with_operator)
        assert (invalid.value.code, invalid.value.field) == (
            ErrorCode.INVALID_PARAMETER,
            "operator",
        )


def test_mutating_ops_are_the_ones_that_take_reply() -> None:
    for spec in OPS.values():
        assert spec.mutating is ("reply" in spec.args.model_fields), spec.name


# Every op but auth once, in an order in which each succeeds (server token; `operator` for
# the ops done as a user).
FLOW: list[tuple[str, dict[str, Any]]] = [
    ("user.upsert", {"id": "alice"}),
    ("user.upsert", {"id": "bob"}),
    ("user.upsert", {"id": "carol"}),
    ("room.create", {"room": "r", "owner": "alice", "members": ["bob"]}),
    ("room.get", {"room": "r"}),
    ("room.presence", {"room": "r"}),
    ("room.watch", {"room": "r"}),
    ("app.rooms", {"prefix": "r"}),
    ("room.list", {"operator": "alice"}),
    ("member.add", {"room": "r", "invitees": ["carol"], "invitation_required": True}),
    ("invitation.decline", {"room": "r", "operator": "carol"}),
    ("member.add", {"room": "r", "invitees": ["carol"], "invitation_required": True}),
    ("invitation.accept", {"room": "r", "operator": "carol"}),
    ("member.update", {"room": "r", "user": "bob", "properties": {"level": 1}}),
    ("member.remove", {"room": "r", "user": "carol"}),
    ("room.leave", {"room": "r", "operator": "bob"}),
    ("room.history", {"room": "r"}),
    ("room.update", {"room": "r", "name": "R", "custom": {"topic": "t"}}),
    ("room.members", {"room": "r", "limit": 1}),
    ("member.add", {"room": "r", "invitees": ["carol"], "invitation_required": True}),
    ("invitation.cancel", {"room": "r", "invitees": ["carol"]}),
    ("member.add", {"room": "r", "invitees": ["carol"]}),
    ("room.transfer", {"room": "r", "to": "carol"}),
    ("room.unwatch", {"room": "r"}),
    ("room.dismiss", {"room": "r"}),  # last: the room is gone after it
]


def _check_result(spec: OpSpec, result: Any) -> None:
    assert isinstance(result, dict), (spec.name, result)
    spec.result.model_validate(result)
    assert set(result) == set(spec.result.model_fields), (spec.name, result)


async def test_the_hub_serves_exactly_the_table(start_hub: Any) -> None:
    assert {op for op, _ in FLOW} == set(OPS_BUT_AUTH)
    hub = await start_hub()  # the embedded store
    async with RawClient.connect(ws_url(hub)) as backend:
        _check_result(OPS["auth"], await backend.auth("backend", server=True))
        for op, args in FLOW:
            _check_result(OPS[op], await backend.call(op, args))
        error = await backend.fail("room.delete", {"room": "r"})
        assert error["code"] == ErrorCode.UNKNOWN_OP


# --- the Lua scripts -----------------------------------------------------------------------


def _lua_params(name: str) -> set[str]:
    return set(re.findall(r"\bP\.(\w+)", lua.source(name)))


def _sample(kind: type[scripts.RoomScript[Any]]) -> scripts.RoomScript[Any]:
    """An instance with every field set (none None), so each is serialised."""
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    if kind.change:
        values["idem"] = Idempotency("u:alice", "key", "fingerprint")
    for field in dataclasses.fields(kind):
        if field.name in values:
            continue
        hint = hints[field.name]
        if isinstance(hint, types.UnionType):
            (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
        base = typing.get_origin(hint) or hint
        values[field.name] = {str: "x", bool: True, int: 1}.get(base) or base()
    return kind(**values)


@pytest.fixture(scope="module")
def sent() -> dict[type[scripts.RoomScript[Any]], set[str]]:
    """The params each script is sent, as the store serialises them (on a cluster with
    sharded pub/sub, for an op with an idempotency key: everything that may be sent)."""
    store = Store(fakeredis.aioredis.FakeRedis(), history_max=10, max_room_members=10)
    store._sharded = True
    return {
        kind: set(orjson.loads(store.encode("app", _sample(kind))[1])) for kind in scripts.SCRIPTS
    }


def test_each_op_names_a_script_of_the_store() -> None:
    for spec in OPS.values():
        if spec.script is None:
            continue
        assert (ROOT / "server" / "lua" / f"{spec.script}.lua").is_file(), spec.name
        if spec.script in ROOM_SCRIPTS:
            changes = {kind.change for kind in scripts.SCRIPTS if kind.script == spec.script}
            assert changes == {spec.mutating}, spec.name
    assert ROOM_SCRIPTS >= {spec.script for spec in OPS.values() if spec.script} - {"user_upsert"}


def test_the_scripts_read_the_params_they_are_sent(
    sent: dict[type[scripts.RoomScript[Any]], set[str]],
) -> None:
    # every P.x a script's body reads is sent to it, and every field of its params is read
    for script in ROOM_SCRIPTS:
        kinds = [kind for kind in scripts.SCRIPTS if kind.script == script]
        assert _lua_params(script) <= set().union(*(sent[kind] for kind in kinds)), script
        for kind in kinds:
            own = set(scripts.FIELDS[kind]) - {
                f.name for f in dataclasses.fields(scripts.RoomChange)
            }
            assert own <= _lua_params(script), kind.__name__
    # what the prelude and the idempotency wrapper read, every change is sent (but `user`,
    # read by operator_and_target(), which only the ops on a member call)
    shared = _lua_params("_prelude") | _lua_params("_idempotency")
    for kind in scripts.SCRIPTS:
        if kind.change:
            assert shared - {"user"} <= sent[kind], kind.__name__


def test_the_scripts_emit_the_kinds_of_their_ops() -> None:
    kinds = set(models.MESSAGE_KINDS)
    assert set().union(*(spec.emits for spec in OPS.values())) == kinds
    for script in ROOM_SCRIPTS | {"_prelude", "_idempotency"}:
        spelled = set(re.findall(r"'([a-z]+(?:[A-Z][a-z]+)+)'", lua.source(script)))
        emits = set().union(*(spec.emits for spec in OPS.values() if spec.script == script))
        assert spelled == emits, script


def test_the_scripts_have_no_limit_literals() -> None:
    for script in ROOM_SCRIPTS | {"_prelude", "_idempotency"}:
        source = re.sub(r"--.*", "", lua.source(script))  # code, not comments
        assert not re.search(r"\b1000\d\d\b", source), f"{script}: an error code literal"
        assert "math.min(cap, 2)" not in source, script


def test_the_result_models_are_objects() -> None:
    for spec in OPS.values():
        assert issubclass(spec.result, BaseModel), spec.name
