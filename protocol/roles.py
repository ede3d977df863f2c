"""Role rules of docs/protocol.md §6 as data, and a pure `check` that reads them.

The same table is handed to the Lua scripts (as JSON) so the rules are written once and
enforced atomically inside Redis; `check` here is the reference the tests compare with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import orjson

Role = Literal["owner", "admin", "member", "guest"]
RANK: dict[str, int] = {"owner": 3, "admin": 2, "member": 1, "guest": 0}
ALL_ROLES: frozenset[str] = frozenset(RANK)
SERVER = "@server"  # the operator of server-token calls without `operator`: not rule-checked


@dataclass(frozen=True)
class Rule:
    """Who may perform an action.

    roles: operator roles allowed at all.
    on_self: whether the operator may do it to themself.
    outrank: the operator must rank strictly above the target (when acting on another).
    spare_owner: the owner is never a valid target, not even for an unchecked server call.
    """

    roles: frozenset[str]
    on_self: bool
    outrank: bool
    spare_owner: bool = False
    nobody: bool = False  # not even an unchecked server call (keeps exactly one owner)


_STAFF = frozenset({"owner", "admin"})

RULES: dict[str, Rule] = {
    # 1. Only the owner may make someone admin; 2. owner/admin set member/guest on lower ranks;
    # 3. nobody changes the owner's role or their own; exactly one owner.
    "role:owner": Rule(frozenset(), on_self=False, outrank=True, spare_owner=True, nobody=True),
    "role:admin": Rule(frozenset({"owner"}), on_self=False, outrank=True, spare_owner=True),
    "role:member": Rule(_STAFF, on_self=False, outrank=True, spare_owner=True),
    "role:guest": Rule(_STAFF, on_self=False, outrank=True, spare_owner=True),
    # 4. profile fields and custom props: the member themself or a higher rank.
    "profile": Rule(ALL_ROLES, on_self=True, outrank=True),
    # 5. level: only a higher rank; a member cannot raise their own level.
    "level": Rule(ALL_ROLES, on_self=False, outrank=True),
    # 6. guests cannot invite.
    "invite": Rule(frozenset({"owner", "admin", "member"}), on_self=True, outrank=False),
    "remove": Rule(_STAFF, on_self=False, outrank=True, spare_owner=True),
    "leave": Rule(frozenset({"admin", "member", "guest"}), on_self=True, outrank=False),
    # room.update (name, custom props): the owner or an admin (no target).
    "update_room": Rule(_STAFF, on_self=False, outrank=False),
    # room.transfer: the owner only (checked with no target); a server call is unchecked.
    "transfer": Rule(frozenset({"owner"}), on_self=False, outrank=False),
    # invitation.cancel: owner and admins any invitation; the inviter their own ("self": the
    # operator sent it), guests none.
    "cancel_invitation": Rule(_STAFF, on_self=False, outrank=False),
    "cancel_own_invitation": Rule(
        frozenset({"owner", "admin", "member"}), on_self=True, outrank=False
    ),
    # room.dismiss: the owner only (checked with no target); a server call is unchecked.
    "dismiss": Rule(frozenset({"owner"}), on_self=False, outrank=False),
}


def action_for_property(name: str, value: object = None) -> str:
    """The rule that governs setting one member.update property."""
    if name == "role":
        return f"role:{value}"
    if name == "level":
        return "level"
    return "profile"


def check(
    action: str,
    operator_role: str | None,
    target_role: str | None = None,
    *,
    on_self: bool = False,
) -> bool:
    """May an operator of `operator_role` do `action` to a target of `target_role`?

    operator_role None means an unchecked server call: only `spare_owner` binds it.
    """
    rule = RULES[action]
    if rule.spare_owner and target_role == "owner":
        return False
    if rule.nobody:
        return False
    if operator_role is None:
        return True
    if operator_role not in rule.roles:
        return False
    if on_self:
        return rule.on_self
    if rule.outrank and target_role is not None:
        return RANK[operator_role] > RANK[target_role]
    return True


def rules_json() -> bytes:
    """The table as JSON for the Lua prelude."""
    table = {
        action: {**asdict(rule), "roles": {role: True for role in sorted(rule.roles)}}
        for action, rule in RULES.items()
    }
    return orjson.dumps({"rules": table, "rank": RANK}, option=orjson.OPT_SORT_KEYS)
