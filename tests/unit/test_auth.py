"""Token verification: what a remembered token answers is what verifying it would."""

from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest

from roomhub.protocol.errors import ErrorCode, RoomError
from roomhub.server import auth
from roomhub.server.auth import Authenticator, mint_token
from roomhub.server.service import Caller

SECRET = "s" * 32


def test_a_verified_token_is_remembered_until_its_exp(monkeypatch: pytest.MonkeyPatch) -> None:
    checker = Authenticator({"app": SECRET})
    token = mint_token(SECRET, "alice", server=True, ttl=60)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    decoded = []
    real = checker._decode
    monkeypatch.setattr(checker, "_decode", lambda k, t: decoded.append(t) or real(k, t))
    first = checker.verify("app", token)
    assert first == Caller(app="app", user="alice", server=True)
    assert checker.verify("app", token) is first and len(decoded) == 1
    expired = mint_token(SECRET, "alice", ttl=-1)
    # at exp (PyJWT: expired once now >= exp) the memory no longer answers: PyJWT does
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: exp))
    assert checker.verify("app", token) == first and len(decoded) == 2
    with pytest.raises(RoomError) as raised:
        checker.verify("app", expired)
    assert raised.value.code is ErrorCode.UNAUTHENTICATED
    assert ("app", expired) not in checker._verified


def test_only_good_tokens_of_the_right_app_are_remembered() -> None:
    checker = Authenticator({"app": SECRET, "other": "o" * 32})
    token = mint_token(SECRET, "bob")
    assert checker.verify("app", token) == Caller(app="app", user="bob")
    for key, bad in (("other", token), ("nope", token), ("app", token[:-2] + "xx")):
        with pytest.raises(RoomError):
            checker.verify(key, bad)
    assert list(checker._verified) == [("app", token)]


def test_the_memory_is_bounded_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "VERIFIED_TOKENS", 3)
    checker = Authenticator({"app": SECRET})
    exp = int(time.time()) + 60
    tokens = [jwt.encode({"sub": f"u{i}", "exp": exp}, SECRET) for i in range(5)]
    for token in tokens:
        checker.verify("app", token)
    assert [t for _, t in checker._verified] == tokens[2:]
