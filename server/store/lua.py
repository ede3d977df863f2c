"""The Lua scripts (server/lua/) as Redis gets them.

A room script is `_prelude.lua` with the role table and the constants of `roomhub.protocol`
written in — so a limit, a member default or an error code is defined in Python once, never
as a Lua literal — then the script's body; a change's body is wrapped by `_idempotency.lua`,
so its outcome is recorded for retries.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from roomhub.protocol import limits, models, roles
from roomhub.protocol.errors import ErrorCode

CONSTANTS = "-- __CONSTANTS__"
# The limits.py names the scripts read, as LIMITS.<NAME>.
LUA_LIMITS = (
    "DIRECT_ROOM_MAX_MEMBERS",
    "PROPS_PER_MEMBER",
    "ROOM_PROPS_MAX",
    "IDEMPOTENCY_TTL_MS",
)


def source(name: str) -> str:
    return resources.files("roomhub.server").joinpath("lua", f"{name}.lua").read_text("utf-8")


def literal(value: Any) -> str:
    """A Lua literal for a constant: a bool, an int, a plain string or a table of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not value.isprintable() or "'" in value or "\\" in value:
            raise ValueError(f"not a plain string: {value!r}")
        return f"'{value}'"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {literal(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"no Lua literal for {value!r}")


def constants() -> str:
    """The Lua locals that stand for the protocol's constants (in place of CONSTANTS)."""
    defaults = {k: v for k, v in models.MEMBER_DEFAULTS.items() if not isinstance(v, dict)}
    lines = {
        "LIMITS": literal({name: getattr(limits, name) for name in LUA_LIMITS}),
        "MEMBER_DEFAULTS": literal(defaults),  # props: a new table for each member
        "PROFILE_DEFAULTS": literal(models.PROFILE_DEFAULTS),
        "E": literal({code.name: code.value for code in ErrorCode}),
    }
    return "\n".join(f"local {name} = {value}" for name, value in lines.items())


def script(name: str) -> str:
    """A script with the constants written in (at its CONSTANTS line)."""
    text = source(name)
    assert CONSTANTS in text, name
    return text.replace(CONSTANTS, constants())


def prelude() -> str:
    return script("_prelude").replace("__POLICY__", roles.rules_json().decode())


def room_script(name: str, change: bool) -> str:
    if not change:
        return prelude() + "\n" + source(name)
    # The op's body becomes a function, so its outcome can be recorded for retries.
    body = "local function body()\n" + source(name) + "\nend\n"
    return prelude() + "\n" + body + source("_idempotency")
