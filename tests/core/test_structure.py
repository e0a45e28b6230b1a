"""The package's shape: no import cycles, a camera layer that never names the simulator, and
comments that say what the code is rather than which issue added it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "qhy42_indi"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The package modules `path` imports, TYPE_CHECKING blocks included: a cycle hidden
    from the interpreter is still one for a reader."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    visit([n for n in inner if isinstance(n, ast.stmt)])

    visit(tree.body)
    return {name for name in found if name.startswith("qhy42_indi")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules} for name, path in modules.items()}


def test_no_import_cycles() -> None:
    edges = graph()
    done: set[str] = set()

    def walk(name: str, stack: list[str]) -> None:
        if name in stack:
            cycle = " -> ".join([*stack[stack.index(name):], name])
            raise AssertionError(f"import cycle: {cycle}")
        if name in done:
            return
        for target in edges.get(name, ()):
            walk(target, [*stack, name])
        done.add(name)

    for module in edges:
        walk(module, [])


def test_the_camera_layer_never_names_the_simulator() -> None:
    for path in (PACKAGE / "camera").glob("*.py"):
        text = path.read_text()
        assert "SimulatorBackend" not in text, path.name
        assert "backends.simulator" not in text, path.name
        assert not any(m.startswith("qhy42_indi.backends.sim") for m in imports(path)), path


def test_no_comment_records_which_issue_added_a_line() -> None:
    pattern = re.compile(r"#.*\bissue\s+\d+|\(issue\s+\d+\)", re.IGNORECASE)
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{number}"
                 for path in PACKAGE.rglob("*.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
