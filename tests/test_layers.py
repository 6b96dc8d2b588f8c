"""The folders are the pipeline: every import of every module, deferred ones included, goes to an
earlier stage or to a shared leaf, so there is no import cycle, not even between a package and its
own submodules (docs/layout.md)."""

import ast
from pathlib import Path

import pytest

import edgeq

pytestmark = pytest.mark.usefixtures("no_processes")  # a pure stage: no program, fork or port

PACKAGE = Path(edgeq.__file__).resolve().parent

# Shared leaves: any module may import them; they import only each other.
LEAVES = ("edgeq", "edgeq.errors", "edgeq.console", "edgeq.files", "edgeq.resources", "edgeq.units",
          "edgeq.sources", "edgeq.tools", "edgeq.csource", "edgeq.graph", "edgeq.protocol", "edgeq.runtime",
          "edgeq.isolate", "edgeq.tflm_limits", "edgeq.litert_ops", "edgeq.modes")
# The stages in processing order; each imports only those before it (and leaves).
STAGES = ("profiles", "boards", "load", "quant", "convert", "measure", "aot", "codegen", "runtimes", "device",
          "plan", "report", "deploy", "sweep", "cli")


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("edgeq", *path.relative_to(PACKAGE).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The edgeq modules `name` imports, at the top or inside functions. `from pkg import sub` counts
    as importing the submodule, and, written in one of pkg's own submodules, pkg itself: a submodule
    imports its siblings directly (`import pkg.sub as sub`, `from pkg.sub import x`), never its own
    package's __init__."""
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
            own_package = name.startswith(base + ".") and base != "edgeq"
            targets = subs + ([base] if len(subs) < len(node.names) or own_package else [])
        for t in targets:
            if t in modules and t != name and (t == "edgeq" or not name.startswith(t + ".") or t == package):
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


def test_no_submodule_imports_its_own_package():
    modules = module_names()
    inward = [f"{name} imports {target}" for name, path in modules.items() if path.name != "__init__.py"
              for target in imports(name, path, modules) if target != "edgeq" and name.startswith(target + ".")]
    assert inward == []


def test_no_runtime_is_named_in_a_comparison_outside_edgeq_runtimes():
    from edgeq.runtimes import NAMES

    found = []
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "runtimes" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                literals = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                literals += [e.value for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set))
                             for e in c.elts if isinstance(e, ast.Constant)]
                if any(v in NAMES for v in literals):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert found == []


def test_modules_stay_under_about_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}


def test_in_a_pure_stages_test_starting_a_program_or_opening_a_port_fails():
    import serial

    from edgeq.tools import run_tool

    with pytest.raises(AssertionError, match="a pure stage tried to start a program"):
        run_tool(["true"])
    with pytest.raises(AssertionError, match="a pure stage tried to open a serial port"):
        serial.serial_for_url("loop://")
