"""
Tests for the documentation: it builds with warnings as errors, and its API
page documents every public name.
"""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

import txtlsreload

ROOT = Path(__file__).parent.parent


class _Entries(HTMLParser):
    """
    Collect the text of each API entry's description, by anchor id.
    """

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self._pending: str | None = None
        self._current: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        anchor = dict(attrs).get("id")
        if tag == "dt" and anchor and anchor.startswith("txtlsreload."):
            self._pending = anchor
        elif tag == "dd" and self._current is None and self._pending is not None:
            self._current, self._pending, self._depth = self._pending, None, 0
            self.text[self._current] = ""
        if tag == "dd" and self._current is not None:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "dd" and self._current is not None:
            self._depth -= 1
            if self._depth == 0:
                self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.text[self._current] += data


@pytest.fixture(scope="module")
def apiPage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """
    Build the documentation once, as CI does (warnings are errors), and
    return the API page's HTML.
    """
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-q",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(ROOT / "docs"),
            str(out / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return (out / "html" / "api.html").read_text(encoding="utf-8")


class TestAPIPage:
    """
    The API page, built from the docstrings of C{txtlsreload.__all__}.
    """

    @pytest.mark.parametrize("name", txtlsreload.__all__)
    def test_everyPublicNameDocumented(self, apiPage: str, name: str) -> None:
        """
        Every name in C{__all__} has an entry on the API page whose
        description says something.
        """
        entries = _Entries()
        entries.feed(apiPage)
        assert f"txtlsreload.{name}" in entries.text
        assert len(entries.text[f"txtlsreload.{name}"].split()) >= 5

    def test_epytextConverted(self, apiPage: str) -> None:
        """
        No epytext markup is left in the rendered page: fields became field
        lists and inline markup became links and literals.
        """
        text = re.sub(r"<[^>]+>", "", apiPage)
        assert re.findall(r"@(?:param|ivar|return|raise|see)\b", text) == []
        assert re.findall(r"\b[LCIU]\{", text) == []

    @pytest.mark.parametrize(
        "result, fields",
        [
            (
                "ReloadResult",
                ["succeeded", "changed", "certificate", "error"],
            ),
            (
                "ClientReloadResult",
                [
                    "succeeded",
                    "changed",
                    "clientCertificate",
                    "trustedCAs",
                    "error",
                ],
            ),
            (
                "CertificateInfo",
                [
                    "subject",
                    "subjectAltNames",
                    "serialNumber",
                    "fingerprintSHA256",
                    "notBefore",
                    "notAfter",
                ],
            ),
        ],
    )
    def test_resultFieldsDescribed(
        self, apiPage: str, result: str, fields: list[str]
    ) -> None:
        """
        The fields of the result and certificate records are listed, each
        with its type.
        """
        entries = _Entries()
        entries.feed(apiPage)
        description = entries.text[f"txtlsreload.{result}"]
        for field in fields:
            assert re.search(rf"\b{field} \(", description), field

    def test_externalLinks(self, apiPage: str) -> None:
        """
        Names from Twisted and pyOpenSSL link to their documentation, with
        no inventory downloaded.
        """
        assert "https://docs.twisted.org/en/stable/api/" in apiPage
        assert "https://www.pyopenssl.org/en/stable/api/ssl.html#" in apiPage


def _pythonSnippets() -> list[tuple[str, str]]:
    """
    Every literal block in docs/*.rst that starts with an import: the Python
    snippets a reader would paste.
    """
    snippets = []
    for page in sorted((ROOT / "docs").glob("*.rst")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if not line.rstrip().endswith("::"):
                continue
            block = []
            for following in lines[number + 1 :]:
                if following.strip() and not following.startswith(" "):
                    break
                block.append(following)
            code = textwrap.dedent("\n".join(block)).strip()
            if code.startswith(("import ", "from ")):
                snippets.append((f"{page.name}:{number + 1}", code + "\n"))
    return snippets


def _unboundNames(code: str) -> set[str]:
    """
    Names a program reads but never imports, assigns or defines (a loose
    check: scopes are not told apart, which is enough for snippets).
    """
    tree = ast.parse(code)
    bound = set(dir(builtins))
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound.update(
                (alias.asname or alias.name).split(".")[0] for alias in node.names
            )
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else read).add(node.id)
    return read - bound


class TestSnippets:
    """
    The Python snippets in the pages run as written: nothing they use is
    left for the reader to guess.
    """

    @pytest.mark.parametrize(
        "where, code", _pythonSnippets(), ids=[w for w, _ in _pythonSnippets()]
    )
    def test_snippetIsComplete(self, where: str, code: str) -> None:
        """
        The snippet parses and uses no name it does not import or define.
        """
        assert _unboundNames(code) == set(), where

    def test_snippetsFound(self) -> None:
        """
        The snippets of the library, endpoint, client and watching pages are
        among those checked.
        """
        pages = {where.split(":")[0] for where, _ in _pythonSnippets()}
        assert {"library.rst", "endpoint.rst", "client.rst", "watching.rst"} <= pages

    def test_incompleteSnippetCaught(self) -> None:
        """
        The check finds a name used but never defined, as in a snippet that
        listens on a C{site} it never made.
        """
        code = "from twisted.internet import reactor\nreactor.listenTCP(80, site)\n"
        assert _unboundNames(code) == {"site"}
