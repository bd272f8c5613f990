"""The layout's rules, read from the source: plugins meet only through each other's `api` module,
the core knows no plugin, and no import circle exists in gateway/ or plugins/ (lazy imports inside
functions included)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def modules() -> dict[str, Path]:
    found = {}
    for package in ("gateway", "plugins"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `path` imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    # `from plugins.auth import cli` inside plugins.auth names the package itself: not an edge
    return {module: imports(path, known) - {module} for module, path in known.items()}


def owner(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "plugins" and len(parts) > 1 else None


def crossings(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} imports {target}" for module, targets in edges.items() for target in targets
                  if owner(module) and owner(target) and owner(target) != owner(module)
                  and target != f"plugins.{owner(target)}.api")


def circles(edges: dict[str, set[str]]) -> list[str]:
    found, done, stack = [], set(), []

    def visit(module: str) -> None:
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if target in stack:
                found.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in done:
                visit(target)
        stack.pop()
        done.add(module)

    for module in sorted(edges):
        if module not in done:
            visit(module)
    return found


def test_plugins_import_other_plugins_only_through_their_api():
    assert crossings(graph()) == []


def test_the_core_imports_no_plugin():
    assert [(m, t) for m, targets in graph().items() for t in targets
            if m.startswith("gateway") and t.startswith("plugins")] == []


def test_no_import_circles():
    assert circles(graph()) == []


def test_the_rules_see_a_crossing_and_a_circle():
    """What the checks above exist for: media reaching into data's internals; two modules that
    import each other (as database.py and mysql.py once did)."""
    edges = {"plugins.media.routes": {"plugins.data.resources", "plugins.data.api"},
             "plugins.data.database": {"plugins.data.mysql"}, "plugins.data.mysql": {"plugins.data.database"}}
    assert crossings(edges) == ["plugins.media.routes imports plugins.data.resources"]
    assert circles(edges) == ["plugins.data.database -> plugins.data.mysql -> plugins.data.database"]
