"""The folders are the pipeline: every import of every module, deferred ones included, goes to an
earlier stage or to a shared leaf, so there is no import cycle (docs/layout.md)."""

import ast
from pathlib import Path

import edgeq

PACKAGE = Path(edgeq.__file__).resolve().parent

# Shared leaves: any module may import them; they import only each other.
LEAVES = ("edgeq", "edgeq.errors", "edgeq.console", "edgeq.files", "edgeq.resources", "edgeq.units",
          "edgeq.sources", "edgeq.tools", "edgeq.csource", "edgeq.graph", "edgeq.protocol", "edgeq.runtime", "edgeq.isolate", "edgeq.tflm_limits")
# The stages in processing order; each imports only those before it (and leaves).
STAGES = ("profiles", "load", "quant", "convert", "measure", "aot", "codegen", "device", "plan", "report",
          "deploy", "cli")


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("edgeq", *path.relative_to(PACKAGE).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The edgeq modules `name` imports, at the top or inside functions. `from pkg import sub` counts
    as importing the submodule; a package's own __init__ is not counted for its submodules."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            targets = subs + ([base] if len(subs) < len(node.names) else [])
        for t in targets:
            if t in modules and t != name and not name.startswith(t + "."):
                found.add(t)
    return found


def stage_of(name: str) -> int | None:
    if name in LEAVES:
        return None
    if name == "edgeq.__main__":  # `python -m edgeq` is the command line
        return STAGES.index("cli")
    return STAGES.index(name.split(".")[1])


def test_every_module_belongs_to_a_stage_or_is_a_shared_leaf():
    unplaced = [n for n in module_names() if n not in LEAVES and n != "edgeq.__main__" and n.split(".")[1] not in STAGES]
    assert unplaced == []


def test_no_module_imports_a_later_stage():
    modules = module_names()
    wrong = []
    for name, path in modules.items():
        here = stage_of(name)
        for target in imports(name, path, modules):
            there = stage_of(target)
            if here is None and there is not None:
                wrong.append(f"leaf {name} imports the stage module {target}")
            elif there is not None and here is not None and there > here:
                wrong.append(f"{name} ({STAGES[here]}) imports {target} ({STAGES[there]}), a later stage")
    assert wrong == []


def test_there_is_no_import_cycle():
    modules = module_names()
    graph = {name: imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == []


def test_modules_stay_under_about_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}
