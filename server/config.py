"""The config file as text: `roomhub config example` (a commented file covering every setting)
and `roomhub config check` (the effective settings, each with where it came from, secrets
redacted). Both are TOML in the schema `Settings.load` reads (see server/settings.py)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from .credentials import VENDORS
from .logs import REDACTED, redact_url
from .settings import FROM_APP_TABLES, ConfigFileSource, Settings

# What the example shows, commented out, for a setting whose default is unset or made per run.
SAMPLES: dict[str, Any] = {
    "http_host": "127.0.0.1",
    "redis": "redis://127.0.0.1:6379/0",
    "allowed_origins": ["https://chat.example.com"],
    "node_id": "node-1",
}
HEADER = """\
# roomhub config file: `roomhub serve --config FILE` (or ROOMHUB_CONFIG=FILE).
# A flag beats its ROOMHUB_* variable, which beats this file, which beats the default.
# [server] takes every `roomhub serve` setting by its name (the flag with '_': --http-port is
# http_port; --allowed-origin is allowed_origins); apps are [apps.KEY] tables. An unknown key
# is an error. `roomhub config check FILE` validates a file and prints what it gives.
"""


# The vendor tables (docs/dialects.md), commented out: each is optional, and a dialect serves
# only the apps that have its table. Indented, so that they are not taken for [apps.acme] keys.
VENDOR_EXAMPLE = [
    "",
    "# optional: the vendors' credentials, for their HTTP dialects (docs/dialects.md); a dialect",
    "# serves only the apps with its table. Secrets: keep them out of version control too.",
    "# [apps.acme.imkit]",
    '#   api_key = "…"                  # IM-API-KEY; IM-CLIENT-KEY is the app key "acme"',
    "# [apps.acme.tencent]",
    "#   sdkappid = 1400000001          # integer, unique across apps",
    '#   secret_key = "…"               # the key UserSigs are signed with',
    '#   admins = ["administrator"]     # identifiers allowed to call',
    "# [apps.acme.netease]",
    '#   app_key = "…"                  # the AppKey header (unique across apps)',
    '#   app_secret = "…"',
]
# A vendor table's secrets, shown as *** by `config check`.
VENDOR_SECRETS = {"api_key", "secret_key", "app_secret"}


def toml_value(value: Any) -> str:
    """A TOML literal: strings as basic strings (JSON's escapes are TOML's), lists inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML literal for {type(value).__name__}")


def server_fields() -> list[str]:
    return [name for name in Settings.model_fields if name not in FROM_APP_TABLES]


def example() -> str:
    """A commented config file covering every setting, at its default (commented out where the
    default is unset), with one app whose secret is fresh and random."""
    lines = [HEADER, "[server]"]
    for name in server_fields():
        info = Settings.model_fields[name]
        lines.append("# " + " ".join(str(info.description).split()))
        if name in SAMPLES:
            lines.append(f"# {name} = {toml_value(SAMPLES[name])}")
        else:
            lines.append(f"{name} = {toml_value(info.default)}")
    lines += [
        "",
        "# One table per app; its name is the app's client key (1-64 of [A-Za-z0-9_-]).",
        "[apps.acme]",
        "# the HS256 secret its tokens are signed with (fresh and random here): keep it out of",
        "# version control, or give the apps with ROOMHUB_APPS / --app instead (they replace",
        "# every app of the file)",
        f"secret = {toml_value(secrets.token_hex(32))}",
        "# optional: mutating ops per second for this app, overriding server.rate_limit; 0 = off",
        f"rate_limit = {Settings.model_fields['rate_limit'].default}",
        *VENDOR_EXAMPLE,
    ]
    return "\n".join(lines) + "\n"


def origins(settings: Settings, config_file: str | None) -> dict[str, str]:
    """Where each setting came from: "env", "file" or "default" (no flags in `config check`)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    environment = {name.upper() for name in os.environ}
    from_file: set[str] = set()
    if config_file is not None:
        from_file = set(ConfigFileSource(Settings, Path(config_file))())
    where = {}
    for name in Settings.model_fields:
        if (prefix + name).upper() in environment:
            where[name] = "env"
        elif name in from_file:
            where[name] = "file"
        else:
            where[name] = "default"
    return where


def report(settings: Settings, config_file: str | None) -> str:
    """The effective settings as TOML, each line with its origin; app secrets and Redis
    credentials shown as ***."""
    where = origins(settings, config_file)
    lines = [
        f"# roomhub config check: {config_file} is valid. The settings `roomhub serve` takes from",
        "# it and the environment (flags would override them); secrets are shown as ***.",
        "[server]",
    ]
    for name in server_fields():
        value = getattr(settings, name)
        if name == "redis" and value is not None:
            value = redact_url(value)
        if value is None:
            lines.append(f"# {name}: unset  # {where[name]}")
        elif name == "node_id" and where[name] == "default":
            lines.append(f"# {name}: <hostname>-<pid>-<4 hex>, new per process  # default")
        else:
            lines.append(f"{name} = {toml_value(value)}  # {where[name]}")
    for app in settings.apps:
        lines += ["", f"[apps.{app}]", f"secret = {toml_value(REDACTED)}  # {where['apps']}"]
        rate = settings.app_rate_limits.get(app)
        if rate is not None:
            lines.append(f"rate_limit = {rate}  # {where['app_rate_limits']}")
        creds = settings.dialects.get(app)
        for vendor in VENDORS if creds is not None else ():
            table = getattr(creds, vendor)
            if table is None:
                continue
            lines.append(f"[apps.{app}.{vendor}]")
            for key, value in table.model_dump().items():
                shown = REDACTED if key in VENDOR_SECRETS else value
                lines.append(f"{key} = {toml_value(shown)}  # {where['dialects']}")
    orphans = sorted(set(settings.app_rate_limits) - set(settings.apps))
    if orphans:
        lines += ["", "# rate limits for keys that are no app: " + ", ".join(orphans)]
    if not settings.apps:
        lines += ["", "# no app: `roomhub serve` would create a dev app and print its secret"]
    return "\n".join(lines) + "\n"
