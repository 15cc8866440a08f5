"""
Tests for L{txtlsreload.ReloadingContextFactory}: rotation, hitless swaps,
client authentication, ALPN, protocol versions, results, callbacks and logs.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import LogEvent, capturedLogs, formatEvent
from zope.interface.verify import verifyObject

from txtlsreload import (
    CredentialError,
    IReloadable,
    ReloadingContextFactory,
    ReloadResult,
)

from .tlshelpers import (
    assertNoKeyMaterial,
    clientOptions,
    everythingReported,
    handshake,
    replaceAtomically,
    servedSerial,
    startThenHandshake,
    writeLeaf,
    writeRSAPSSLeaf,
    writeWeakRSALeaf,
)


@pytest.fixture
def served(tmp_path: Path, ca: trustme.CA) -> tuple[ReloadingContextFactory, int]:
    """
    A factory serving a fresh certificate, and that certificate's serial.
    """
    certPath, keyPath, serial = writeLeaf(ca, tmp_path)
    return ReloadingContextFactory(str(certPath), str(keyPath)), serial


class TestInterfaces:
    """
    The factory is what Twisted's TLS APIs ask for.
    """

    def test_providesInterfaces(
        self, served: tuple[ReloadingContextFactory, int]
    ) -> None:
        """
        It provides the connection-creator, context-factory and reloadable
        interfaces, checked by zope.interface.
        """
        factory, _ = served
        assert verifyObject(IOpenSSLServerConnectionCreator, factory)
        assert verifyObject(IOpenSSLContextFactory, factory)
        assert verifyObject(IReloadable, factory)


class TestRotation:
    """
    A reload is seen by every later handshake and by no earlier one.
    """

    @pytest.mark.parametrize("sni", [True, False], ids=["sni", "no-sni"])
    def test_newHandshakesSeeRotation(
        self, tmp_path: Path, ca: trustme.CA, sni: bool
    ) -> None:
        """
        After a reload, new handshakes get the new certificate, whether or
        not the client sends SNI.
        """
        certPath, keyPath, oldSerial = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        client = clientOptions(ca, hostname="localhost" if sni else None)
        before = handshake(factory, client)
        assert before.serverCertificate is not None
        assert before.serverCertificate.serial_number == oldSerial

        _, _, newSerial = writeLeaf(ca, tmp_path)
        result = factory.reload()

        assert result.succeeded and result.changed
        after = handshake(factory, client)
        assert after.succeeded, after.failureText()
        assert after.serverCertificate is not None
        assert after.serverCertificate.serial_number == newSerial

    def test_openConnectionKeepsWorking(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A connection established before a rotation keeps exchanging data
        after it, on its old certificate.
        """
        certPath, keyPath, oldSerial = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        established = handshake(factory, clientOptions(ca))
        assert established.roundTrip(b"before") == b"before"

        writeLeaf(ca, tmp_path)
        assert factory.reload().changed

        assert established.roundTrip(b"after") == b"after"
        assert established.serverCertificate is not None
        assert established.serverCertificate.serial_number == oldSerial
        assert established.succeeded

    def test_acceptedBeforeHandshakingAfter(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A connection accepted before a reload but handshaking after it gets
        the new certificate.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        accepted, finish = startThenHandshake(factory, clientOptions(ca))
        assert accepted.serverCertificate is None

        _, _, newSerial = writeLeaf(ca, tmp_path)
        factory.reload()
        result = finish()

        assert result.succeeded, result.failureText()
        assert result.serverCertificate is not None
        assert result.serverCertificate.serial_number == newSerial

    def test_atomicReplaceIsSeen(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Files replaced by renaming a new file over them are read anew.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        other = tmp_path / "other"
        other.mkdir()
        newCert, newKey, newSerial = writeLeaf(ca, other)
        replaceAtomically(certPath, newCert.read_bytes())
        replaceAtomically(keyPath, newKey.read_bytes())

        assert factory.reload().certificate.serialNumber == newSerial
        assert servedSerial(factory, clientOptions(ca)) == newSerial

    def test_keyTypeCanChange(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A rotation from an ECDSA to an RSA certificate is served.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        _, _, newSerial = writeLeaf(ca, tmp_path, keyType=trustme.KeyType.RSA)
        factory.reload()
        result = handshake(factory, clientOptions(ca))
        assert result.serverCertificate is not None
        assert result.serverCertificate.serial_number == newSerial


class TestConstructorArguments:
    """
    Arguments are checked and made robust at construction.
    """

    def test_relativePathsSurviveChdir(
        self, tmp_path: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        Relative file names are made absolute, so a reload after the program
        changed directory (as a daemonizing twistd does) reads the same files.
        """
        monkeypatch.chdir(tmp_path)
        _, _, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory("server.crt", "server.key")
        _, _, newSerial = writeLeaf(ca, tmp_path)
        monkeypatch.chdir("/")

        result = factory.reload()

        assert result.certificate.serialNumber == newSerial, result
        assert servedSerial(factory, clientOptions(ca)) == newSerial
        assert factory.files.certificateFile == str(tmp_path / "server.crt")

    def test_bytesFileNameRefused(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A file name given as bytes is refused with a message saying it must
        be text.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        with pytest.raises(TypeError, match="file names must be str, not bytes"):
            ReloadingContextFactory(bytes(certPath), str(keyPath))  # type: ignore[arg-type]

    def test_textPassphraseRefused(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A passphrase given as text is refused with a message saying it must
        be bytes.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        with pytest.raises(TypeError, match="passphrase must be bytes"):
            ReloadingContextFactory(
                str(certPath),
                str(keyPath),
                passphrase="secret",  # type: ignore[arg-type]
            )


class TestReloadResult:
    """
    A reload reports exactly what happened.
    """

    def test_successDescribesNewCertificate(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A successful reload reports the new certificate's subject, names,
        serial, fingerprint and expiry.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        notAfter = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        _, _, serial = writeLeaf(
            ca,
            tmp_path,
            identities=("example.com", "10.0.0.1"),
            commonName="example.com",
            notAfter=notAfter,
        )

        result = factory.reload()

        info = result.certificate
        assert result.succeeded and result.changed and result.error is None
        assert info.serialNumber == serial
        assert info.subject.startswith("CN=example.com")
        assert info.subjectAltNames == ("DNS:example.com", "IP:10.0.0.1")
        assert info.notAfter == notAfter
        assert len(info.fingerprintSHA256.split(":")) == 32
        assert factory.certificate == info
        assert factory.lastResult is result
        assert "reloaded" in str(result) and info.serialHex in str(result)

    def test_identicalContentIsUnchanged(
        self, served: tuple[ReloadingContextFactory, int]
    ) -> None:
        """
        Reloading identical files installs nothing, says so in the result
        and logs nothing, at any level.
        """
        factory, serial = served
        told: list[ReloadResult] = []
        factory.addReloadCallbacks(told.append, told.append)
        with capturedLogs() as events:
            result = factory.reload()

        assert events == []
        assert told == []
        assert result.succeeded and not result.changed
        assert str(result).startswith("unchanged")

    def test_rewriteOfSameBytesIsUnchanged(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        Rewriting the same bytes (new inode, new mtime) is not a change.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        replaceAtomically(certPath, certPath.read_bytes())
        assert not factory.reload().changed

    def test_failureNeverSaysReloaded(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A refused reload's text says it failed and what is still served.
        """
        certPath, keyPath, serial = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        certPath.write_bytes(b"junk")

        text = str(factory.reload())

        assert text.startswith("reload failed: ")
        assert str(certPath) in text
        assert f"still serving serial {factory.certificate.serialHex}" in text


class TestExpiry:
    """
    Expired certificates are refused unless nothing better is being served.
    """

    def _factoryAt(
        self, tmp_path: Path, ca: trustme.CA, clock: list[datetime.datetime]
    ) -> ReloadingContextFactory:
        certPath, keyPath, _ = writeLeaf(
            ca,
            tmp_path,
            notAfter=datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(days=1),
        )
        return ReloadingContextFactory(
            str(certPath), str(keyPath), now=lambda: clock[0]
        )

    def test_expiredRefusedWhileCurrentValid(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        An expired new certificate is refused, with the reason, while the
        served one is still valid.
        """
        clock = [datetime.datetime.now(datetime.timezone.utc)]
        factory = self._factoryAt(tmp_path, ca, clock)
        writeLeaf(
            ca,
            tmp_path,
            notAfter=clock[0] - datetime.timedelta(minutes=1),
        )
        served = factory.certificate.serialNumber
        result = factory.reload()
        assert result.error is not None
        assert "expired on" in result.error.reason
        assert servedSerial(factory, clientOptions(ca)) == served

    def test_notYetValidRefused(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A certificate whose validity starts in the future is refused while
        the served one is valid, and the served one stays.
        """
        clock = [datetime.datetime.now(datetime.timezone.utc)]
        factory = self._factoryAt(tmp_path, ca, clock)
        serial = factory.certificate.serialNumber
        leaf = ca.issue_cert(
            "localhost", not_before=clock[0] + datetime.timedelta(hours=2)
        )
        (tmp_path / "server.crt").write_bytes(leaf.cert_chain_pems[0].bytes())
        (tmp_path / "server.key").write_bytes(leaf.private_key_pem.bytes())

        result = factory.reload()

        assert result.error is not None
        assert "not valid until" in result.error.reason
        assert servedSerial(factory, clientOptions(ca)) == serial

    def test_expiredAcceptedOverWorseExpired(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        When the served certificate has expired too, a later-expiring one
        replaces it rather than leaving the older one in place.
        """
        clock = [datetime.datetime.now(datetime.timezone.utc)]
        factory = self._factoryAt(tmp_path, ca, clock)
        clock[0] += datetime.timedelta(days=3)
        _, _, serial = writeLeaf(
            ca, tmp_path, notAfter=clock[0] - datetime.timedelta(days=1)
        )
        result = factory.reload()
        assert result.changed
        assert result.certificate.serialNumber == serial
        # The client checks the chain with the real clock, not the factory's.
        assert servedSerial(factory, clientOptions(ca, hostname=None)) == serial


def _clientAuthFactory(
    tmp_path: Path, ca: trustme.CA, caPems: list[bytes], clientAuth: str | None
) -> tuple[ReloadingContextFactory, Path]:
    certPath, keyPath, _ = writeLeaf(ca, tmp_path)
    bundle = tmp_path / "clients.pem"
    bundle.write_bytes(b"".join(caPems))
    factory = ReloadingContextFactory(
        str(certPath),
        str(keyPath),
        clientCAFile=str(bundle),
        clientAuth=clientAuth,  # type: ignore[arg-type]
    )
    return factory, bundle


class TestClientAuthentication:
    """
    Client certificates are checked against every CA of the bundle, and the
    bundle rotates like the certificate.
    """

    def test_everyCAsClientsAccepted(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Clients of each of three bundled CAs are accepted and seen by the
        server; a client of another CA and a client without a certificate
        are refused.
        """
        clientCAs = [trustme.CA() for _ in range(3)]
        factory, _ = _clientAuthFactory(
            tmp_path, ca, [c.cert_pem.bytes() for c in clientCAs], None
        )
        for clientCA in clientCAs:
            clientCert = clientCA.issue_cert("client@example.com")
            result = handshake(factory, clientOptions(ca, clientCert=clientCert))
            assert result.succeeded, result.failureText()
            assert result.roundTrip(b"ping") == b"ping"
            seen = result.clientCertificateSeenByServer
            assert seen is not None
            assert seen.public_bytes(Encoding.PEM) == (
                clientCert.cert_chain_pems[0].bytes()
            )

        stranger = trustme.CA().issue_cert("client@example.com")
        refused = handshake(factory, clientOptions(ca, clientCert=stranger))
        assert refused.roundTrip(b"ping") == b""
        anonymous = handshake(factory, clientOptions(ca))
        assert anonymous.roundTrip(b"ping") == b""

    def test_optionalServesAnonymousRefusesUntrusted(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        With optional client auth a client without a certificate is served,
        and one with an untrusted certificate is refused.
        """
        clientCA = trustme.CA()
        factory, _ = _clientAuthFactory(
            tmp_path, ca, [clientCA.cert_pem.bytes()], "optional"
        )
        anonymous = handshake(factory, clientOptions(ca))
        assert anonymous.roundTrip(b"ping") == b"ping"
        assert anonymous.clientCertificateSeenByServer is None

        trusted = handshake(
            factory, clientOptions(ca, clientCert=clientCA.issue_cert("c@x"))
        )
        assert trusted.roundTrip(b"ping") == b"ping"
        assert trusted.clientCertificateSeenByServer is not None

        untrusted = handshake(
            factory, clientOptions(ca, clientCert=trustme.CA().issue_cert("c@x"))
        )
        assert untrusted.roundTrip(b"ping") == b""

    def test_clientCARotation(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        After the bundle is rotated to a new CA, the old CA's clients are
        refused and the new CA's accepted.
        """
        oldCA, newCA = trustme.CA(), trustme.CA()
        factory, bundle = _clientAuthFactory(
            tmp_path, ca, [oldCA.cert_pem.bytes()], "required"
        )
        oldClient = oldCA.issue_cert("c@x")
        newClient = newCA.issue_cert("c@x")
        assert (
            handshake(factory, clientOptions(ca, clientCert=oldClient)).roundTrip(b"1")
            == b"1"
        )

        replaceAtomically(bundle, newCA.cert_pem.bytes())
        assert factory.reload().changed

        assert (
            handshake(factory, clientOptions(ca, clientCert=oldClient)).roundTrip(b"2")
            == b""
        )
        assert (
            handshake(factory, clientOptions(ca, clientCert=newClient)).roundTrip(b"3")
            == b"3"
        )

    @pytest.mark.parametrize(
        "before, after, anonymousServed",
        [("optional", "required", False), ("required", "optional", True)],
    )
    def test_changeAppliesToAcceptedConnections(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        before: str,
        after: str,
        anonymousServed: bool,
    ) -> None:
        """
        A client-auth change made by a reload applies to a connection
        accepted before it and handshaking after it: the verify mode is set
        on each connection at its handshake, since switching contexts does
        not carry it over.
        """
        clientCA = trustme.CA()
        factory, bundle = _clientAuthFactory(
            tmp_path, ca, [clientCA.cert_pem.bytes()], before
        )
        _, finish = startThenHandshake(factory, clientOptions(ca))

        result = factory.changeClientAuthentication(str(bundle), after)  # type: ignore[arg-type]

        assert result.succeeded and result.changed
        assert factory.clientAuth == after
        served = finish().roundTrip(b"x") == b"x"
        assert served is anonymousServed

    def test_turnClientAuthOnAndOff(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Client authentication can be started on a factory that had none and
        stopped again, each time for new handshakes only.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        clientCA = trustme.CA()
        bundle = tmp_path / "clients.pem"
        bundle.write_bytes(clientCA.cert_pem.bytes())
        open_ = handshake(factory, clientOptions(ca))

        assert factory.changeClientAuthentication(str(bundle)).changed
        assert factory.clientAuth == "required"
        assert handshake(factory, clientOptions(ca)).roundTrip(b"x") == b""
        withCertificate = clientOptions(ca, clientCert=clientCA.issue_cert("c@x"))
        assert handshake(factory, withCertificate).roundTrip(b"x") == b"x"
        assert open_.roundTrip(b"still") == b"still"

        assert factory.changeClientAuthentication(None).changed
        assert factory.clientAuth is None
        assert handshake(factory, clientOptions(ca)).roundTrip(b"x") == b"x"

    def test_badChangeKeepsSettings(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A change to an unusable CA bundle is refused with its reason and the
        settings in force stay as they were.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        missing = tmp_path / "missing.pem"

        result = factory.changeClientAuthentication(str(missing), "optional")

        assert result.error is not None and result.error.path == str(missing)
        assert factory.clientAuth is None
        assert factory.files.clientCAFile is None
        assert handshake(factory, clientOptions(ca)).roundTrip(b"x") == b"x"
        with pytest.raises(ValueError, match="needs clientCAFile"):
            factory.changeClientAuthentication(None, "required")

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"clientAuth": "bogus", "clientCAFile": "x"}, "clientAuth must be"),
            ({"clientAuth": "optional"}, "needs clientCAFile"),
            ({"passphrase": b"a", "passphraseFile": "p"}, "not both"),
        ],
    )
    def test_badOptions(
        self, tmp_path: Path, ca: trustme.CA, kwargs: dict[str, Any], message: str
    ) -> None:
        """
        Contradictory options are refused before any file is read.
        """
        with pytest.raises(ValueError, match=message):
            ReloadingContextFactory(str(tmp_path / "missing.pem"), **kwargs)


class TestClientAuthenticationModes:
    """
    The three client-authentication settings differ in what a handshake does.
    """

    @pytest.mark.parametrize(
        "clientAuth, withCertificate, served, seen",
        [
            (None, True, True, False),
            (None, False, True, False),
            ("optional", True, True, True),
            ("optional", False, True, False),
            ("required", True, True, True),
            ("required", False, False, False),
        ],
    )
    def test_handshakeOutcome(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        clientAuth: str | None,
        withCertificate: bool,
        served: bool,
        seen: bool,
    ) -> None:
        """
        Without client auth the server asks for no certificate; with
        C{optional} it asks, sees a trusted one and serves clients without;
        with C{required} it refuses clients without one.
        """
        clientCA = trustme.CA()
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        bundle = tmp_path / "clients.pem"
        bundle.write_bytes(clientCA.cert_pem.bytes())
        factory = ReloadingContextFactory(
            str(certPath),
            str(keyPath),
            clientCAFile=None if clientAuth is None else str(bundle),
            clientAuth=clientAuth,  # type: ignore[arg-type]
        )
        clientCert = clientCA.issue_cert("c@x") if withCertificate else None

        result = handshake(factory, clientOptions(ca, clientCert=clientCert))

        assert (result.roundTrip(b"x") == b"x") is served
        assert (result.clientCertificateSeenByServer is not None) is seen


class TestChain:
    """
    Intermediates in the files are sent, so clients need only the root.
    """

    @pytest.mark.parametrize("layout", ["combined", "extraChainFile"])
    def test_rootOnlyClientAcceptsChainBeforeAndAfterRotation(
        self, tmp_path: Path, ca: trustme.CA, layout: str
    ) -> None:
        """
        A client trusting only the root verifies a leaf issued by an
        intermediate, given with the leaf or in a separate chain file, both
        before and after a rotation to a leaf of another intermediate.
        """

        def write(intermediate: trustme.CA) -> int:
            certPath, _, serial = writeLeaf(intermediate, tmp_path)
            if layout == "extraChainFile":
                leaf, *chain = x509.load_pem_x509_certificates(certPath.read_bytes())
                certPath.write_bytes(leaf.public_bytes(Encoding.PEM))
                chainPath.write_bytes(
                    b"".join(c.public_bytes(Encoding.PEM) for c in chain)
                )
            return serial

        chainPath = tmp_path / "chain.pem"
        firstSerial = write(ca.create_child_ca())
        factory = ReloadingContextFactory(
            str(tmp_path / "server.crt"),
            str(tmp_path / "server.key"),
            extraChainFile=str(chainPath) if layout == "extraChainFile" else None,
        )
        rootOnly = clientOptions(ca)
        assert servedSerial(factory, rootOnly) == firstSerial

        secondSerial = write(ca.create_child_ca())
        assert factory.reload().changed

        assert servedSerial(factory, rootOnly) == secondSerial


# Files every earlier check accepts that OpenSSL would not put in a context:
# how to write them, and words the refusal must contain.
_UNSERVABLE = {
    # Below OpenSSL's security level: refused up front, by our key limits.
    "RSA-1024": (writeWeakRSALeaf, ("RSA key of 1024 bits is too small",)),
    # An RSA-PSS key, which cryptography reads as RSA: refused when the
    # context is built.
    "RSA-PSS": (
        writeRSAPSSLeaf,
        ("could not build a TLS context: ", "no certificate assigned"),
    ),
}


@pytest.mark.parametrize("kind", list(_UNSERVABLE))
class TestRefusedUnservable:
    """
    A pair OpenSSL would not serve is a refusal like any other: reported,
    never raised from a reload; at start-up, a L{CredentialError}.
    """

    def test_reloadReportsAndKeepsServing(
        self,
        served: tuple[ReloadingContextFactory, int],
        tmp_path: Path,
        ca: trustme.CA,
        logEvents: list[LogEvent],
        kind: str,
    ) -> None:
        """
        The reload returns a one-line refusal naming the certificate file
        and the reason, logs it once, tells the failure callbacks, and
        handshakes still get the previous certificate.
        """
        write, reason = _UNSERVABLE[kind]
        factory, serial = served
        certPath, _, _ = write(ca, tmp_path)
        failures: list[ReloadResult] = []
        factory.addReloadCallbacks(onFailure=failures.append)

        result = factory.reload()

        assert not result.succeeded and not result.changed
        assert result.error is not None
        assert result.error.path == str(certPath)
        assert all(words in result.error.reason for words in reason)
        assert "\n" not in str(result.error)
        assert failures == [result]
        refusals = [formatEvent(e) for e in logEvents if e["log_level"].name == "error"]
        assert len(refusals) == 1 and str(certPath) in refusals[0]
        assert servedSerial(factory, clientOptions(ca)) == serial

    def test_startupRefusedWithCredentialError(
        self, tmp_path: Path, ca: trustme.CA, kind: str
    ) -> None:
        """
        At start-up the same files raise L{CredentialError} naming the
        certificate file and the reason.
        """
        write, reason = _UNSERVABLE[kind]
        certPath, keyPath, _ = write(ca, tmp_path)
        with pytest.raises(CredentialError) as raised:
            ReloadingContextFactory(str(certPath), str(keyPath))
        assert raised.value.path == str(certPath)
        assert all(words in raised.value.reason for words in reason)


class TestProtocols:
    """
    What Twisted's TLS defaults promise holds after a swap.
    """

    @pytest.mark.parametrize(
        "offered, expected",
        [
            ([b"h2", b"http/1.1"], b"h2"),
            ([b"http/1.1"], b"http/1.1"),
        ],
    )
    def test_alpnAfterSwap(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        offered: list[bytes],
        expected: bytes,
    ) -> None:
        """
        ALPN is negotiated from the server factory's protocols after the
        certificate was swapped.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        writeLeaf(ca, tmp_path)
        assert factory.reload().changed

        result = handshake(
            factory,
            clientOptions(ca, protocols=offered),
            serverProtocols=[b"h2", b"http/1.1"],
        )

        assert result.succeeded, result.failureText()
        assert result.negotiatedProtocol == expected

    @pytest.mark.parametrize(
        "version", [SSL.TLS1_VERSION, SSL.TLS1_1_VERSION], ids=["1.0", "1.1"]
    )
    @pytest.mark.parametrize("reloaded", [False, True], ids=["initial", "reloaded"])
    def test_oldProtocolsRefused(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        version: int,
        reloaded: bool,
    ) -> None:
        """
        Clients limited to TLS 1.0 or 1.1 are refused for their protocol
        version, before and after a reload.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        if reloaded:
            writeLeaf(ca, tmp_path)
            assert factory.reload().changed
        result = handshake(
            factory, clientOptions(ca, hostname=None, maximumVersion=version)
        )
        assert not result.succeeded
        assert result.serverCertificate is None
        assert "protocol version" in result.failureText()

    def test_tls12Accepted(
        self, served: tuple[ReloadingContextFactory, int], ca: trustme.CA
    ) -> None:
        """
        A client limited to TLS 1.2 is served (the refusal above is about the
        version, not about the client).
        """
        factory, serial = served
        result = handshake(
            factory,
            clientOptions(ca, hostname=None, maximumVersion=SSL.TLS1_2_VERSION),
        )
        assert result.succeeded, result.failureText()


class TestCallbacksAndLogs:
    """
    Reloads are reported to callbacks and as structured log events.
    """

    def test_callbacks(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Success callbacks see installed reloads, failure callbacks refused
        ones, neither sees an unchanged reload, and removal works (twice
        too).
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        successes: list[ReloadResult] = []
        failures: list[ReloadResult] = []
        remove = factory.addReloadCallbacks(successes.append, failures.append)

        factory.reload()
        writeLeaf(ca, tmp_path)
        factory.reload()
        keyPath.write_bytes(b"")
        factory.reload()
        remove()
        remove()
        writeLeaf(ca, tmp_path)
        factory.reload()

        assert [r.changed for r in successes] == [True]
        assert [r.error is not None for r in failures] == [True]

    def test_raisingCallbackDoesNotBreakReload(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A callback that raises is logged and the reload still takes effect.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))

        def broken(result: ReloadResult) -> None:
            raise RuntimeError("callback bug")

        factory.addReloadCallbacks(onSuccess=broken)
        _, _, serial = writeLeaf(ca, tmp_path)
        assert factory.reload().certificate.serialNumber == serial
        assert servedSerial(factory, clientOptions(ca)) == serial

    def test_structuredEvents(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Loads and failures are logged with path, serial, notAfter and error
        fields, and no key material.
        """
        with capturedLogs() as events:
            certPath, keyPath, serial = writeLeaf(ca, tmp_path)
            keyPem = keyPath.read_bytes()
            factory = ReloadingContextFactory(str(certPath), str(keyPath))
            keyPath.write_bytes(ca.issue_cert("x.example").private_key_pem.bytes())
            factory.reload()

        loaded = [e for e in events if "subject" in e and "serial" in e]
        failed = [e for e in events if "error" in e and "path" in e]
        assert loaded[0]["path"] == str(certPath)
        assert loaded[0]["serial"] == factory.certificate.serialHex
        assert loaded[0]["notAfter"] == factory.certificate.notAfter.isoformat()
        assert failed[0]["path"] == str(keyPath)
        assert "does not match" in failed[0]["error"]
        assert failed[0]["log_level"].name == "error"
        assertNoKeyMaterial(everythingReported(events=events), keyPem, keyPath)
        assert serial == factory.certificate.serialNumber

    @pytest.mark.parametrize(
        "quiet, levels",
        [(True, ["error", "error"]), (False, ["error", "error", "error"])],
        ids=["watcher-retry", "sighup-or-call"],
    )
    def test_repeatedRefusalLogging(
        self, tmp_path: Path, ca: trustme.CA, quiet: bool, levels: list[str]
    ) -> None:
        """
        A refusal repeated by a watcher's retry is logged once (the watcher
        says it is retrying), not at every retry; repeated by SIGHUP or a call
        it is an error every time; a different refusal is an error again.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        with capturedLogs() as events:
            keyPath.write_bytes(ca.issue_cert("x.example").private_key_pem.bytes())
            factory.reload(quietIfRepeated=quiet)
            factory.reload(quietIfRepeated=quiet)
            certPath.write_bytes(b"")
            factory.reload(quietIfRepeated=quiet)
        assert [e["log_level"].name for e in events if "error" in e] == levels

    def test_recoveryReportedToSuccessCallbacks(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        When broken files are put back as they were, the reload installs
        nothing new but success callbacks and the log still say that the
        failure is over; a further unchanged reload tells nobody.
        """
        certPath, keyPath, serial = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        successes: list[ReloadResult] = []
        failures: list[ReloadResult] = []
        factory.addReloadCallbacks(successes.append, failures.append)
        good = keyPath.read_bytes()

        keyPath.write_bytes(b"")
        factory.reload()
        keyPath.write_bytes(good)
        with capturedLogs() as events:
            factory.reload()
            factory.reload()

        assert [e["log_format"].split(":")[0] for e in events] == [
            "TLS files usable again"
        ]
        assert len(failures) == 1
        assert [(r.succeeded, r.changed) for r in successes] == [(True, False)]
        assert successes[0].certificate.serialNumber == serial
