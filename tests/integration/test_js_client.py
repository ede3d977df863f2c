"""The TypeScript client (clients/js) end to end, as CI runs it: `npm ci` (only when
node_modules is missing or older than package-lock.json), the committed browser bundle checked
against what the build produces, `npm run build` (tsc: types and the compile-time check that
every op has its method; esbuild: the bundle), and `npm test` (node --test against a real
redis-server and real hubs this test's python starts). Fails with node's output; never skips:
without node/npm it fails saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
BUNDLE = ROOT / "server" / "console" / "roomhub-client.js"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not on PATH: the JS client's tests need Node 20+ and npm")
    return found


def run(command: list[str], timeout: float) -> str:
    env = {**os.environ, "ROOMHUB_PYTHON": sys.executable, "NO_COLOR": "1", "CI": "1"}
    try:
        done = subprocess.run(
            command, cwd=JS, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"`{' '.join(command)}` took over {timeout:.0f} s:\n{out[-20000:]}")
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` failed ({done.returncode}):\n{output[-30000:]}")
    return output


def ensure_node_modules(npm: str) -> None:
    marker = JS / "node_modules" / ".package-lock.json"
    lock = JS / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    run([npm, "ci", "--no-audit", "--no-fund"], timeout=300)
    marker.touch()


@pytest.mark.timeout(900)
def test_js_client() -> None:
    node, npm = tool("node"), tool("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    assert major >= 20, f"the JS client needs Node 20+, found {version.stdout.strip()}"
    ensure_node_modules(npm)

    # The committed bundle is what the build produces (built aside first, so a stale commit
    # is reported instead of silently rewritten).
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "roomhub-client.js"
        run([node, "scripts/bundle.mjs", "--outfile", str(fresh)], timeout=120)
        assert BUNDLE.exists(), f"{BUNDLE} is missing: run `npm run build` in clients/js"
        assert fresh.read_bytes() == BUNDLE.read_bytes(), (
            f"{BUNDLE.relative_to(ROOT)} is not what `npm run build` produces: rebuild, commit"
        )

    run([npm, "run", "build"], timeout=180)
    output = run([npm, "test"], timeout=600)
    assert "# fail 0" in output, output[-20000:]
    assert "# pass 0" not in output, output[-20000:]
