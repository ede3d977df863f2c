"""The one settings object: CLI flags over ROOMHUB_* environment variables over a TOML config
file over defaults.

Each field is one setting: its `description` is its help text, and `roomhub serve` derives a
flag for it (`--field-name`, or what its `Cli` marker says); see `cli.serve_flags`. In the config
file (`Settings.load`) each is a key of `[server]` by its field name, except the apps: one
`[apps.KEY]` table each, with its `secret`, optional `rate_limit` and optional vendor tables
(`[apps.KEY.imkit]`, `.tencent`, `.netease`: server/credentials.py)."""

from __future__ import annotations

import difflib
import os
import secrets
import socket
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from roomhub.protocol import limits

from .credentials import MODELS, VENDORS, AppDialects, duplicates, secrets_of

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Cli:
    """How a setting is spelt on the command line where the derived spelling does not fit: its
    `flag` (else `--field-name`), its `metavar` (else one from its type) and the default that
    help and docs show (else the model's)."""

    flag: str | None = None
    metavar: str | None = None
    shown_default: str | None = None


@dataclass(frozen=True)
class NoFlag:
    """A setting with no `roomhub serve` flag, only its config-file tables and its ROOMHUB_*
    variable (JSON); `cli.serve_flags` skips it. `why` says why, for the docs."""

    why: str


def parse_apps(value: Any) -> dict[str, str]:
    """`KEY=VALUE` items (a list, or one comma-separated string) into {key: value}. An error
    names the item by its position only: the item holds a secret."""
    if isinstance(value, dict):
        items = [f"{k}={v}" for k, v in value.items()]
    elif isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    else:
        items = list(value or [])
    apps: dict[str, str] = {}
    for n, item in enumerate(items, 1):
        key, sep, secret = item.strip().partition("=")
        if not sep or not secret:
            raise ValueError(f"item {n}: expected KEY=VALUE")
        if not limits.APP_KEY_PATTERN.fullmatch(key):
            raise ValueError(f"item {n}: the key must be 1-64 characters of [A-Za-z0-9_-]")
        apps[key] = secret
    return apps


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


# Comma-separated in the environment, one flag occurrence per item on the command line.
KeyValues = Annotated[dict[str, str], NoDecode]
Off = Annotated[int, Field(ge=0)]  # a cap or a rate; 0 = off
AtLeast1 = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """Each field's docstring is its description: the help of its flag."""

    model_config = SettingsConfigDict(
        env_prefix="ROOMHUB_", frozen=True, extra="forbid", use_attribute_docstrings=True
    )

    host: str = "127.0.0.1"
    """interface to listen on; 0.0.0.0 accepts remote clients"""
    port: Annotated[int, Field(ge=0, le=65535), Cli(metavar="PORT")] = 8765
    """TCP port; 0 = any free port, which is logged"""
    http_host: Annotated[str | None, Cli(metavar="HOST", shown_default="the --host")] = None
    """interface of the HTTP side (health, readiness, metrics); unset = the --host"""
    http_port: Annotated[int, Field(ge=0, le=65535), Cli(metavar="PORT")] = 8766
    """TCP port of the HTTP side, an operator port to keep internal; 0 = any free port"""
    reuse_port: Annotated[bool, Cli(metavar="BOOL")] = False
    """bind both ports with SO_REUSEPORT so nodes on one machine share them (--workers sets it)"""
    metrics: Annotated[bool, Cli(metavar="BOOL")] = True
    """count the Prometheus metrics served on the HTTP side's /metrics; false = off"""
    workers: Annotated[int, Field(ge=1), Cli(metavar="N")] = 1
    """worker processes sharing the ports, each a full node; auto = one per CPU"""
    redis: Annotated[str | None, Cli(metavar="URL", shown_default="unset")] = None
    """a redis://, rediss://, unix:// or redis+cluster://H1:P1,H2:P2 URL; unset = in-memory store"""
    apps: Annotated[KeyValues, Cli(flag="--app", metavar="KEY=SECRET", shown_default="none")] = (
        Field(default_factory=dict)
    )
    """an app and its HS256 token secret; with none, a dev app is made and its secret printed"""
    allowed_origins: Annotated[
        list[str], NoDecode, Cli(flag="--allowed-origin", metavar="ORIGIN", shown_default="any")
    ] = Field(default_factory=list)
    """a browser Origin allowed to connect"""
    node_id: Annotated[str, Cli(metavar="ID", shown_default="<hostname>-<pid>-<4 hex>")] = Field(
        default_factory=default_node_id
    )
    """this node's name in auth replies, in logs and in its probe channel"""

    rate_limit: Off = 200
    """mutating ops per second per app, across all nodes; 0 = off"""
    app_rate_limits: Annotated[
        dict[str, int],
        NoDecode,
        Cli(flag="--app-rate-limit", metavar="KEY=N", shown_default="none"),
    ] = Field(default_factory=dict)
    """ceiling for one app, overriding --rate-limit; KEY=0 = off for that app"""
    dialects: Annotated[
        dict[str, AppDialects],
        NoFlag(
            "nested tables of secrets: a flag would put them in argv, which every local user"
            " can read (/proc/PID/cmdline), and KEY=VALUE cannot spell them"
        ),
    ] = Field(default_factory=dict)
    """each app's vendor credentials ([apps.KEY.imkit|tencent|netease]; env: JSON by app key)"""
    conn_rate_limit: Off = 50
    """mutating ops per second per user connection; 0 = off"""
    max_frame_bytes: Annotated[int, Field(ge=1024)] = limits.DEFAULT_MAX_FRAME_BYTES
    """largest accepted client frame in bytes; a bigger one gets close 1009"""
    auth_timeout: Seconds = 10.0
    """seconds a new connection has to auth before close 4401"""
    history_max: AtLeast1 = 10_000
    """system messages kept per room; bounds how far resume reaches"""
    max_room_members: Annotated[int, Field(ge=2)] = 10_000
    """member cap of a group room; a direct room's is always 2"""
    send_buffer_limit: Annotated[int, Field(ge=64 * 1024)] = 4 * 1024 * 1024
    """unsent bytes per connection before it is dropped as a slow consumer, closed with 4008"""
    max_inflight: AtLeast1 = 64
    """requests one connection may have running; past that, the node stops reading from it"""
    # None (code only, e.g. tests): no keepalive pings.
    ping_interval: Annotated[float | None, Field(gt=0)] = 20.0
    """seconds between WebSocket pings to each client"""
    ping_timeout: Annotated[float | None, Field(gt=0)] = 20.0
    """seconds to wait for the pong before close 1011"""
    pubsub_probe_interval: Seconds = 5.0
    """seconds between self-probes of the pub/sub connections"""
    presence: Annotated[bool, Cli(metavar="BOOL")] = True
    """track who is online (room.presence, presence events); false = off, on every node"""
    presence_heartbeat: Seconds = 5.0
    """seconds between presence heartbeats; a node that dies is offline within three"""
    redis_pool_size: AtLeast1 = 64
    """Redis connections for commands, per cluster node"""
    redis_timeout: Seconds = 5.0
    """seconds before a Redis call fails; the client gets 100001"""
    redis_wait: Annotated[float, Field(ge=0)] = 0.0
    """seconds to retry Redis at startup; 0 = fail at once"""
    # Durability: an op is acknowledged only once its write reached this many replicas.
    min_replicas: Off = 0
    """replicas each write must reach (Redis WAIT) before its ack; 0 = off"""
    min_replicas_timeout: Seconds = 1.0
    """seconds that WAIT may take, else the op fails with 100001"""

    log_level: Annotated[str, Cli(metavar="LEVEL")] = "INFO"
    """DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case"""
    log_format: Literal["text", "json"] = "text"
    """text, or json: one JSON object per line"""

    # Fairness and quotas (hostile clients).
    user_rate_limit: Off = 50
    """mutating ops per second per user, all connections and nodes; 0 = off"""
    max_connections_per_user: Off = 16
    """connections one user may hold on this node; 0 = off"""
    max_connections_per_ip: Off = 1000
    """connections from one remote address on this node; 0 = off"""
    rooms_per_hour: Off = 100
    """rooms one user may create per hour; 0 = off"""
    max_pending_invitations: Off = 1000
    """pending invitations per room; 0 = off"""
    max_pending_invitations_per_inviter: Off = 100
    """pending invitations one inviter may have in a room; 0 = off"""
    member_consent: Literal["add", "invite"] = "add"
    """add: users may add others directly (v1); invite: they must invite"""
    resume_max_messages: AtLeast1 = 1000
    """messages replayed per room on resume; more behind = resync"""
    resume_max_total: AtLeast1 = 10_000
    """messages replayed per auth, all rooms together"""
    idempotency_keys_per_room: AtLeast1 = 10_000
    """idempotency-key outcomes kept per room; the oldest go first"""

    @field_validator("apps", mode="before")
    @classmethod
    def _apps(cls, value: Any) -> dict[str, str]:
        return parse_apps(value)

    @field_validator("app_rate_limits", mode="before")
    @classmethod
    def _app_rates(cls, value: Any) -> dict[str, int]:
        rates = {}
        for key, rate in parse_apps(value).items():
            try:
                rates[key] = int(rate)
            except ValueError:
                rates[key] = -1
            if rates[key] < 0:
                raise ValueError(f"the ceiling of app {key!r} must be a whole number >= 0")
        return rates

    def ceiling(self, app: str) -> int:
        return self.app_rate_limits.get(app, self.rate_limit)

    @field_validator("dialects", mode="after")
    @classmethod
    def _dialects(cls, value: dict[str, AppDialects]) -> dict[str, AppDialects]:
        if (problem := duplicates(value)) is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _dialects_of_apps(self) -> Settings:
        strays = sorted(set(self.dialects) - set(self.apps))
        if strays:
            raise ValueError(
                f"vendor credentials for {', '.join(map(repr, strays))}, which is not an app"
                " (an --app or ROOMHUB_APPS replaces every app of the config file, not its"
                " vendor tables: give ROOMHUB_DIALECTS too)"
            )
        return self

    def secrets(self) -> list[str]:
        """Every secret of the settings (apps' and vendors'), for the logs' redaction."""
        return [*self.apps.values(), *secrets_of(self.dialects)]

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return list(value or [])

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Any:
        return (os.cpu_count() or 1) if str(value).strip().lower() == "auto" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> str:
        level = str(value).upper()
        if level not in LOG_LEVELS:
            raise ValueError("must be " + ", ".join(LOG_LEVELS[:-1]) + f" or {LOG_LEVELS[-1]}")
        return level

    @property
    def embedded(self) -> bool:
        return self.redis is None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (the init values) over the environment over the config file, if one is being
        loaded (`load`), over the defaults."""
        path = _config_file.get()
        if path == "values only":
            return (init_settings,)
        file = (ConfigFileSource(settings_cls, path),) if path is not None else ()
        return init_settings, env_settings, dotenv_settings, *file, file_secret_settings

    @classmethod
    def load(cls, config_file: str | os.PathLike[str] | None = None, **values: Any) -> Settings:
        """The settings from `values` (the flags) over the environment over `config_file`.
        Raises ConfigFileError for anything wrong in the file, ValidationError for the rest."""
        with _reading(Path(config_file) if config_file is not None else None):
            return cls(**values)


# The ONE place the file of the `Settings.load` under way is kept: sources are built by class.
# "values only": validating the file's values alone, without the environment.
_config_file: ContextVar[Path | Literal["values only"] | None] = ContextVar(
    "roomhub_config_file", default=None
)
SECTIONS = ("server", "apps")
APP_KEYS = ("secret", "rate_limit", *VENDORS)
# Settings that are not [server] keys: they come from the [apps.KEY] tables.
FROM_APP_TABLES = ("apps", "app_rate_limits", "dialects")


class ConfigFileError(Exception):
    """The config file is missing, unreadable, not TOML, or holds an unknown key or a bad value.
    The message names the file and the key, never a value (it may be a secret)."""


@contextmanager
def _reading(path: Path | Literal["values only"] | None) -> Iterator[None]:
    token = _config_file.set(path)
    try:
        yield
    finally:
        _config_file.reset(token)


class ConfigFileSource(TomlConfigSettingsSource):
    """pydantic-settings' TOML source, reading roomhub's schema: `[server]` keys are settings by
    name, each `[apps.KEY]` table an app (into `apps` and `app_rate_limits`). The file's values
    are validated on their own first, so a bad one is reported as the file's."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path) -> None:
        try:
            with open(toml_file, "rb"):
                pass
        except OSError as exc:
            raise ConfigFileError(f"config file {toml_file}: cannot read: {exc.strerror}") from None
        self.path = toml_file
        super().__init__(settings_cls, toml_file)

    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        try:
            with open(file_path, "rb") as f:
                raw = tomllib.load(f)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise self.error(f"not valid TOML: {exc}") from None
        except OSError as exc:
            raise self.error(f"cannot read: {exc.strerror}") from None
        values = self.flatten(raw)
        try:
            with _reading("values only"):
                Settings(**values)
        except ValidationError as exc:
            raise self.error(self.invalid(exc)) from None
        return values

    def error(self, detail: str) -> ConfigFileError:
        return ConfigFileError(f"config file {self.path}: {detail}")

    def unknown(self, key: str, known: Any) -> ConfigFileError:
        *table, last = key.split(".")
        near = difflib.get_close_matches(last, list(known), n=1)
        hint = f" (did you mean {'.'.join([*table, near[0]])}?)" if near else ""
        return self.error(f"unknown key {key}{hint}")

    def flatten(self, raw: dict[str, Any]) -> dict[str, Any]:
        for key in raw:
            if key not in SECTIONS:
                raise self.unknown(key, SECTIONS)
        server, apps = raw.get("server", {}), raw.get("apps", {})
        if not isinstance(server, dict) or not isinstance(apps, dict):
            raise self.error("server and apps must be tables ([server], [apps.KEY])")
        fields = [name for name in Settings.model_fields if name not in FROM_APP_TABLES]
        for key in server:
            if key in FROM_APP_TABLES:
                raise self.error(f"server.{key}: apps are [apps.KEY] tables, not a server key")
            if key not in fields:
                raise self.unknown(f"server.{key}", fields)
        values = dict(server)
        secrets_, rates, dialects = {}, {}, {}
        for app, table in apps.items():
            where = f"apps.{app}" if limits.APP_KEY_PATTERN.fullmatch(app) else f"apps.{app!r}"
            if where != f"apps.{app}":
                raise self.error(f"{where}: an app key must be 1-64 characters of [A-Za-z0-9_-]")
            if not isinstance(table, dict):
                raise self.error(f"{where}: must be a table with a secret")
            for key in table:
                if key not in APP_KEYS:
                    raise self.unknown(f"{where}.{key}", APP_KEYS)
            secret, rate = table.get("secret"), table.get("rate_limit")
            if not isinstance(secret, str) or not secret:
                raise self.error(f"{where}.secret: required, a non-empty string")
            secrets_[app] = secret
            if rate is not None:
                if type(rate) is not int or rate < 0:
                    raise self.error(f"{where}.rate_limit: must be a whole number >= 0")
                rates[app] = rate
            vendors = {vendor: table[vendor] for vendor in VENDORS if vendor in table}
            for vendor, creds in vendors.items():
                if not isinstance(creds, dict):
                    raise self.error(f"{where}.{vendor}: must be a table ([{where}.{vendor}])")
                fields = list(MODELS[vendor].model_fields)
                for key in creds:
                    if key not in fields:
                        raise self.unknown(f"{where}.{vendor}.{key}", fields)
            if vendors:
                dialects[app] = vendors
        if secrets_:
            values["apps"] = secrets_
        if rates:
            values["app_rate_limits"] = rates
        if dialects:
            values["dialects"] = dialects
        return values

    @staticmethod
    def invalid(exc: ValidationError) -> str:
        """Each error by its key in the file, without the input (pydantic's message echoes it)."""
        parts = []
        for err in exc.errors(include_input=False, include_url=False, include_context=False):
            loc = [str(part) for part in err["loc"]]
            where = "server." + ".".join(loc) if loc else "server"
            message = str(err["msg"]).removeprefix("Value error, ")
            if loc[:1] == ["dialects"]:  # dialects.APP.VENDOR.KEY is apps.APP.VENDOR.KEY
                if len(loc) == 1:  # a check across apps: its message names the keys
                    parts.append(message)
                    continue
                where = ".".join(["apps", *loc[1:]])
            elif loc and loc[0] in FROM_APP_TABLES:
                where = "apps"
            parts.append(f"{where}: {message}")
        return "; ".join(parts)
