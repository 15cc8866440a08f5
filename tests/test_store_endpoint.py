"""
Tests for C{tlsreload:...:certificates=DIR} and C{twistd tlshello
--certificates DIR}: descriptions, and real server processes serving many
names over HTTP/1.1 and HTTP/2 through a rotation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactorClock

from txtlsreload import (
    CredentialError,
    ReloadingCertificateStore,
    ReloadingServerEndpoint,
)

from .processes import ServerProcess, servedSerial, waitFor
from .tlshelpers import replaceAtomically, serialOf

ROOT = Path(__file__).parent.parent
_TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _writePair(directory: Path, name: str, ca: trustme.CA) -> int:
    """
    Issue a certificate for C{name} and write it Twisted C{tls:} style.
    """
    leaf = ca.issue_cert(name)
    (directory / f"{name}.key.pem").write_bytes(leaf.private_key_pem.bytes())
    replaceAtomically(directory / f"{name}.pem", leaf.cert_chain_pems[0].bytes())
    return serialOf(directory / f"{name}.pem")


def _reactor() -> MemoryReactorClock:
    """
    A memory reactor whose clock says what real reactors' do: the time now.
    """
    reactor = MemoryReactorClock()
    reactor.advance(time.time())
    return reactor


@pytest.fixture
def certificates(tmp_path: Path, ca: trustme.CA) -> tuple[Path, dict[str, int]]:
    """
    A directory serving a.example and b.example, and their serials.
    """
    directory = tmp_path / "certificates"
    directory.mkdir()
    return directory, {
        n: _writePair(directory, n, ca) for n in ("a.example", "b.example")
    }


class TestDescriptions:
    """
    C{certificates=} makes the endpoint serve a store.
    """

    def test_storeServed(self, certificates: tuple[Path, dict[str, int]]) -> None:
        """
        C{certificates=DIR} alone serves every certificate under DIR.
        """
        directory, serials = certificates
        endpoint = serverFromString(_reactor(), f"tlsreload:0:certificates={directory}")
        assert isinstance(endpoint, ReloadingServerEndpoint)
        store = endpoint.contextFactory
        assert isinstance(store, ReloadingCertificateStore)
        assert {n: i.serialNumber for n, i in store.names.items()} == serials

    def test_defaultPairAndRefuse(
        self, tmp_path: Path, ca: trustme.CA, certificates: tuple[Path, dict[str, int]]
    ) -> None:
        """
        C{privateKey=}/C{certKey=} give the default; C{unknownNames=refuse}
        refuses unknown names instead.
        """
        directory, _ = certificates
        leaf = ca.issue_cert("default.example")
        (tmp_path / "d.key").write_bytes(leaf.private_key_pem.bytes())
        (tmp_path / "d.crt").write_bytes(leaf.cert_chain_pems[0].bytes())
        reactor = _reactor()
        withDefault = serverFromString(
            reactor,
            f"tlsreload:0:certificates={directory}:privateKey={tmp_path / 'd.key'}"
            f":certKey={tmp_path / 'd.crt'}",
        ).contextFactory
        assert withDefault.certificateFor("other.example").serialNumber == serialOf(
            tmp_path / "d.crt"
        )
        refusing = serverFromString(
            reactor, f"tlsreload:0:certificates={directory}:unknownNames=refuse"
        ).contextFactory
        assert refusing.certificateFor("other.example") is None

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            (":unknownNames=maybe", "unknownNames must be default or refuse"),
            (":certKey=c.pem", "certKey=<file> needs privateKey=<file>"),
        ],
    )
    def test_refused(
        self, certificates: tuple[Path, dict[str, int]], extra: str, message: str
    ) -> None:
        """
        Contradictory or malformed values are refused, saying why.
        """
        directory, _ = certificates
        with pytest.raises(ValueError, match=message):
            serverFromString(_reactor(), f"tlsreload:0:certificates={directory}{extra}")

    def test_unknownNamesNeedsCertificates(self, tmp_path: Path) -> None:
        """
        C{unknownNames=} without C{certificates=} is refused.
        """
        with pytest.raises(ValueError, match="unknownNames= needs certificates="):
            serverFromString(
                _reactor(),
                f"tlsreload:0:privateKey={tmp_path / 'k'}:unknownNames=refuse",
            )

    def test_missingDirectory(self, tmp_path: Path) -> None:
        """
        A directory that does not exist is refused, naming it.
        """
        with pytest.raises(CredentialError, match="cannot list the directory"):
            serverFromString(
                _reactor(), f"tlsreload:0:certificates={tmp_path / 'none'}"
            )


def _environment() -> dict[str, str]:
    """
    The test's environment, with the source tree first on the path so that
    Twisted finds the plugins in C{twisted/plugins} there.
    """
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), environment.get("PYTHONPATH")])
    )
    return environment


def _curl(port: int, name: str, caFile: Path, *extra: str) -> str:
    """
    GET / from C{name} (resolved to 127.0.0.1) with curl; return the HTTP
    version, the status and the served certificate's serial.
    """
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--output",
            "/dev/null",
            "--cacert",
            str(caFile),
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            "--write-out",
            "%{http_version} %{response_code}",
            *extra,
            f"https://{name}:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return result.stdout


@pytest.mark.skipif(
    subprocess.run(["curl", "--version"], capture_output=True).stdout.find(b"HTTP2")
    < 0,
    reason="needs curl with HTTP/2",
)
class TestEndToEnd:
    """
    Real server processes serve many names and rotate one on SIGHUP.
    """

    @pytest.mark.parametrize("runner", ["twistd web --listen", "twistd tlshello"])
    def test_rotateOneOfMany(
        self,
        runner: str,
        tmp_path: Path,
        ca: trustme.CA,
        certificates: tuple[Path, dict[str, int]],
        servers: Callable[..., ServerProcess],
    ) -> None:
        """
        Each name gets its certificate over HTTP/2 (curl --http2) and
        HTTP/1.1; after one certificate is replaced and SIGHUP sent, its
        name gets the new one, the other name keeps its own, and HTTP/2
        still works.
        """
        pytest.importorskip("h2")
        directory, serials = certificates
        caFile = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(caFile))
        if runner == "twistd web --listen":
            argv = [
                *_TWISTD,
                "-n",
                "--pidfile=",
                "web",
                "--path",
                str(tmp_path),
                "--listen",
                f"tlsreload:0:interface=127.0.0.1:certificates={directory}",
            ]
        else:
            argv = [
                *_TWISTD,
                "-n",
                "--pidfile=",
                "tlshello",
                "--port",
                "0",
                "--certificates",
                str(directory),
            ]
        server = servers(argv, cwd=tmp_path, env=_environment())
        port = server.listeningPort()
        caPem = caFile.read_bytes()
        waitFor(lambda: servedSerial(port, caPem, "a.example"))
        for name, serial in serials.items():
            assert servedSerial(port, caPem, name) == serial
            assert _curl(port, name, caFile, "--http2") == "2 200"
            assert _curl(port, name, caFile, "--http1.1") == "1.1 200"

        renewed = _writePair(directory, "a.example", ca)
        server.hangUp()
        waitFor(
            lambda: True if servedSerial(port, caPem, "a.example") == renewed else None
        )
        assert servedSerial(port, caPem, "b.example") == serials["b.example"]
        assert _curl(port, "a.example", caFile, "--http2") == "2 200"
        server.waitForLog("1 replaced")


class TestCheck:
    """
    C{python -m txtlsreload check} checks every file of a store.
    """

    @pytest.mark.parametrize("broken", [False, True])
    @pytest.mark.parametrize("how", ["truncated", "no key"])
    def test_check(
        self, certificates: tuple[Path, dict[str, int]], broken: bool, how: str
    ) -> None:
        """
        A good directory passes; a bad file fails the check, naming it: one
        that cannot be read, or a site's certificate whose key is not there
        (a reload refuses it while it is new).
        """
        directory, _ = certificates
        if broken and how == "truncated":
            (directory / "bad.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\n")
        elif broken:
            leaf = trustme.CA().issue_cert("stray.example")
            (directory / "bad.pem").write_bytes(leaf.cert_chain_pems[0].bytes())
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "txtlsreload",
                "check",
                f"tlsreload:0:certificates={directory}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        output = result.stdout + result.stderr
        assert (result.returncode != 0) == broken, output
        assert (str(directory / "bad.pem") in output) == broken
