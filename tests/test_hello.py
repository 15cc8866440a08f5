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
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet.endpoints import _parse as parseDescription
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from txtlsreload import CertificateInfo, ReloadingContextFactory
from txtlsreload._devcert import (
    DevelopmentCertificate,
    ensureDevelopmentCertificate,
)
from txtlsreload._endpoint import ReloadingServerEndpoint
from txtlsreload._hello import (
    DEFAULT_PORT,
    HelloResource,
    Options,
    _hasIPv6,
    _HelloService,
    _planListeners,
    makeService,
)

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

# Not every container has IPv6 loopback; tlshello then listens on IPv4 only.
_IPV6 = _hasIPv6()


class TestHelloResource:
    """
    The page itself.
    """

    def test_root(self) -> None:
        """
        C{GET /} answers C{Hello, TLS.} and a newline, as plain text.
        """
        request = DummyRequest([b""])
        body = HelloResource().render(request)
        assert body == b"Hello, TLS.\n"
        assert request.responseHeaders.getRawHeaders(b"content-type") == [
            b"text/plain; charset=utf-8"
        ]

    def test_otherPath(self) -> None:
        """
        Any other path is not found.
        """
        request = DummyRequest([b"favicon.ico"])
        HelloResource().render(request)
        assert request.responseCode == 404


class TestDevelopmentCertificate:
    """
    The certificate C{tlshello} makes when given none.
    """

    def test_created(self, tmp_path: Path) -> None:
        """
        A self-signed ECDSA P-256 certificate for localhost, 127.0.0.1 and
        ::1, valid for 90 days, with a key only its owner can read.
        """
        directory = tmp_path / "dev"
        made = ensureDevelopmentCertificate(str(directory))
        assert made.created
        assert made.certificateFile == str(directory / "cert.pem")
        assert os.stat(directory).st_mode & 0o777 == 0o700
        assert os.stat(made.privateKeyFile).st_mode & 0o777 == 0o600
        certificate = x509.load_pem_x509_certificate(
            Path(made.certificateFile).read_bytes()
        )
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
        assert made.notAfter == certificate.not_valid_after_utc

    def test_reused(self, tmp_path: Path) -> None:
        """
        A valid certificate already there is used again, untouched.
        """
        first = ensureDevelopmentCertificate(str(tmp_path))
        before = Path(first.certificateFile).read_bytes()
        second = ensureDevelopmentCertificate(str(tmp_path))
        assert not second.created
        assert Path(second.certificateFile).read_bytes() == before

    @pytest.mark.parametrize(
        ("later", "problem"),
        [
            (timedelta(days=91), "it expired on"),
            (timedelta(days=89, hours=12), "it expires soon"),
            (timedelta(days=-1), "it is not valid until"),
        ],
    )
    def test_renewedWhenNotValid(
        self, tmp_path: Path, later: timedelta, problem: str
    ) -> None:
        """
        A certificate that is expired, about to expire, or not valid yet is
        replaced, and the log says why.
        """
        first = ensureDevelopmentCertificate(str(tmp_path))
        firstSerial = _serial(first)
        clock = datetime.now(timezone.utc) + later
        with _capturedLog() as log:
            second = ensureDevelopmentCertificate(str(tmp_path), now=lambda: clock)
        assert second.created
        assert second.notAfter > clock
        assert _serial(second) != firstSerial
        assert any(problem in line and first.certificateFile in line for line in log)

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
        self, tmp_path: Path, ca: trustme.CA, damage: str, reason: str
    ) -> None:
        """
        Files that cannot serve are replaced, and the log says why.
        """
        first = ensureDevelopmentCertificate(str(tmp_path))
        keyPath = Path(first.privateKeyFile)
        certPath = Path(first.certificateFile)
        if damage == "garbageKey":
            keyPath.write_bytes(b"garbage")
        elif damage == "missingKey":
            keyPath.unlink()
        elif damage == "otherKey":
            _, otherKey, _ = writeLeaf(ca, tmp_path, name="other")
            keyPath.write_bytes(otherKey.read_bytes())
        elif damage == "truncatedCertificate":
            certPath.write_bytes(certPath.read_bytes()[:200])
        with _capturedLog() as log:
            second = ensureDevelopmentCertificate(str(tmp_path))
        assert second.created
        assert any(reason in line for line in log)
        assert os.stat(second.privateKeyFile).st_mode & 0o777 == 0o600


class TestPlanListeners:
    """
    From the command line to endpoint descriptions.
    """

    def _plan(
        self, argv: list[str], tmp_path: Path, hasIPv6: bool = True
    ) -> tuple[list[str], str | None, list[str], bool]:
        options = Options()
        options.parseOptions(argv)
        made: list[DevelopmentCertificate] = []

        def development() -> DevelopmentCertificate:
            made.append(ensureDevelopmentCertificate(str(tmp_path / "dev")))
            return made[-1]

        plan = _planListeners(options, development, lambda: hasIPv6)
        assert (plan.development is not None) == bool(made)
        return plan.descriptions, plan.shortcut, plan.alsoOn, bool(made)

    def test_noOptions(self, tmp_path: Path) -> None:
        """
        No options: the development certificate on localhost port 8443, on
        IPv4 and IPv6 loopback.
        """
        descriptions, shortcut, alsoOn, development = self._plan([], tmp_path)
        assert descriptions == []
        assert development
        assert shortcut is not None
        _, keywords = parseDescription(shortcut)
        assert keywords["port"] == str(DEFAULT_PORT)
        assert keywords["interface"] == "127.0.0.1"
        assert keywords["certKey"] == str(tmp_path / "dev" / "cert.pem")
        assert alsoOn == ["::1"]

    def test_noIPv6(self, tmp_path: Path) -> None:
        """
        Where IPv6 is missing, only IPv4 loopback is used.
        """
        _, _, alsoOn, _ = self._plan([], tmp_path, hasIPv6=False)
        assert alsoOn == []

    def test_portZero(self, tmp_path: Path) -> None:
        """
        Port 0 gets one listener: two would get two different ports.
        """
        _, _, alsoOn, _ = self._plan(["--port", "0"], tmp_path)
        assert alsoOn == []

    @pytest.mark.parametrize(
        ("argv", "cert", "key"),
        [
            (["--cert", "c.pem", "--key", "k.pem"], "c.pem", "k.pem"),
            (["--cert", "both.pem"], "both.pem", "both.pem"),
            (["--key", "both.pem"], "both.pem", "both.pem"),
        ],
    )
    def test_certAndKey(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        argv: list[str],
        cert: str,
        key: str,
    ) -> None:
        """
        C{--cert}/C{--key} make one listener on every address with absolute
        file names; a single file serves as both.
        """
        monkeypatch.chdir(tmp_path)
        descriptions, shortcut, alsoOn, development = self._plan(
            [*argv, "--port", "9443"], tmp_path
        )
        assert not development
        assert descriptions == []
        assert alsoOn == []
        assert shortcut is not None
        _, keywords = parseDescription(shortcut)
        assert keywords == {
            "port": "9443",
            "interface": "::",
            "certKey": str(tmp_path / cert),
            "privateKey": str(tmp_path / key),
        }

    def test_colonsInFileNames(self, tmp_path: Path) -> None:
        """
        File names with colons are escaped in the description.
        """
        _, shortcut, _, _ = self._plan(
            ["--cert", "/x:y/c.pem", "--ca", "/x:y/ca.pem"], tmp_path
        )
        assert shortcut is not None
        _, keywords = parseDescription(shortcut)
        assert keywords["certKey"] == "/x:y/c.pem"
        assert keywords["clientCA"] == "/x:y/ca.pem"

    def test_listenOnly(self, tmp_path: Path) -> None:
        """
        C{--listen} alone listens there only, and makes no certificate.
        """
        descriptions, shortcut, _, development = self._plan(
            ["--listen", "tcp:8080", "--listen", "tlsreload:8443:privateKey=k"],
            tmp_path,
        )
        assert descriptions == ["tcp:8080", "tlsreload:8443:privateKey=k"]
        assert shortcut is None
        assert not development

    def test_listenAndPort(self, tmp_path: Path) -> None:
        """
        C{--listen} with C{--port} listens on both.
        """
        descriptions, shortcut, _, development = self._plan(
            ["--listen", "tcp:8080", "--port", "9443"], tmp_path
        )
        assert descriptions == ["tcp:8080"]
        assert shortcut is not None
        assert development


class TestMakeService:
    """
    The service C{twistd tlshello} runs, made in process without starting.
    """

    def test_noOptions(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """
        With no options at all, the service serves a new development
        certificate in ./tlshello-dev on port 8443 of both loopbacks.
        """
        monkeypatch.chdir(tmp_path)
        options = Options()
        options.parseOptions([])
        top = makeService(options)
        endpoints = top.rotatable  # type: ignore[attr-defined]
        expected = [(8443, "127.0.0.1")] + ([(8443, "::1")] if _IPV6 else [])
        assert [(e.port, e.interface) for e in endpoints] == expected
        assert {id(e.contextFactory) for e in endpoints} == {
            id(endpoints[0].contextFactory)
        }
        assert endpoints[0].contextFactory.files.certificateFile == str(
            tmp_path / "tlshello-dev" / "cert.pem"
        )

    def test_badFileExits(self, tmp_path: Path) -> None:
        """
        A missing file ends the program with a one-line message naming the
        file and the reason, not a traceback.
        """
        options = Options()
        options.parseOptions(["--cert", str(tmp_path / "nope.pem")])
        with pytest.raises(SystemExit) as raised:
            makeService(options)
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
        options = Options()
        options.parseOptions([a.format(cert=cert) for a in argv])
        with pytest.raises(SystemExit) as raised:
            makeService(options)
        message = f"tlshello: {cert}: holds a certificate but no private key"
        if hint:
            message += " (give the key with --key)"
        assert raised.value.code == message

    def test_badListenExits(self) -> None:
        """
        A wrong C{--listen} description ends the program with a message
        quoting it and saying what is wrong.
        """
        options = Options()
        options.parseOptions(["--listen", "tlsreload:8443:privateKey=k:color=blue"])
        with pytest.raises(SystemExit) as raised:
            makeService(options)
        assert str(raised.value.code).startswith(
            "tlshello: --listen tlsreload:8443:privateKey=k:color=blue:"
            " tlsreload: unknown key 'color'"
        )


class TestStartupHints:
    """
    What C{tlshello} logs when it starts: how to try it and how to rotate.
    """

    def _startupLog(
        self, tmp_path: Path, ca: trustme.CA, development: bool, clientCA: bool
    ) -> tuple[list[str], str, str, str]:
        """
        Start a hello service on a memory reactor, serving the development
        certificate or one from C{ca}, with or without a client CA bundle.

        @return: The log, and the certificate, key and client CA files.
        """
        made = None
        if development:
            made = ensureDevelopmentCertificate(str(tmp_path / "dev"))
            cert, key = made.certificateFile, made.privateKeyFile
        else:
            certPath, keyPath, _ = writeLeaf(ca, tmp_path)
            cert, key = str(certPath), str(keyPath)
        clientCAFile = tmp_path / "CA.pem"
        clientCAFile.write_bytes(trustme.CA().cert_pem.bytes())
        factory = ReloadingContextFactory(
            cert, key, clientCAFile=str(clientCAFile) if clientCA else None
        )
        endpoint = ReloadingServerEndpoint(MemoryReactorClock(), factory, 9443)
        # Never touch this test process's SIGHUP handling.
        endpoint._ensureSIGHUP = lambda reactor, reloadable: None  # type: ignore[method-assign,assignment]
        top = _HelloService(made)
        top.addListener(endpoint, Site(HelloResource()), "tlsreload:9443")
        with _capturedLog() as log:
            top.privilegedStartService()
            top.startService()
        top.stopService()
        return log, cert, key, str(clientCAFile)

    def test_tryWithoutClientCertificates(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Without C{--ca}, the suggested curl command trusts the development
        certificate and needs nothing more.
        """
        log, cert, _, _ = self._startupLog(tmp_path, ca, True, clientCA=False)
        tries = [line for line in log if "Try: curl" in line]
        assert len(tries) == 1
        assert tries[0].endswith(f"Try: curl --cacert {cert} https://localhost:9443/")

    def test_tryWithClientCertificates(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        With C{--ca}, the suggested curl command also presents a client
        certificate, and says where it must come from: without one the
        server refuses the handshake.
        """
        log, cert, _, clientCA = self._startupLog(tmp_path, ca, True, clientCA=True)
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
        self, tmp_path: Path, ca: trustme.CA, development: bool, clientCA: bool
    ) -> None:
        """
        The rotation hint names the certificate and key to replace; a client
        CA bundle is mentioned after them, as a file that may change, not
        as part of every rotation.
        """
        log, cert, key, bundle = self._startupLog(tmp_path, ca, development, clientCA)
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
        lines = result.stdout.splitlines()
        # twistd has started logging by then, so the line comes through its
        # log, after a timestamp; twist has not.
        assert [line for line in lines if "listen" in line] == [lines[-1]]
        assert lines[-1].endswith(message)


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


class _capturedLog:
    """
    Collect the formatted text of every log event while in a C{with} block.
    """

    def __enter__(self) -> list[str]:
        self.lines: list[str] = []
        globalLogPublisher.addObserver(self._observe)
        return self.lines

    def __exit__(self, *exc: object) -> None:
        globalLogPublisher.removeObserver(self._observe)

    def _observe(self, event: LogEvent) -> None:
        self.lines.append(formatEvent(event))


def _serial(made: DevelopmentCertificate) -> int:
    return x509.load_pem_x509_certificate(
        Path(made.certificateFile).read_bytes()
    ).serial_number
