"""Property-based contract testing of the server API (docs/http.md) with schemathesis: a real
`roomhub serve` process, its OpenAPI document loaded from its own URL, every operation fed
generated requests, valid ones and invalid ones, with a server token and with a user token.
Every reply must pass schemathesis's default checks: no 5xx, and status, content type, headers
and body as the document says; valid requests not refused as invalid, invalid ones refused.

One test per operation and generation mode, from the operation's own hypothesis strategy
(`APIOperation.as_strategy`): `schemathesis.pytest.from_fixture` cannot run on pytest >= 9.2
(it sets `Function._nodeid`, which pytest no longer has). Bounded: a few examples each, no
deadline, no example database (CI runs on a clean clone).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NotSet

from roomhub.protocol.codec import to_json_value
from roomhub.protocol.limits import IDEMPOTENCY_KEY_PATTERN, MAX_NESTING, PROP_VALUE_MAX_BYTES
from roomhub.protocol.models import BUILTIN_PROPERTIES, USER_ID_PATTERN
from roomhub.server.openapi import served_ops

from ..support import APP, SECRET, free_port, token
from .test_cli import Serve

EXAMPLES = 20  # per operation and mode: the module runs in about half a minute
OWNER, MEMBER, INVITEE = "alice", "bob", "carol"
USERS = (OWNER, MEMBER, INVITEE, "dave")
# 429s would be valid replies, but they would hide everything else.
UNLIMITED = [
    *("--rate-limit", "0", "--conn-rate-limit", "0"),
    *("--user-rate-limit", "0", "--rooms-per-hour", "0"),
]
OPS = [spec.name for spec in served_ops()]
# Generated requests go to every op but room.watch, whose stream ends only with its room
# (tests/integration/test_watch.py reads it).
CALLED = [spec.name for spec in served_ops() if not spec.stream]
# What a server token must name for an op: the user it acts as (server/service.py
# acting_user), a new room's owner.
MUST_NAME = {
    "room.list": "operator",
    "room.leave": "operator",
    "invitation.accept": "operator",
    "invitation.decline": "operator",
    "room.create": "owner",
}
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),  # real HTTP calls are "too slow" for it
)


def _headers(bearer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer}", "X-Roomhub-Key": APP}


SERVER = _headers(token("backend", server=True))
USER = _headers(token(OWNER))


class Hub:
    """One `roomhub serve` (embedded store) and an HTTP client of its server API."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = httpx.Client(base_url=f"{base}/api/v1", headers=SERVER, timeout=10)
        self._rooms = 0

    def call(self, op: str, args: dict[str, Any]) -> Any:
        reply = self.client.post(f"/{op}", json=args)
        assert reply.status_code == 200, reply.text
        return reply.json()["result"]

    def room(self) -> str:
        """A new room: OWNER owns it, MEMBER is in it, INVITEE is invited to it."""
        self._rooms += 1
        room = f"contract-{self._rooms}"
        self.call("room.create", {"room": room, "owner": OWNER, "members": [MEMBER]})
        self.call("member.add", {"room": room, "invitees": [INVITEE], "invitation_required": True})
        return room


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    http_port = free_port()
    node = Serve(
        "--app", f"{APP}={SECRET}", "--http-port", str(http_port), *UNLIMITED, port=free_port()
    )
    try:
        node.wait_ready()
        hub = Hub(f"http://127.0.0.1:{http_port}")
        for user in USERS:
            hub.call("user.upsert", {"id": user})
        yield hub
        hub.client.close()
    finally:
        node.stop()


def _load(hub: Hub, mode: GenerationMode) -> Any:
    # JSON Schema's maxLength counts characters, the protocol's limits count UTF-8 bytes (the
    # document says so): a valid string of non-ASCII characters can be too many bytes, so
    # valid requests are made of ASCII; invalid ones of any characters.
    codec = "ascii" if mode is GenerationMode.POSITIVE else "utf-8"
    config = schemathesis.Config.from_dict({"generation": {"codec": codec}})
    return schemathesis.openapi.from_url(f"{hub.base}/api/v1/openapi.json", config=config)


@pytest.fixture(scope="module")
def schemas(hub: Hub) -> dict[GenerationMode, Any]:
    """The document as the hub serves it, for each mode."""
    return {mode: _load(hub, mode) for mode in MODES}


def test_every_op_is_in_the_document(schemas: dict[GenerationMode, Any]) -> None:
    paths = {op.ok().path for op in schemas[GenerationMode.POSITIVE].get_all_operations()}
    assert paths == {f"/api/v1/{op}" for op in OPS}


def _integral(value: Any) -> Any:
    """JSON Schema counts 1.0 as an integer; the protocol's ints are strict (no 1.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _ok(pattern: str, value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def _token_rules(case: Any, server: bool, user: str | None = None) -> Any:
    """A case made to keep the rules that no schema can state, as they depend on the token
    (docs/http.md): server tokens name the user that accept, decline, leave and list act as,
    and a room.create's owner; only server tokens pass `operator` or an owner. And an
    idempotency key is not reused for other args, and the header and the body's key agree.
    Only valid values are touched: an invalid one may be what a negative case is about."""
    op = case.operation.definition.raw["operationId"]
    body = case.body
    needs = MUST_NAME.get(op) if server else None
    if not isinstance(body, dict):
        if needs is None or not isinstance(body, NotSet):
            return case  # no object (e.g. null): a negative case
        body, case.media_type = {}, "application/json"  # no body: the op's args are {}
    if needs is not None and body.get(needs) is None:
        body[needs] = user or OWNER
    if not server:
        for field in ("operator", "owner"):
            if _ok(USER_ID_PATTERN, body.get(field)):
                del body[field]
    headers = case.headers or {}
    key = uuid.uuid4().hex
    if _ok(IDEMPOTENCY_KEY_PATTERN.pattern, body.get("idempotency_key")):
        body["idempotency_key"] = key
    if _ok(IDEMPOTENCY_KEY_PATTERN.pattern, headers.get("Idempotency-Key")):
        headers["Idempotency-Key"] = key
    case.body = body
    return case


# The custom props of a valid case: at most one set per case, so one room's examples stay under
# the 32 props a member or a room holds; a value JSON Schema cannot bound (over 1 KiB, deeper
# than 32, an int beyond 64 bits) becomes null (a removal, always valid), or 0 on a new room
# (room.create: nothing to remove).
PROP_MAPS = {"member.update": "properties", "room.update": "custom", "room.create": "custom"}
SETS_PER_CASE = 1


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _within_prop_limits(op: str, body: dict[str, Any]) -> None:
    props = body.get(PROP_MAPS.get(op, ""))
    if not isinstance(props, dict):
        return
    sets = 0
    for name, value in props.items():
        if op != "room.create" and (name in BUILTIN_PROPERTIES or value is None):
            continue
        try:  # orjson (the server's encoder) refuses ints beyond 64 bits, as the server does
            fits = len(to_json_value(value)) <= PROP_VALUE_MAX_BYTES
        except TypeError:
            fits = False
        fits = fits and _depth(value) <= MAX_NESTING
        if op == "room.create":
            props[name] = value if fits and value is not None else 0
        elif fits and sets < SETS_PER_CASE:
            sets += 1
        else:
            props[name] = None


def _seeded(case: Any, room: str, picks: dict[str, Any], server: bool) -> Any:
    """A valid case that sometimes names the room and users that exist (else nearly every
    request would only meet 404), and has no 1.0 for an int: JSON Schema counts it as an
    integer, the protocol's ints are strict."""
    if isinstance(case.body, dict):
        case.body = _integral(case.body)
        _within_prop_limits(case.operation.definition.raw["operationId"], case.body)
        for field, pick in picks.items():
            if pick is not None and field in case.body:
                case.body[field] = room if field == "room" else pick
    return _token_rules(case, server, picks["user"])


def _run(hub: Hub, schemas: Any, op: str, mode: GenerationMode, server: bool) -> None:
    operation = schemas[mode].find_operation_by_id(op)
    room = hub.room()
    strategy = operation.as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        maybe_user = st.none() | st.sampled_from(USERS)
        picks = st.fixed_dictionaries(
            {"room": st.none() | st.just(room), "user": maybe_user, "to": maybe_user}
        )
        strategy = st.builds(_seeded, strategy, st.just(room), picks, st.just(server))
    else:
        strategy = strategy.map(lambda case: _token_rules(case, server))

    @given(case=strategy)
    @BOUNDED
    def check(case: Any) -> None:
        case.call_and_validate(headers=SERVER if server else USER)

    check()


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("op", CALLED)
def test_server_token(hub: Hub, schemas: Any, op: str, mode: GenerationMode) -> None:
    _run(hub, schemas, op, mode, server=True)


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("op", CALLED)
def test_user_token(hub: Hub, schemas: Any, op: str, mode: GenerationMode) -> None:
    _run(hub, schemas, op, mode, server=False)
