"""The code's layout is part of the design (issue 14): no module over 400 lines, no import
cycle between modules, the agent's top level holds packages and a handful of modules, and the
agent never imports the hub (outside agent.demo, which starts one)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "hub")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:  # Alembic steps are generated, one per schema change
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _module_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Imports that run when the module is imported: not those under TYPE_CHECKING or inside
    functions (those are deliberate lazy imports and cannot form an import-time cycle)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    visit(tree.body)
    return {m for m in found if m in known and m != name}


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by job: {long}"


def test_no_import_cycle() -> None:
    mods = _modules()
    graph = {name: _module_level_imports(name, path, set(mods)) for name, path in mods.items()}
    # Tarjan's strongly connected components: any component of more than one module is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package importing its own submodules in __init__ is not a cycle of the design
            if len(component) > 1 and not _package_and_its_children(component):
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert not cycles, f"import cycles: {cycles}"


def _package_and_its_children(component: list[str]) -> bool:
    shortest = min(component, key=len)
    return all(m == shortest or m.startswith(shortest + ".") for m in component) and \
        all(not any(o.startswith(m + ".") for o in component) or m == shortest for m in component)


def test_agent_top_level_holds_packages_and_a_handful_of_modules() -> None:
    modules = [p.name for p in (ROOT / "agent").glob("*.py")]
    assert len(modules) <= 5, modules
    packages = [p.name for p in (ROOT / "agent").iterdir() if (p / "__init__.py").exists()]
    assert len(packages) >= 8, packages


def test_every_package_says_what_lives_there() -> None:
    silent = []
    for pkg in PACKAGES:
        for init in (ROOT / pkg).rglob("__init__.py"):
            if "migrations" in init.parts:
                continue
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            if len(doc.split()) < 8:
                silent.append(str(init.relative_to(ROOT)))
    assert not silent, f"packages without a docstring saying what lives there: {silent}"


def test_the_agent_never_imports_the_hub_outside_the_demo() -> None:
    offenders = []
    for name, path in _modules().items():
        if not name.startswith("agent.") or name.startswith("agent.demo"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mod = (node.module or "") if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [mod or ""]
            if any(n == "hub" or n.startswith("hub.") for n in names):
                offenders.append(name)
    assert not offenders, offenders
