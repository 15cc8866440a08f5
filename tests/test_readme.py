"""
The README's promises: its example is the tested example file, it runs and
rotates, and CI runs the README's test command.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import urllib.request
from pathlib import Path

import trustme

from .processes import freePort, servedSerial, startPython, stop, waitFor
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

    def test_exampleServesAndRotates(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        The example serves its page over TLS, logs a refused reload with
        its reason, and a SIGHUP after the fix rotates its certificate.
        """
        certPath, keyPath, oldSerial = writeLeaf(ca, tmp_path)
        port = freePort()
        server = startPython([str(EXAMPLE), str(certPath), str(keyPath), str(port)])
        caPem = ca.cert_pem.bytes()
        context = ssl.create_default_context(cadata=caPem.decode())
        try:
            body = waitFor(
                lambda: urllib.request.urlopen(
                    f"https://localhost:{port}/", context=context, timeout=5
                ).read()
            )
            assert body == b"Hello, TLS.\n"
            assert servedSerial(port, caPem) == oldSerial

            certPath.write_bytes(b"garbage")
            os.kill(server.pid, signal.SIGHUP)
            waitFor(lambda: servedSerial(port, caPem) == oldSerial or None)

            _, _, newSerial = writeLeaf(ca, tmp_path)
            os.kill(server.pid, signal.SIGHUP)

            waitFor(lambda: servedSerial(port, caPem) == newSerial or None)
        finally:
            output = stop(server)
        assert f"TLS reload refused: {certPath}: no PEM data found" in output
        assert output.count("TLS certificate loaded") == 2
