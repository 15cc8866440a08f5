"""
TLS servers for client tests, over loopback: ours, CPython's C{ssl} in a
thread and C{openssl s_server} in a subprocess, each telling the client which
client certificate it saw; the client side that connects to them and reports
the outcome; and the CA and client files a client is given.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint, wrapServerTLS
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txtlsreload import ReloadingContextFactory

from .tlshelpers import replaceAtomically, writeLeaf

__all__ = [
    "PEERS",
    "OpenSSLPeer",
    "OurPeer",
    "Outcome",
    "Peer",
    "PythonPeer",
    "caFileFixture",
    "clientSerialIn",
    "connectOnce",
    "describeClient",
    "startPeerFixture",
    "writeCA",
    "writeClient",
]


def writeCA(ca: trustme.CA, path: Path, *more: trustme.CA) -> Path:
    """
    Write a PEM bundle of C{ca} and C{more} to C{path}.
    """
    path.write_bytes(b"".join(c.cert_pem.bytes() for c in (ca, *more)))
    return path


def writeClient(ca: trustme.CA, path: Path) -> int:
    """
    Issue a client certificate from C{ca} and write key and certificate
    together to C{path} (atomically), as one file.

    @return: The certificate's serial number.
    """
    leaf = ca.issue_cert("client.example")
    replaceAtomically(path, leaf.private_key_and_cert_chain_pem.bytes())
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number


@pytest.fixture(name="caFile")
def caFileFixture(tmp_path: Path, ca: trustme.CA) -> Path:
    """
    The test's CA, as a bundle file.
    """
    return writeCA(ca, tmp_path / "ca.pem")


def describeClient(der: bytes | None) -> bytes:
    """
    What our test servers send back (as a minimal HTTP response, so that
    HTTP clients can ask too): the client certificate they saw.
    """
    if der is None:
        body = b"No client certificate\n"
    else:
        certificate = x509.load_der_x509_certificate(der)
        body = b"Client certificate\n" + certificate.public_bytes(
            serialization.Encoding.PEM
        )
    header = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
    return header.encode("ascii") + body


def clientSerialIn(response: bytes) -> int | None:
    """
    The serial of the client certificate a server reported seeing, from
    L{describeClient} or C{openssl s_server -www}.
    """
    start = response.find(
        b"-----BEGIN CERTIFICATE-----", response.find(b"Client certificate")
    )
    if b"Client certificate" not in response or start < 0:
        return None
    end = response.index(b"-----END CERTIFICATE-----", start) + 25
    return x509.load_pem_x509_certificate(response[start:end]).serial_number


@dataclass
class Outcome:
    """
    One client connection over loopback, as the client saw it.
    """

    serverCertificate: x509.Certificate | None
    response: bytes
    error: str

    @property
    def succeeded(self) -> bool:
        return self.serverCertificate is not None and not self.error

    @property
    def clientSerialSeenByServer(self) -> int | None:
        return clientSerialIn(self.response)


@implementer(IHandshakeListener)
class _Probe(Protocol):
    """
    Sends one request after the handshake and collects the reply.
    """

    def __init__(self, done: Deferred[Outcome]) -> None:
        self.done = done
        self.serverCertificate: x509.Certificate | None = None
        self.response = b""

    def handshakeCompleted(self) -> None:
        assert self.transport is not None
        peer = self.transport.getPeerCertificate()  # type: ignore[attr-defined]
        self.serverCertificate = peer.to_cryptography()
        self.transport.write(b"GET / HTTP/1.0\r\n\r\n")

    def dataReceived(self, data: bytes) -> None:
        self.response += data

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        error = "" if reason.check(ConnectionDone) else str(reason.value)
        self.done.callback(Outcome(self.serverCertificate, self.response, error))


def connectOnce(endpoint: Any) -> Deferred[Outcome]:
    """
    Connect, send a request, and report what happened.
    """
    done: Deferred[Outcome] = Deferred()
    connecting = endpoint.connect(Factory.forProtocol(lambda: _Probe(done)))

    def failed(reason: Failure) -> None:
        done.callback(Outcome(None, b"", str(reason.value)))

    connecting.addErrback(failed)
    return done


class _DescribeClient(Protocol):
    """
    Our server's application: answer a request with the client certificate.
    """

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        peer = self.transport.getPeerCertificate()  # type: ignore[attr-defined]
        der = None
        if peer is not None:
            der = peer.to_cryptography().public_bytes(serialization.Encoding.DER)
        self.transport.write(describeClient(der))
        self.transport.loseConnection()


class Peer:
    """
    A TLS server on 127.0.0.1 that tells clients which client certificate it
    saw.
    """

    def listen(self, reactor: Any) -> Deferred[int]:
        """
        Make sure it listens; return its port.
        """
        raise NotImplementedError

    def stop(self) -> None:
        pass


class OurPeer(Peer):
    """
    L{ReloadingContextFactory} served by the test's own reactor.
    """

    def __init__(
        self, certFile: Path, keyFile: Path, clientCAFile: Path | None
    ) -> None:
        self.factory = ReloadingContextFactory(
            str(certFile),
            str(keyFile),
            clientCAFile=None if clientCAFile is None else str(clientCAFile),
        )

    @inlineCallbacks
    def listen(self, reactor: Any) -> Generator[Any, Any, int]:
        endpoint = wrapServerTLS(
            self.factory, TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"), reactor
        )
        port = yield endpoint.listen(Factory.forProtocol(_DescribeClient))
        number: int = port.getHost().port
        return number


class PythonPeer(Peer):
    """
    CPython's C{ssl} module serving from a thread.
    """

    def __init__(
        self, certFile: Path, keyFile: Path, clientCAFile: Path | None
    ) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certFile, keyFile)
        if clientCAFile is not None:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(clientCAFile)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def listen(self, reactor: Any) -> Deferred[int]:
        return succeed(self.port)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with raw:
                raw.settimeout(5)
                try:
                    with self._context.wrap_socket(raw, server_side=True) as tls:
                        tls.recv(1024)
                        tls.sendall(describeClient(tls.getpeercert(binary_form=True)))
                        tls.unwrap()
                except OSError:
                    # Handshakes the client refuses end here; that is the
                    # client's outcome to report, not ours.
                    continue

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()


class OpenSSLPeer(Peer):
    """
    C{openssl s_server -www} in a subprocess; its status page shows the
    client certificate it received.
    """

    def __init__(
        self, certFile: Path, keyFile: Path, clientCAFile: Path | None, logs: Path
    ) -> None:
        args = [
            "openssl", "s_server", "-www", "-accept", "127.0.0.1:0",
            "-cert", str(certFile), "-key", str(keyFile),
        ]  # fmt: skip
        if clientCAFile is not None:
            args += ["-Verify", "4", "-CAfile", str(clientCAFile)]
        self._output = logs / "s_server.out"
        with open(self._output, "wb") as out:
            self._process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            self.port = self._waitForPort()
        except BaseException:
            self.stop()
            raise

    def _waitForPort(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self._output.read_bytes().splitlines():
                if line.startswith(b"ACCEPT "):
                    return int(line.rsplit(b":", 1)[1])
            if self._process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(
            f"openssl s_server did not start: {self._output.read_text()!r}"
        )

    def listen(self, reactor: Any) -> Deferred[int]:
        return succeed(self.port)

    def stop(self) -> None:
        self._process.kill()
        self._process.wait(5)


PEERS = ["txtlsreload", "python", "openssl"]


@pytest.fixture(name="startPeer")
def startPeerFixture(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    """
    Start a server of a given kind for the test; all are stopped after it.
    """
    started: list[Peer] = []

    def start(
        kind: str,
        ca: trustme.CA,
        identities: tuple[str, ...] = ("localhost", "127.0.0.1"),
        clientCA: trustme.CA | None = None,
    ) -> Peer:
        directory = tmp_path / f"peer{len(started)}"
        directory.mkdir()
        cert, key, _ = writeLeaf(ca, directory, identities=identities)
        clientCAFile = None
        if clientCA is not None:
            clientCAFile = writeCA(clientCA, directory / "client-ca.pem")
        peer: Peer
        if kind == "txtlsreload":
            peer = OurPeer(cert, key, clientCAFile)
        elif kind == "python":
            peer = PythonPeer(cert, key, clientCAFile)
        else:
            peer = OpenSSLPeer(cert, key, clientCAFile, directory)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()
