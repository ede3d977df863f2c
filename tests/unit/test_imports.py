"""The import contract, checked on the static import graph (grimp, import-linter's graph
library): no import cycle anywhere in the roomhub packages; `roomhub.protocol` free of I/O; the
bench layered as docs/performance.md says (wire client and pipe, load processes, harness,
scenarios, CLI) with no scenario imported but by the CLI's registry.

import-linter has no contract for "no cycles at all" (`acyclic_siblings` only looks at
siblings, with their descendants squashed), so the cycles are found here: every strongly
connected component of the module graph, each reported with its imports and line numbers.
Imports under `if TYPE_CHECKING:` count (a cycle of types is a cycle of the design).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(
    name
    for name in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    if name.count(".") == 1  # roomhub.x; grimp finds the subpackages on disk
)
# What roomhub.protocol may not import, directly or through another roomhub module.
IO_MODULES = (
    "asyncio",
    "concurrent",
    "http",
    "multiprocessing",
    "select",
    "selectors",
    "socket",
    "ssl",
    "subprocess",
    "threading",
    "urllib",
    "fakeredis",
    "hiredis",
    "redis",
    "uvloop",
    "websockets",
    "roomhub.bench",
    "roomhub.clients",
    "roomhub.server",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)


def _internal(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Each roomhub module -> the roomhub modules it imports directly."""
    mine = {m for m in graph.modules if m.startswith("roomhub.")}
    return {m: graph.find_modules_directly_imported_by(m) & mine for m in mine}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """The components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _cycle_through(start: str, edges: dict[str, set[str]], within: set[str]) -> list[str]:
    """A shortest import cycle from `start` back to it, inside one component."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(edges[node] & within):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    return [start]


def _describe(graph: grimp.ImportGraph, component: list[str], edges: dict[str, set[str]]) -> str:
    within = set(component)
    lines = [
        f"- {len(component)} modules: {', '.join(component)}",
        f"  e.g. {' -> '.join(_cycle_through(component[0], edges, within))}",
    ]
    for importer in component:
        for imported in sorted(edges[importer] & within):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(str(d["line_number"]) for d in details) or "?"
            lines.append(f"  {importer} -> {imported} (line {where})")
    return "\n".join(lines)


def test_the_packages_are_the_ones_pyproject_installs() -> None:
    assert {"roomhub.protocol", "roomhub.server", "roomhub.clients", "roomhub.bench"} <= set(
        PACKAGES
    )


def test_strongly_connected_finds_every_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert strongly_connected(edges) == [["a", "b", "c"], ["d", "e"]]
    assert _cycle_through("a", edges, {"a", "b", "c"}) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    edges = _internal(graph)
    cycles = strongly_connected(edges)
    report = "\n".join(_describe(graph, component, edges) for component in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) in the roomhub packages:\n{report}"


def test_protocol_does_no_io(graph: grimp.ImportGraph) -> None:
    bad = []
    for forbidden in IO_MODULES:
        if forbidden not in graph.modules:
            continue
        for chain in sorted(
            graph.find_shortest_chains(
                importer="roomhub.protocol", imported=forbidden, as_packages=True
            )
        ):
            bad.append(" -> ".join(chain))
    assert not bad, "roomhub.protocol must not do I/O; it imports:\n" + "\n".join(bad)


# The bench, bottom to top: a module may import only from its own layer or those below.
# Within a layer: no imports either way.
BENCH_LAYERS = (
    ("wsclient", "pipe", "stats", "infra", "machine"),  # the wire client; the pipe; outside
    ("worker_res", "worker_http"),  # the resilience and http scenarios' load sides
    ("worker",),  # a load process
    ("plan",),
    ("harness", "results"),  # the orchestrator: processes, Bench; what scenarios return
    ("measure", "verify"),  # one measured run; the resilience comparison
    ("stall",),  # part 3 of the resilience scenario
    # the scenarios; deliverypath: the delivery rules in-process, its own command
    ("scenarios", "probes", "resilience", "replicas", "deploy", "httpapi", "deliverypath"),
    ("report", "chart"),
    ("cli",),  # the registry of scenarios
    ("__main__",),
)
SCENARIOS = {
    *("scenarios", "probes", "resilience", "replicas", "stall", "deploy", "httpapi"),
    "deliverypath",
}


def test_the_bench_is_layered(graph: grimp.ImportGraph) -> None:
    layer_of = {name: i for i, names in enumerate(BENCH_LAYERS) for name in names}
    bench = {m.removeprefix("roomhub.bench.") for m in graph.modules if "bench." in m}
    unknown = sorted(m for m in bench if m not in layer_of)
    assert not unknown, f"bench modules with no layer in BENCH_LAYERS: {unknown}"
    wrong = []
    for importer in sorted(layer_of):
        full = f"roomhub.bench.{importer}"
        if full not in graph.modules:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(full)):
            name = imported.removeprefix("roomhub.bench.")
            if name not in layer_of:
                continue
            if layer_of[name] >= layer_of[importer]:
                wrong.append(f"{importer} -> {name}")
            elif name in SCENARIOS and importer not in ("cli", "resilience"):
                wrong.append(f"{importer} -> {name} (only the CLI's registry imports scenarios)")
    assert not wrong, "imports against the bench's layers:\n" + "\n".join(wrong)
