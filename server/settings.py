"""The one settings object: CLI flags over ROOMHUB_* environment variables over defaults."""

from __future__ import annotations

import os
import secrets
import socket
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from roomhub.protocol import limits


def parse_apps(value: Any) -> dict[str, str]:
    """`KEY=VALUE` items (a list, or one comma-separated string) into {key: value}."""
    if isinstance(value, dict):
        items = [f"{k}={v}" for k, v in value.items()]
    elif isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    else:
        items = list(value or [])
    apps: dict[str, str] = {}
    for item in items:
        key, sep, secret = item.strip().partition("=")
        if not sep or not secret:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        if not limits.APP_KEY_PATTERN.fullmatch(key):
            raise ValueError(f"app key {key!r} must be 1-64 characters of [A-Za-z0-9_-]")
        apps[key] = secret
    return apps


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROOMHUB_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    redis: str | None = Field(None, description="redis:// URL; absent = embedded in-memory store")
    apps: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    node_id: str = Field(default_factory=default_node_id)

    rate_limit: int = Field(200, ge=0, description="mutating ops per second per app; 0 = off")
    app_rate_limits: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict, description="per-app ceilings overriding rate_limit"
    )
    conn_rate_limit: int = Field(50, ge=0, description="per user connection; 0 = off")
    max_frame_bytes: int = Field(limits.DEFAULT_MAX_FRAME_BYTES, ge=1024)
    auth_timeout: float = Field(10.0, gt=0)
    history_max: int = Field(10_000, ge=1, description="system messages kept per room")
    max_room_members: int = Field(10_000, ge=2)
    # A connection whose unsent bytes exceed this is a slow consumer and is closed (4008).
    send_buffer_limit: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    max_inflight: int = Field(64, ge=1, description="concurrent requests per connection")
    ping_interval: float | None = Field(20.0, gt=0)
    ping_timeout: float | None = Field(20.0, gt=0)
    pubsub_probe_interval: float = Field(5.0, gt=0, description="seconds between probes")
    redis_pool_size: int = Field(64, ge=1, description="Redis connections for commands")
    redis_timeout: float = Field(5.0, gt=0, description="seconds before a Redis call fails")
    redis_wait: float = Field(0.0, ge=0, description="seconds to wait for Redis at startup")
    # Durability: an op is acknowledged only once its write reached this many replicas.
    min_replicas: int = Field(0, ge=0, description="replicas that must have each write; 0 = off")
    min_replicas_timeout: float = Field(1.0, gt=0, description="seconds WAIT may take")

    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    log_format: Literal["text", "json"] = "text"

    # Fairness and quotas (hostile clients). 0 = off everywhere.
    user_rate_limit: int = Field(50, ge=0, description="per user across connections and nodes")
    max_connections_per_user: int = Field(16, ge=0, description="per user, on this node")
    max_connections_per_ip: int = Field(1000, ge=0, description="per remote address, this node")
    rooms_per_hour: int = Field(100, ge=0, description="rooms one user may create per hour")
    max_pending_invitations: int = Field(1000, ge=0, description="per room")
    max_pending_invitations_per_inviter: int = Field(100, ge=0, description="per room")
    # "add": v1 behaviour, users may add others directly; "invite": users must invite.
    member_consent: Literal["add", "invite"] = "add"
    resume_max_messages: int = Field(1000, ge=1, description="replayed per room on resume")
    resume_max_total: int = Field(10_000, ge=1, description="replayed per auth, all rooms")
    idempotency_keys_per_room: int = Field(10_000, ge=1, description="outcomes kept per room")

    @field_validator("apps", mode="before")
    @classmethod
    def _apps(cls, value: Any) -> dict[str, str]:
        return parse_apps(value)

    @field_validator("app_rate_limits", mode="before")
    @classmethod
    def _app_rates(cls, value: Any) -> dict[str, int]:
        return {key: int(rate) for key, rate in parse_apps(value).items()}

    def ceiling(self, app: str) -> int:
        return self.app_rate_limits.get(app, self.rate_limit)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return list(value or [])

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> str:
        level = str(value).upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}")
        return level

    @property
    def embedded(self) -> bool:
        return self.redis is None
