"""Every `Settings` field has one `roomhub serve` flag, one `ROOMHUB_*` variable, one default and
one help text, all derived from the field, and docs/operations.md §2.1 lists exactly those."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

from roomhub.server import cli
from roomhub.server.settings import NoFlag, Settings

# The settings without a flag (config file and environment only), each with its reason.
NO_FLAG = {
    name
    for name, info in Settings.model_fields.items()
    if any(isinstance(m, NoFlag) and m.why for m in info.metadata)
}
FIELDS = [name for name in Settings.model_fields if name not in NO_FLAG]
FLAGS = {flag.field: flag for flag in cli.serve_flags()}
OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"

# The flags scripts and docs already use (README, docs, tests, bench/infra.py): written out on
# purpose, so that a rename fails here rather than in someone's deployment.
KEPT = {
    "--host": "host",
    "--port": "port",
    "--redis": "redis",
    "--app": "apps",
    "--allowed-origin": "allowed_origins",
    "--rate-limit": "rate_limit",
    "--app-rate-limit": "app_rate_limits",
    "--conn-rate-limit": "conn_rate_limit",
    "--node-id": "node_id",
    "--history-max": "history_max",
    "--max-frame-bytes": "max_frame_bytes",
    "--max-room-members": "max_room_members",
    "--redis-wait": "redis_wait",
    "--min-replicas": "min_replicas",
    "--min-replicas-timeout": "min_replicas_timeout",
    "--log-format": "log_format",
    "--log-level": "log_level",
    "--user-rate-limit": "user_rate_limit",
    "--max-connections-per-user": "max_connections_per_user",
    "--max-connections-per-ip": "max_connections_per_ip",
    "--rooms-per-hour": "rooms_per_hour",
    "--member-consent": "member_consent",
    "--max-pending-invitations": "max_pending_invitations",
    "--max-pending-invitations-per-inviter": "max_pending_invitations_per_inviter",
}

# For each setting whose type does not give them (see `values`): flag arguments and the value
# they give, an environment value and the value it gives.
SAMPLES: dict[str, tuple[list[str], Any, str, Any]] = {
    "host": (["0.0.0.0"], "0.0.0.0", "10.0.0.1", "10.0.0.1"),
    "http_host": (["0.0.0.0"], "0.0.0.0", "10.0.0.2", "10.0.0.2"),
    "reuse_port": (["false"], False, "1", True),
    "metrics": (["true"], True, "0", False),
    "presence": (["true"], True, "0", False),
    "redis": (["redis://a:6379/1"], "redis://a:6379/1", "redis://b:6379/2", "redis://b:6379/2"),
    "apps": (
        ["a=SECRET-1", "b=SECRET=2,3"],  # a secret is everything after the first "="
        {"a": "SECRET-1", "b": "SECRET=2,3"},
        "c=SECRET-3, d=SECRET-4",
        {"c": "SECRET-3", "d": "SECRET-4"},
    ),
    "allowed_origins": (
        ["https://x.example", "https://y.example"],
        ["https://x.example", "https://y.example"],
        "https://z.example",
        ["https://z.example"],
    ),
    "node_id": (["node-7"], "node-7", "node-8", "node-8"),
    "app_rate_limits": (["a=3", "b=0"], {"a": 3, "b": 0}, "c=9", {"c": 9}),
    "log_level": (["warning"], "WARNING", "error", "ERROR"),
}


@pytest.fixture(autouse=True)
def no_roomhub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FLAGS.values():
        monkeypatch.delenv(name.env, raising=False)


def serve_parser() -> argparse.ArgumentParser:
    return cli.serve_parser(argparse.ArgumentParser().add_subparsers(dest="command"))


def serve_actions() -> list[argparse.Action]:
    """The setting flags: all but --help and --config (the file, not a setting)."""
    return [
        action
        for action in serve_parser()._actions
        if not isinstance(action, argparse._HelpAction) and action.dest != "config_file"
    ]


def values(field: str) -> tuple[list[str], Any, str, Any]:
    """Flag arguments and the value they give, an environment value and the value it gives:
    the two values differ, and the environment's differs from the default."""
    if field in SAMPLES:
        return SAMPLES[field]
    flag, default = FLAGS[field], Settings.model_fields[field].default
    if flag.choices:
        other = next(choice for choice in flag.choices if choice != default)
        return [default], default, other, other
    assert type(default) in (int, float), f"add Settings.{field} to SAMPLES"
    return [str(default + 1)], default + 1, str(default + 2), default + 2


def settings_from(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    cli.serve_parser(parser.add_subparsers(dest="command"))
    return cli.settings_from(parser.parse_args(["serve", *argv]))


def test_every_setting_has_one_flag_one_variable_and_its_description_as_help() -> None:
    by_dest = {action.dest: action for action in serve_actions()}
    assert sorted(by_dest) == sorted(FIELDS)  # no flag without a setting, none missing
    assert NO_FLAG == {"dialects"}  # vendor credentials: see NoFlag.why
    for field in FIELDS:
        info = Settings.model_fields[field]
        action, flag = by_dest[field], FLAGS[field]
        assert info.description, f"Settings.{field} needs a description: it is the help"
        assert action.option_strings == [flag.flag]
        assert flag.flag in (cli_name(field), *KEPT)
        assert flag.env == f"ROOMHUB_{field.upper()}"
        assert action.help is not None and action.help.startswith(info.description)
        assert "\n" not in info.description
        assert f"default {flag.default};" in action.help and flag.env in action.help
        assert action.default is argparse.SUPPRESS  # absent: env, then the model's default


def cli_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def test_the_flags_in_use_keep_their_names() -> None:
    assert {flag: FLAGS[field].flag for flag, field in KEPT.items()} == {f: f for f in KEPT}
    repeatable = {flag.flag for flag in FLAGS.values() if flag.repeatable}
    assert repeatable == {"--app", "--allowed-origin", "--app-rate-limit"}


@pytest.mark.parametrize("field", FIELDS)
def test_each_flag_beats_the_environment_which_beats_the_default(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    flag, default = FLAGS[field], getattr(Settings(), field)
    argv, from_flag, env, from_env = values(field)
    assert from_env != default and from_flag != from_env
    args = [arg for value in argv for arg in (flag.flag, value)]
    assert getattr(settings_from(*args), field) == from_flag
    if field != "node_id":  # its default is new each time
        assert getattr(settings_from(), field) == default
    monkeypatch.setenv(flag.env, env)
    assert getattr(settings_from(), field) == from_env
    assert getattr(settings_from(*args), field) == from_flag


def docs_rows() -> dict[str, list[str]]:
    """§2.1's table: each row's cells by the setting's flag (the first word of its first cell)."""
    text = OPERATIONS.read_text()
    section = text[text.index("### 2.1 ") : text.index("### 2.2 ")]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `--"):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            rows[cells[0].strip("`").split()[0]] = cells
    return rows


def test_the_operations_flags_table_is_the_parser() -> None:
    rows = docs_rows()
    assert sorted(rows) == sorted(flag.flag for flag in FLAGS.values())
    for flag in FLAGS.values():
        expected = [
            f"`{flag.flag} {flag.metavar}`" + " (repeatable)" * flag.repeatable,
            f"`{flag.env}`",
            f"`{flag.default}`",
        ]
        got = rows[flag.flag]
        row = f"| {' | '.join(expected)} | … |"
        assert got[0] == expected[0], f"docs/operations.md §2.1 should read: {row}"
        assert got[1] == expected[1] or flag.repeatable and got[1].startswith(f"`{flag.env}="), (
            f"docs/operations.md §2.1 should read: {row}"
        )
        assert re.match(re.escape(expected[2]) + r"( |$)", got[2]), f"§2.1 should read: {row}"
        assert len(got) == 4 and got[3], f"§2.1 {flag.flag}: a meaning"


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        cli.main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out + out.err


def test_help_lists_every_flag_and_no_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROOMHUB_APPS", "prod=SECRET-env-1234")
    code, out = run_main(capsys, "serve", "--help")
    assert code == 0
    for flag in FLAGS.values():
        assert f"{flag.flag} {flag.metavar}" in out and flag.env in out
    assert "SECRET-env" not in out


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--max-frame-bytes", "10"], {}, "--max-frame-bytes, ROOMHUB_MAX_FRAME_BYTES"),
        (["--port", "eighty"], {}, "--port, ROOMHUB_PORT"),
        ([], {"ROOMHUB_PING_INTERVAL": "0"}, "--ping-interval, ROOMHUB_PING_INTERVAL"),
        (["--app", "SECRET-no-key"], {}, "--app, ROOMHUB_APPS"),
        (["--app", "bad key=SECRET-1"], {}, "--app, ROOMHUB_APPS"),
        ([], {"ROOMHUB_APPS": "ok=SECRET-1,SECRET-2"}, "--app, ROOMHUB_APPS"),
        (["--app-rate-limit", "a=SECRET"], {}, "--app-rate-limit, ROOMHUB_APP_RATE_LIMITS"),
        (["--log-level", "LOUD"], {}, "log_level (--log-level, ROOMHUB_LOG_LEVEL)"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_its_flag_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    names: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out = run_main(capsys, "serve", *argv)
    assert code == 2
    assert "roomhub serve: error: invalid settings: " in out and names in out, out
    assert "SECRET" not in out, out
    assert len(out.strip().splitlines()) == 2, out  # usage, then the one error line
