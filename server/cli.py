"""The `roomhub` command: `serve` a hub node, mint a `token`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from typing import Any

from pydantic import ValidationError

from roomhub.protocol import limits

from . import __version__, logs
from .auth import mint_token
from .settings import Settings


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run a hub node",
        description="Run a hub node. Every flag can also be set as ROOMHUB_<NAME>.",
    )
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8765; 0 = any free port)")
    p.add_argument("--redis", help="redis://HOST:PORT/DB; absent = embedded in-memory store")
    p.add_argument(
        "--app",
        action="append",
        dest="apps",
        metavar="KEY=SECRET",
        help="an app and its token secret (repeatable); env ROOMHUB_APPS=K=S,K2=S2",
    )
    p.add_argument(
        "--allowed-origin",
        action="append",
        dest="allowed_origins",
        metavar="ORIGIN",
        help="allow browser clients from this Origin (repeatable); default: any",
    )
    p.add_argument(
        "--rate-limit",
        type=int,
        help="mutating ops per second per app, across all nodes (200; 0 = off)",
    )
    p.add_argument(
        "--app-rate-limit",
        action="append",
        dest="app_rate_limits",
        metavar="KEY=N",
        help="ceiling for one app, overriding --rate-limit",
    )
    p.add_argument(
        "--conn-rate-limit",
        type=int,
        help="mutating ops per second per user connection (50; 0 = off)",
    )
    p.add_argument("--node-id", help="this node's name in auth replies and logs")
    p.add_argument("--history-max", type=int, help="system messages kept per room (10000)")
    p.add_argument("--max-frame-bytes", type=int, help="largest accepted frame (65536)")
    p.add_argument("--max-room-members", type=int, help="member cap per room (10000)")
    flag = p.add_argument
    flag("--redis-wait", type=float, help="seconds to wait for Redis at startup (0 = fail at once)")
    flag("--min-replicas", type=int, help="replicas each write must reach before its ack (0)")
    flag("--min-replicas-timeout", type=float, help="seconds the replicas may take (1.0)")
    flag("--log-format", choices=["text", "json"], help="text (default) or one JSON object a line")
    flag("--user-rate-limit", type=int, help="mutating ops/s per user, all nodes (50; 0 = off)")
    flag("--max-connections-per-user", type=int, help="per user on this node (16; 0 = off)")
    flag("--max-connections-per-ip", type=int, help="per remote address (1000; 0 = off)")
    flag("--rooms-per-hour", type=int, help="rooms one user may create per hour (100; 0 = off)")
    flag("--member-consent", choices=["add", "invite"], help="add (default) or invite only")
    flag("--max-pending-invitations", type=int, help="per room (1000; 0 = off)")
    flag("--max-pending-invitations-per-inviter", type=int, help="per room (100; 0 = off)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL (INFO)")


def _token_parser(sub: Any) -> None:
    p = sub.add_parser("token", help="print a JWT for a user (or a server token)")
    p.add_argument("--key", required=True, help="the app key the token is for")
    p.add_argument("--secret", required=True, help="the app secret the token is signed with")
    p.add_argument("--user", required=True, help="user id (the token's sub)")
    p.add_argument("--server", action="store_true", help="a server-scope token")
    p.add_argument("--ttl", type=float, default=24 * 3600, help="seconds until it expires")


NEW_FLAGS = (
    "redis_wait",
    "min_replicas",
    "min_replicas_timeout",
    "log_format",
    "user_rate_limit",
    "max_connections_per_user",
    "max_connections_per_ip",
    "rooms_per_hour",
    "member_consent",
    "max_pending_invitations",
    "max_pending_invitations_per_inviter",
)


def _settings(ns: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(ns, name)
        for name in (
            "host",
            "port",
            "redis",
            "apps",
            "allowed_origins",
            "node_id",
            "history_max",
            "max_frame_bytes",
            "max_room_members",
            "rate_limit",
            "app_rate_limits",
            "conn_rate_limit",
            "log_level",
            *NEW_FLAGS,
        )
        if getattr(ns, name, None) is not None
    }
    return Settings(**overrides)


def token_refusal(user: str, ttl: float) -> str | None:
    """Why the server would refuse a token for this user id and ttl (None: it would not), so
    no token is minted that fails only at connect time."""
    if not limits.ID_PATTERN.fullmatch(user):
        return f"--user must be 1-64 characters of [A-Za-z0-9_.@:-], got {user!r}"
    if user.startswith("@"):
        return "--user must not start with '@' (reserved)"
    if not ttl > 0:
        return f"--ttl must be > 0 seconds, got {ttl:g}"
    return None


def settings_error(exc: ValidationError) -> str:
    """One line per invalid setting, without the input values: pydantic's own message echoes
    them, and for the apps that input is every app secret."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        message = str(err["msg"])
        if where.split(".")[0] in ("apps", "app_rate_limits"):
            message = "expected KEY=VALUE items with a valid app key"
        parts.append(f"{where}: {message}")
    return "invalid settings: " + "; ".join(parts)


def _announce(settings: Settings) -> Settings:
    out = sys.stderr
    if settings.embedded:
        print("*" * 72, file=out)
        print("roomhub: EMBEDDED IN-MEMORY STORE — all rooms are lost when this process", file=out)
        print("exits. Use --redis redis://HOST:6379/0 for anything you want to keep.", file=out)
        print("*" * 72, file=out)
    if not settings.apps:
        # hex: a urlsafe secret may start with "-", which the printed command would pass as a flag
        key, secret = "dev", secrets.token_hex(24)
        settings = settings.model_copy(update={"apps": {key: secret}})
        print(f"roomhub: no --app given; created a dev app  key={key}  secret={secret}", file=out)
        # The path this command was started by, so the hint works from a virtualenv too.
        prog = sys.argv[0] if os.path.basename(sys.argv[0]) == "roomhub" else "roomhub"
        print(f"  mint a token:  {prog} token --key {key} --secret {secret} --user alice", file=out)
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roomhub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"roomhub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _token_parser(sub)
    ns = parser.parse_args(argv)
    if ns.command == "token":
        refused = token_refusal(ns.user, ns.ttl)
        if refused:
            print(f"roomhub token: {refused}", file=sys.stderr)
            return 2
        token = mint_token(ns.secret, ns.user, server=ns.server, ttl=ns.ttl)
        print(token)  # stdout holds only the token, for scripts
        print(
            f'first frame: {{"op": "auth", "args": {{"key": "{ns.key}", "token": "<above>"}}}}',
            file=sys.stderr,
        )
        return 0
    try:
        settings = _settings(ns)
    except ValidationError as exc:
        parser.error(settings_error(exc))
    logs.configure(settings.log_level, settings.log_format, settings.apps.values())
    # One line per connection opened and closed is noise at thousands of connections.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)
    settings = _announce(settings)
    from .node import StartupError, serve_forever

    try:
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve_forever(settings))
        else:
            uvloop.run(serve_forever(settings))
    except StartupError as exc:
        print(f"roomhub: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
