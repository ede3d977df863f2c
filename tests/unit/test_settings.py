"""The `roomhub serve` flags reach the settings object (flag over environment over default)."""

from __future__ import annotations

import argparse

import pytest

from roomhub.server import cli
from roomhub.server.settings import Settings


def settings_from(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli._serve_parser(sub)
    return cli._settings(parser.parse_args(["serve", *argv]))


@pytest.mark.parametrize(
    ("flag", "value", "field", "expected"),
    [
        ("--redis-wait", "3.5", "redis_wait", 3.5),
        ("--min-replicas", "2", "min_replicas", 2),
        ("--min-replicas-timeout", "0.5", "min_replicas_timeout", 0.5),
        ("--log-format", "json", "log_format", "json"),
        ("--log-level", "debug", "log_level", "DEBUG"),
        ("--user-rate-limit", "7", "user_rate_limit", 7),
        ("--max-connections-per-user", "3", "max_connections_per_user", 3),
        ("--max-connections-per-ip", "9", "max_connections_per_ip", 9),
        ("--rooms-per-hour", "0", "rooms_per_hour", 0),
        ("--member-consent", "invite", "member_consent", "invite"),
        ("--max-pending-invitations", "11", "max_pending_invitations", 11),
        ("--max-pending-invitations-per-inviter", "4", "max_pending_invitations_per_inviter", 4),
    ],
)
def test_each_flag_sets_its_field_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, flag: str, value: str, field: str, expected: object
) -> None:
    default = getattr(Settings(), field)
    assert default != expected
    monkeypatch.setenv(f"ROOMHUB_{field.upper()}", str(default))
    assert getattr(settings_from(flag, value), field) == expected
    assert getattr(settings_from(), field) == default  # the environment, without the flag


def test_the_environment_sets_a_field_without_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMHUB_REDIS_WAIT", "12")
    assert settings_from().redis_wait == 12.0


def test_json_log_lines_carry_extras_and_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    from roomhub.server import logs

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("INFO", "json", ["SECRET-zzzz-9999"])
        log = logging.getLogger("roomhub.test")
        log.info("token for %s: SECRET-zzzz-9999", "k", extra={"user": "alice", "code": 4401})
        log.debug("not shown")
        line = json.loads(capsys.readouterr().err.strip())
        assert line["level"] == "INFO" and line["logger"] == "roomhub.test"
        assert line["message"] == "token for k: ***"
        assert line["user"] == "alice" and line["code"] == 4401 and "time" in line
        logs.configure("INFO", "text", ["SECRET-zzzz-9999"])
        log.warning("bad app k=SECRET-zzzz-9999")
        err = capsys.readouterr().err
        assert "WARNING roomhub.test: bad app k=***" in err and "SECRET" not in err
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
