"""Every code name and path the developer docs mention exists, so that the docs cannot rot.

Reads the backticked spans of docs/ARCHITECTURE.md and tests/README.md (fenced blocks aside):

- ``path/to/file.py::Name.attr``: the file exists and defines that name (read with ast: a
  top-level def, class or assignment; a class's method, class attribute, slot or ``self.x``);
- a relative path (``uwsgiapp/server/``, ``docs/RELIABILITY.md``): it exists in the repository;
- a dotted name (``uwsgiproto.parse_packet``, ``os.sendfile``): importable as written, attribute
  by attribute; one whose first part is no module (``Policy.on_exit``) must be a class member
  defined somewhere in the package;
- a bare ``CamelCase`` name or a ``call()``: defined somewhere in the package.

Spans with spaces (commands), options (``--x``), environ keys and other words are not names.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/ARCHITECTURE.md", "tests/README.md")
#: Where names without a file are looked for.
SOURCE_DIRS = ("uwsgiapp", "protocol/uwsgiproto", "tests/support")
#: Dotted spans that are not Python names (environ keys).
NOT_CODE = frozenset({"wsgi.input", "wsgi.file_wrapper", "wsgi.errors"})
PATH_SUFFIXES = (".py", ".md", ".toml", ".yml", ".yaml", ".ini", ".txt", ".json", ".sh")

_SPAN = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?")
_CAMEL = re.compile(r"[A-Z][a-z0-9]\w*")
_CALL = re.compile(r"[A-Za-z_]\w*\(\)")


def spans(text: str) -> list[str]:
    """The backticked spans of a Markdown text, outside fenced code blocks."""
    found: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            found += _SPAN.findall(line)
    return found


# -- what a file defines (ast) -------------------------------------------------------------------


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _class_members(cls: ast.ClassDef) -> set[str]:
    members: set[str] = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            members.add(node.name)
        for name in _targets(node):
            members.add(name)
            value = getattr(node, "value", None)
            if name == "__slots__" and isinstance(value, (ast.Tuple, ast.List)):
                members.update(
                    e.value for e in value.elts if isinstance(e, ast.Constant) and e.value
                )
    for node in ast.walk(cls):  # self.x = ... in any method
        target = node.target if isinstance(node, ast.AnnAssign) else None
        for t in [target] if target else getattr(node, "targets", []):
            if (
                isinstance(t, ast.Attribute)
                and isinstance(t.value, ast.Name)
                and t.value.id == "self"
            ):
                members.add(t.attr)
    return members


@functools.cache
def defined_in(path: Path) -> frozenset[str]:
    """Qualified names a file defines: ``name`` and ``Class.member``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(f"{node.name}.{m}" for m in _class_members(node))
        else:
            names.update(_targets(node))
    return frozenset(names)


@functools.cache
def package_index() -> frozenset[str]:
    """Every qualified name the package (and the test support) defines."""
    names: set[str] = set()
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            names |= defined_in(path)
    return frozenset(names)


# -- checks --------------------------------------------------------------------------------------


def _import_prefix(parts: list[str]) -> tuple[ModuleType | None, int]:
    """The longest importable module prefix of ``parts`` and how many parts it took."""
    for n in range(len(parts), 0, -1):
        try:
            return importlib.import_module(".".join(parts[:n])), n
        except ImportError:
            continue
    return None, 0


def _instance_attr(owner: object, attr: str) -> bool:
    """``attr`` is set on instances of class ``owner`` (``self.attr = ...``), or is a field."""
    if not inspect.isclass(owner):
        return False
    for klass in owner.__mro__:
        if attr in getattr(klass, "__dataclass_fields__", {}):
            return True
        try:
            source = inspect.getsourcefile(klass)
        except TypeError:
            continue
        if source and f"{klass.__name__}.{attr}" in defined_in(Path(source)):
            return True
    return False


def check_dotted(name: str) -> str | None:
    """None if ``name`` resolves, else why not."""
    parts = name.removesuffix("()").split(".")
    module, n = _import_prefix(parts)
    if module is None:
        if name.removesuffix("()") in package_index():
            return None
        return f"{name}: no module {parts[0]!r}, and no such class member in the package"
    obj: object = module
    for i, attr in enumerate(parts[n:], start=n):
        if hasattr(obj, attr):
            obj = getattr(obj, attr)
        elif i == len(parts) - 1 and _instance_attr(obj, attr):
            return None
        else:
            return f"{name}: {'.'.join(parts[:i])} has no attribute {attr!r}"
    return None


def check_file_name(span: str) -> str | None:
    path_text, _, qualname = span.partition("::")
    path = ROOT / path_text
    if not path.is_file():
        return f"{span}: no file {path_text}"
    if qualname not in defined_in(path):
        return f"{span}: {path_text} defines no {qualname!r}"
    return None


def check_span(span: str) -> str | None:
    """None if the span is fine (or not a name at all), else the problem."""
    span = span.strip()
    if not span or any(c.isspace() for c in span) or span.startswith(("-", "/", ".")):
        return None
    if "::" in span:
        return check_file_name(span)
    if (ROOT / span).exists():  # Dockerfile, Makefile
        return None
    if "/" in span or span.endswith(PATH_SUFFIXES):
        return None if (ROOT / span).exists() else f"{span}: no such path in the repository"
    if span in NOT_CODE:
        return None
    if _DOTTED.fullmatch(span):
        return check_dotted(span)
    if _CAMEL.fullmatch(span) or _CALL.fullmatch(span):
        simple = span.removesuffix("()")
        if any(q == simple or q.endswith("." + simple) for q in package_index()):
            return None
        return f"{span}: defined nowhere in the package"
    return None


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS)
def test_every_name_and_path_in_the_doc_exists(doc: str) -> None:
    problems = [p for s in spans((ROOT / doc).read_text(encoding="utf-8")) if (p := check_span(s))]
    assert not problems, f"{doc} names what does not exist:\n" + "\n".join(problems)


def test_the_architecture_doc_names_enough_to_be_checked() -> None:
    # Guards the extraction: a change of convention in the doc must not leave nothing checked.
    names = [
        s for s in spans((ROOT / DOCS[0]).read_text(encoding="utf-8")) if "::" in s or "." in s
    ]
    assert len(names) >= 80


@pytest.mark.parametrize(
    "span",
    [
        "uwsgiapp/server/intake.py::Handler.no_such_method",
        "uwsgiapp/server/nowhere.py::Handler",
        "uwsgiapp.server.intake.Handler.no_such_method",
        "uwsgiapp.server.no_such_module.name",
        "uwsgiproto.no_such_name",
        "Policy.no_such_handler",
        "NoSuchClass",
        "no_such_function()",
        "docs/NO_SUCH.md",
    ],
)
def test_the_checker_catches_a_wrong_name(span: str) -> None:
    assert check_span(span) is not None


@pytest.mark.parametrize(
    "span",
    [
        "uwsgiapp/server/worker.py::Worker.parked",  # self.parked in __init__
        "uwsgiapp/server/intake.py::Pending.deadline",  # a slot
        "uwsgiapp.supervisor.roster.Roster.workers",  # a dataclass field without default
        "uwsgiapp.supervisor.serve",  # a module __getattr__
        "uwsgiapp.server.intake.Handler.read_size",  # an instance attribute
        "os.sendfile",
        "make test",
        "--socket-timeout",
    ],
)
def test_the_checker_accepts_a_right_name(span: str) -> None:
    assert check_span(span) is None
