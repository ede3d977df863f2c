"""The Lua prelude's allowed() must agree with roomhub.protocol.roles.check everywhere.

Runs the real server/lua/_prelude.lua, with the role table substituted for __POLICY__ exactly
as server/store/lua.py does, inside fakeredis's Lua (lupa), for the full cross product of
actions x operator roles (and the unchecked server call) x target roles (and none) x self.
"""

from __future__ import annotations

import itertools
from importlib import resources

import fakeredis
import orjson
import pytest

from roomhub.protocol import roles

ACTIONS = sorted(roles.RULES)
OPERATOR_ROLES: list[str | None] = [*sorted(roles.ALL_ROLES), None]
TARGET_ROLES: list[str | None] = [*sorted(roles.ALL_ROLES), None]
CASES = list(itertools.product(ACTIONS, OPERATOR_ROLES, TARGET_ROLES, [False, True]))

# After the prelude: run allowed() over the cases in ARGV[2] ("" stands for nil, since
# cjson turns JSON null into cjson.null, which is not nil), one 1/0 per case.
DRIVER = """
local CASES = cjson.decode(ARGV[2])
local function opt(v) if v == '' then return nil end return v end
local out = {}
for i, c in ipairs(CASES) do
  out[i] = allowed(c[1], opt(c[2]), opt(c[3]), c[4] == 1) and 1 or 0
end
return out
"""

KEYS = ["rh:{t:r}:meta", "rh:{t:r}:members", "rh:{t:r}:invites", "rh:{t:r}:log"]
PARAMS = orjson.dumps({"room": "r", "sender": "@server", "reply": "ack"})


def _prelude() -> str:
    source = (resources.files("roomhub.server") / "lua" / "_prelude.lua").read_text("utf-8")
    assert "__POLICY__" in source
    return source.replace("__POLICY__", roles.rules_json().decode())


def _run(cases: list[tuple[str, str | None, str | None, bool]]) -> list[bool]:
    wire = [[action, op or "", target or "", int(on_self)] for action, op, target, on_self in cases]
    server = fakeredis.FakeRedis()
    try:
        result = server.eval(
            _prelude() + "\n" + DRIVER, len(KEYS), *KEYS, PARAMS, orjson.dumps(wire)
        )
    finally:
        server.close()
    assert len(result) == len(cases)
    return [bool(r) for r in result]


@pytest.fixture(scope="module")
def lua_answers() -> dict[tuple[str, str | None, str | None, bool], bool]:
    return dict(zip(CASES, _run(CASES)))


def test_the_store_assembles_the_same_prelude() -> None:
    from roomhub.server.store import lua

    prelude = _prelude().replace(lua.CONSTANTS, lua.constants())
    assert lua.room_script("room_read", change=False).startswith(prelude)


def test_cross_product_size() -> None:
    assert len(CASES) == len(ACTIONS) * 5 * 5 * 2 == 50 * len(ACTIONS)


def _id(case: tuple[str, str | None, str | None, bool]) -> str:
    action, op, target, on_self = case
    return f"{action}-{op or 'server'}-{target or 'none'}{'-self' if on_self else ''}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_lua_agrees_with_python(
    case: tuple[str, str | None, str | None, bool],
    lua_answers: dict[tuple[str, str | None, str | None, bool], bool],
) -> None:
    action, op, target, on_self = case
    assert lua_answers[case] is roles.check(action, op, target, on_self=on_self)


def test_both_answers_occur(
    lua_answers: dict[tuple[str, str | None, str | None, bool], bool],
) -> None:
    # guards against a driver that always says the same thing
    assert sum(lua_answers.values()) > 50
    assert len(lua_answers) - sum(lua_answers.values()) > 50


def test_unknown_action_is_forbidden_in_lua() -> None:
    assert _run([("role:superuser", None, None, False), ("nothing", "owner", "guest", False)]) == [
        False,
        False,
    ]
