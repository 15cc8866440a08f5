"""
Tests that run the recipes of docs/recipes.rst, docs/installing.rst and
docs/client.rst as written: their example programs and command lines, with
real certificates, real processes and real TLS clients.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from twisted.logger import LogEvent, formatEvent

from txtlsreload import ReloadingClientCredentials, ReloadingContextFactory

from .peers import Peer, PythonPeer, clientSerialIn, writeCA, writeClient
from .processes import ServerProcess, clientContext, servedSerial, waitFor
from .tlshelpers import handshake, replaceAtomically, writeLeaf

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"

_TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


@pytest.fixture
def start(
    servers: Callable[..., ServerProcess],
) -> Callable[..., ServerProcess]:
    """
    Start programs with the source tree first on the path, so that Twisted
    finds the plugins in twisted/plugins whether or not the project is
    installed; every one is stopped at the end of the test.
    """

    def run(argv: list[str], cwd: Path | None = None) -> ServerProcess:
        path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        return servers(argv, cwd=cwd, env=environment)

    return run


def _get(url: str, caPem: bytes) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(  # noqa: S310
            url, context=clientContext(caPem), timeout=5
        ) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _waitForPage(url: str, caPem: bytes, containing: str) -> tuple[int, str]:
    """
    Poll C{url} until its body contains C{containing}.
    """

    def check() -> tuple[int, str] | None:
        status, body = _get(url, caPem)
        return (status, body) if containing in body else None

    return waitFor(check)


class TestInstalling:
    """
    docs/installing.rst says what setup.py says.
    """

    def test_versionsMatchSetup(self) -> None:
        """
        The package name, the Python versions and the Twisted minimum on the
        installing page are those declared in setup.py.
        """
        page = (DOCS / "installing.rst").read_text()
        setup = (ROOT / "setup.py").read_text()
        assert 'name="txtlsreload"' in setup
        assert "pip install txtlsreload" in page
        declared = re.findall(r"Python :: (3\.\d+)\"", setup)
        assert declared == ["3.10", "3.11", "3.12", "3.13"]
        assert 'python_requires=">=3.10"' in setup
        assert "Python 3.10 to 3.13" in page
        assert '"twisted>=26.4"' in setup
        assert "Twisted 26.4 or newer" in page
        assert "twisted[http2]" in page


class TestCARotation:
    """
    The three steps of rotating a CA, server and client side, each followed
    by a reload and real handshakes.
    """

    def test_threeSteps(self, tmp_path: Path, logEvents: list[LogEvent]) -> None:
        """
        Adding the new CA, switching the leaves and dropping the old CA each
        reload with the summary the recipe quotes, and every handshake
        between updated peers succeeds at every step; after the last step a
        client still holding an old-CA certificate is refused.
        """
        old, new = trustme.CA(), trustme.CA()

        def leaf(ca: trustme.CA, name: str, identity: str) -> None:
            issued = ca.issue_cert(identity)
            replaceAtomically(
                tmp_path / name, issued.private_key_and_cert_chain_pem.bytes()
            )

        def bundles(*cas: trustme.CA) -> None:
            data = b"".join(ca.cert_pem.bytes() for ca in cas)
            replaceAtomically(tmp_path / "clients-ca.pem", data)
            replaceAtomically(tmp_path / "servers-ca.pem", data)

        leaf(old, "server.pem", "api.example")
        leaf(old, "client.pem", "client.example")
        bundles(old)
        server = ReloadingContextFactory(
            str(tmp_path / "server.pem"),
            clientCAFile=str(tmp_path / "clients-ca.pem"),
        )
        client = ReloadingClientCredentials(
            str(tmp_path / "servers-ca.pem"), str(tmp_path / "client.pem")
        )
        straggler = tmp_path / "straggler"
        straggler.mkdir()
        shutil.copy(tmp_path / "client.pem", straggler / "client.pem")
        # Trusts both CAs: only its own old-CA certificate can fail it.
        writeCA(old, straggler / "ca.pem", new)
        oldClient = ReloadingClientCredentials(
            str(straggler / "ca.pem"), str(straggler / "client.pem")
        )

        def logged() -> str:
            text = "\n".join(formatEvent(event) for event in logEvents)
            del logEvents[:]
            return text

        def works(credentials: ReloadingClientCredentials) -> bool:
            result = handshake(server, credentials.creatorFor("api.example"))
            return result.succeeded and result.roundTrip(b"ping") == b"ping"

        assert works(client)

        # 1. Both bundles trust both CAs.
        bundles(old, new)
        assert str(server.reload()).startswith("reloaded: now serving ")
        assert server.lastResult.certificate.subject in str(server.lastResult)
        assert str(client.reload()).startswith(
            "reloaded: now trusting 2 CA certificate(s), client certificate serial"
        )
        assert works(client) and works(oldClient)
        text = logged()
        assert ", 0 chain certificate(s), 2 client CA(s)" in text
        assert f"trusting 2 CA(s) from {tmp_path / 'servers-ca.pem'}" in text

        # 2. New leaves, from the new CA.
        leaf(new, "server.pem", "api.example")
        leaf(new, "client.pem", "client.example")
        assert str(server.reload()).startswith("reloaded: now serving ")
        assert str(client.reload()).startswith(
            "reloaded: now trusting 2 CA certificate(s), client certificate serial"
        )
        assert works(client)

        # 3. The old CA dropped.
        bundles(new)
        assert str(server.reload()).startswith("reloaded: now serving ")
        assert str(client.reload()).startswith(
            "reloaded: now trusting 1 CA certificate(s), client certificate serial"
        )
        assert works(client)
        assert not works(oldClient)
        text = logged()
        assert ", 0 chain certificate(s), 1 client CA(s)" in text
        assert f"trusting 1 CA(s) from {tmp_path / 'servers-ca.pem'}" in text


class TestHealthCheck:
    """
    docs/examples/health_site.py: refused reloads seen on a health page, in
    a program that logs nothing.
    """

    def test_failedReloadOnHealthPage(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., ServerProcess]
    ) -> None:
        """
        The page says 200 and "loaded" at first, 503 with the file and the
        reason after a refused reload (which the program does not print),
        and 200 again after a good one, counting the refusal.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        server = start(
            [
                sys.executable,
                str(EXAMPLES / "health_site.py"),
                str(certPath),
                str(keyPath),
                "0",
            ]
        )
        port = server.listeningPort()
        caPem = ca.cert_pem.bytes()
        url = f"https://localhost:{port}/healthz"
        status, body = waitFor(lambda: _get(url, caPem))
        assert status == 200 and body.startswith("loaded: serving ")

        certPath.write_bytes(b"garbage")
        server.signal(signal.SIGHUP)
        status, body = _waitForPage(url, caPem, "reload failed")
        assert status == 503
        assert body.startswith(f"reload failed: {certPath}: no PEM data found")
        assert "refused reloads: 1" in body

        writeLeaf(ca, tmp_path)
        server.signal(signal.SIGHUP)
        status, body = _waitForPage(url, caPem, "reloaded")
        assert status == 200 and body.startswith("reloaded: now serving ")
        output = server.stop()
        assert "refused" not in output and "no PEM data" not in output


def _secretVolume(directory: Path, ca: trustme.CA, generation: int) -> int:
    """
    Publish a certificate into C{directory} the way the kubelet updates a
    Secret volume: a new timestamped directory, then the C{..data} symlink
    renamed to point at it; C{tls.crt} and C{tls.key} are symlinks through
    C{..data}.

    @return: The new certificate's serial.
    """
    version = directory / f"..2026_12_02_00_00_{generation:02d}"
    version.mkdir()
    certPath, keyPath, serial = writeLeaf(ca, version)
    certPath.rename(version / "tls.crt")
    keyPath.rename(version / "tls.key")
    temporary = directory / "..data_tmp"
    temporary.symlink_to(version.name)
    os.replace(temporary, directory / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")
    return serial


class TestKubernetes:
    """
    The Kubernetes recipe: a Secret volume and C{watch=}, no signal.
    """

    def test_secretVolumeUpdatePickedUp(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., ServerProcess]
    ) -> None:
        """
        C{twistd web} listening on the recipe's description serves the
        certificate a Secret volume update publishes, without SIGHUP.
        """
        volume = tmp_path / "tls"
        volume.mkdir()
        first = _secretVolume(volume, ca, 1)
        description = (
            f"tlsreload:0:privateKey={volume}/tls.key:certKey={volume}/tls.crt:watch=30"
        )
        page = (DOCS / "recipes.rst").read_text()
        assert (
            description.replace(str(volume), "/etc/tls").replace(
                "tlsreload:0:", "tlsreload:8443:"
            )
            in page
        )
        server = start(
            [*_TWISTD, "-n", "--pidfile=", "web", "--listen", description],
            tmp_path,
        )
        port = server.listeningPort()
        caPem = ca.cert_pem.bytes()
        assert waitFor(lambda: servedSerial(port, caPem)) == first
        second = _secretVolume(volume, ca, 2)
        waitFor(lambda: servedSerial(port, caPem) == second or None, timeout=10)


class TestKlein:
    """
    docs/examples/klein_site.py: a Klein application on C{tlsreload:}.
    """

    def test_kleinServesAndRotates(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., ServerProcess]
    ) -> None:
        """
        The Klein example answers over TLS, and serves new files as soon as
        they are written (C{watch=}), with no signal.
        """
        pytest.importorskip("klein")
        certPath, keyPath, firstSerial = writeLeaf(ca, tmp_path)
        server = start(
            [
                sys.executable,
                str(EXAMPLES / "klein_site.py"),
                str(certPath),
                str(keyPath),
                "0",
            ]
        )
        port = server.listeningPort()
        caPem = ca.cert_pem.bytes()
        status, body = waitFor(lambda: _get(f"https://localhost:{port}/", caPem))
        assert (status, body) == (200, "Hello from Klein, over TLS.\n")
        assert servedSerial(port, caPem) == firstSerial
        _, _, secondSerial = writeLeaf(ca, tmp_path)
        waitFor(lambda: servedSerial(port, caPem) == secondSerial or None)


def _peer(startPeer: Callable[..., Peer], ca: trustme.CA) -> PythonPeer:
    peer = startPeer("python", ca, clientCA=ca)
    assert isinstance(peer, PythonPeer)
    return peer


class TestClients:
    """
    The client programs: one connection (docs/client.rst) and a crawler's
    many requests through one Agent.
    """

    def test_connectExample(
        self, tmp_path: Path, ca: trustme.CA, startPeer: Callable[..., Peer]
    ) -> None:
        """
        docs/examples/client_connect.py reaches a server that requires a
        client certificate, presenting the one it was given.
        """
        peer = _peer(startPeer, ca)
        serial = writeClient(ca, tmp_path / "client.pem")
        completed = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "client_connect.py"),
                "127.0.0.1",
                str(peer.port),
                "localhost",
                str(writeCA(ca, tmp_path / "ca.pem")),
                str(tmp_path / "client.pem"),
            ],
            capture_output=True,
            timeout=30,
        )
        assert completed.returncode == 0, completed.stderr.decode()
        assert completed.stdout.startswith(b"HTTP/1.0 200 OK")
        assert clientSerialIn(completed.stdout) == serial
        assert b"Client TLS files loaded: trusting 1 CA" in completed.stderr

    def test_crawlExample(
        self, tmp_path: Path, ca: trustme.CA, startPeer: Callable[..., Peer]
    ) -> None:
        """
        docs/examples/crawl.py fetches from several hosts through one policy
        and reports a host it cannot verify without stopping.
        """
        first, second = _peer(startPeer, ca), _peer(startPeer, ca)
        writeClient(ca, tmp_path / "client.pem")
        urls = [
            f"https://localhost:{first.port}/",
            f"https://127.0.0.1:{second.port}/",
            f"https://localhost:{second.port}/",
        ]
        completed = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "crawl.py"),
                str(writeCA(ca, tmp_path / "ca.pem")),
                str(tmp_path / "client.pem"),
                *urls,
            ],
            capture_output=True,
            timeout=30,
        )
        assert completed.returncode == 0, completed.stderr.decode()
        lines = completed.stdout.decode().splitlines()
        assert [line.split(" ")[:2] for line in lines] == [[url, "200"] for url in urls]


class TestHTTP2:
    """
    HTTP/2 through ALPN with C{twistd web --listen tlsreload:...}.
    """

    def test_h2NegotiatedAcrossRotation(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., ServerProcess]
    ) -> None:
        """
        With Twisted's http2 extra installed, a client offering h2 gets h2,
        before and after a SIGHUP rotation.
        """
        pytest.importorskip("h2")
        certPath, keyPath, firstSerial = writeLeaf(ca, tmp_path)
        server = start(
            [
                *_TWISTD,
                "-n",
                "--pidfile=",
                "web",
                "--listen",
                f"tlsreload:0:privateKey={keyPath}:certKey={certPath}",
            ],
            tmp_path,
        )
        port = server.listeningPort()
        context = clientContext(ca.cert_pem.bytes())
        context.set_alpn_protocols(["h2", "http/1.1"])

        def negotiated() -> tuple[str | None, int]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    der = tls.getpeercert(binary_form=True)
                    assert der is not None
                    serial = x509.load_der_x509_certificate(der).serial_number
                    return tls.selected_alpn_protocol(), serial

        assert waitFor(negotiated) == ("h2", firstSerial)
        _, _, secondSerial = writeLeaf(ca, tmp_path)
        server.signal(signal.SIGHUP)
        waitFor(lambda: negotiated() == ("h2", secondSerial) or None)
