"""The `roomhub` command: `serve` a hub node, mint a `token`, `config check` or `example`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from roomhub.protocol import limits

from . import __version__, config, logs
from .auth import mint_token
from .settings import Cli, ConfigFileError, NoFlag, Settings

CONFIG_ENV = "ROOMHUB_CONFIG"

METAVARS: dict[Any, str] = {int: "N", float: "SECONDS"}
SIGNS = {"ge": ">=", "gt": ">", "le": "<="}


@dataclass(frozen=True)
class Flag:
    """One `roomhub serve` flag, derived from one `Settings` field."""

    field: str
    flag: str
    env: str
    metavar: str
    repeatable: bool  # one occurrence per item; any occurrence replaces the environment's list
    choices: tuple[str, ...] | None
    default: str  # as help and the docs show it
    help: str


def _bare(annotation: Any) -> Any:
    """The type a flag's value becomes: `float | None` is a float (None is for code only)."""
    if get_origin(annotation) in (Union, types.UnionType):
        (kind,) = [arg for arg in get_args(annotation) if arg is not type(None)]
        return kind
    return annotation


def _bounds(metadata: list[Any]) -> list[str]:
    """A field's numeric bounds as help shows them: `0..65535`, `>= 1`, `> 0`."""
    found = {op: getattr(m, op) for m in metadata for op in SIGNS if hasattr(m, op)}
    if "ge" in found and "le" in found:
        return [f"{found['ge']}..{found['le']}"]
    return [f"{SIGNS[op]} {value}" for op, value in found.items()]


def _flag(name: str, info: FieldInfo) -> Flag:
    cli = next((m for m in info.metadata if isinstance(m, Cli)), Cli())
    kind = _bare(info.annotation)
    repeatable = get_origin(kind) in (list, dict)
    choices = get_args(kind) if get_origin(kind) is Literal else None
    metavar = cli.metavar or (
        "{" + ",".join(choices) + "}" if choices else METAVARS.get(kind, name.upper())
    )
    if not info.description:
        raise TypeError(f"Settings.{name} has no description, so its flag has no help")
    if cli.shown_default is not None:
        default = cli.shown_default
    elif info.default_factory is not None:
        raise TypeError(f"Settings.{name} has a default factory: give it Cli(shown_default=...)")
    else:
        default = str(info.default)
    env = Settings.model_config.get("env_prefix", "") + name.upper()
    notes = ["repeatable"] if repeatable else []
    notes += [
        *_bounds(info.metadata),
        f"default {default}",
        f"env {env}" + (", comma-separated" * repeatable),
    ]
    return Flag(
        field=name,
        flag=cli.flag or "--" + name.replace("_", "-"),
        env=env,
        metavar=metavar,
        repeatable=repeatable,
        choices=choices,
        default=default,
        help=f"{' '.join(info.description.split())} ({'; '.join(notes)})".replace("%", "%%"),
    )


def serve_flags() -> list[Flag]:
    """A flag for every setting but the `NoFlag` ones, in the order `Settings` declares them."""
    return [
        _flag(name, info)
        for name, info in Settings.model_fields.items()
        if not any(isinstance(m, NoFlag) for m in info.metadata)
    ]


def serve_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run a hub node",
        usage="%(prog)s [--FLAG VALUE]...",
        description="Run a hub node. Each setting is taken from its flag if given, else from"
        " its ROOMHUB_* environment variable, else from the config file, else from its default.",
    )
    p.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"a TOML config file: [server] settings by name, [apps.KEY] tables (env {CONFIG_ENV})",
    )
    for flag in serve_flags():
        p.add_argument(
            flag.flag,
            dest=flag.field,
            metavar=flag.metavar,
            choices=flag.choices,
            action="append" if flag.repeatable else "store",
            default=argparse.SUPPRESS,  # absent: the environment or the default decides
            help=flag.help,
        )
    return p


def _token_parser(sub: Any) -> None:
    p = sub.add_parser("token", help="print a JWT for a user (or a server token)")
    p.add_argument("--key", required=True, help="the app key the token is for")
    p.add_argument("--secret", required=True, help="the app secret the token is signed with")
    p.add_argument("--user", required=True, help="user id (the token's sub)")
    p.add_argument("--server", action="store_true", help="a server-scope token")
    p.add_argument("--ttl", type=float, default=24 * 3600, help="seconds until it expires")


def _config_parser(sub: Any) -> argparse.ArgumentParser:
    """`config check` and `config example`; the check's parser (for its usage errors)."""
    p = sub.add_parser("config", help="check a config file, or print an example one")
    what = p.add_subparsers(dest="config_command", required=True)
    check = what.add_parser(
        "check",
        help="validate a config file; print the settings it and the environment give",
        description="Validate FILE and print the effective settings (FILE, then the ROOMHUB_*"
        " variables over it, as `roomhub serve` takes them) with secrets redacted. Exit 0 if"
        " valid, 2 if not.",
    )
    check.add_argument("file", metavar="FILE", nargs="?", help=f"default: ${CONFIG_ENV}")
    what.add_parser("example", help="print a commented config file covering every setting")
    return check


def config_file(ns: argparse.Namespace) -> str | None:
    """The config file named by --config (or `config check FILE`), else by ROOMHUB_CONFIG."""
    named = getattr(ns, "config_file", None) or getattr(ns, "file", None)
    return named or os.environ.get(CONFIG_ENV) or None


def settings_from(ns: argparse.Namespace) -> Settings:
    """The flags given (as strings, validated as the environment is) over the environment over
    the config file, if any."""
    return Settings.load(
        config_file(ns),
        **{name: value for name, value in vars(ns).items() if name in Settings.model_fields},
    )


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
    """One line per invalid setting, naming its flag and variable, without the input values:
    pydantic's own message echoes them, and for the apps that input is every app secret."""
    flags = {flag.field: flag for flag in serve_flags()}
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        flag = flags.get(str(err["loc"][0])) if err["loc"] else None
        if flag is not None:
            where += f" ({flag.flag}, {flag.env})"
        parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
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
        host = settings.http_host or settings.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        # The page reads the key and a server token from the fragment (#...), which is never
        # sent in a request, and drops it at once: dev mode only, like the secret above.
        console = mint_token(secret, "console", server=True, ttl=86400)
        url = f"http://{host}:{settings.http_port}/console#key={key}&token={console}"
        print(f"  live console:  {url}", file=out)
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roomhub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"roomhub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = serve_parser(sub)
    _token_parser(sub)
    check = _config_parser(sub)
    ns = parser.parse_args(argv)
    if ns.command == "config":
        return config_command(ns, check)
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
        settings = settings_from(ns)
    except ValidationError as exc:
        serve.error(settings_error(exc))
    except ConfigFileError as exc:
        serve.error(str(exc))
    if settings.workers > 1:
        from .workers import refusal

        if refused := refusal(settings):
            print(f"roomhub: cannot start: {refused}", file=sys.stderr)
            return 2
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    # One line per connection opened and closed is noise at thousands of connections.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)
    settings = _announce(settings)
    if settings.workers > 1:
        from .workers import supervise

        return supervise(settings)
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


def config_command(ns: argparse.Namespace, check: argparse.ArgumentParser) -> int:
    """`config example` prints the example file; `config check` validates a file and prints the
    effective settings (exit 0), or one usage error (exit 2)."""
    if ns.config_command == "example":
        print(config.example(), end="")
        return 0
    path = config_file(ns)
    if path is None:
        check.error(f"no FILE given and {CONFIG_ENV} is not set")
    try:
        settings = Settings.load(path)
    except ValidationError as exc:
        check.error(settings_error(exc))
    except ConfigFileError as exc:
        check.error(str(exc))
    print(config.report(settings, path), end="")
    return 0
