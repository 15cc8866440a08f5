"""
Tests for the reloading client side: L{ReloadingClientContextFactory},
L{ReloadingClientCredentials} and L{ReloadingPolicyForHTTPS}.

Every handshake is real.  In-memory handshakes (L{tlshelpers.handshake})
cover the details; loopback connections from a private reactor cover the
same behaviour against three real servers: ours, CPython's C{ssl} in a
thread, and C{openssl s_server} in a subprocess.  The HTTP agent runs in a
subprocess, since L{Agent} batches writes on the global reactor.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import weakref
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
)
from twisted.logger import capturedLogs, formatEvent
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface.verify import verifyObject

from txtlsreload import (
    ClientReloadResult,
    CredentialError,
    IReloadable,
    ReloadingClientContextFactory,
    ReloadingClientCredentials,
    ReloadingContextFactory,
    ReloadingPolicyForHTTPS,
    reloadOnSIGHUP,
)

from .peers import (
    PEERS,
    Outcome,
    Peer,
    PythonPeer,
    clientSerialIn,
    connectOnce,
    writeCA,
    writeClient,
)
from .reactors import (
    CallsFromThreads,
    runInReactor,
)
from .tlshelpers import (
    assertNoKeyMaterial,
    everythingReported,
    handshake,
    replaceAtomically,
    writeLeaf,
    writeRSAPSSLeaf,
    writeWeakRSALeaf,
)

ROOT = Path(__file__).parent.parent


# --- certificates ----------------------------------------------------------


def ourServer(
    ca: trustme.CA,
    directory: Path,
    identities: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    clientCA: trustme.CA | None = None,
) -> ReloadingContextFactory:
    """
    Our own reloading server, with a certificate for C{identities} and, with
    C{clientCA}, requiring client certificates from it.
    """
    cert, key, _ = writeLeaf(ca, directory, identities=identities)
    clientCAFile = None
    if clientCA is not None:
        clientCAFile = str(writeCA(clientCA, directory / "client-ca.pem"))
    return ReloadingContextFactory(str(cert), str(key), clientCAFile=clientCAFile)


# --- in memory ---------------------------------------------------------------


class TestInterfaces:
    """
    The client objects are what Twisted asks for.
    """

    def test_providesInterfaces(self, caFile: Path) -> None:
        """
        The creator is a client connection creator and a reloadable, the
        credentials are reloadable, and the policy is an HTTPS policy.
        """
        creator = ReloadingClientContextFactory("localhost", str(caFile))
        assert verifyObject(IOpenSSLClientConnectionCreator, creator)
        assert verifyObject(IReloadable, creator)
        assert verifyObject(IReloadable, creator.credentials)
        policy = ReloadingPolicyForHTTPS(str(caFile))
        assert verifyObject(IPolicyForHTTPS, policy)
        assert verifyObject(IReloadable, policy)


class TestVerification:
    """
    The server must be trusted and valid for the name asked for.
    """

    @pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1", "[::1]"])
    def test_rightNameAndCA(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path, hostname: str
    ) -> None:
        """
        A server with a certificate from the trusted CA for the name or IP
        address asked for is accepted, and data flows.
        """
        server = ourServer(ca, tmp_path)
        result = handshake(server, ReloadingClientContextFactory(hostname, str(caFile)))
        assert result.succeeded, result.failureText()
        assert result.serverCertificate is not None
        assert result.serverCertificate.serial_number == server.certificate.serialNumber
        assert result.roundTrip(b"ping") == b"ping"

    @pytest.mark.parametrize(
        ("hostname", "identities", "mismatch"),
        [
            ("localhost", ("other.example",), "DNSMismatch"),
            ("www.example.com", ("example.com",), "DNSMismatch"),
            ("127.0.0.1", ("localhost",), "IPAddressMismatch"),
            ("127.0.0.1", ("127.0.0.2",), "IPAddressMismatch"),
            ("::1", ("localhost", "127.0.0.1"), "IPAddressMismatch"),
        ],
    )
    def test_otherNameRefused(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
        hostname: str,
        identities: tuple[str, ...],
        mismatch: str,
    ) -> None:
        """
        A certificate from the trusted CA but for another name or address is
        refused, and the error says which identity did not match and what
        the certificate is for.
        """
        server = ourServer(ca, tmp_path, identities=identities)
        result = handshake(server, ReloadingClientContextFactory(hostname, str(caFile)))
        assert not result.succeeded
        assert f"is not valid for {hostname}" in result.failureText()
        assert f"its names are {identities[0]}" in result.failureText()
        assert result.clientApp.lostReason is not None
        error = result.clientApp.lostReason.value
        assert [type(e).__name__ for e in error.errors] == [mismatch]

    def test_untrustedCARefused(self, tmp_path: Path, caFile: Path) -> None:
        """
        A server whose certificate comes from a CA not in the bundle is
        refused.
        """
        server = ourServer(trustme.CA(), tmp_path)
        result = handshake(
            server, ReloadingClientContextFactory("localhost", str(caFile))
        )
        assert not result.succeeded
        assert "certificate verify failed" in result.failureText()

    def test_platformTrustByDefault(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Without a CA bundle the platform's trust store is used: a test CA's
        server is refused, not waved through.
        """
        creator = ReloadingClientContextFactory("localhost")
        assert creator.credentials.trustedCAs is None
        result = handshake(ourServer(ca, tmp_path), creator)
        assert not result.succeeded
        assert "certificate verify failed" in result.failureText()

    def test_wholeBundleTrusted(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Every CA of a bundle is trusted, not only the first.
        """
        bundle = writeCA(trustme.CA(), tmp_path / "bundle.pem", trustme.CA(), ca)
        creator = ReloadingClientContextFactory("localhost", str(bundle))
        assert creator.credentials.trustedCAs == 3
        result = handshake(ourServer(ca, tmp_path), creator)
        assert result.succeeded, result.failureText()

    @pytest.mark.parametrize(
        ("hostname", "expected"), [("localhost", b"localhost"), ("127.0.0.1", None)]
    )
    def test_serverNameIndication(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
        hostname: str,
        expected: bytes | None,
    ) -> None:
        """
        The name is sent as SNI; an IP address is not (RFC 6066).
        """
        server = ourServer(ca, tmp_path)
        result = handshake(server, ReloadingClientContextFactory(hostname, str(caFile)))
        assert result.succeeded, result.failureText()
        assert result.serverNameSeenByServer == expected

    @pytest.mark.parametrize(
        ("offered", "negotiated"),
        [([b"http/1.1"], b"http/1.1"), ([b"x-other", b"h2"], b"h2"), (None, None)],
    )
    def test_acceptableProtocols(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
        offered: list[bytes] | None,
        negotiated: bytes | None,
    ) -> None:
        """
        The protocols given are offered over ALPN (and none when none are
        given), so the server can pick one of them.
        """
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), acceptableProtocols=offered
        )
        result = handshake(
            ourServer(ca, tmp_path), creator, serverProtocols=[b"h2", b"http/1.1"]
        )
        assert result.succeeded, result.failureText()
        assert result.negotiatedProtocol == negotiated


class TestClientCertificate:
    """
    The client certificate is presented to servers that ask for one.
    """

    def test_presented(self, tmp_path: Path, ca: trustme.CA, caFile: Path) -> None:
        """
        A server requiring client certificates sees ours, with its serial.
        """
        serial = writeClient(ca, tmp_path / "client.pem")
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), str(tmp_path / "client.pem")
        )
        result = handshake(ourServer(ca, tmp_path, clientCA=ca), creator)
        assert result.succeeded, result.failureText()
        assert result.clientCertificateSeenByServer is not None
        assert result.clientCertificateSeenByServer.serial_number == serial
        assert creator.credentials.clientCertificate is not None
        assert creator.credentials.clientCertificate.serialNumber == serial

    def test_separateKeyFile(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        The key may live in its own file.
        """
        cert, key, serial = writeLeaf(ca, tmp_path, name="client")
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), str(cert), str(key)
        )
        result = handshake(ourServer(ca, tmp_path, clientCA=ca), creator)
        assert result.succeeded, result.failureText()
        assert result.clientCertificateSeenByServer is not None
        assert result.clientCertificateSeenByServer.serial_number == serial

    def test_chainIsSent(self, tmp_path: Path, ca: trustme.CA, caFile: Path) -> None:
        """
        A client certificate issued by an intermediate CA is sent with the
        intermediate, so a server trusting only the root accepts it.
        """
        intermediate = ca.create_child_ca()
        leaf = intermediate.issue_cert("client.example")
        (tmp_path / "client.pem").write_bytes(
            leaf.private_key_and_cert_chain_pem.bytes()
        )
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), str(tmp_path / "client.pem")
        )
        result = handshake(ourServer(ca, tmp_path, clientCA=ca), creator)
        assert result.succeeded, result.failureText()

    def test_encryptedKeyWithPassphraseFile(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        An encrypted client key is decrypted with the passphrase file.
        """
        cert, key, serial = writeLeaf(ca, tmp_path, name="client")
        privateKey = serialization.load_pem_private_key(key.read_bytes(), None)
        key.write_bytes(
            privateKey.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"sesame"),
            )
        )
        (tmp_path / "pass").write_bytes(b"sesame\n")
        creator = ReloadingClientContextFactory(
            "localhost",
            str(caFile),
            str(cert),
            str(key),
            passphraseFile=str(tmp_path / "pass"),
        )
        result = handshake(ourServer(ca, tmp_path, clientCA=ca), creator)
        assert result.succeeded, result.failureText()
        assert result.clientCertificateSeenByServer is not None
        assert result.clientCertificateSeenByServer.serial_number == serial

    def test_missingRefusedClearly(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        Without a client certificate, a server that requires one refuses the
        connection, and the error says a certificate was required.
        """
        creator = ReloadingClientContextFactory("localhost", str(caFile))
        result = handshake(ourServer(ca, tmp_path, clientCA=ca), creator)
        assert not result.succeeded
        assert "certificate required" in result.failureText()

    def test_weakKeyRefusedAtLoad(self, tmp_path: Path, caFile: Path) -> None:
        """
        A client certificate OpenSSL will not use (a 1024-bit RSA key) is
        refused when loaded, naming the file, rather than failing every
        connection later.
        """
        key = rsa.generate_private_key(65537, 1024)  # noqa: S505 (the point)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        path = tmp_path / "weak.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        with pytest.raises(CredentialError) as raised:
            ReloadingClientContextFactory("localhost", str(caFile), str(path))
        assert raised.value.path == str(path)
        assert "1024 bits is too small" in raised.value.reason

    def test_keyOpenSSLRefusesRefusedAtLoad(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        A client certificate every check accepts but OpenSSL will not put
        in a context (an RSA-PSS key) is refused when loaded, naming the
        certificate file and OpenSSL's reason.
        """
        certPath, keyPath, _ = writeRSAPSSLeaf(ca, tmp_path, name="client")
        with pytest.raises(CredentialError) as raised:
            ReloadingClientContextFactory(
                "localhost", str(caFile), str(certPath), str(keyPath)
            )
        assert raised.value.path == str(certPath)
        assert raised.value.reason.startswith("OpenSSL refused it: ")
        assert "no certificate assigned" in raised.value.reason


class TestOptions:
    """
    Contradictory or malformed arguments are refused up front.
    """

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"clientKeyFile": "k.pem"}, "needs clientCertificateFile"),
            ({"passphrase": b"x"}, "needs clientCertificateFile"),
            (
                {
                    "clientCertificateFile": "c.pem",
                    "passphrase": b"x",
                    "passphraseFile": "p",
                },
                "not both",
            ),
        ],
    )
    def test_contradictions(self, kwargs: dict[str, Any], message: str) -> None:
        """
        Options that make no sense together raise L{ValueError} saying why.
        """
        with pytest.raises(ValueError, match=message):
            ReloadingClientCredentials(**kwargs)

    @pytest.mark.parametrize("hostname", ["", "a b", "-bad.example", "*.example.com"])
    def test_badHostname(self, caFile: Path, hostname: str) -> None:
        """
        A host name that is neither a DNS name nor an IP address is refused.
        """
        with pytest.raises(ValueError, match=r"hostname|DNS name"):
            ReloadingClientContextFactory(hostname, str(caFile))

    def test_bytesHostname(self, caFile: Path) -> None:
        """
        A host name must be text.
        """
        with pytest.raises(TypeError, match="text"):
            ReloadingClientContextFactory(b"localhost", str(caFile))  # type: ignore[arg-type]

    def test_credentialsOrFiles(self, caFile: Path) -> None:
        """
        Shared credentials and file names cannot both be given.
        """
        credentials = ReloadingClientCredentials(str(caFile))
        with pytest.raises(ValueError, match="not both"):
            ReloadingClientContextFactory(
                "localhost", str(caFile), credentials=credentials
            )
        with pytest.raises(ValueError, match="not both"):
            ReloadingPolicyForHTTPS(str(caFile), credentials=credentials)

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (None, "file not found"),
            (b"", "file is empty"),
            (b"not pem at all", "no PEM data"),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a valid certificate",
            ),
        ],
    )
    def test_firstLoadRaises(
        self, tmp_path: Path, content: bytes | None, reason: str
    ) -> None:
        """
        An unusable CA bundle at construction raises L{CredentialError}
        naming the file and the reason.
        """
        path = tmp_path / "ca.pem"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(CredentialError) as raised:
            ReloadingClientContextFactory("localhost", str(path))
        assert raised.value.path == str(path)
        assert reason in raised.value.reason


class TestReload:
    """
    Reloading picks up new files for new connections, and refuses bad ones.
    """

    def test_caRotationTrustsNewServer(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        A server from a new CA is refused until the bundle gains that CA and
        the client reloads; then it is trusted.
        """
        newCA = trustme.CA()
        server = ourServer(newCA, tmp_path)
        creator = ReloadingClientContextFactory("localhost", str(caFile))
        assert not handshake(server, creator).succeeded

        writeCA(ca, caFile, newCA)
        result = creator.reload()
        assert (result.succeeded, result.changed) == (True, True)
        assert result.trustedCAs == 2
        after = handshake(server, creator)
        assert after.succeeded, after.failureText()

    def test_caRemovalDistrustsOldServer(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        A CA removed from the bundle is no longer trusted after a reload.
        """
        server = ourServer(ca, tmp_path)
        creator = ReloadingClientContextFactory("localhost", str(caFile))
        assert handshake(server, creator).succeeded
        writeCA(trustme.CA(), caFile)
        assert creator.reload().changed
        assert not handshake(server, creator).succeeded

    def test_clientRotationSeenByServer(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        After the client certificate is replaced and reloaded, the server
        sees the new serial; a connection made before keeps working.
        """
        clientFile = tmp_path / "client.pem"
        oldSerial = writeClient(ca, clientFile)
        server = ourServer(ca, tmp_path, clientCA=ca)
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), str(clientFile)
        )
        before = handshake(server, creator)
        assert before.clientCertificateSeenByServer is not None
        assert before.clientCertificateSeenByServer.serial_number == oldSerial

        newSerial = writeClient(ca, clientFile)
        result = creator.reload()
        assert result.changed
        assert result.clientCertificate is not None
        assert result.clientCertificate.serialNumber == newSerial
        after = handshake(server, creator)
        assert after.clientCertificateSeenByServer is not None
        assert after.clientCertificateSeenByServer.serial_number == newSerial
        assert before.roundTrip(b"still open") == b"still open"

    def test_identicalContentRebuildsNothing(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        Rewriting the same bytes reports no change, logs nothing and tells
        no callback.
        """
        clientFile = tmp_path / "client.pem"
        writeClient(ca, clientFile)
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), str(clientFile)
        )
        told: list[ClientReloadResult] = []
        creator.credentials.addReloadCallbacks(told.append, told.append)
        replaceAtomically(caFile, caFile.read_bytes())
        replaceAtomically(clientFile, clientFile.read_bytes())
        with capturedLogs() as events:
            result = creator.reload()
        assert (result.succeeded, result.changed, result.error) == (True, False, None)
        assert (events, told) == ([], [])

    @pytest.mark.parametrize(
        "breakFiles",
        [
            pytest.param(lambda ca, c, k: c.write_bytes(b"garbage"), id="ca-garbage"),
            pytest.param(lambda ca, c, k: c.unlink(), id="ca-missing"),
            pytest.param(
                lambda ca, c, k: c.write_bytes(c.read_bytes()[:200]), id="ca-truncated"
            ),
            pytest.param(
                lambda ca, c, k: k.write_bytes(
                    ca.issue_cert("x.example").private_key_pem.bytes()
                ),
                id="key-mismatch",
            ),
            pytest.param(lambda ca, c, k: k.write_bytes(b""), id="key-empty"),
            pytest.param(
                lambda ca, c, k: writeWeakRSALeaf(ca, k.parent, name="client"),
                id="rsa-1024-openssl-refuses",
            ),
        ],
    )
    def test_failedReloadKeepsOld(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
        breakFiles: Callable[[trustme.CA, Path, Path], object],
    ) -> None:
        """
        A broken file is refused with its name and the reason, logged once
        without key material, and connections keep using the old files.
        """
        cert, key, serial = writeLeaf(ca, tmp_path, name="client")
        keyPem = key.read_bytes()
        server = ourServer(ca, tmp_path, clientCA=ca)
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), str(cert), str(key)
        )
        breakFiles(ca, caFile, key)

        with capturedLogs() as events:
            result = creator.reload()

        assert (result.succeeded, result.changed) == (False, False)
        assert result.error is not None
        assert result.error.path in (str(caFile), str(cert), str(key))
        assert result.error.path in str(result)
        assert str(result).startswith("reload failed: ")
        errors = [e for e in events if e["log_level"].name == "error"]
        assert len(errors) == 1
        text = formatEvent(errors[0])
        assert result.error.path in text and result.error.reason in text
        refused = [key] if key.is_file() else []
        assertNoKeyMaterial(everythingReported(result, events=events), keyPem, *refused)
        after = handshake(server, creator)
        assert after.succeeded, after.failureText()
        assert after.clientCertificateSeenByServer is not None
        assert after.clientCertificateSeenByServer.serial_number == serial

    def test_fixedAfterFailureIsPickedUp(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        After a refused reload, the next reload of good files installs them.
        """
        clientFile = tmp_path / "client.pem"
        writeClient(ca, clientFile)
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), str(clientFile)
        )
        clientFile.write_bytes(b"half written")
        assert not creator.reload().succeeded
        serial = writeClient(ca, clientFile)
        result = creator.reload()
        assert result.changed
        assert result.clientCertificate is not None
        assert result.clientCertificate.serialNumber == serial

    def test_expiredClientCertificateRefused(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        An expired new client certificate is refused while the current one is
        valid: servers would refuse it.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        cert, key, serial = writeLeaf(ca, tmp_path, name="client")
        credentials = ReloadingClientCredentials(str(caFile), str(cert), str(key))
        writeLeaf(
            ca, tmp_path, name="client", notAfter=now - datetime.timedelta(minutes=1)
        )
        result = credentials.reload()
        assert result.error is not None
        assert "expired on" in result.error.reason
        assert result.clientCertificate is not None
        assert result.clientCertificate.serialNumber == serial

    def test_resultText(self, tmp_path: Path, ca: trustme.CA, caFile: Path) -> None:
        """
        Results read as what happened and what is in use now.
        """
        clientFile = tmp_path / "client.pem"
        writeClient(ca, clientFile)
        credentials = ReloadingClientCredentials(str(caFile), str(clientFile))
        assert str(credentials.reload()).startswith("unchanged: still trusting 1 CA")
        writeClient(ca, clientFile)
        assert str(credentials.reload()).startswith("reloaded: now trusting 1 CA")
        platform = ClientReloadResult(True, False, None, None)
        assert str(platform) == "unchanged: still trusting the platform trust store"

    def test_callbacks(self, tmp_path: Path, ca: trustme.CA, caFile: Path) -> None:
        """
        Success callbacks hear of changes, failure callbacks of refusals, and
        neither of unchanged files; removed callbacks hear nothing.
        """
        credentials = ReloadingClientCredentials(str(caFile))
        successes: list[ClientReloadResult] = []
        failures: list[ClientReloadResult] = []
        remove = credentials.addReloadCallbacks(successes.append, failures.append)
        credentials.reload()
        writeCA(ca, caFile, trustme.CA())
        credentials.reload()
        caFile.write_bytes(b"")
        credentials.reload()
        remove()
        writeCA(ca, caFile)
        credentials.reload()
        assert [r.trustedCAs for r in successes] == [2]
        assert [r.succeeded for r in failures] == [False]

    def test_sharedCredentialsReloadEveryCreator(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        Creators for different names that share credentials all use the new
        client certificate after one reload.
        """
        clientFile = tmp_path / "client.pem"
        writeClient(ca, clientFile)
        credentials = ReloadingClientCredentials(str(caFile), str(clientFile))
        creators = [credentials.creatorFor(n) for n in ("localhost", "127.0.0.1")]
        server = ourServer(ca, tmp_path, clientCA=ca)
        serial = writeClient(ca, clientFile)
        assert credentials.reload().changed
        for creator in creators:
            result = handshake(server, creator)
            assert result.clientCertificateSeenByServer is not None
            assert result.clientCertificateSeenByServer.serial_number == serial

    def test_creatorsNotKeptAlive(self, caFile: Path) -> None:
        """
        Credentials do not keep creators nobody uses any more alive.
        """
        import gc

        credentials = ReloadingClientCredentials(str(caFile))
        creator = weakref.ref(credentials.creatorFor("localhost"))
        gc.collect()
        assert creator() is None


class TestSIGHUP:
    """
    A real SIGHUP reloads client credentials through the process-wide hook.
    """

    @pytest.mark.usefixtures("noProcessWideSIGHUP")
    def test_signalReloadsRegisteredCredentials(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
    ) -> None:
        """
        An untrusted server becomes trusted once the CA bundle is rotated and
        SIGHUP arrives, through the real handler of L{reloadOnSIGHUP}.
        """
        newCA = trustme.CA()
        server = ourServer(newCA, tmp_path)
        creator = ReloadingClientContextFactory("localhost", str(caFile))
        assert not handshake(server, creator).succeeded
        writeCA(ca, caFile, newCA)

        reactor = CallsFromThreads()
        reloader = reloadOnSIGHUP(reactor=reactor)
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            reactor.runUntil(lambda: reloader.reloads == 1)
        finally:
            reloader.uninstall()
        after = handshake(server, creator)
        assert after.succeeded, after.failureText()


class TestPolicyForHTTPS:
    """
    The agent policy hands out reloading creators per host name.
    """

    def test_verifiesHostFromURL(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        The creator for a host verifies that host: the named one succeeds,
        another is refused.
        """
        policy = ReloadingPolicyForHTTPS(str(caFile))
        server = ourServer(ca, tmp_path, identities=("localhost",))
        good = handshake(server, policy.creatorForNetloc(b"localhost", 443))
        assert good.succeeded, good.failureText()
        bad = handshake(server, policy.creatorForNetloc(b"127.0.0.1", 443))
        assert "is not valid for 127.0.0.1" in bad.failureText()
        assert bad.roundTrip(b"ping") == b""

    def test_cachedPerHost(self, caFile: Path) -> None:
        """
        One creator per host, whatever the port; different hosts get
        different creators; the least recently used is dropped beyond the
        cache size.
        """
        policy = ReloadingPolicyForHTTPS(str(caFile), cacheSize=2)
        a = policy.creatorForNetloc(b"a.example", 443)
        assert policy.creatorForNetloc(b"a.example", 8443) is a
        b = policy.creatorForNetloc(b"b.example", 443)
        assert b is not a
        policy.creatorForNetloc(b"a.example", 443)
        policy.creatorForNetloc(b"c.example", 443)
        assert policy.creatorForNetloc(b"a.example", 443) is a
        assert policy.creatorForNetloc(b"b.example", 443) is not b

    def test_oneReloadMovesEveryHost(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """
        One reload of the policy gives every cached host the new client
        certificate, and the files are read once for all of them.
        """
        clientFile = tmp_path / "client.pem"
        writeClient(ca, clientFile)
        policy = ReloadingPolicyForHTTPS(str(caFile), str(clientFile))
        hosts = [b"localhost", b"127.0.0.1", b"::1"]
        creators = [policy.creatorForNetloc(h, 443) for h in hosts]
        server = ourServer(ca, tmp_path, clientCA=ca)
        serial = writeClient(ca, clientFile)
        reads = _countReads(monkeypatch, policy.reload)
        assert reads == 1
        for creator in creators:
            seen = handshake(server, creator).clientCertificateSeenByServer
            assert seen is not None and seen.serial_number == serial
        assert policy.watchedPaths() == [str(caFile), str(clientFile)]


def _countReads(monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]) -> int:
    """
    Run C{action} and count how often it opened the client file.
    """
    import os

    real = os.open
    opened: list[str] = []

    def counting(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real(file, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", counting)
        action()
    return sum(1 for name in opened if name.endswith("client.pem"))


# --- over loopback, against three servers ------------------------------------


def clientEndpoint(
    reactor: Any, port: int, creator: ReloadingClientContextFactory
) -> Any:
    """
    Our client over TCP to 127.0.0.1:C{port}; the creator decides which name
    is verified.
    """
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

    return wrapClientTLS(creator, HostnameEndpoint(reactor, "127.0.0.1", port), reactor)


@pytest.mark.parametrize("kind", PEERS)
class TestAgainstServers:
    """
    The same behaviour over loopback, against our server, CPython's and
    OpenSSL's.
    """

    @pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
    def test_rightNameAndCA(
        self,
        startPeer: Callable[..., Peer],
        ca: trustme.CA,
        caFile: Path,
        kind: str,
        hostname: str,
    ) -> None:
        """
        The trusted server is accepted by name and by IP address.
        """
        peer = startPeer(kind, ca)
        creator = ReloadingClientContextFactory(hostname, str(caFile))

        def scenario(reactor: Any) -> Generator[Any, Any, Outcome]:
            port = yield peer.listen(reactor)
            outcome: Outcome = yield connectOnce(clientEndpoint(reactor, port, creator))
            return outcome

        outcome = runInReactor(scenario)
        assert outcome.succeeded, outcome.error
        assert b"ertificate" in outcome.response

    @pytest.mark.parametrize(
        ("hostname", "identities"),
        [("localhost", ("other.example",)), ("127.0.0.1", ("localhost",))],
    )
    def test_otherNameRefused(
        self,
        startPeer: Callable[..., Peer],
        ca: trustme.CA,
        caFile: Path,
        kind: str,
        hostname: str,
        identities: tuple[str, ...],
    ) -> None:
        """
        A trusted certificate for another name, or with only DNS names when
        an IP address is asked for, is refused and the error says so.
        """
        peer = startPeer(kind, ca, identities=identities)
        creator = ReloadingClientContextFactory(hostname, str(caFile))

        def scenario(reactor: Any) -> Generator[Any, Any, Outcome]:
            port = yield peer.listen(reactor)
            outcome: Outcome = yield connectOnce(clientEndpoint(reactor, port, creator))
            return outcome

        outcome = runInReactor(scenario)
        assert not outcome.succeeded
        assert f"is not valid for {hostname}: its names are" in outcome.error
        assert outcome.response == b""

    def test_clientRotationSeenByServer(
        self,
        startPeer: Callable[..., Peer],
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
        kind: str,
    ) -> None:
        """
        The server sees the client certificate's serial, and the new one
        after the file is replaced and reloaded.
        """
        peer = startPeer(kind, ca, clientCA=ca)
        clientFile = tmp_path / "client.pem"
        oldSerial = writeClient(ca, clientFile)
        creator = ReloadingClientContextFactory(
            "localhost", str(caFile), str(clientFile)
        )

        def scenario(reactor: Any) -> Generator[Any, Any, tuple[Outcome, Outcome, int]]:
            port = yield peer.listen(reactor)
            before = yield connectOnce(clientEndpoint(reactor, port, creator))
            newSerial = writeClient(ca, clientFile)
            creator.reload()
            after = yield connectOnce(clientEndpoint(reactor, port, creator))
            return before, after, newSerial

        before, after, newSerial = runInReactor(scenario)
        assert before.succeeded, before.error
        assert before.clientSerialSeenByServer == oldSerial
        assert after.succeeded, after.error
        assert after.clientSerialSeenByServer == newSerial

    def test_missingClientCertificateRefused(
        self, startPeer: Callable[..., Peer], ca: trustme.CA, caFile: Path, kind: str
    ) -> None:
        """
        Without a client certificate, a server that requires one refuses us,
        and the error says a certificate was required.
        """
        peer = startPeer(kind, ca, clientCA=ca)
        creator = ReloadingClientContextFactory("localhost", str(caFile))

        def scenario(reactor: Any) -> Generator[Any, Any, Outcome]:
            port = yield peer.listen(reactor)
            outcome: Outcome = yield connectOnce(clientEndpoint(reactor, port, creator))
            return outcome

        outcome = runInReactor(scenario)
        assert not outcome.succeeded
        assert "certificate required" in outcome.error
        assert outcome.clientSerialSeenByServer is None

    @pytest.mark.usefixtures("noProcessWideSIGHUP")
    def test_untrustedTrustedAfterSIGHUP(
        self,
        startPeer: Callable[..., Peer],
        ca: trustme.CA,
        caFile: Path,
        kind: str,
    ) -> None:
        """
        A server from a new CA is refused; once the bundle gains that CA and
        a real SIGHUP reaches the process, the reactor reloads and the next
        connection succeeds.
        """
        newCA = trustme.CA()
        peer = startPeer(kind, newCA)
        creator = ReloadingClientContextFactory("localhost", str(caFile))

        def scenario(reactor: Any) -> Generator[Any, Any, tuple[Outcome, Outcome]]:
            port = yield peer.listen(reactor)
            before = yield connectOnce(clientEndpoint(reactor, port, creator))
            writeCA(ca, caFile, newCA)
            reloaded: Deferred[ClientReloadResult] = Deferred()
            creator.credentials.addReloadCallbacks(onSuccess=reloaded.callback)
            reloader = reloadOnSIGHUP(reactor=reactor)
            try:
                os.kill(os.getpid(), signal.SIGHUP)
                yield reloaded
            finally:
                reloader.uninstall()
            after = yield connectOnce(clientEndpoint(reactor, port, creator))
            return before, after

        before, after = runInReactor(scenario)
        assert not before.succeeded
        assert "certificate verify failed" in before.error
        assert after.succeeded, after.error


# --- HTTP agent, in a subprocess --------------------------------------------


def agentMain(argv: list[str]) -> None:
    """
    The subprocess side of L{TestAgent}: serve HTTPS with client
    authentication, then GET with an agent using L{ReloadingPolicyForHTTPS},
    rotate the client certificate, send ourselves SIGHUP and GET again.
    Prints what happened as JSON.

    @param argv: CA file, server certificate, server key, client file, and
        the file holding the next client certificate.
    """
    from twisted.internet.task import react
    from twisted.web.client import Agent, ResponseNeverReceived, readBody
    from twisted.web.resource import Resource
    from twisted.web.server import Request, Site

    caFile, serverCert, serverKey, clientFile, nextClientFile = argv

    class ClientSerial(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            peer = request.channel.transport.getPeerCertificate()  # type: ignore[union-attr]
            return str(peer.to_cryptography().serial_number).encode()

    @inlineCallbacks
    def main(reactor: Any) -> Generator[Any, Any, None]:
        server = ReloadingContextFactory(serverCert, serverKey, clientCAFile=caFile)
        port = reactor.listenSSL(0, Site(ClientSerial()), server, interface="127.0.0.1")
        number = port.getHost().port
        policy = ReloadingPolicyForHTTPS(caFile, clientFile)
        reloadOnSIGHUP()
        agent = Agent(reactor, contextFactory=policy)
        url = f"https://localhost:{number}/".encode()

        first = yield readBody((yield agent.request(b"GET", url)))
        try:
            yield agent.request(b"GET", f"https://127.0.0.1:{number}/".encode())
            wrongName = "accepted"
        except ResponseNeverReceived as e:
            wrongName = str(e.reasons[0].value)

        reloaded: Deferred[object] = Deferred()
        policy.credentials.addReloadCallbacks(onSuccess=reloaded.callback)
        replaceAtomically(Path(clientFile), Path(nextClientFile).read_bytes())
        os.kill(os.getpid(), signal.SIGHUP)
        yield reloaded
        second = yield readBody((yield agent.request(b"GET", url)))
        print(
            json.dumps(
                {
                    "first": int(first),
                    "second": int(second),
                    "wrongName": wrongName,
                }
            )
        )
        yield port.stopListening()

    react(main)


class TestAgent:
    """
    L{twisted.web.client.Agent} with the policy, against a real HTTPS server.
    """

    def test_mutualTLSRotationOverHTTPS(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        An agent's HTTPS GETs present the client certificate, verify the
        server's name, and use the new client certificate after SIGHUP.
        """
        caFile = writeCA(ca, tmp_path / "ca.pem")
        serverCert, serverKey, _ = writeLeaf(ca, tmp_path, identities=("localhost",))
        clientFile = tmp_path / "client.pem"
        nextFile = tmp_path / "next.pem"
        firstSerial = writeClient(ca, clientFile)
        secondSerial = writeClient(ca, nextFile)
        args = [str(p) for p in (caFile, serverCert, serverKey, clientFile, nextFile)]
        try:
            completed = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from tests.test_client import agentMain;"
                    " agentMain(sys.argv[1:])",
                    *args,
                ],
                cwd=ROOT,
                capture_output=True,
                timeout=20,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"agent script hung: {e.stderr!r}") from None
        assert completed.returncode == 0, completed.stderr.decode()
        report = json.loads(completed.stdout.decode().strip().splitlines()[-1])
        assert report["first"] == firstSerial
        assert report["second"] == secondSerial
        assert "is not valid for 127.0.0.1" in report["wrongName"]


class TestDocumentation:
    """
    The client page's complete program works as the page says.
    """

    @staticmethod
    def _program() -> str:
        lines = (ROOT / "docs" / "client.rst").read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if "A complete program" in line)
        while not lines[start].endswith("::"):
            start += 1
        block: list[str] = []
        for line in lines[start + 1 :]:
            if line and not line.startswith("    "):
                break
            block.append(line[4:])
        return "\n".join(block).strip() + "\n"

    def test_agentExampleRuns(
        self, startPeer: Callable[..., Peer], tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        The HTTP example GETs from a server requiring a client certificate,
        presenting the one it was given.
        """
        peer = startPeer("python", ca, clientCA=ca)
        assert isinstance(peer, PythonPeer)
        caFile = writeCA(ca, tmp_path / "ca.pem")
        serial = writeClient(ca, tmp_path / "client.pem")
        program = tmp_path / "client_get.py"
        program.write_text(self._program())
        completed = subprocess.run(
            [
                sys.executable,
                str(program),
                f"https://localhost:{peer.port}/",
                str(caFile),
                str(tmp_path / "client.pem"),
            ],
            capture_output=True,
            timeout=20,
        )
        assert completed.returncode == 0, completed.stderr.decode()
        assert completed.stdout.startswith(b"200 ")
        assert clientSerialIn(completed.stdout) == serial


class TestReloadReporting:
    """
    What client credentials say about their reloads.
    """

    def test_recoveryAndQuietRepeats(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        The last result is kept; a refusal repeated by a watcher's retry is
        logged once; putting the files back is logged as a recovery and told
        to success callbacks.
        """
        clientFile = tmp_path / "client.pem"
        writeClient(ca, clientFile)
        credentials = ReloadingClientCredentials(str(caFile), str(clientFile))
        successes: list[ClientReloadResult] = []
        credentials.addReloadCallbacks(onSuccess=successes.append)
        good = clientFile.read_bytes()
        with capturedLogs() as events:
            clientFile.write_bytes(b"half written")
            first = credentials.reload(quietIfRepeated=True)
            credentials.reload(quietIfRepeated=True)
            clientFile.write_bytes(good)
            recovered = credentials.reload()
        assert not first.succeeded
        assert credentials.lastResult is recovered
        said = [(e["log_level"].name, formatEvent(e)) for e in events]
        assert [level for level, _ in said] == ["error", "info"]
        assert "usable again" in said[1][1]
        assert [(r.succeeded, r.changed) for r in successes] == [(True, False)]

    def test_expiredOverExpiredWarns(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        When the client certificate in use has expired, a later-expiring one
        that has expired too is used anyway, with a warning naming it.
        """
        clock = [datetime.datetime.now(datetime.timezone.utc)]
        cert, key, _ = writeLeaf(
            ca, tmp_path, name="client", notAfter=clock[0] + datetime.timedelta(days=1)
        )
        credentials = ReloadingClientCredentials(
            str(caFile), str(cert), str(key), now=lambda: clock[0]
        )
        clock[0] += datetime.timedelta(days=3)
        _, _, serial = writeLeaf(
            ca, tmp_path, name="client", notAfter=clock[0] - datetime.timedelta(days=1)
        )
        with capturedLogs() as events:
            result = credentials.reload()
        assert result.changed
        assert result.clientCertificate is not None
        assert result.clientCertificate.serialNumber == serial
        [warning] = [formatEvent(e) for e in events if e["log_level"].name == "warn"]
        assert str(cert) in warning and "expired" in warning


class TestPolicyArguments:
    """
    The agent policy checks its arguments.
    """

    @pytest.mark.parametrize("cacheSize", [0, -1])
    def test_cacheSizeAtLeastOne(self, caFile: Path, cacheSize: int) -> None:
        """
        A cache of fewer than one creator is refused, saying so.
        """
        with pytest.raises(ValueError, match="cacheSize must be at least 1"):
            ReloadingPolicyForHTTPS(str(caFile), cacheSize=cacheSize)
