"""The import contracts of the packages, read from the source (every import, lazy ones too).

The data path is definition -> plan -> engine -> store/broker -> workers. A stage imports only
the stages below it; ``config`` imports neither package; ``orchestrator`` never imports
``workers``; the engine sees the store only through its protocols (``engine/ports.py``); and no
two modules import each other, directly or around a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "orchestrator", "workers")

# What each part of the project may import of the project (itself always, and `orchestrator.errors`,
# the one error tree, from anywhere). A part is a top-level package or a folder of `orchestrator`.
WEB = {
    "config",
    "orchestrator.definition",
    "orchestrator.plan",
    "orchestrator.engine",
    "orchestrator.store",
    "orchestrator.broker",
    "orchestrator.triggers",
    "orchestrator.analysis",
    "orchestrator.observability",
    "orchestrator.history",
    "orchestrator.services",
}
"""What the composition roots of the web layer (the API, the UI) may import below them."""
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "orchestrator.definition": set(),
    "orchestrator.plan": {"config", "orchestrator.definition"},
    "orchestrator.engine": {"orchestrator.definition", "orchestrator.plan"},
    "orchestrator.store": {"config", "orchestrator.definition", "orchestrator.plan", "orchestrator.engine"},
    "orchestrator.broker": {"orchestrator.plan", "orchestrator.engine", "orchestrator.store"},
    "orchestrator.triggers": {"orchestrator.definition"},
    "orchestrator.analysis": {"orchestrator.definition", "orchestrator.plan", "orchestrator.engine"},
    "orchestrator.dev": {"config"},
    "orchestrator.observability": {"config", "orchestrator.definition", "orchestrator.engine"},
    # The durable history: the engine's protocols and records only (the store reaches it through them).
    "orchestrator.history": {"orchestrator.definition", "orchestrator.plan", "orchestrator.engine"},
    # The web layer: the API mounts the UI (app.py), the UI uses the API's auth and error shape.
    "orchestrator.api": WEB | {"orchestrator.ui"},
    "orchestrator.ui": WEB | {"orchestrator.api"},
    "orchestrator.services": {"config", "orchestrator"},  # the composition root (the CLI, the API, direct mode)
    "orchestrator.cli": {"config", "orchestrator"},
    "orchestrator": {"config", "orchestrator"},  # the package's own __init__ and top-level modules
    "workers": {"config", "orchestrator"},
}
NEVER: dict[str, set[str]] = {
    "workers": {"orchestrator.cli", "orchestrator.api"},  # composition roots, not libraries
    "orchestrator.services": {"orchestrator.cli", "orchestrator.api"},
}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(name: str, path: Path) -> Iterator[str]:
    """Every project module ``name`` imports, absolute or relative, at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
            if not name.startswith(base + "."):  # inside its own package, the package is importing already
                targets.append(base)
        else:
            continue
        yield from (t for t in targets if t.split(".")[0] in PACKAGES)


def part(module: str) -> str:
    """``orchestrator.store.runs`` -> ``orchestrator.store``; ``workers.app`` -> ``workers``."""
    pieces = module.split(".")
    if (
        pieces[0] == "orchestrator"
        and len(pieces) > 1
        and f"orchestrator.{pieces[1]}" in ALLOWED | {"orchestrator.services": set()}
    ):
        return f"orchestrator.{pieces[1]}"
    return pieces[0]


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        # `from pkg import name` names a module or a symbol: keep what is a module.
        edges[name] = {t for t in imports(name, path) if t in known and t != name}
    return edges


def test_every_part_imports_only_the_stages_below_it() -> None:
    broken = []
    for module, targets in graph().items():
        mine = part(module)
        for target in targets:
            theirs = part(target)
            if theirs == mine or target == "orchestrator.errors" or target == "orchestrator":
                continue
            allowed = ALLOWED[mine]
            if not any(theirs == a or theirs.startswith(a + ".") for a in allowed) or any(
                target == n or target.startswith(n + ".") for n in NEVER.get(mine, ())
            ):
                broken.append(f"{module} imports {target}")
    assert broken == []


def test_the_engine_sees_the_store_only_through_its_protocols() -> None:
    engine = {m: t for m, t in graph().items() if part(m) == "orchestrator.engine"}
    assert engine, "no engine modules found"
    assert not [
        f"{m} -> {t}" for m, ts in engine.items() for t in ts if "redis" in t or part(t) == "orchestrator.store"
    ]
    for module, path in modules().items():
        if part(module) == "orchestrator.engine":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
            mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert "redis" not in names and not any(m and m.startswith(("redis", "celery", "kombu")) for m in mods), (
                module
            )


def test_no_module_imports_itself_around_a_circle() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    assert circles == []


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_says_what_it_holds_in_its_first_line(module: str) -> None:
    doc = ast.get_docstring(ast.parse(modules()[module].read_text(encoding="utf-8")))
    assert doc and doc.strip().splitlines()[0].rstrip().endswith((".", ":")), f"{module}: {doc!r}"
