"""
Real certificates and real in-memory TLS handshakes for the tests.

Certificates are made fresh by trustme for each test and written to a
temporary directory; handshakes run through L{TLSMemoryBIOFactory} over
L{twisted.test.iosim}, so they are complete TLS handshakes with no sockets and
no sleeps.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL.crypto import X509
from twisted.internet import ssl as tssl
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocolNegotiationFactory,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump, connectedServerAndClient
from zope.interface import implementer

from txtlsreload import IReloadable, ReloadingContextFactory


def selfSigned(
    commonName: str = "localhost",
    dnsName: str = "localhost",
    notBefore: datetime.datetime | None = None,
    notAfter: datetime.datetime | None = None,
    isCA: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """
    A self-signed ECDSA certificate with this subject CN and DNS name, valid
    from C{notBefore} (default: an hour ago) to C{notAfter} (default: in a
    day), and its key; for what trustme cannot make (it fixes notBefore in
    2000, and signs with a CA).
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(notBefore or now - datetime.timedelta(hours=1))
        .not_valid_after(notAfter or now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dnsName)]), critical=False
        )
    )
    if isCA:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    return builder.sign(key, hashes.SHA256()), key


def pemOf(
    certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[bytes, bytes]:
    """
    C{certificate} and C{key} as PEM (the key unencrypted PKCS#8).
    """
    return certificate.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def writeLeaf(
    ca: trustme.CA,
    directory: Path,
    name: str = "server",
    identities: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    keyType: trustme.KeyType = trustme.KeyType.ECDSA,
    notAfter: datetime.datetime | None = None,
    commonName: str | None = None,
) -> tuple[Path, Path, int]:
    """
    Issue a leaf from C{ca} and write C{name}.crt (leaf + chain) and
    C{name}.key.

    @return: The certificate path, key path and the leaf's serial number.
    """
    leaf = ca.issue_cert(
        *identities,
        common_name=commonName,
        not_after=notAfter,
        key_type=keyType,
    )
    certPath = directory / f"{name}.crt"
    keyPath = directory / f"{name}.key"
    certPath.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    keyPath.write_bytes(leaf.private_key_pem.bytes())
    return certPath, keyPath, serialOf(certPath)


def writeWeakRSALeaf(
    ca: trustme.CA, directory: Path, name: str = "server"
) -> tuple[Path, Path, int]:
    """
    Issue an RSA-1024 leaf for localhost from C{ca} and write C{name}.crt and
    C{name}.key: a key below OpenSSL's default security level, which it
    would refuse when a context is built ("ee key too small").

    @return: The certificate path, key path and the leaf's serial number.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (weak on purpose)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    signer = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )
    certPath = directory / f"{name}.crt"
    keyPath = directory / f"{name}.key"
    certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certPath, keyPath, certificate.serial_number


def writeRSAPSSLeaf(
    ca: trustme.CA, directory: Path, name: str = "server"
) -> tuple[Path, Path, int]:
    """
    Issue from C{ca}, with the C{openssl} command, a leaf for localhost whose
    key is an RSA-PSS key (id-RSASSA-PSS in the certificate and the key
    file), and write C{name}.crt and C{name}.key.  Every check passes, and
    cryptography reads the key as RSA, but OpenSSL will not put the pair in
    a context ("no certificate assigned").

    @return: The certificate path, key path and the leaf's serial number.
    """
    certPath = directory / f"{name}.crt"
    keyPath = directory / f"{name}.key"
    caCert, caKey = directory / f"{name}-ca.crt", directory / f"{name}-ca.key"
    ca.cert_pem.write_to_path(str(caCert))
    ca.private_key_pem.write_to_path(str(caKey))
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA-PSS", "-out", str(keyPath)],
        check=True,
        capture_output=True,
    )
    request = subprocess.run(
        [
            *("openssl", "req", "-new", "-key", str(keyPath), "-subj", "/CN=pss"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(
        [
            *("openssl", "x509", "-req", "-CA", str(caCert), "-CAkey", str(caKey)),
            *("-copy_extensions", "copy", "-days", "1", "-out", str(certPath)),
        ],
        input=request,
        check=True,
        capture_output=True,
    )
    caKey.unlink()
    return certPath, keyPath, serialOf(certPath)


def servedSerial(server: IOpenSSLServerConnectionCreator, client: object) -> int:
    """
    Handshake in memory with C{server} and return the serial of the
    certificate the client was served; fail if the handshake did not finish.
    """
    result = handshake(server, client)
    assert result.succeeded, result.failureText()
    assert result.serverCertificate is not None
    return result.serverCertificate.serial_number


def issue(ca: trustme.CA, staging: Path) -> tuple[bytes, bytes, int]:
    """
    A new certificate and key from C{ca}, as bytes, written only in
    C{staging} (created if need be), not yet where anything watches.

    @return: The certificate and key PEM, and the certificate's serial.
    """
    staging.mkdir(exist_ok=True)
    certPath, keyPath, serial = writeLeaf(ca, staging)
    return certPath.read_bytes(), keyPath.read_bytes(), serial


def servedBy(factory: ReloadingContextFactory, ca: trustme.CA) -> int:
    """
    The serial a client trusting C{ca} gets from C{factory} in a real
    handshake, after checking that the factory reports the same.
    """
    serial = servedSerial(factory, clientOptions(ca))
    assert factory.certificate.serialNumber == serial
    return serial


@dataclass(frozen=True)
class ReloadOutcome:
    """
    What L{RecordingReloadable} reports: only what a watcher looks at.
    """

    succeeded: bool = True
    changed: bool = False


@implementer(IReloadable)
class RecordingReloadable:
    """
    A reloadable for watcher tests: records when it was asked to reload
    (by C{clock}, if given), and succeeds, refuses or raises as told.  Its
    paths need not hold certificates, or exist.
    """

    def __init__(self, *paths: Path, clock: Clock | None = None) -> None:
        self.paths = paths
        self.clock = clock
        self.calls: list[float] = []
        self.succeed = True
        self.raiseError = False

    @property
    def reloads(self) -> int:
        """
        How many times it was asked to reload.
        """
        return len(self.calls)

    def watchedPaths(self) -> list[str]:
        return [str(path) for path in self.paths]

    def reload(self, quietIfRepeated: bool = False) -> ReloadOutcome:
        self.calls.append(0.0 if self.clock is None else self.clock.seconds())
        if self.raiseError:
            raise RuntimeError("broken reloadable")
        return ReloadOutcome(self.succeed)


def loud(events: list[LogEvent]) -> list[str]:
    """
    The txtlsreload events at info level or above, as text.
    """
    return [
        f"{event['log_level'].name}: {event.get('log_format')}"
        for event in events
        if event.get("log_namespace", "").startswith("txtlsreload")
        and event["log_level"].name in ("info", "warn", "error", "critical")
    ]


def serialOf(certPath: Path) -> int:
    """
    The serial number of the first certificate in C{certPath}.
    """
    return x509.load_pem_x509_certificate(certPath.read_bytes()).serial_number


def replaceAtomically(path: Path, data: bytes) -> None:
    """
    Write C{data} to C{path} the way careful tools do: a temporary file
    renamed over the old one.
    """
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class _Recorder(Protocol):
    """
    Remembers what arrived and whether the handshake finished.
    """

    def __init__(self) -> None:
        self.received = b""
        self.lostReason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lostReason = reason


class _Echo(_Recorder):
    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        assert self.transport is not None
        self.transport.write(data)


@implementer(IProtocolNegotiationFactory)
class _ALPNFactory(Factory):
    """
    A server factory that offers protocols over ALPN, as Twisted Web does.
    """

    protocol = _Echo

    def __init__(self, protocols: list[bytes]) -> None:
        self._protocols = protocols

    def acceptableProtocols(self) -> list[bytes]:
        return self._protocols


@dataclass
class HandshakeResult:
    """
    What one in-memory handshake produced, as seen from both ends.
    """

    serverCertificate: x509.Certificate | None
    clientProtocol: TLSMemoryBIOProtocol
    serverProtocol: TLSMemoryBIOProtocol
    pump: IOPump
    negotiatedProtocol: bytes | None = None
    clientCertificateSeenByServer: x509.Certificate | None = None
    clientApp: _Recorder = field(default_factory=_Recorder)
    serverNameSeenByServer: bytes | None = None

    @property
    def succeeded(self) -> bool:
        """
        Both sides finished the handshake and the connection is still open.
        """
        return (
            self.serverCertificate is not None
            and self.clientApp.lostReason is None
            and not self.clientProtocol.disconnected
        )

    def roundTrip(self, data: bytes) -> bytes:
        """
        Send C{data} from the client and return what the echo server sent back.
        """
        before = len(self.clientApp.received)
        self.clientProtocol.write(data)
        self.pump.flush()
        return self.clientApp.received[before:]

    def failureText(self) -> str:
        """
        The reason the client's connection was lost, as text.
        """
        reason = self.clientApp.lostReason
        return "" if reason is None else str(reason.value)


def clientOptions(
    ca: trustme.CA | Path,
    hostname: str | None = "localhost",
    clientCert: trustme.LeafCert | None = None,
    protocols: list[bytes] | None = None,
    maximumVersion: int | None = None,
) -> object:
    """
    Client TLS options trusting C{ca}.

    With a C{hostname} these are Twisted's own C{optionsForClientTLS} (SNI and
    hostname verification); with C{hostname=None}, a client certificate or a
    C{maximumVersion} (an C{SSL.TLS1_*_VERSION}, to make an old client) a
    plain pyOpenSSL client that checks only the chain and sends SNI only
    when given a C{hostname}.
    """
    caPem = ca.cert_pem.bytes() if isinstance(ca, trustme.CA) else ca.read_bytes()
    if hostname is not None and maximumVersion is None and clientCert is None:
        trustRoot = tssl.trustRootFromCertificates(
            [
                tssl.Certificate(X509.from_cryptography(c))
                for c in x509.load_pem_x509_certificates(caPem)
            ]
        )
        kwargs: dict[str, object] = {}
        if protocols is not None:
            kwargs["acceptableProtocols"] = protocols
        return tssl.optionsForClientTLS(hostname, trustRoot, **kwargs)  # type: ignore[arg-type]
    return _PlainClient(caPem, clientCert, protocols, maximumVersion, hostname)


@implementer(IOpenSSLClientConnectionCreator)
class _PlainClient:
    """
    A bare pyOpenSSL client: chain verification only, SNI only if given a
    name.  (Twisted's own client options would present a client certificate
    through deprecated pyOpenSSL objects.)
    """

    def __init__(
        self,
        caPem: bytes,
        clientCert: trustme.LeafCert | None,
        protocols: list[bytes] | None,
        maximumVersion: int | None,
        serverName: str | None = None,
    ) -> None:
        self._serverName = serverName
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        store = context.get_cert_store()
        assert store is not None
        for certificate in x509.load_pem_x509_certificates(caPem):
            store.add_cert(X509.from_cryptography(certificate))
        context.set_verify(SSL.VERIFY_PEER)
        if clientCert is not None:
            context.use_certificate(
                x509.load_pem_x509_certificate(clientCert.cert_chain_pems[0].bytes())
            )
            context.use_privatekey(
                serialization.load_pem_private_key(
                    clientCert.private_key_pem.bytes(), None
                )  # type: ignore[arg-type]
            )
        if maximumVersion is not None:
            context.set_min_proto_version(SSL.TLS1_VERSION)
            context.set_max_proto_version(maximumVersion)
            # Old protocol versions need old ciphers and security level 0.
            context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        self._context = context
        self._protocols = protocols

    def clientConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        if self._protocols:
            connection.set_alpn_protos(self._protocols)
        if self._serverName is not None:
            connection.set_tlsext_host_name(self._serverName.encode("ascii"))
        return connection


@implementer(IOpenSSLServerConnectionCreator)
class _ConnectionsMade:
    """
    Passes the server creator's connections through, keeping each, so that
    a test can ask OpenSSL (not Twisted's private attributes) what the server
    saw.
    """

    def __init__(self, server: IOpenSSLServerConnectionCreator) -> None:
        self.server = server
        self.made: list[SSL.Connection] = []

    def serverConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        connection = self.server.serverConnectionForTLS(tlsProtocol)
        self.made.append(connection)
        return connection


def handshake(
    server: IOpenSSLServerConnectionCreator,
    client: object,
    serverProtocols: list[bytes] | None = None,
) -> HandshakeResult:
    """
    Run a complete TLS handshake in memory between C{server} (our factory)
    and C{client} (client options), and report what each side saw.
    """
    clientApp = _Recorder()
    serverWrapped: Factory = (
        _ALPNFactory(serverProtocols)
        if serverProtocols is not None
        else Factory.forProtocol(_Echo)
    )
    clock = Clock()
    made = _ConnectionsMade(server)
    serverFactory = TLSMemoryBIOFactory(made, False, serverWrapped, clock=clock)
    clientFactory = TLSMemoryBIOFactory(
        client, True, Factory.forProtocol(lambda: clientApp), clock=clock
    )
    clientProtocol, serverProtocol, pump = connectedServerAndClient(
        lambda: serverFactory.buildProtocol(None),
        lambda: clientFactory.buildProtocol(None),
        clock=clock,
    )
    pump.flush()
    return _result(clientProtocol, serverProtocol, pump, clientApp, made)


def _result(
    clientProtocol: TLSMemoryBIOProtocol,
    serverProtocol: TLSMemoryBIOProtocol,
    pump: IOPump,
    clientApp: _Recorder,
    made: _ConnectionsMade | None = None,
) -> HandshakeResult:
    serverCertificate = None
    negotiated = None
    if clientApp.lostReason is None:
        peer = _peerOf(clientProtocol)
        serverCertificate = peer
        if peer is not None:
            negotiated = clientProtocol.negotiatedProtocol
    serverName = None
    if made is not None and made.made:
        serverName = made.made[-1].get_servername()
    return HandshakeResult(
        serverCertificate=serverCertificate,
        clientProtocol=clientProtocol,
        serverProtocol=serverProtocol,
        pump=pump,
        negotiatedProtocol=negotiated,
        clientCertificateSeenByServer=_peerOf(serverProtocol),
        clientApp=clientApp,
        serverNameSeenByServer=serverName,
    )


def _peerOf(protocol: TLSMemoryBIOProtocol) -> x509.Certificate | None:
    """
    The certificate the other end of C{protocol} presented, through
    Twisted's public C{ISSLTransport.getPeerCertificate}.
    """
    try:
        peer = protocol.getPeerCertificate()
    except (SSL.Error, AttributeError):
        # Before the TLS connection exists, or after it failed.
        return None
    return None if peer is None else peer.to_cryptography()


def startThenHandshake(
    server: IOpenSSLServerConnectionCreator, client: object
) -> tuple[HandshakeResult, callable]:  # type: ignore[valid-type]
    """
    Accept a connection (the server's OpenSSL connection is created now) but
    hold the client's first bytes back; return a function that lets the
    handshake run and reports the result.
    """
    clientApp = _Recorder()
    clock = Clock()
    serverFactory = TLSMemoryBIOFactory(
        server, False, Factory.forProtocol(_Echo), clock=clock
    )
    clientFactory = TLSMemoryBIOFactory(
        client, True, Factory.forProtocol(lambda: clientApp), clock=clock
    )
    clientProtocol, serverProtocol, pump = connectedServerAndClient(
        lambda: serverFactory.buildProtocol(None),
        lambda: clientFactory.buildProtocol(None),
        clock=clock,
        greet=False,
    )
    accepted = _result(clientProtocol, serverProtocol, pump, clientApp)

    def finish() -> HandshakeResult:
        pump.flush()
        return _result(clientProtocol, serverProtocol, pump, clientApp)

    return accepted, finish


# The shortest base64 line counted as key material: shorter ones (the last
# line of a block) could turn up anywhere by chance.
_SHORTEST_SECRET_LINE = 16


def secretLines(*keyFiles: Path | bytes) -> list[str]:
    """
    Every base64 line of at least 16 characters in the PEM C{keyFiles}
    (paths, read now, or their bytes).
    """
    lines = []
    for keyFile in keyFiles:
        data = keyFile.read_bytes() if isinstance(keyFile, Path) else keyFile
        for line in data.splitlines():
            line = line.strip()
            if len(line) >= _SHORTEST_SECRET_LINE and not line.startswith(b"-----"):
                lines.append(line.decode("ascii"))
    return lines


def assertNoKeyMaterial(
    text: str, *keyFiles: Path | bytes, passphrases: tuple[bytes, ...] = ()
) -> None:
    """
    No base64 line of at least 16 characters of any of C{keyFiles}, and none
    of C{passphrases}, appears in C{text}.

    Fails if there is nothing to look for, so that a key file that was never
    written cannot make the check pass.
    """
    secrets = secretLines(*keyFiles) + [p.decode("utf-8") for p in passphrases]
    assert secrets, "no key material to look for"
    for secret in secrets:
        assert secret not in text, f"key material {secret[:8]}... leaked"


def everythingReported(*reports: object, events: Sequence[LogEvent] = ()) -> str:
    """
    All the text that C{reports} (errors, results) and C{events} give to
    whoever shows or records them: C{str} and C{repr} of each report, each
    event as formatted, and the traceback of each logged failure.
    """
    texts = [f"{report}\n{report!r}" for report in reports]
    for event in events:
        texts.append(formatEvent(event))
        failure = event.get("log_failure")
        if failure is not None:
            texts.append(failure.getTraceback())
    return "\n".join(texts)


# What no one-line message built from outside text may hold raw: C0
# controls (newlines too), DEL, C1 controls, bidi controls.
_RAW_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def assertNoRawControls(*texts: str) -> None:
    """
    None of the one-line C{texts} holds a control or text-direction
    character.
    """
    for text in texts:
        found = _RAW_CONTROLS.search(text)
        assert found is None, f"raw {found.group()!r} in {text!r}"
