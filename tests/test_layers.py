"""Dependencies point one way: the orchestration (`pipeline/`) uses the components, never the
reverse, so a component runs (and is tested) without the orchestration around it."""

from __future__ import annotations

import ast
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parents[1] / "components"


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_no_component_imports_the_orchestration():
    offenders = {
        str(path.relative_to(COMPONENTS.parent)): sorted(
            m for m in _imported_modules(path) if m == "pipeline" or m.startswith("pipeline.")
        )
        for path in sorted(COMPONENTS.rglob("*.py"))
    }
    assert {f: m for f, m in offenders.items() if m} == {}
    assert len(offenders) > 50  # the walk found the components
