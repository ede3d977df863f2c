"""App keys and JWT (HS256) tokens, docs/protocol.md §3."""

from __future__ import annotations

import time

import jwt

from roomhub.protocol import limits
from roomhub.protocol.errors import ErrorCode, RoomError

from .service import Caller

SERVER_SCOPE = "server"


def mint_token(secret: str, user: str, *, server: bool = False, ttl: float = 3600) -> str:
    claims: dict[str, object] = {"sub": user, "exp": int(time.time() + ttl)}
    if server:
        claims["scope"] = SERVER_SCOPE
    return jwt.encode(claims, secret, algorithm="HS256")


class Authenticator:
    def __init__(self, apps: dict[str, str]) -> None:
        self.apps = apps

    def verify(self, key: str, token: str) -> Caller:
        secret = self.apps.get(key)
        if secret is None:
            raise RoomError(ErrorCode.UNAUTHENTICATED, f"unknown app key '{key}'")
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError:
            raise RoomError(ErrorCode.UNAUTHENTICATED, "token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise RoomError(ErrorCode.UNAUTHENTICATED, f"invalid token: {exc}") from None
        user = claims["sub"]
        scope = claims.get("scope")
        if not isinstance(user, str) or not limits.ID_PATTERN.fullmatch(user):
            raise RoomError(ErrorCode.UNAUTHENTICATED, "token 'sub' is not a valid user id")
        if user.startswith(limits.RESERVED_USER_PREFIX):
            raise RoomError(ErrorCode.UNAUTHENTICATED, "token 'sub' is a reserved id ('@...')")
        if scope not in (None, SERVER_SCOPE):
            raise RoomError(ErrorCode.UNAUTHENTICATED, f"unknown token scope {scope!r}")
        return Caller(app=key, user=user, server=scope == SERVER_SCOPE)
