"""Dependencies point one way: the orchestration (`pipeline/`) uses the components, never the
reverse, so a component runs (and is tested) without the orchestration around it; and every
package folder installs under the one `emograph` namespace."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = REPO / "components"


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
            m
            for m in _imported_modules(path)
            if m.split(".")[:2] == ["emograph", "pipeline"] or m.split(".")[0] == "pipeline"
        )
        for path in sorted(COMPONENTS.rglob("*.py"))
    }
    assert {f: m for f, m in offenders.items() if m} == {}
    assert len(offenders) > 50  # the walk found the components


# Packages that are one pipeline step each: they share the layers below them (audio, models,
# config, features, ...) and never reach into another step's module.
STEPS = ("example_gen", "transform", "teacher", "student", "tflite_pusher")


def test_steps_do_not_import_each_other():
    offenders = {}
    for step in STEPS:
        for path in sorted((COMPONENTS / step).rglob("*.py")):
            others = {
                m
                for m in _imported_modules(path)
                if m.startswith("emograph.components.")
                and m.split(".")[2] in STEPS
                and m.split(".")[2] != step
            }
            if others:
                offenders[str(path.relative_to(REPO))] = sorted(others)
    assert offenders == {}


def test_every_package_folder_is_installed_under_the_emograph_namespace():
    listed = set(
        re.findall(r'^\s+"(emograph\.[a-z_.]+)",$', (REPO / "pyproject.toml").read_text(), re.M)
    )
    folders = {
        "emograph." + ".".join(init.parent.relative_to(REPO).parts)
        for top in ("components", "pipeline", "schemas")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert len(folders) > 10 and listed == folders
