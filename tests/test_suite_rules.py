"""
Rules the test suite keeps, checked on its own source: tests and their
helpers reach txtlsreload through its public names only.

A test that reads or replaces a private attribute pins the implementation
instead of the behaviour, and survives mutations that break what users see.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LIBRARY = ROOT / "txtlsreload"
TESTS = Path(__file__).parent


def _isPrivate(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@functools.cache
def privateNames(library: Path = LIBRARY) -> frozenset[str]:
    """
    Every C{_}-prefixed name the library defines: modules, module-level
    names, classes, functions, methods, class attributes and attributes it
    sets on C{self}.
    """
    names = {path.stem for path in library.glob("_*.py") if _isPrivate(path.stem)}
    for path in library.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return frozenset(name for name in names if _isPrivate(name))


def violations(source: str, filename: str, private: frozenset[str]) -> list[str]:
    """
    Where C{source} touches a private name of the library: imports of its
    private modules or names, and attribute reads, writes or C{getattr}
    strings naming one of C{private} on anything but the test's own
    C{self}/C{cls}.
    """
    found = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "txtlsreload" and any(map(_isPrivate, parts)):
                    report(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            parts = node.module.split(".")
            if parts[0] == "txtlsreload":
                if any(map(_isPrivate, parts)):
                    report(node, f"imports from {node.module}")
                for alias in node.names:
                    if _isPrivate(alias.name):
                        report(node, f"imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in private:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                report(node, f"touches .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
        ):
            report(node, f"{node.func.id}(..., {node.args[1].value!r})")
    return found


def suiteSources() -> list[Path]:
    """
    Every Python file of the suite: tests, helpers and scripts they run.
    """
    return sorted(TESTS.rglob("*.py"))


class TestPublicAPIOnly:
    """
    No test or helper touches a private name of txtlsreload.
    """

    @pytest.mark.parametrize(
        "path", suiteSources(), ids=lambda path: str(path.relative_to(TESTS))
    )
    def test_noPrivateNames(self, path: Path) -> None:
        """
        This file neither imports a private module or name of txtlsreload
        nor reads, replaces or looks up one of its private attributes.
        """
        assert violations(path.read_text(), path.name, privateNames()) == []

    @pytest.mark.parametrize(
        "source",
        [
            "from txtlsreload._factory import ReloadingContextFactory",
            "from txtlsreload import _sighup",
            "import txtlsreload._watching",
            "factory._installed = None",
            "context = factory._installed.context",
            "watcher._directoryEvent('/tmp', None)",
            "getattr(factory, '_passphrase')",
        ],
    )
    def test_checkerFindsViolations(self, source: str) -> None:
        """
        The check above reports each way of reaching a private name, so it
        cannot pass by finding nothing.
        """
        assert violations(source, "example.py", privateNames()) != []

    @pytest.mark.parametrize(
        "source",
        [
            "from txtlsreload import ReloadingContextFactory",
            "self._installed = None",
            "connection._tlsConnection.get_servername()",
        ],
    )
    def test_checkerAllowsPublicUse(self, source: str) -> None:
        """
        Public names, a test's own private attributes and other libraries'
        private names (Twisted's) are not reported.
        """
        assert violations(source, "example.py", privateNames()) == []
