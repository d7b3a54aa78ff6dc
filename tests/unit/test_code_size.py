"""The package stays readable in one sitting: no class over 120 lines, no function over 60 (issue #20).

Measured from the source with ``ast`` (decorators excluded, docstrings and comments included), over
every module of ``layers/ipv6gate/ipv6gate``; a nested function counts on its own and within its parent.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "ipv6gate" / "ipv6gate"
MAX_CLASS_LINES = 120
MAX_FUNCTION_LINES = 60


def oversized(source: str, where: str) -> list[str]:
    """One line per class or function of ``source`` over its limit."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            limit, kind = MAX_CLASS_LINES, "class"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            limit, kind = MAX_FUNCTION_LINES, "function"
        else:
            continue
        lines = (node.end_lineno or node.lineno) - node.lineno + 1
        if lines > limit:
            found.append(f"{where}:{node.lineno} {kind} {node.name} is {lines} lines (limit {limit})")
    return found


def test_the_package_is_where_this_test_looks() -> None:
    modules = list(PACKAGE.rglob("*.py"))
    assert (PACKAGE / "wiring" / "__init__.py").is_file() and len(modules) > 40


def test_no_class_or_function_over_its_limit() -> None:
    problems = [
        problem
        for path in sorted(PACKAGE.rglob("*.py"))
        for problem in oversized(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("body_lines", "kind", "caught"),
    [(59, "def", False), (60, "def", True), (119, "class", False), (120, "class", True)],
)
def test_the_measure_counts_every_line_of_a_definition(body_lines: int, kind: str, caught: bool) -> None:
    """The header line plus ``body_lines``: one more than the limit is caught, the limit itself is not."""
    header = "def f():" if kind == "def" else "class C:"
    source = header + "\n" + "    x = 1\n" * body_lines
    assert bool(oversized(source, "m.py")) is caught


def _module_table() -> dict[str, str]:
    """README "Architecture": the module table's rows, by the folder or module in their second column."""
    readme = (PACKAGE.parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`"):
            for name in cells[1].replace("`", "").split(","):
                rows[name.strip()] = cells[2]
    return rows


def test_the_readme_module_table_names_every_module_of_the_tree() -> None:
    """Each folder of the package has a row naming each of its modules; each top-level module has a row."""
    rows = _module_table()
    missing: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py" and len(relative.parts) > 1:
            continue
        if len(relative.parts) == 1:
            if path.name != "__init__.py" and path.name not in rows:
                missing.append(str(relative))
        elif f"`{path.name}`" not in rows.get(f"{relative.parts[0]}/", ""):
            missing.append(str(relative))
    assert missing == []
    named_folders = {name.rstrip("/") for name in rows if name.endswith("/")}
    assert named_folders == {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
