"""
Tests for C{twistd tlshello} and for C{tlsreload:} under real C{twistd} and
C{twist} processes, talked to by curl, C{openssl s_client} and CPython's
C{ssl}.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from twisted.plugins.txtlsreload_plugins import tlshelloServiceMaker
from txtlsreload import CertificateInfo

from .processes import (
    ServerProcess,
    checkRotationOnSIGHUP,
    httpRoundTrip,
    servedSerial,
    startOnFreePort,
)
from .tlshelpers import writeLeaf

ROOT = Path(__file__).parent.parent

_TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
_TWIST = [sys.executable, "-m", "twisted"]


def _hasIPv6() -> bool:
    """
    Whether this host can listen on IPv6 loopback: not every container can,
    and tlshello then listens on IPv4 only.
    """
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


_IPV6 = _hasIPv6()


def _makeService(argv: list[str], **kwargs: Any) -> MultiService:
    """
    The service C{twistd tlshello ARGV} runs, made through the plugin as
    twistd makes it (with C{kwargs} for L{makeService}'s keyword-only
    parameters).
    """
    options = tlshelloServiceMaker.options()
    options.parseOptions(argv)
    service = tlshelloServiceMaker.makeService(options, **kwargs)
    assert isinstance(service, MultiService)
    return service


@dataclass
class _Started:
    """
    A hello service started on a memory reactor, and what it logged.
    """

    service: MultiService
    reactor: MemoryReactorClock
    log: list[str]

    @property
    def listening(self) -> list[tuple[int, str]]:
        """
        The (port, interface) pairs listened on, in order.
        """
        return [(port, interface) for port, _, _, interface in self.reactor.tcpServers]

    def servedFiles(self) -> list[tuple[str, str]]:
        """
        The certificate and key files of each C{tlsreload:} listener.
        """
        return [
            (
                endpoint.contextFactory.files.certificateFile,
                endpoint.contextFactory.files.privateKeyFile,
            )
            for endpoint in self.service.rotatable  # type: ignore[attr-defined]
        ]

    def site(self) -> Site:
        """
        The web site behind the first listener.
        """
        factory = self.reactor.tcpServers[0][1]
        site = getattr(factory, "wrappedFactory", factory)
        assert isinstance(site, Site)
        return site


@pytest.fixture
def start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, noProcessWideSIGHUP: None
) -> Iterator[Callable[..., _Started]]:
    """
    Make and start C{tlshello} services with given arguments on memory
    reactors, in C{tmp_path}, where the development certificate goes; they
    are stopped at the end.
    """
    monkeypatch.chdir(tmp_path)
    started: list[MultiService] = []

    def start(argv: list[str], hasIPv6: bool = True) -> _Started:
        reactor = MemoryReactorClock()
        with capturedLogs() as events:
            service = _makeService(argv, reactor=reactor, hasIPv6=lambda: hasIPv6)
            started.append(service)
            service.privilegedStartService()
            service.startService()
        return _Started(service, reactor, [formatEvent(e) for e in events])

    yield start
    for service in started:
        service.stopService()


def _devFiles(tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "tlshello-dev"
    return directory / "cert.pem", directory / "key.pem"


class TestHelloResource:
    """
    The page itself.
    """

    def test_root(self, start: Callable[..., _Started]) -> None:
        """
        C{GET /} answers C{Hello, TLS.} and a newline, as plain text.
        """
        request = DummyRequest([b""])
        body = start([]).site().resource.render(request)
        assert body == b"Hello, TLS.\n"
        assert request.responseHeaders.getRawHeaders(b"content-type") == [
            b"text/plain; charset=utf-8"
        ]

    def test_otherPath(self, start: Callable[..., _Started]) -> None:
        """
        Any other path is not found.
        """
        request = DummyRequest([b"favicon.ico"])
        start([]).site().resource.render(request)
        assert request.responseCode == 404


class TestDevelopmentCertificate:
    """
    The certificate C{tlshello} makes when given none.
    """

    def test_created(self, tmp_path: Path, start: Callable[..., _Started]) -> None:
        """
        A self-signed ECDSA P-256 certificate for localhost, 127.0.0.1 and
        ::1, valid for 90 days, in ./tlshello-dev with a key only its owner
        can read, served and announced.
        """
        started = start([])
        certFile, keyFile = _devFiles(tmp_path)
        assert started.servedFiles() == [(str(certFile), str(keyFile))] * 2
        assert os.stat(certFile.parent).st_mode & 0o777 == 0o700
        assert os.stat(keyFile).st_mode & 0o777 == 0o600
        certificate = x509.load_pem_x509_certificate(certFile.read_bytes())
        assert certificate.issuer == certificate.subject
        key = certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == [
            "127.0.0.1",
            "::1",
        ]
        validity = certificate.not_valid_after_utc - datetime.now(timezone.utc)
        assert timedelta(days=89) < validity <= timedelta(days=90)
        [created] = [line for line in started.log if line.startswith("Created")]
        assert str(certFile.parent) in created

    def test_reused(self, tmp_path: Path, start: Callable[..., _Started]) -> None:
        """
        A valid certificate already there is used again, untouched.
        """
        start([])
        certFile, _ = _devFiles(tmp_path)
        before = certFile.read_bytes()
        again = start([])
        assert certFile.read_bytes() == before
        assert not [line for line in again.log if line.startswith("Created")]

    @pytest.mark.parametrize(
        ("validity", "problem"),
        [
            ({"not_after": -timedelta(days=1)}, "it expired on"),
            ({"not_after": timedelta(hours=12)}, "it expires soon"),
            ({"not_before": timedelta(days=1)}, "it is not valid until"),
        ],
    )
    def test_renewedWhenNotValid(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        start: Callable[..., _Started],
        validity: dict[str, timedelta],
        problem: str,
    ) -> None:
        """
        A certificate that is expired, about to expire, or not valid yet is
        replaced, and the log says why.
        """
        start([])
        certFile, keyFile = _devFiles(tmp_path)
        now = datetime.now(timezone.utc)
        leaf = ca.issue_cert(
            "localhost", **{name: now + delta for name, delta in validity.items()}
        )
        certFile.write_bytes(leaf.cert_chain_pems[0].bytes())
        keyFile.write_bytes(leaf.private_key_pem.bytes())

        again = start([])

        replaced = x509.load_pem_x509_certificate(certFile.read_bytes())
        assert replaced.issuer == replaced.subject
        assert any(problem in line and str(certFile) in line for line in again.log)

    @pytest.mark.parametrize(
        ("damage", "reason"),
        [
            ("garbageKey", "no PEM data found"),
            ("missingKey", "file not found"),
            ("otherKey", "does not match"),
            ("truncatedCertificate", "truncated PEM data"),
        ],
    )
    def test_renewedWhenDamaged(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        start: Callable[..., _Started],
        damage: str,
        reason: str,
    ) -> None:
        """
        Files that cannot serve are replaced, and the log says why.
        """
        start([])
        certFile, keyFile = _devFiles(tmp_path)
        if damage == "garbageKey":
            keyFile.write_bytes(b"garbage")
        elif damage == "missingKey":
            keyFile.unlink()
        elif damage == "otherKey":
            _, otherKey, _ = writeLeaf(ca, tmp_path, name="other")
            keyFile.write_bytes(otherKey.read_bytes())
        elif damage == "truncatedCertificate":
            certFile.write_bytes(certFile.read_bytes()[:200])
        again = start([])
        assert any(line.startswith("Created") for line in again.log)
        assert any(reason in line for line in again.log)
        assert os.stat(keyFile).st_mode & 0o777 == 0o600


class TestListeners:
    """
    From the command line to what is listened on, with which files.
    """

    def test_noOptions(self, tmp_path: Path, start: Callable[..., _Started]) -> None:
        """
        No options: the development certificate on localhost port 8443, on
        IPv4 and IPv6 loopback, from one factory.
        """
        started = start([])
        assert started.listening == [(8443, "127.0.0.1"), (8443, "::1")]
        assert started.servedFiles() == [tuple(map(str, _devFiles(tmp_path)))] * 2
        first, second = started.service.rotatable  # type: ignore[attr-defined]
        assert first.contextFactory is second.contextFactory

    def test_noIPv6(self, start: Callable[..., _Started]) -> None:
        """
        Where IPv6 is missing, only IPv4 loopback is used.
        """
        assert start([], hasIPv6=False).listening == [(8443, "127.0.0.1")]

    def test_portZero(self, start: Callable[..., _Started]) -> None:
        """
        Port 0 gets one listener: two would get two different ports.
        """
        assert start(["--port", "0"]).listening == [(0, "127.0.0.1")]

    @pytest.mark.parametrize(
        ("argv", "cert", "key"),
        [
            (["--cert", "c.pem", "--key", "k.pem"], "c.pem", "k.pem"),
            (["--cert", "both.pem"], "both.pem", "both.pem"),
            (["--key", "both.pem"], "both.pem", "both.pem"),
        ],
    )
    @pytest.mark.parametrize("hasIPv6", [True, False], ids=["ipv6", "no-ipv6"])
    def test_certAndKey(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        start: Callable[..., _Started],
        argv: list[str],
        cert: str,
        key: str,
        hasIPv6: bool,
    ) -> None:
        """
        C{--cert}/C{--key} make one listener on every address (IPv6's
        C{::} takes IPv4 too) with absolute file names; a single file
        serves as both; no development certificate is made.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        certPath.rename(tmp_path / "c.pem")
        keyPath.rename(tmp_path / "k.pem")
        (tmp_path / "both.pem").write_bytes(
            (tmp_path / "k.pem").read_bytes() + (tmp_path / "c.pem").read_bytes()
        )

        started = start([*argv, "--port", "9443"], hasIPv6=hasIPv6)

        assert started.listening == [(9443, "::" if hasIPv6 else "")]
        assert started.servedFiles() == [(str(tmp_path / cert), str(tmp_path / key))]
        assert not (tmp_path / "tlshello-dev").exists()

    def test_colonsInFileNames(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., _Started]
    ) -> None:
        """
        File names with colons reach the endpoint intact.
        """
        directory = tmp_path / "x:y"
        directory.mkdir()
        certPath, keyPath, _ = writeLeaf(ca, directory)
        bundle = directory / "ca.pem"
        bundle.write_bytes(ca.cert_pem.bytes())
        started = start(
            ["--cert", str(certPath), "--key", str(keyPath), "--ca", str(bundle)]
        )
        [endpoint] = started.service.rotatable  # type: ignore[attr-defined]
        assert endpoint.contextFactory.files.certificateFile == str(certPath)
        assert endpoint.contextFactory.files.clientCAFile == str(bundle)

    def test_listenOnly(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., _Started]
    ) -> None:
        """
        C{--listen} alone listens there only, and makes no certificate.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        started = start(
            [
                "--listen",
                "tcp:8080",
                "--listen",
                f"tlsreload:8443:privateKey={keyPath}:certKey={certPath}",
            ]
        )
        assert started.listening == [(8080, ""), (8443, "")]
        assert started.servedFiles() == [(str(certPath), str(keyPath))]
        assert not (tmp_path / "tlshello-dev").exists()

    def test_listenAndPort(
        self, tmp_path: Path, start: Callable[..., _Started]
    ) -> None:
        """
        C{--listen} with C{--port} listens on both, the latter with the
        development certificate.
        """
        started = start(["--listen", "tcp:8080", "--port", "9443"])
        assert started.listening == [(8080, ""), (9443, "127.0.0.1"), (9443, "::1")]
        assert (tmp_path / "tlshello-dev" / "cert.pem").exists()


class TestMakeService:
    """
    Command lines that cannot work end the program with one line.
    """

    def test_badFileExits(self, tmp_path: Path) -> None:
        """
        A missing file ends the program with a one-line message naming the
        file and the reason, not a traceback.
        """
        with pytest.raises(SystemExit) as raised:
            _makeService(["--cert", str(tmp_path / "nope.pem")])
        assert raised.value.code == f"tlshello: {tmp_path}/nope.pem: file not found"

    @pytest.mark.parametrize(
        ("argv", "hint"),
        [
            (["--cert", "{cert}"], True),
            (["--cert", "{cert}", "--key", "{cert}"], False),
            (["--key", "{cert}"], False),
        ],
    )
    def test_certWithoutKeyExits(
        self, tmp_path: Path, ca: trustme.CA, argv: list[str], hint: bool
    ) -> None:
        """
        A certificate file without a key ends the program saying so, and,
        when it came with C{--cert} and no C{--key}, how to give the key.
        """
        cert, _, _ = writeLeaf(ca, tmp_path)
        with pytest.raises(SystemExit) as raised:
            _makeService([a.format(cert=cert) for a in argv])
        message = f"tlshello: {cert}: holds a certificate but no private key"
        if hint:
            message += " (give the key with --key)"
        assert raised.value.code == message

    def test_badListenExits(self) -> None:
        """
        A wrong C{--listen} description ends the program with a message
        quoting it and saying what is wrong.
        """
        with pytest.raises(SystemExit) as raised:
            _makeService(["--listen", "tlsreload:8443:privateKey=k:color=blue"])
        assert str(raised.value.code).startswith(
            "tlshello: --listen tlsreload:8443:privateKey=k:color=blue:"
            " tlsreload: unknown key 'color'"
        )


class TestStartupHints:
    """
    What C{tlshello} logs when it starts: how to try it and how to rotate.
    """

    def _startupLog(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        start: Callable[..., _Started],
        development: bool,
        clientCA: bool,
    ) -> tuple[list[str], str, str, str]:
        """
        Start tlshello on port 9443 of a memory reactor, serving the
        development certificate or one from C{ca}, with or without a client
        CA bundle.

        @return: The log, and the certificate, key and client CA files.
        """
        argv = ["--port", "9443"]
        if development:
            cert, key = map(str, _devFiles(tmp_path))
        else:
            certPath, keyPath, _ = writeLeaf(ca, tmp_path)
            cert, key = str(certPath), str(keyPath)
            argv += ["--cert", cert, "--key", key]
        clientCAFile = tmp_path / "CA.pem"
        clientCAFile.write_bytes(trustme.CA().cert_pem.bytes())
        if clientCA:
            argv += ["--ca", str(clientCAFile)]
        return start(argv).log, cert, key, str(clientCAFile)

    def test_tryWithoutClientCertificates(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., _Started]
    ) -> None:
        """
        Without C{--ca}, the suggested curl command trusts the development
        certificate and needs nothing more.
        """
        log, cert, _, _ = self._startupLog(tmp_path, ca, start, True, clientCA=False)
        tries = [line for line in log if "Try: curl" in line]
        assert len(tries) == 1
        assert tries[0].endswith(f"Try: curl --cacert {cert} https://localhost:9443/")

    def test_tryWithClientCertificates(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., _Started]
    ) -> None:
        """
        With C{--ca}, the suggested curl command also presents a client
        certificate, and says where it must come from: without one the
        server refuses the handshake.
        """
        log, cert, _, clientCA = self._startupLog(
            tmp_path, ca, start, True, clientCA=True
        )
        tries = [line for line in log if "Try: curl" in line]
        assert len(tries) == 1
        assert (
            f"Try: curl --cacert {cert} --cert client.pem --key client.key"
            f" https://localhost:9443/ (client.pem and client.key: a client"
            f" certificate issued by a CA in {clientCA}, and its key)"
        ) in tries[0]

    @pytest.mark.parametrize("development", [True, False])
    @pytest.mark.parametrize("clientCA", [False, True])
    def test_rotate(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        start: Callable[..., _Started],
        development: bool,
        clientCA: bool,
    ) -> None:
        """
        The rotation hint names the certificate and key to replace; a client
        CA bundle is mentioned after them, as a file that may change, not
        as part of every rotation.
        """
        log, cert, key, bundle = self._startupLog(
            tmp_path, ca, start, development, clientCA
        )
        also = (
            f" (and the client CA bundle {bundle}, if it changes)" if clientCA else ""
        )
        expected = (
            f"To rotate the certificate, replace {cert} and {key}{also} and run:"
            f" kill -HUP {os.getpid()}"
        )
        assert [line for line in log if "To rotate" in line] == [expected]


# End to end: real processes, real clients.


def _environment() -> dict[str, str]:
    """
    The test's environment, with the source tree first on the path so that
    Twisted finds the plugins in C{twisted/plugins} there whether or not the
    project is installed.
    """
    environment = dict(os.environ)
    paths = [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def _context(caFile: Path | None, sni: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=caFile)
    context.check_hostname = sni
    return context


def _serialOverSSL(
    port: int, caFile: Path, sni: bool = True, host: str = "127.0.0.1"
) -> int:
    """
    The serial a new CPython C{ssl} handshake sees; with C{sni=False} no
    server name is sent.
    """
    return servedSerial(
        port, caFile.read_bytes(), "localhost" if sni else None, host=host
    )


def _serialOverOpenSSL(port: int, caFile: Path, sni: bool) -> int:
    """
    The serial C{openssl s_client} sees, having verified the chain.
    """
    nameOption = ["-servername", "localhost"] if sni else ["-noservername"]
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            *nameOption,
            "-CAfile",
            str(caFile),
            "-verify_return_error",
        ],
        input=b"",
        capture_output=True,
        timeout=20,
        check=True,
    )
    pem = re.search(
        rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
        result.stdout,
        re.DOTALL,
    )
    assert pem is not None, result.stdout + result.stderr
    return x509.load_pem_x509_certificate(pem.group(0)).serial_number


def _curl(url: str, caFile: Path, *extra: str) -> str:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--cacert", str(caFile), *extra, url],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout


# Each way of running: the command after the Python executable, and the path
# and body the HTTP requests expect.
_RUNNERS = {
    "twistd tlshello": (
        [*_TWISTD, "-n", "--pidfile=", "tlshello"],
        ["--port", "{port}", "--cert", "{cert}", "--key", "{key}"],
        "/",
        "Hello, TLS.\n",
    ),
    "twistd tlshello --listen": (
        [*_TWISTD, "-n", "--pidfile=", "tlshello"],
        ["--listen", "{description}"],
        "/",
        "Hello, TLS.\n",
    ),
    "twistd web --listen": (
        [*_TWISTD, "-n", "--pidfile=", "web"],
        ["--path", "{root}", "--listen", "{description}"],
        "/hello.txt",
        "hello from a file\n",
    ),
    "twist web --listen": (
        # twist logs JSON when its output is not a terminal.
        [*_TWIST, "--log-format=text", "web"],
        ["--path", "{root}", "--listen", "{description}"],
        "/hello.txt",
        "hello from a file\n",
    ),
}


class TestRotationEndToEnd:
    """
    A real server process rotates its certificate on SIGHUP without
    dropping a connection, under each way of running it.
    """

    @pytest.mark.parametrize("runner", list(_RUNNERS))
    def test_rotate(
        self,
        runner: str,
        tmp_path: Path,
        ca: trustme.CA,
        servers: Callable[..., ServerProcess],
    ) -> None:
        """
        Told port 0, it logs the port it got and rotates as
        L{checkRotationOnSIGHUP} requires; curl and C{openssl s_client}
        (with and without SNI) get the new certificate, and the log shows
        its serial and notAfter.
        """
        command, arguments, path, body = _RUNNERS[runner]
        caFile = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(caFile))
        cert, key, _ = writeLeaf(ca, tmp_path)
        root = tmp_path / "root"
        root.mkdir()
        (root / "hello.txt").write_text("hello from a file\n")
        values = {
            "port": "0",
            "cert": str(cert),
            "key": str(key),
            "root": str(root),
            "description": (
                f"tlsreload:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
            ),
        }
        server = servers(
            [*command, *(a.format(**values) for a in arguments)],
            cwd=tmp_path,
            env=_environment(),
        )
        port = server.listeningPort()

        nextSerial = checkRotationOnSIGHUP(
            server, port, ca, cert, key, httpRoundTrip(path, body)
        )

        assert _serialOverOpenSSL(port, caFile, sni=True) == nextSerial
        assert _serialOverOpenSSL(port, caFile, sni=False) == nextSerial
        assert _curl(f"https://localhost:{port}{path}", caFile) == body
        nextInfo = CertificateInfo.fromCertificate(
            x509.load_pem_x509_certificate((tmp_path / "next.crt").read_bytes())
        )
        assert nextInfo.serialNumber == nextSerial
        assert (
            f"serial {nextInfo.serialHex}, notAfter {nextInfo.notAfter.isoformat()}"
            in server.log
        )


class TestHelloEndToEnd:
    """
    C{twistd tlshello} without certificate options, as a new user runs it.
    """

    def test_portZeroHintNamesChosenPort(
        self, tmp_path: Path, servers: Callable[..., ServerProcess]
    ) -> None:
        """
        Told port 0, it names in its curl hint the port the kernel chose,
        and the hint works.
        """
        command = [*_TWISTD, "-n", "--pidfile=", "tlshello", "--port", "0"]
        server = servers(command, cwd=tmp_path, env=_environment())
        listening = server.waitFor(r"Listening on 127\.0\.0\.1:(\d+): ")
        hinted = server.waitFor(r"Try: curl --cacert \S+ https://localhost:(\d+)/")
        assert hinted == listening != "0"
        certFile = tmp_path / "tlshello-dev" / "cert.pem"
        url = f"https://127.0.0.1:{hinted}/"
        assert _curl(url, certFile) == "Hello, TLS.\n"

    def test_developmentCertificate(
        self, tmp_path: Path, servers: Callable[..., ServerProcess]
    ) -> None:
        """
        It makes a development certificate, serves https://localhost/ on
        IPv4 and IPv6 with it, logs the URL, the certificate and how to
        rotate it; started again, it reuses the same certificate.
        """

        def start(port: int) -> ServerProcess:
            command = [*_TWISTD, "-n", "--pidfile=", "tlshello", "--port", str(port)]
            return servers(command, cwd=tmp_path, env=_environment())

        # Two listeners (both loopbacks) need one fixed port number.
        server, port = startOnFreePort(start, r"kill -HUP \d+")
        log = server.log
        certFile = tmp_path / "tlshello-dev" / "cert.pem"
        keyFile = tmp_path / "tlshello-dev" / "key.pem"
        assert os.stat(keyFile).st_mode & 0o777 == 0o600

        assert _curl(f"https://localhost:{port}/", certFile) == "Hello, TLS.\n"
        assert _curl(f"https://127.0.0.1:{port}/", certFile) == "Hello, TLS.\n"
        serial = _serialOverSSL(port, certFile)
        if _IPV6:
            assert _curl(f"https://[::1]:{port}/", certFile) == "Hello, TLS.\n"
            assert _serialOverSSL(port, certFile, host="::1") == serial
            assert f"Listening on [::1]:{port}: https://localhost:{port}/" in log
        notFound = _curl(
            f"https://localhost:{port}/nope",
            certFile,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        )
        assert notFound == "404"

        assert f"Listening on 127.0.0.1:{port}: https://localhost:{port}/" in log
        assert f"curl --cacert {certFile} https://localhost:{port}/" in log
        assert f"replace {certFile} and {keyFile} and run:" in log
        assert f"kill -HUP {server.pid}" in log
        assert "Created a self-signed development certificate" in log

        server.stop()
        again, port = startOnFreePort(start, r"kill -HUP \d+")
        assert "Created" not in again.log
        assert _serialOverSSL(port, certFile) == serial


class TestErrorsEndToEnd:
    """
    What a user sees when a description or file is wrong.
    """

    def test_twistdWebMissingFile(self, tmp_path: Path) -> None:
        """
        C{twistd web} with a missing file exits non-zero, and the last line
        names the file and the reason.
        """
        result = _run(
            [
                *_TWISTD,
                "-n",
                "--pidfile=",
                "web",
                "--listen",
                "tlsreload:0:privateKey=gone.pem",
            ],
            tmp_path,
        )
        assert result.returncode != 0
        assert result.stdout.splitlines()[-1].endswith(
            f"CredentialError: {tmp_path}/gone.pem: file not found"
        )

    def test_twistBadValue(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        C{twist web} with a bad value exits non-zero, saying which value.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        description = f"tlsreload:0:privateKey={key}:certKey={cert}:clientAuth=bogus"
        result = _run([*_TWIST, "web", "--listen", description], tmp_path)
        assert result.returncode != 0
        assert result.stdout.splitlines()[-1] == (
            "ValueError: tlsreload: clientAuth must be required or optional,"
            " not 'bogus'"
        )

    def test_tlshelloMissingFile(self, tmp_path: Path) -> None:
        """
        C{twistd tlshello} with a missing file exits with status 1 and one
        line naming the file and the reason, no traceback.
        """
        result = _run(
            [*_TWISTD, "-n", "--pidfile=", "tlshello", "--cert", "gone.pem"], tmp_path
        )
        assert result.returncode == 1
        assert result.stdout == f"tlshello: {tmp_path}/gone.pem: file not found\n"

    _WEAK_FILES = ("--cert", "c.pem", "--key", "k.pem", "--port", "0")

    def test_tlshelloWeakKey(self, tmp_path: Path) -> None:
        """
        C{twistd tlshello} with an RSA-1024 certificate and key (which
        OpenSSL would refuse when building the context) exits with status 1
        and one line saying the key is too small, no traceback.
        """
        key = rsa.generate_private_key(65537, 1024)  # noqa: S505 (the point)
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "weak")])
        now = datetime.now(timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "k.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        result = _run(
            [*_TWISTD, "-n", "--pidfile=", "tlshello", *self._WEAK_FILES],
            tmp_path,
        )
        assert result.returncode == 1
        assert result.stdout == (
            f"tlshello: {tmp_path}/c.pem: certificate 1: RSA key of 1024 bits is"
            " too small (at least 2048 bits are needed)\n"
        )

    @pytest.mark.parametrize(
        "command",
        [[*_TWISTD, "-n", "--pidfile=", "tlshello"], [*_TWIST, "tlshello"]],
        ids=["twistd -n", "twist"],
    )
    def test_tlshelloPortInUse(self, tmp_path: Path, command: list[str]) -> None:
        """
        C{tlshello} on a port already in use exits with status 1 and one
        line naming the address and the reason, no traceback.
        """
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            result = _run([*command, "--port", str(port)], tmp_path)
        assert result.returncode == 1
        assert "Traceback" not in result.stdout
        message = f"tlshello: cannot listen on 127.0.0.1:{port}: Address already in use"
        # The port is tried before twistd starts logging (and before it
        # forks, without -n), so the line is the whole output.
        assert result.stdout == message + "\n"


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


class TestListenerAnnouncements:
    """
    What C{tlshello} says about listeners given with C{--listen}.
    """

    def test_unixListener(self, tmp_path: Path, start: Callable[..., _Started]) -> None:
        """
        A UNIX socket listener is announced by its path.
        """
        socketPath = tmp_path / "hello.sock"
        log = start(["--listen", f"unix:{socketPath}"]).log
        assert [
            line for line in log if "Listening on" in line and str(socketPath) in line
        ]

    def test_noRotationHintWithoutSIGHUP(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., _Started]
    ) -> None:
        """
        With SIGHUP turned off for every listener, no rotation hint is given:
        C{kill -HUP} would not rotate anything.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        log = start(
            ["--listen", f"tlsreload:8443:privateKey={key}:certKey={cert}:sighup=no"]
        ).log
        assert [line for line in log if "Listening on" in line]
        assert not [line for line in log if "To rotate" in line]

    def test_twoClientCABundles(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[..., _Started]
    ) -> None:
        """
        Two listeners with different client CA bundles get both named, as
        files that may change.
        """
        argv = []
        bundles = []
        for name in ("a", "b"):
            directory = tmp_path / name
            directory.mkdir()
            cert, key, _ = writeLeaf(ca, directory)
            bundle = directory / "clients.pem"
            bundle.write_bytes(trustme.CA().cert_pem.bytes())
            bundles.append(str(bundle))
            argv += [
                "--listen",
                f"tlsreload:0:privateKey={key}:certKey={cert}:clientCA={bundle}",
            ]
        [hint] = [line for line in start(argv).log if "To rotate" in line]
        assert (
            f"(and the client CA bundles {bundles[0]} and {bundles[1]}, if they change)"
        ) in hint
