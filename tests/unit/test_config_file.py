"""The config file (`roomhub serve --config FILE`, ROOMHUB_CONFIG): flag over environment over
file over default, its schema ([server] settings by name, [apps.KEY] tables), errors that name
the key and the file and never a secret, and `roomhub config check` / `config example`."""

from __future__ import annotations

import argparse
import builtins
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from roomhub.server import cli, config
from roomhub.server import settings as settings_module
from roomhub.server.settings import ConfigFileError, Settings

SECRET = "SECRET-file-acme-0123456789abcdef"
FILE = f"""
[server]
port = 9100
history_max = 11
rate_limit = 300
log_level = "warning"

[apps.acme]
secret = "{SECRET}"
rate_limit = 7

[apps.beta]
secret = "SECRET-file-beta"
"""
OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"


@pytest.fixture(autouse=True)
def no_roomhub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*(f.env for f in cli.serve_flags()), cli.CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str, name: str = "roomhub.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def serve_settings(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    cli.serve_parser(parser.add_subparsers(dest="command"))
    return cli.settings_from(parser.parse_args(["serve", *argv]))


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exited:
        code = int(exited.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_file_sets_server_keys_and_apps(tmp_path: Path) -> None:
    got = Settings.load(write(tmp_path, FILE))
    assert (got.port, got.history_max, got.rate_limit, got.log_level) == (9100, 11, 300, "WARNING")
    assert got.apps == {"acme": SECRET, "beta": "SECRET-file-beta"}
    assert got.app_rate_limits == {"acme": 7}
    assert got.ceiling("acme") == 7 and got.ceiling("beta") == 300
    assert got.max_inflight == Settings().max_inflight  # not in the file: the default


def test_flag_beats_env_beats_file_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(write(tmp_path, FILE))
    assert serve_settings().port == 8765  # no file: the default
    assert serve_settings("--config", path).port == 9100
    monkeypatch.setenv("ROOMHUB_PORT", "9200")
    monkeypatch.setenv("ROOMHUB_HISTORY_MAX", "12")
    env = serve_settings("--config", path)
    assert (env.port, env.history_max, env.rate_limit) == (9200, 12, 300)
    flagged = serve_settings("--config", path, "--port", "9300")
    assert (flagged.port, flagged.history_max) == (9300, 12)
    # ROOMHUB_CONFIG names the file when --config does not; --config wins over it
    monkeypatch.setenv(cli.CONFIG_ENV, path)
    assert serve_settings().rate_limit == 300
    other = write(tmp_path, "[server]\nrate_limit = 5\n", "other.toml")
    assert serve_settings("--config", str(other)).rate_limit == 5


def test_a_higher_source_replaces_the_whole_app_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(write(tmp_path, FILE))
    monkeypatch.setenv("ROOMHUB_APPS", "env=SECRET-env")
    from_env = serve_settings("--config", path)
    assert from_env.apps == {"env": "SECRET-env"}  # not merged with acme and beta
    assert from_env.app_rate_limits == {"acme": 7}  # a map of its own: still the file's
    flagged = serve_settings("--config", path, "--app", "cli=SECRET-cli")
    assert flagged.apps == {"cli": "SECRET-cli"}
    monkeypatch.setenv("ROOMHUB_APP_RATE_LIMITS", "env=3")
    assert serve_settings("--config", path).app_rate_limits == {"env": 3}
    limited = serve_settings("--config", path, "--app-rate-limit", "cli=0")
    assert limited.app_rate_limits == {"cli": 0}


UNKNOWN_KEYS = [
    ("port = 1\n", "unknown key port"),
    ("[sever]\nport = 1\n", "unknown key sever (did you mean server?)"),
    ("[server]\nprot = 1\n", "unknown key server.prot (did you mean server.port?)"),
    ("[server]\nallowed_origin = []\n", "did you mean server.allowed_origins?"),
    ("[server]\napps = {}\n", "server.apps: apps are [apps.KEY] tables"),
    (f'[apps.acme]\nsecret = "{SECRET}"\nrate = 1\n', "unknown key apps.acme.rate"),
    (f'[apps.acme]\nsecret = "{SECRET}"\nsecrett = "x"\n', "unknown key apps.acme.secrett"),
]
BAD_VALUES = [
    ("[server]\nport = 70000\n", "server.port: Input should be less than or equal to 65535"),
    ('[server]\nport = "eighty"\n', "server.port: Input should be a valid integer"),
    ('[server]\nlog_level = "LOUD"\n', "server.log_level: must be DEBUG"),
    ('[server]\nmember_consent = "ask"\n', "server.member_consent: "),
    ("[server]\nredis_timeout = 0\n", "server.redis_timeout: "),
    ("server = 1\n", "server and apps must be tables"),
    ("[apps]\nacme = 1\n", "apps.acme: must be a table with a secret"),
    ("[apps.acme]\nrate_limit = 1\n", "apps.acme.secret: required"),
    ("[apps.acme]\nsecret = 12345678\n", "apps.acme.secret: required, a non-empty string"),
    (f'[apps.acme]\nsecret = "{SECRET}"\nrate_limit = -1\n', "apps.acme.rate_limit: "),
    (f'[apps.acme]\nsecret = "{SECRET}"\nrate_limit = "9"\n', "apps.acme.rate_limit: "),
    (f'[apps."bad key"]\nsecret = "{SECRET}"\n', "apps.'bad key': an app key must be"),
    (f'[apps.acme]\nsecret = "{SECRET}\n', "not valid TOML"),
]


@pytest.mark.parametrize(("text", "says"), UNKNOWN_KEYS + BAD_VALUES)
def test_an_unknown_key_or_a_bad_value_is_an_error_naming_key_and_file_and_no_secret(
    tmp_path: Path, text: str, says: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as raised:
        Settings.load(path)
    message = str(raised.value)
    assert message.startswith(f"config file {path}: ") and says in message, message
    assert SECRET not in message and "\n" not in message


def _refusing(refused: Path) -> Any:
    """open() as an unprivileged user sees a mode-0 file: EACCES for it, the rest as usual."""

    def opener(file: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(file) == refused:
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    return opener


@pytest.mark.parametrize("command", ["serve", "check"])
@pytest.mark.parametrize(
    "problem", ["missing", "directory", "unreadable", "unknown key", "bad value", "not toml"]
)
def test_a_file_problem_is_one_error_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    problem: str,
) -> None:
    path = tmp_path / "roomhub.toml"
    if problem == "directory":
        path.mkdir()
    elif problem == "unreadable":
        write(tmp_path, FILE).chmod(0)
        try:
            path.read_bytes()
        except PermissionError:
            pass
        else:  # root reads a mode-0 file: the open() the settings module calls refuses it
            monkeypatch.setattr(settings_module, "open", _refusing(path), raising=False)
    elif problem != "missing":
        text = {"unknown key": "[server]\nprot = 1\n", "bad value": "[server]\nport = -1\n"}
        write(tmp_path, text.get(problem, f'[apps.acme]\nsecret = "{SECRET}'))
    argv = (
        ["serve", "--config", str(path)] if command == "serve" else ["config", "check", str(path)]
    )
    code, out, err = run_main(capsys, *argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("usage: "), err  # usage, then the one error
    assert lines[1].startswith(f"roomhub {argv[0]}") and f"config file {path}: " in lines[1]
    assert SECRET not in err


def test_config_check_prints_the_effective_settings_with_secrets_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, FILE + '\n[apps.gamma]\nsecret = "SECRET-gamma"\n')
    monkeypatch.setenv("ROOMHUB_HISTORY_MAX", "12")
    monkeypatch.setenv("ROOMHUB_REDIS", "redis://user:SECRET-redis-pw@redis.internal:6379/0")
    code, out, err = run_main(capsys, "config", "check", str(path))
    assert code == 0, err
    assert "SECRET" not in out + err
    assert "port = 9100  # file" in out and "history_max = 12  # env" in out
    assert "max_inflight = 64  # default" in out
    assert 'redis = "redis://***@redis.internal:6379/0"  # env' in out
    shown = tomllib.loads(out)  # it is TOML in the file's own schema
    assert shown["apps"] == {
        "acme": {"secret": "***", "rate_limit": 7},
        "beta": {"secret": "***"},
        "gamma": {"secret": "***"},
    }
    assert shown["server"]["log_level"] == "WARNING"
    # ROOMHUB_CONFIG is the file when none is named
    monkeypatch.setenv(cli.CONFIG_ENV, str(path))
    code, again, _ = run_main(capsys, "config", "check")
    assert code == 0 and again == out


def test_config_example_covers_every_setting_and_check_accepts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text, _ = run_main(capsys, "config", "example")
    assert code == 0
    server = text[text.index("\n[server]") : text.index("\n[apps.acme]")]
    named = set(re.findall(r"^(?:# )?(\w+) = ", server, re.MULTILINE))
    assert named == set(Settings.model_fields) - {"apps", "app_rate_limits", "dialects"}
    path = write(tmp_path, text)
    code, out, err = run_main(capsys, "config", "check", str(path))
    assert code == 0, err
    loaded = Settings.load(path)
    defaults = Settings()
    for name in config.server_fields():
        if name != "node_id":
            assert getattr(loaded, name) == getattr(defaults, name), name
    assert list(loaded.apps) == ["acme"] and re.fullmatch(r"[0-9a-f]{64}", loaded.apps["acme"])
    assert loaded.apps["acme"] not in out + err  # check redacts the example's secret too
    # every commented-out setting is valid once uncommented, and gives the sample value
    active = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)
    uncommented = Settings.load(write(tmp_path, active, "active.toml"))
    for name, sample in config.SAMPLES.items():
        assert getattr(uncommented, name) == sample, name
    # a fresh secret each time
    assert run_main(capsys, "config", "example")[1] != text


def docs_example() -> str:
    text = OPERATIONS.read_text()
    section = text[text.index("### 2.4 Config file") :]
    start = section.index("```toml\n") + len("```toml\n")
    return section[start : section.index("\n```\n", start)] + "\n"


def test_the_operations_example_is_config_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run_main(capsys, "config", "example")
    secret = re.search(r'^secret = "([0-9a-f]{64})"$', text, re.MULTILINE)
    assert code == 0 and secret is not None
    shown = docs_example()
    assert shown == text.replace(secret.group(1), "…64 hex characters…"), (
        "docs/operations.md §2.4: paste `roomhub config example` (its secret replaced by"
        " …64 hex characters…)"
    )


def test_serve_help_names_the_config_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "serve", "--help")
    assert code == 0 and "--config FILE" in out and cli.CONFIG_ENV in out
    code, out, _ = run_main(capsys, "config", "--help")
    assert code == 0 and "check" in out and "example" in out
