"""The `roomhub serve` flags reach the settings object (flag over environment over default);
tests/unit/test_cli_flags.py checks that every setting has its flag."""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from roomhub.server import cli
from roomhub.server.settings import Settings


def settings_from(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    cli.serve_parser(parser.add_subparsers(dest="command"))
    return cli.settings_from(parser.parse_args(["serve", *argv]))


def test_a_flag_beats_the_environment_which_beats_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings_from().history_max == 10_000
    monkeypatch.setenv("ROOMHUB_HISTORY_MAX", "12")
    assert settings_from().history_max == 12
    assert settings_from("--history-max", "7").history_max == 7


def test_any_repeated_flag_replaces_the_environment_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMHUB_APPS", "env=SECRET-env,other=SECRET-other")
    monkeypatch.setenv("ROOMHUB_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ROOMHUB_APP_RATE_LIMITS", "env=5")
    assert settings_from().apps == {"env": "SECRET-env", "other": "SECRET-other"}
    assert settings_from().allowed_origins == ["https://a.example", "https://b.example"]
    assert settings_from().app_rate_limits == {"env": 5}
    flagged = settings_from(
        "--app", "one=s=1,2", "--app", "two=s2",
        "--allowed-origin", "https://c.example",
        "--app-rate-limit", "one=0",
    )  # fmt: skip
    # a secret is everything after the first "=", commas included
    assert flagged.apps == {"one": "s=1,2", "two": "s2"}
    assert flagged.allowed_origins == ["https://c.example"]
    assert flagged.app_rate_limits == {"one": 0}
    assert flagged.ceiling("one") == 0 and flagged.ceiling("two") == flagged.rate_limit


def test_the_log_level_is_any_case_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from("--log-level", "debug").log_level == "DEBUG"
    monkeypatch.setenv("ROOMHUB_LOG_LEVEL", "warning")
    assert settings_from().log_level == "WARNING"
    with pytest.raises(ValidationError, match="log_level"):
        settings_from("--log-level", "LOUD")


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
