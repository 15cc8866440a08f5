"""
The README's promises: its example is the tested example file, it runs and
rotates, and CI runs the README's test command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import trustme

from .processes import (
    ServerProcess,
    checkRotationOnSIGHUP,
    httpRoundTrip,
    python,
)
from .tlshelpers import writeLeaf

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "hello_site.py"


def _codeBlocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, re.DOTALL)


class TestReadme:
    """
    The README matches what is tested.
    """

    def test_exampleIsTheTestedFile(self) -> None:
        """
        The README's Python example is exactly docs/examples/hello_site.py.
        """
        readme = (ROOT / "README.md").read_text()
        assert EXAMPLE.read_text() in _codeBlocks(readme, "python")

    def test_ciRunsTheReadmeTestCommand(self) -> None:
        """
        The second command of the README (the tests) is run by .ci/run.
        """
        readme = (ROOT / "README.md").read_text()
        testCommand = _codeBlocks(readme, "sh")[1].strip()
        assert testCommand in (ROOT / ".ci" / "run").read_text()

    def test_exampleServesAndRotates(
        self, tmp_path: Path, ca: trustme.CA, servers: Callable[..., ServerProcess]
    ) -> None:
        """
        The example, told port 0, logs the port it got, serves its page over
        TLS and rotates on SIGHUP as L{checkRotationOnSIGHUP} requires.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        server = servers(python(EXAMPLE, certPath, keyPath, "0"))
        port = server.listeningPort()

        checkRotationOnSIGHUP(
            server, port, ca, certPath, keyPath, httpRoundTrip("/", "Hello, TLS.\n")
        )
