"""The `roomhub` command end to end, as a user runs it: two `roomhub serve` processes on one
real Redis, tokens from `roomhub token`, a short scenario across both nodes; and `roomhub serve`
with nothing configured (embedded store, a dev app, how to mint a token).

Every process started here is stopped at the end (SIGTERM, then SIGKILL), pass or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support import RawClient, free_port

KEY, SECRET = "cliapp", "cli-secret-that-is-long-enough-for-hs256-signing"
START_TIMEOUT = 20.0


def roomhub_command() -> list[str]:
    """The installed console script next to this interpreter (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).with_name("roomhub")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("roomhub")
    if found:
        return [found]
    return [sys.executable, "-m", "roomhub.server"]  # pragma: no cover - not installed


def clean_env() -> dict[str, str]:
    """This environment without ROOMHUB_* settings, so only the flags count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ROOMHUB_")}


def run_token(*args: str) -> str:
    done = subprocess.run(
        [*roomhub_command(), "token", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    minted = done.stdout.strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", minted), done.stdout
    return minted


class Serve:
    """One `roomhub serve` subprocess; stderr collected in the background."""

    def __init__(self, *args: str, port: int) -> None:
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.proc = subprocess.Popen(
            [*roomhub_command(), "serve", "--port", str(port), "--http-port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode("utf-8", "replace"))

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the port accepts TCP connections (or the process died: fail with its stderr)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._reader.join(2)
                pytest.fail(f"roomhub serve exited with {self.proc.returncode}:\n{self.stderr}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"roomhub serve did not listen within {timeout}s:\n{self.stderr}")
            time.sleep(0.05)

    def stop(self, grace: float = 10) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(2)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


@contextlib.contextmanager
def serving(*args: str) -> Iterator[Serve]:
    node = Serve(*args, port=free_port())
    try:
        node.wait_ready()
        yield node
    finally:
        node.stop()


async def auth(client: RawClient, minted: str, key: str = KEY) -> dict[str, Any]:
    return await client.call("auth", {"key": key, "token": minted})  # type: ignore[no-any-return]


async def test_two_serve_processes_on_one_redis(redis_url: str) -> None:
    app = f"{KEY}={SECRET}"
    with (
        serving("--redis", redis_url, "--app", app) as one,
        serving("--redis", redis_url, "--app", app) as two,
    ):
        alice_token = run_token("--key", KEY, "--secret", SECRET, "--user", "alice")
        bob_token = run_token("--key", KEY, "--secret", SECRET, "--user", "bob")
        backend_token = run_token("--key", KEY, "--secret", SECRET, "--user", "ops", "--server")
        async with (
            RawClient.connect(one.url) as alice,
            RawClient.connect(two.url, "json") as bob,
            RawClient.connect(two.url) as backend,
        ):
            welcome_a = await auth(alice, alice_token)
            welcome_b = await auth(bob, bob_token)
            await auth(backend, backend_token)
            assert welcome_a["user"] == "alice" and welcome_b["user"] == "bob"
            nodes = (welcome_a["server"], welcome_b["server"])
            assert nodes[0]["node"] != nodes[1]["node"]  # two processes, two node ids

            # the backend (node two) names bob; alice (node one) makes a room with him
            await backend.call("user.upsert", {"id": "bob", "nickname": "Bobby"})
            room = await alice.call("room.create", {"room": "cli-room", "members": ["bob"]})
            assert [m["id"] for m in room["members"]] == ["alice", "bob"]
            assert room["members"][1]["nickname"] == "Bobby"
            # bob (node two) changes himself; alice promotes him; both see both, in order
            await bob.call(
                "member.update", {"room": "cli-room", "user": "bob", "properties": {"score": 100}}
            )
            await alice.call(
                "member.update",
                {"room": "cli-room", "user": "bob", "properties": {"role": "admin"}},
            )
            for client in (alice, bob):
                got = await client.events_until(3, room="cli-room", timeout=10)
                assert [(m["seq"], m["type"]) for m in got] == [
                    (1, "createRoom"),
                    (2, "updateMember"),
                    (3, "assignAdmin"),
                ]
            # a user token is not a server token
            error = await alice.fail("user.upsert", {"id": "alice"})
            assert error["code"] == 100006
            # a token signed with another secret is refused on either node
            forged = run_token("--key", KEY, "--secret", "not-the-secret-" * 3, "--user", "eve")
            async with RawClient.connect(one.url) as eve:
                error = await eve.fail("auth", {"key": KEY, "token": forged})
                assert error["code"] == 100010
                code, _ = await eve.closed(timeout=10)
                assert code == 4401
        # the data lives in Redis: a third connection, to the other node, reads it back
        async with RawClient.connect(two.url) as again:
            await auth(again, alice_token)
            room = await again.call("room.get", {"room": "cli-room"})
            assert room["seq"] == 3
            assert {m["id"]: m["role"] for m in room["members"]} == {
                "alice": "owner",
                "bob": "admin",
            }
    # SIGTERM is a clean shutdown
    assert one.proc.returncode == 0, one.stderr
    assert two.proc.returncode == 0, two.stderr
    assert "EMBEDDED" not in one.stderr


async def test_serve_with_nothing_configured_runs_embedded_with_a_dev_app() -> None:
    with serving() as node:
        # the notice and the dev app are printed before the node listens
        deadline = time.monotonic() + 10
        pattern = re.compile(r"roomhub token --key (\S+) --secret (\S+) --user \S+")
        while not pattern.search(node.stderr):
            assert time.monotonic() < deadline, node.stderr
            await asyncio.sleep(0.05)
        err = node.stderr
        assert "EMBEDDED IN-MEMORY STORE" in err
        assert "--redis" in err  # it says how to keep the data
        found = pattern.search(err)
        assert found is not None
        key, secret = found.groups()
        assert f"key={key}" in err and f"secret={secret}" in err
        # hex, never a leading "-" that the printed command would pass as a flag (it did, 1 in 64)
        assert re.fullmatch(r"[0-9a-f]{48}", secret), secret
        # run the printed command, as a user would, and use the token
        minted = run_token("--key", key, "--secret", secret, "--user", "alice")
        async with RawClient.connect(node.url, "json") as alice:
            welcome = await auth(alice, minted, key=key)
            assert welcome["user"] == "alice"
            room = await alice.call("room.create", {"room": "dev-room"})
            assert room["owner"] == "alice"
            assert (await alice.event())["type"] == "createRoom"
    assert node.proc.returncode == 0, node.stderr


async def dev_node_session(node: Serve) -> None:
    """A user of an embedded node: auth, a room, a change, then disconnect."""
    deadline = time.monotonic() + 10
    pattern = re.compile(r"roomhub token --key (\S+) --secret (\S+)")
    while not pattern.search(node.stderr):
        assert time.monotonic() < deadline, node.stderr
        await asyncio.sleep(0.05)
    found = pattern.search(node.stderr)
    assert found is not None
    key, secret = found.groups()
    minted = run_token("--key", key, "--secret", secret, "--user", "alice")
    async with RawClient.connect(node.url) as alice:
        await auth(alice, minted, key=key)
        await alice.call("room.create", {"room": "r"})
        await alice.call(
            "member.update", {"room": "r", "user": "alice", "properties": {"nickname": "A"}}
        )
        await alice.events_until(2, timeout=10)


async def test_serve_exits_promptly_on_sigterm_right_after_its_clients_leave() -> None:
    # a process manager stopping a node while its clients are going away (a rolling
    # restart): SIGTERM must end the process within seconds, every time
    for _ in range(3):
        node = Serve(port=free_port())
        try:
            node.wait_ready()
            await dev_node_session(node)
        finally:
            code = node.stop(grace=5)
        assert code == 0, f"exit code {code} after SIGTERM:\n{node.stderr[-2000:]}"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*roomhub_command(), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean_env(), **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_version_is_printed() -> None:
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"roomhub \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--app", "bad key=SECRET-aaaa-1111", "--app", "ok=SECRET-bbbb-2222"), {}),
        ((), {"ROOMHUB_APPS": "ok=SECRET-aaaa-1111,bad key=SECRET-bbbb-2222"}),
        (("--app", "ok=SECRET-aaaa-1111", "--port", "-4"), {}),
    ],
)
def test_a_bad_setting_is_one_usage_error_that_prints_no_secret(
    args: tuple[str, ...], env: dict[str, str]
) -> None:
    done = run_cli("serve", *args, env=env)
    assert done.returncode == 2
    out = done.stdout + done.stderr
    assert "invalid settings" in out
    assert "SECRET-" not in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("user", "ttl", "says"),
    [
        ("", "60", "--user"),
        ("has space", "60", "--user"),
        ("x" * 65, "60", "--user"),
        ("@system", "60", "reserved"),
        ("alice", "0", "--ttl"),
        ("alice", "-5", "--ttl"),
    ],
)
def test_token_refuses_what_the_server_would_refuse(user: str, ttl: str, says: str) -> None:
    done = run_cli("token", "--key", KEY, "--secret", SECRET, "--user", user, f"--ttl={ttl}")
    assert done.returncode == 2
    assert done.stdout == ""  # no token minted
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert SECRET not in done.stderr


@pytest.mark.parametrize(
    ("args", "env"), [(("--log-level", "LOUD"), {}), ((), {"ROOMHUB_LOG_LEVEL": "LOUD"})]
)
def test_a_bad_log_level_is_a_usage_error(args: tuple[str, ...], env: dict[str, str]) -> None:
    done = run_cli("serve", *args, env=env)
    assert done.returncode == 2
    assert "log_level" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("notaurl", "--redis must be"),
        ("http://127.0.0.1:6379/0", "--redis must be"),
        ("redis+cluster://127.0.0.1", "host:port"),
        ("redis://127.0.0.1:1/0", "unreachable"),
    ],
)
def test_a_bad_or_unreachable_redis_is_one_line_and_exit_2(url: str, says: str) -> None:
    done = run_cli("serve", "--redis", url, "--app", f"{KEY}={SECRET}")
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("serve", "--port", str(port), "--app", f"{KEY}={SECRET}")
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "cannot listen" in last and str(port) in last, done.stderr
    assert "Traceback" not in done.stderr


async def test_redis_wait_starts_the_node_once_redis_comes_up() -> None:
    from roomhub.bench.infra import RedisServer

    redis_port = free_port()
    node = Serve(
        "--redis", f"redis://127.0.0.1:{redis_port}/0", "--redis-wait", "60",
        "--app", f"{KEY}={SECRET}",
        port=free_port(),
    )  # fmt: skip
    try:
        await asyncio.sleep(0.5)  # not a sync: Redis is absent on purpose while the node waits
        assert node.proc.poll() is None, node.stderr  # waiting, not failed
        server = RedisServer(port=redis_port)
        try:
            node.wait_ready()
            minted = run_token("--key", KEY, "--secret", SECRET, "--user", "alice")
            async with RawClient.connect(node.url) as alice:
                assert (await auth(alice, minted))["user"] == "alice"
        finally:
            node.stop()
            server.stop(keep_data=False)
    finally:
        node.stop()


@pytest.mark.parametrize("via_module", [False, True])
def test_serve_help_lists_every_setting_as_a_flag(via_module: bool) -> None:
    from roomhub.server.cli import serve_flags

    command = [sys.executable, "-m", "roomhub.server"] if via_module else roomhub_command()
    done = subprocess.run(
        [*command, "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean_env(), "ROOMHUB_APPS": f"{KEY}={SECRET}"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for flag in serve_flags():
        assert f"{flag.flag} {flag.metavar}" in done.stdout and flag.env in done.stdout
    assert SECRET not in done.stdout + done.stderr


async def test_a_setting_that_had_no_flag_reaches_the_node_by_its_flag() -> None:
    # --auth-timeout was ROOMHUB_AUTH_TIMEOUT only: a silent connection is closed after it
    with serving("--auth-timeout", "0.5", "--app", f"{KEY}={SECRET}") as node:
        async with RawClient.connect(node.url) as silent:
            started = time.monotonic()
            code, _ = await silent.closed(timeout=8)
            assert code == 4401 and time.monotonic() - started < 5


class ServeWithConfig(Serve):
    """`roomhub serve --config FILE` and nothing else on the command line: the port is the
    file's."""

    def __init__(self, config_file: Path, *, port: int) -> None:
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.proc = subprocess.Popen(
            [*roomhub_command(), "serve", "--config", str(config_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


async def test_serve_takes_its_port_and_apps_from_the_config_file(tmp_path: Path) -> None:
    port, file_key, file_secret = (
        free_port(),
        "fileapp",
        "file-secret-long-enough-for-hs256-signing",
    )
    config_file = tmp_path / "roomhub.toml"
    config_file.write_text(
        f'[server]\nport = {port}\nhttp_port = 0\nlog_format = "json"\n\n'
        f'[apps.{file_key}]\nsecret = "{file_secret}"\nrate_limit = 50\n'
    )
    checked = run_cli("config", "check", str(config_file))
    assert checked.returncode == 0, checked.stderr
    assert f"port = {port}  # file" in checked.stdout and file_secret not in checked.stdout
    node = ServeWithConfig(config_file, port=port)
    try:
        node.wait_ready()
        minted = run_token("--key", file_key, "--secret", file_secret, "--user", "alice")
        async with RawClient.connect(node.url) as alice:
            assert (await auth(alice, minted, key=file_key))["user"] == "alice"
            room = await alice.call("room.create", {"room": "from-file"})
            assert room["owner"] == "alice"
        # the file's app is the only one: no dev app was made, and a token of another fails
        forged = run_token("--key", file_key, "--secret", SECRET, "--user", "eve")
        async with RawClient.connect(node.url) as eve:
            assert (await eve.fail("auth", {"key": file_key, "token": forged}))["code"] == 100010
    finally:
        code = node.stop()
    assert code == 0, node.stderr
    assert "no --app given" not in node.stderr, node.stderr
    assert '"message":"shutting down"' in node.stderr, node.stderr  # the file's log format
    assert file_secret not in node.stderr


def test_serve_with_a_missing_config_file_is_one_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    done = run_cli("serve", env={"ROOMHUB_CONFIG": str(missing)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("usage:"), done.stderr
    assert f"config file {missing}: cannot read: No such file or directory" in lines[1]
    assert "Traceback" not in done.stderr
