"""The package's shape: no import cycles, no reaching into another package's private
modules, no source file over 600 lines without a stated reason.

These read the source itself (``ast``), so they fail on the commit that breaks the rule,
whatever the test order or what happens to be imported already.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import scrutiny

SRC = Path(scrutiny.__file__).resolve().parent
MAX_LINES = 600
KEEP_WHOLE = "kept whole"  # a file over MAX_LINES says why near its top, with these words


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {(_module_name(p)): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(importer: str, path: Path, module_level_only: bool) -> set[str]:
    """The scrutiny modules ``importer`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    nodes: list[ast.AST] = []
    if module_level_only:
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                continue  # annotations only: never executed
            if isinstance(stmt, (ast.Try, ast.If)):
                nodes.extend(ast.walk(stmt))
            else:
                nodes.append(stmt)
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("scrutiny"))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(importer, is_package, node)
            if not base.startswith("scrutiny"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    found.discard(importer)
    return {t for t in found if t in MODULES}


def test_module_level_imports_form_no_cycle():
    graph = {m: _targets(m, p, module_level_only=False) for m, p in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (SRC / parts[1]).is_dir()) else ""


def test_no_package_imports_another_packages_private_module():
    bad = []
    for importer, path in MODULES.items():
        for target in _targets(importer, path, module_level_only=False):
            parts = target.split(".")
            home = _subpackage(target)
            private = any(p.startswith("_") and not p.startswith("__") for p in parts[2:])
            if home and private and home != _subpackage(importer):
                bad.append(f"{importer} imports {target}")
    assert not bad, "\n".join(bad)


def test_source_files_stay_under_600_lines_unless_they_say_why():
    long = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_LINES and KEEP_WHOLE not in "\n".join(lines[:30]).lower():
            long.append(f"{path.relative_to(SRC)} ({len(lines)} lines)")
    assert not long, "split by responsibility or say near the top why it is kept whole: " + ", ".join(long)


@pytest.mark.parametrize("order", ["alphabetical", "reverse"])
def test_every_module_imports_in_a_fresh_interpreter(order):
    names = sorted(MODULES)
    if order == "reverse":
        names.reverse()
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    if name == 'scrutiny.__main__':\n"
        "        continue\n"
        "    importlib.import_module(name)\n"
    )
    proc = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_layout_checks_can_fail(tmp_path):
    """The cycle and private-import detectors find a planted violation."""
    src = ast.parse("from ..surrogate._math import kmeans\nfrom . import b\n")
    node = src.body[0]
    assert _resolve("scrutiny.attribution.gradient", False, node) == "scrutiny.surrogate._math"
    assert _subpackage("scrutiny.surrogate._math") == "surrogate"
    assert _subpackage("scrutiny._validation") == ""
