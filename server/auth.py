"""App keys and JWT (HS256) tokens, docs/protocol.md §3."""

from __future__ import annotations

import time

import jwt

from roomhub.protocol import limits
from roomhub.protocol.errors import ErrorCode, RoomError

from .service import Caller

SERVER_SCOPE = "server"
# How many verified tokens an Authenticator remembers (the oldest goes first).
VERIFIED_TOKENS = 1024


def mint_token(secret: str, user: str, *, server: bool = False, ttl: float = 3600) -> str:
    claims: dict[str, object] = {"sub": user, "exp": int(time.time() + ttl)}
    if server:
        claims["scope"] = SERVER_SCOPE
    return jwt.encode(claims, secret, algorithm="HS256")


class Authenticator:
    """Verifies tokens. A token verified once is remembered until its `exp` (bounded): a
    backend sends the same token with every server API request, and checking it again
    (base64, JSON, HMAC, claims) would cost more than many an op. Only exact, successfully
    verified (key, token) pairs are remembered, so the answer is the same as verifying it."""

    def __init__(self, apps: dict[str, str]) -> None:
        self.apps = apps
        self._verified: dict[tuple[str, str], tuple[Caller, int]] = {}

    def verify(self, key: str, token: str) -> Caller:
        known = self._verified.get((key, token))
        if known is not None:
            if time.time() < known[1]:  # PyJWT's test: expired once now >= exp
                return known[0]
            del self._verified[key, token]
        caller, exp = self._decode(key, token)
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]
        self._verified[key, token] = (caller, exp)
        return caller

    def _decode(self, key: str, token: str) -> tuple[Caller, int]:
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
        return Caller(app=key, user=user, server=scope == SERVER_SCOPE), int(claims["exp"])
