"""
Tests for C{sessions=yes} on the C{tlsreload:} endpoint: descriptions, and
real clients (C{openssl s_client -sess_out/-sess_in} and CPython C{ssl}
sessions, TLS 1.2 and 1.3) against a real server process over loopback,
rotated and re-trusted with SIGHUP.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactorClock

from txtlsreload import ReloadingContextFactory

from .peers import writeCA
from .processes import SCRIPTS, ServerProcess, python, waitFor
from .test_sessions import writeNamed
from .tlshelpers import writeLeaf


class TestDescriptions:
    """
    The sessions= and sessionTimeout= keys.
    """

    @pytest.mark.parametrize(
        ("options", "sessions"),
        [("", False), (":sessions=no", False), (":sessions=yes", True)],
    )
    def test_sessions(
        self, options: str, sessions: bool, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        sessions=yes gives a factory that resumes sessions; without it, or
        with sessions=no, sessions are not resumed.
        """
        certificate, key, _ = writeLeaf(ca, tmp_path, identities=("a.example",))
        endpoint = serverFromString(
            MemoryReactorClock(),
            f"tlsreload:0:privateKey={key}:certKey={certificate}{options}",
        )
        factory = endpoint.contextFactory  # type: ignore[attr-defined]
        assert isinstance(factory, ReloadingContextFactory)
        assert _resumes(ca, factory) is sessions

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            (":sessions=maybe", "sessions must be yes or no, not 'maybe'"),
            (":sessionTimeout=60", "sessionTimeout= needs sessions=yes"),
            (":sessions=yes:sessionTimeout=0", "1 or more, not '0'"),
            (":sessions=yes:sessionTimeout=1.5", "1 or more, not '1.5'"),
            (":sessions=yes:sessionTimeout=soon", "1 or more, not 'soon'"),
        ],
    )
    def test_refused(
        self, options: str, message: str, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A wrong sessions or sessionTimeout value is refused, saying why.
        """
        certificate, key, _ = writeLeaf(ca, tmp_path)
        with pytest.raises(ValueError, match=message):
            serverFromString(
                MemoryReactorClock(),
                f"tlsreload:0:privateKey={key}:certKey={certificate}{options}",
            )


def _resumes(ca: trustme.CA, factory: object) -> bool:
    from .sessionhelpers import VERSIONS, SessionClient

    client = SessionClient(ca, VERSIONS["TLS1.3"])
    assert client.connect(factory, "a.example").error is None  # type: ignore[arg-type]
    return client.connect(factory, "a.example").reused  # type: ignore[arg-type]


@dataclass
class Files:
    """
    What a server process serves: a.example and b.example from their own
    directories, client CAs, and a client certificate from the first CA.
    """

    root: Path
    ca: trustme.CA
    clientCAs: Path
    clientIssuer: trustme.CA
    clientCertificate: Path
    clientKey: Path
    serverCA: Path

    def rotate(self, name: str) -> int:
        """
        Write a new certificate for C{name}; return its serial.
        """
        return writeNamed(self.ca, self.root / name[0], (name,))


@pytest.fixture
def files(tmp_path: Path, ca: trustme.CA) -> Files:
    root = tmp_path / "certs"
    for name in ("a.example", "b.example"):
        (root / name[0]).mkdir(parents=True)
        writeNamed(ca, root / name[0], (name,))
    first, second = trustme.CA(), trustme.CA()
    client = first.issue_cert("client.example")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    return Files(
        root=root,
        ca=ca,
        clientCAs=writeCA(first, tmp_path / "clients.pem", second),
        clientIssuer=first,
        clientCertificate=tmp_path / "client.crt",
        clientKey=tmp_path / "client.key",
        serverCA=writeCA(ca, tmp_path / "ca.pem"),
    )


@dataclass
class Server:
    """
    A server process and how to make it reload.
    """

    process: ServerProcess
    port: int
    reloads: Path

    def sighup(self) -> None:
        """
        Send SIGHUP and wait until the reload installed something.
        """
        before = self._count()
        os.kill(self.process.pid, signal.SIGHUP)
        waitFor(lambda: self._count() > before or None)

    def _count(self) -> int:
        return (
            len(self.reloads.read_text().splitlines()) if self.reloads.exists() else 0
        )


@pytest.fixture
def startServer(tmp_path: Path, files: Files) -> Iterator[Callable[[str], Server]]:
    started: list[ServerProcess] = []

    def start(options: str) -> Server:
        portFile = tmp_path / f"port{len(started)}"
        reloads = tmp_path / f"reloads{len(started)}"
        description = (
            f"tlsreload:0:interface=127.0.0.1:certificates={files.root}"
            f":clientCA={files.clientCAs}:clientAuth=optional{options}"
        )
        process = ServerProcess(
            python(SCRIPTS / "sessions_server.py", description, portFile, reloads),
            tmp_path / f"server{len(started)}.log",
        )
        started.append(process)
        port = waitFor(lambda: int(portFile.read_text()) or None)
        return Server(process, port, reloads)

    yield start
    for process in started:
        output = process.stop()
        assert "Traceback" not in output, output


@dataclass
class Outcome:
    """
    One connection: resumed or not, and the server certificate's serial.
    """

    reused: bool
    serial: int


class OpenSSLClient:
    """
    C{openssl s_client}, keeping its session in a file.
    """

    def __init__(self, files: Files, version: str, directory: Path) -> None:
        self.files = files
        self.flag = {"TLS1.2": "-tls1_2", "TLS1.3": "-tls1_3"}[version]
        self.sessionFile = directory / f"s_client{version}.session"
        self.options: list[str] = []

    def connect(self, port: int, serverName: str) -> Outcome:
        command = [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            self.flag,
            "-ign_eof",
            "-servername",
            serverName,
            "-CAfile",
            str(self.files.serverCA),
            "-cert",
            str(self.files.clientCertificate),
            "-key",
            str(self.files.clientKey),
            "-sess_out",
            str(self.sessionFile),
        ]
        if self.sessionFile.exists():
            command += ["-sess_in", str(self.sessionFile)]
        command += self.options
        done = subprocess.run(command, input=b"ping\n", capture_output=True, timeout=30)
        out = done.stdout.decode()
        assert "\nping\n" in out, out + done.stderr.decode()
        reused = [
            line for line in out.splitlines() if line.startswith(("New,", "Reused,"))
        ]
        assert reused, out
        pem = out[out.index("-----BEGIN CERTIFICATE-----") :]
        pem = pem[: pem.index("-----END CERTIFICATE-----") + 25]
        serial = x509.load_pem_x509_certificate(pem.encode()).serial_number
        return Outcome(reused[0].startswith("Reused,"), serial)


class PythonClient:
    """
    CPython C{ssl}, offering the last session it got.
    """

    def __init__(self, files: Files, version: str, directory: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(files.serverCA)
        context.load_cert_chain(files.clientCertificate, files.clientKey)
        context.minimum_version = context.maximum_version = {
            "TLS1.2": ssl.TLSVersion.TLSv1_2,
            "TLS1.3": ssl.TLSVersion.TLSv1_3,
        }[version]
        self.context = context
        self.session: ssl.SSLSession | None = None

    def connect(self, port: int, serverName: str) -> Outcome:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with self.context.wrap_socket(
                raw, server_hostname=serverName, session=self.session
            ) as tls:
                tls.sendall(b"ping\n")
                received = b""
                while not received.endswith(b"\n"):
                    chunk = tls.recv(100)
                    assert chunk, received
                    received += chunk
                reused = tls.session_reused
                self.session = tls.session
                der = tls.getpeercert(binary_form=True)
                try:
                    tls.unwrap()
                except (OSError, ssl.SSLError):
                    pass
        assert der is not None
        return Outcome(reused, x509.load_der_x509_certificate(der).serial_number)


# A client whose first (and only) key share is for a group the server ranks
# below another the client also supports: in TLS 1.3 the server asks for that
# one with a HelloRetryRequest, and the client sends a second ClientHello.
# (P-256 last: in TLS 1.2 the groups also say which ECDSA certificates the
# client takes.)
_RETRY_GROUPS = ["-groups", "secp384r1:X25519:P-256"]


class RetryingOpenSSLClient(OpenSSLClient):
    """
    C{openssl s_client} offering a key share the server does not take: in
    TLS 1.3, every handshake has a HelloRetryRequest, whose second
    ClientHello the server reads without peeking at it again.
    """

    def __init__(self, files: Files, version: str, directory: Path) -> None:
        super().__init__(files, version, directory)
        self.options = _RETRY_GROUPS


CLIENTS = {
    "s_client": OpenSSLClient,
    "s_client-retrying": RetryingOpenSSLClient,
    "CPython": PythonClient,
}

needsOpenSSL = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="no openssl command"
)


@needsOpenSSL
@pytest.mark.parametrize("version", ["TLS1.2", "TLS1.3"])
@pytest.mark.parametrize("clientKind", CLIENTS)
class TestRealClients:
    """
    Real clients against a real server process.
    """

    def test_sessions(
        self,
        clientKind: str,
        version: str,
        files: Files,
        startServer: Callable[[str], Server],
        tmp_path: Path,
    ) -> None:
        """
        With sessions=yes: resumed after a rotation (keeping the old
        certificate), not resumed under another SNI name, not resumed after
        a client-CA change, and resumed again after that.
        """
        server = startServer(":sessions=yes")
        client = CLIENTS[clientKind](files, version, tmp_path)  # type: ignore[abstract]
        first = client.connect(server.port, "a.example")
        assert first.reused is False
        assert client.connect(server.port, "a.example").reused is True

        newSerial = files.rotate("a.example")
        server.sighup()
        resumed = client.connect(server.port, "a.example")
        assert (resumed.reused, resumed.serial) == (True, first.serial)

        other = client.connect(server.port, "b.example")
        assert other.reused is False
        assert other.serial != first.serial

        fresh = client.connect(server.port, "a.example")
        assert (fresh.reused, fresh.serial) == (False, newSerial)
        assert client.connect(server.port, "a.example").reused is True

        # Still trusting the client's CA, but another bundle: flushed.
        writeCA(files.clientIssuer, files.clientCAs, trustme.CA())
        server.sighup()
        assert client.connect(server.port, "a.example").reused is False
        assert client.connect(server.port, "a.example").reused is True

    def test_offWithoutSessions(
        self,
        clientKind: str,
        version: str,
        files: Files,
        startServer: Callable[[str], Server],
        tmp_path: Path,
    ) -> None:
        """
        Without sessions=, no session is ever resumed.
        """
        server = startServer("")
        client = CLIENTS[clientKind](files, version, tmp_path)  # type: ignore[abstract]
        assert [client.connect(server.port, "a.example").reused for _ in range(3)] == [
            False
        ] * 3


def _serverHellos(files: Files, port: int) -> int:
    """
    How many ServerHello messages (a HelloRetryRequest is one) a TLS 1.3
    handshake with the retry-provoking groups gets.
    """
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3"]
    command += ["-servername", "a.example", "-CAfile", str(files.serverCA)]
    command += ["-cert", str(files.clientCertificate), "-key", str(files.clientKey)]
    done = subprocess.run(
        [*command, "-trace", *_RETRY_GROUPS],
        input=b"",
        capture_output=True,
        timeout=30,
    )
    return done.stdout.decode(errors="replace").count("ServerHello, Length=")


@needsOpenSSL
def test_retryingClientGetsHelloRetryRequest(
    files: Files, startServer: Callable[[str], Server]
) -> None:
    """
    The retrying client of L{TestRealClients} does get a HelloRetryRequest
    in TLS 1.3 (two ServerHello messages), so its session tests cover it.
    """
    server = startServer(":sessions=yes")
    assert _serverHellos(files, server.port) == 2
