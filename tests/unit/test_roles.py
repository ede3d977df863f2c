"""PROTOCOL.md §5 role rules, case by case, against roomhub.protocol.roles.check.

The expected answers below are read off PROTOCOL.md §4-§5 and docs/decisions.md, not off the
code. Each grid row is an operator ("server" = a server token without `operator`, which is not
permission-checked), each column a target role, and the last column the operator acting on
themself. Y = allowed, . = forbidden, - = not a meaningful case (not checked here).
"""

from __future__ import annotations

import pytest

from roomhub.protocol import roles
from roomhub.protocol.roles import RANK, RULES, action_for_property, check

from .. import spec

TARGETS = ["owner", "admin", "member", "guest"]
OPERATORS = ["owner", "admin", "member", "guest", "server"]

# fmt: off
# Owner or admin, on a target of lower rank; server; never the owner, nor oneself.
LOWER_RANK_BY_OWNER_OR_ADMIN = """
                owner admin member guest | self
        owner     .     Y     Y      Y   |  .
        admin     .     .     Y      Y   |  .
        member    .     .     .      .   |  .
        guest     .     .     .      .   |  .
        server    .     Y     Y      Y   |  -
"""

SPEC: dict[str, str] = {
    # Rule 3 + decisions: setting role `owner` is 100006 for everyone, server included.
    "role:owner": """
                owner admin member guest | self
        owner     .     .     .      .   |  .
        admin     .     .     .      .   |  .
        member    .     .     .      .   |  .
        guest     .     .     .      .   |  .
        server    .     .     .      .   |  -
    """,
    # Rule 1: only the owner makes admins. Rule 3: not the owner's role, not one's own.
    "role:admin": """
                owner admin member guest | self
        owner     .     Y     Y      Y   |  .
        admin     .     .     .      .   |  .
        member    .     .     .      .   |  .
        guest     .     .     .      .   |  .
        server    .     Y     Y      Y   |  -
    """,
    # Rule 2: owner or admin, on a target of lower rank. Rule 3 as above.
    "role:member": LOWER_RANK_BY_OWNER_OR_ADMIN,
    "role:guest": LOWER_RANK_BY_OWNER_OR_ADMIN,
    # Rule 4: nickname, avatar, custom_info, extension, custom props: themself or higher rank.
    "profile": """
                owner admin member guest | self
        owner     .     Y     Y      Y   |  Y
        admin     .     .     Y      Y   |  Y
        member    .     .     .      Y   |  Y
        guest     .     .     .      .   |  Y
        server    Y     Y     Y      Y   |  -
    """,
    # Rule 5: level only by a higher rank; nobody sets their own.
    "level": """
                owner admin member guest | self
        owner     .     Y     Y      Y   |  .
        admin     .     .     Y      Y   |  .
        member    .     .     .      Y   |  .
        guest     .     .     .      .   |  .
        server    Y     Y     Y      Y   |  -
    """,
    # §4 member.add: owner, admin, member; server. Rule 6: guests cannot invite. Rule 8: adding
    # someone who is already a member (whatever their role, the operator included) is no error.
    "invite": """
                owner admin member guest | self
        owner     Y     Y     Y      Y   |  Y
        admin     Y     Y     Y      Y   |  Y
        member    Y     Y     Y      Y   |  Y
        guest     .     .     .      .   |  .
        server    Y     Y     Y      Y   |  -
    """,
    # §4 member.remove: owner, admin over lower ranks; server. Never the owner (exactly one).
    "remove": LOWER_RANK_BY_OWNER_OR_ADMIN,
    # §4 room.leave: any member but the owner; always about oneself (a server token must name
    # the user as `operator`, decisions.md).
    "leave": """
                owner admin member guest | self
        owner     -     -     -      -   |  .
        admin     -     -     -      -   |  Y
        member    -     -     -      -   |  Y
        guest     -     -     -      -   |  Y
        server    -     -     -      -   |  -
    """,
    # room.dismiss: the owner only; server. No target (see NO_TARGET).
    "dismiss": """
                owner admin member guest | self
        owner     -     -     -      -   |  -
        admin     -     -     -      -   |  -
        member    -     -     -      -   |  -
        guest     -     -     -      -   |  -
        server    -     -     -      -   |  -
    """,
    # room.update: the owner or an admin; server. No target (see NO_TARGET).
    "update_room": """
                owner admin member guest | self
        owner     -     -     -      -   |  -
        admin     -     -     -      -   |  -
        member    -     -     -      -   |  -
        guest     -     -     -      -   |  -
        server    -     -     -      -   |  -
    """,
    # room.transfer: the owner only; server. No target (see NO_TARGET).
    "transfer": """
                owner admin member guest | self
        owner     -     -     -      -   |  -
        admin     -     -     -      -   |  -
        member    -     -     -      -   |  -
        guest     -     -     -      -   |  -
        server    -     -     -      -   |  -
    """,
    # invitation.cancel of anyone's invitation: the owner or an admin; server.
    "cancel_invitation": """
                owner admin member guest | self
        owner     -     -     -      -   |  -
        admin     -     -     -      -   |  -
        member    -     -     -      -   |  -
        guest     -     -     -      -   |  -
        server    -     -     -      -   |  -
    """,
    # invitation.cancel of one's own invitation ("self": the operator sent it): not guests.
    "cancel_own_invitation": """
                owner admin member guest | self
        owner     -     -     -      -   |  Y
        admin     -     -     -      -   |  Y
        member    -     -     -      -   |  Y
        guest     -     -     -      -   |  .
        server    -     -     -      -   |  -
    """,
}
# fmt: on

# An invitee is usually not a member yet: no target role. Only `invite` has that case.
NO_TARGET: dict[str, dict[str, bool]] = {
    "invite": {"owner": True, "admin": True, "member": True, "guest": False, "server": True},
    "dismiss": {"owner": True, "admin": False, "member": False, "guest": False, "server": True},
    "update_room": {"owner": True, "admin": True, "member": False, "guest": False, "server": True},
    "transfer": {"owner": True, "admin": False, "member": False, "guest": False, "server": True},
    "cancel_invitation": {
        "owner": True,
        "admin": True,
        "member": False,
        "guest": False,
        "server": True,
    },
}


def _cases() -> list[tuple[str, str | None, str | None, bool, bool]]:
    cases = []
    for action, grid in SPEC.items():
        lines = [line.split() for line in grid.strip().splitlines()]
        header, rows = lines[0], lines[1:]
        assert header == [*TARGETS, "|", "self"]
        assert [row[0] for row in rows] == OPERATORS
        for row in rows:
            operator, cells = row[0], row[1:]
            assert len(cells) == 6 and cells[4] == "|", row
            op_role = None if operator == "server" else operator
            for target, cell in zip(TARGETS, cells[:4]):
                if cell != "-":
                    cases.append((action, op_role, target, False, cell == "Y"))
            if cells[5] != "-":
                # acting on oneself: the target's role is the operator's own
                cases.append((action, op_role, op_role, True, cells[5] == "Y"))
    for action, expected in NO_TARGET.items():
        for operator, allowed in expected.items():
            op_role = None if operator == "server" else operator
            cases.append((action, op_role, None, False, allowed))
    return cases


CASES = _cases()


def _id(case: tuple[str, str | None, str | None, bool, bool]) -> str:
    action, op_role, target, on_self, _ = case
    return f"{action}-{op_role or 'server'}-{'self' if on_self else target or 'none'}"


def test_the_table_covers_every_action() -> None:
    assert set(SPEC) == set(RULES)
    assert len(CASES) == len({_id(c) for c in CASES})


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_rule(case: tuple[str, str | None, str | None, bool, bool]) -> None:
    action, op_role, target, on_self, expected = case
    assert check(action, op_role, target, on_self=on_self) is expected


@pytest.mark.parametrize("target", [*TARGETS, None])
def test_server_can_never_create_an_owner(target: str | None) -> None:
    assert check("role:owner", None, target) is False


@pytest.mark.parametrize("action", ["role:owner", "role:admin", "role:member", "role:guest"])
def test_server_cannot_touch_the_owners_role(action: str) -> None:
    assert check(action, None, "owner") is False


def test_server_cannot_remove_the_owner() -> None:
    assert check("remove", None, "owner") is False
    for target in ["admin", "member", "guest"]:
        assert check("remove", None, target) is True


def test_nobody_changes_their_own_role() -> None:
    for role in TARGETS:
        for new in TARGETS:
            assert check(f"role:{new}", role, role, on_self=True) is False


def test_ranks() -> None:
    assert RANK == spec.RANK
    assert roles.ALL_ROLES == frozenset(TARGETS)


@pytest.mark.parametrize(
    "name,value,action",
    [
        ("role", "owner", "role:owner"),
        ("role", "admin", "role:admin"),
        ("role", "member", "role:member"),
        ("role", "guest", "role:guest"),
        ("level", 5, "level"),
        ("nickname", "n", "profile"),
        ("avatar", "a", "profile"),
        ("custom_info", "c", "profile"),
        ("extension", "e", "profile"),
        ("score", 1, "profile"),
        ("score", None, "profile"),
    ],
)
def test_action_for_property(name: str, value: object, action: str) -> None:
    assert action_for_property(name, value) == action


def test_rules_json_carries_the_table() -> None:
    import orjson

    table = orjson.loads(roles.rules_json())
    assert table["rank"] == RANK
    assert set(table["rules"]) == set(RULES)
    for action, rule in RULES.items():
        encoded = table["rules"][action]
        assert set(encoded["roles"]) == set(rule.roles)
        assert all(v is True for v in encoded["roles"].values())
        for flag in ("on_self", "outrank", "spare_owner", "nobody"):
            assert encoded[flag] is getattr(rule, flag)
