"""Package code stays readable in pieces: no module over 400 lines and no function over 60 in
uwsgiapp/ and protocol/ (issue 16), unless ALLOWED names it with the reason it must be."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("uwsgiapp", "protocol")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

#: Exceptions, each with why it must be: a module's path ("uwsgiapp/x.py") or a function's
#: "path::qualified.name" (e.g. "uwsgiapp/x.py::Class.method").
ALLOWED: dict[str, str] = {
    "uwsgiapp/supervisor/status.py": (
        "the slot's layout and the request hooks that store into it, one compiled module: "
        "mypyc inlines the layout's constants there; split, each store would look them up"
    ),
}


def _modules() -> list[Path]:
    return sorted(p for root in ROOTS for p in (REPO / root).rglob("*.py"))


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """Every function and method as (qualified name, lines from ``def`` to its last line)."""
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                found.append((name, (node.end_lineno or node.lineno) - node.lineno + 1))
            found.extend(_functions(node, f"{name}."))
        else:
            found.extend(_functions(node, prefix))
    return found


def _oversized() -> dict[str, str]:
    over: dict[str, str] = {}
    for path in _modules():
        rel = path.relative_to(REPO).as_posix()
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            over[rel] = f"{lines} lines"
        for name, length in _functions(ast.parse(source, rel)):
            if length > MAX_FUNCTION_LINES:
                over[f"{rel}::{name}"] = f"{length} lines"
    return over


def test_no_module_or_function_over_the_limit() -> None:
    over = {key: size for key, size in _oversized().items() if key not in ALLOWED}
    assert not over, (
        f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function; split "
        f"along a real seam, or add to ALLOWED with the reason: {over}"
    )


def test_every_allowed_exception_is_still_needed_and_says_why() -> None:
    over = _oversized()
    assert not [key for key in ALLOWED if key not in over], "drop what no longer needs it"
    assert all(reason.strip() for reason in ALLOWED.values())


@pytest.mark.parametrize("root", ROOTS)
def test_the_check_sees_the_code(root: str) -> None:
    assert any(p.is_relative_to(REPO / root) for p in _modules())
    assert _functions(
        ast.parse("class A:\n    def f(self):\n        def g():\n            pass\n")
    ) == [
        ("A.f", 3),
        ("A.f.g", 2),
    ]
