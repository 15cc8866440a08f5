"""
Tests for reading and checking credential files, seen through the public
constructor of L{txtlsreload.ReloadingContextFactory} and L{CredentialError}.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from txtlsreload import CredentialError, ReloadingContextFactory

from .processes import runUnprivileged, unprivilegedDirectory
from .tlshelpers import (
    assertNoKeyMaterial,
    clientOptions,
    everythingReported,
    handshake,
    servedSerial,
    writeLeaf,
    writeWeakRSALeaf,
)


def _selfSigned(key: object, name: str = "localhost") -> x509.Certificate:
    """
    A self-signed certificate for C{key}, valid now.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else _sha256())  # type: ignore[arg-type]
    )


def _sha256() -> object:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


_KEY_FORMATS = {
    "rsa-pkcs8": (
        lambda: rsa.generate_private_key(65537, 2048),
        serialization.PrivateFormat.PKCS8,
    ),
    "rsa-pkcs1": (
        lambda: rsa.generate_private_key(65537, 2048),
        serialization.PrivateFormat.TraditionalOpenSSL,
    ),
    "ecdsa-pkcs8": (
        lambda: ec.generate_private_key(ec.SECP256R1()),
        serialization.PrivateFormat.PKCS8,
    ),
    "ecdsa-sec1": (
        lambda: ec.generate_private_key(ec.SECP384R1()),
        serialization.PrivateFormat.TraditionalOpenSSL,
    ),
    "ed25519-pkcs8": (
        ed25519.Ed25519PrivateKey.generate,
        serialization.PrivateFormat.PKCS8,
    ),
}


class TestKeyFormats:
    """
    Every common key type and PEM encoding is served.
    """

    @pytest.mark.parametrize("name", sorted(_KEY_FORMATS))
    def test_keyFormatServes(self, tmp_path: Path, name: str) -> None:
        """
        A certificate with a key in this format completes a real handshake.
        """
        makeKey, keyFormat = _KEY_FORMATS[name]
        key = makeKey()
        certificate = _selfSigned(key)
        keyPem = key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, keyFormat, serialization.NoEncryption()
        )
        certPath = tmp_path / "cert.pem"
        certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        keyPath = tmp_path / "key.pem"
        keyPath.write_bytes(keyPem)

        factory = ReloadingContextFactory(str(certPath), str(keyPath))

        result = handshake(factory, clientOptions(certPath))
        assert result.succeeded, result.failureText()
        assert result.serverCertificate == certificate

    def test_ecParametersBesideKey(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        An C{EC PARAMETERS} block before the key, as C{openssl ecparam
        -genkey} writes it, is accepted in the key file and in a combined
        file.
        """
        leaf = ca.issue_cert("localhost")
        parameters = (
            b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
            b"-----END EC PARAMETERS-----\n"
        )
        combined = tmp_path / "combined.pem"
        combined.write_bytes(
            parameters + leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes()
        )
        factory = ReloadingContextFactory(str(combined))
        assert handshake(factory, clientOptions(ca)).succeeded

    def test_combinedFile(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        With no key file, the key is read from the certificate file, as with
        Twisted's C{ssl:} endpoint.
        """
        leaf = ca.issue_cert("localhost")
        combined = tmp_path / "combined.pem"
        combined.write_bytes(
            leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes()
        )
        factory = ReloadingContextFactory(str(combined))
        result = handshake(factory, clientOptions(ca))
        assert result.succeeded, result.failureText()

    def test_encryptedKeyWithPassphrase(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        An encrypted key is decrypted with the given passphrase, in memory or
        from a passphrase file.
        """
        certPath, keyPath, serial = writeLeaf(ca, tmp_path)
        _encryptKey(keyPath, b"s3cret")
        passphraseFile = tmp_path / "passphrase"
        passphraseFile.write_bytes(b"s3cret\n")

        fromMemory = ReloadingContextFactory(
            str(certPath), str(keyPath), passphrase=b"s3cret"
        )
        fromFile = ReloadingContextFactory(
            str(certPath), str(keyPath), passphraseFile=str(passphraseFile)
        )

        for factory in (fromMemory, fromFile):
            result = handshake(factory, clientOptions(ca))
            assert result.serverCertificate is not None
            assert result.serverCertificate.serial_number == serial

    def test_chainFromExtraFile(self, tmp_path: Path) -> None:
        """
        Certificates in the extra chain file are sent after the leaf, so a
        client trusting only the root verifies a leaf issued by an
        intermediate.
        """
        root = trustme.CA()
        intermediate = root.create_child_ca()
        leaf = intermediate.issue_cert("localhost")
        certPath = tmp_path / "leaf.pem"
        certPath.write_bytes(leaf.cert_chain_pems[0].bytes())
        chainPath = tmp_path / "chain.pem"
        chainPath.write_bytes(intermediate.cert_pem.bytes())
        keyPath = tmp_path / "key.pem"
        keyPath.write_bytes(leaf.private_key_pem.bytes())

        withoutChain = ReloadingContextFactory(str(certPath), str(keyPath))
        withChain = ReloadingContextFactory(
            str(certPath), str(keyPath), extraChainFile=str(chainPath)
        )

        assert not handshake(withoutChain, clientOptions(root)).succeeded
        result = handshake(withChain, clientOptions(root))
        assert result.succeeded, result.failureText()


def _encryptKey(keyPath: Path, passphrase: bytes) -> None:
    key = serialization.load_pem_private_key(keyPath.read_bytes(), None)
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
    )


# The P-256 curve's name, as C{openssl ecparam} writes it before a key.
_EC_PARAMETERS = (
    b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
)


def _corrupt(
    kind: str, certPath: Path, keyPath: Path, ca: trustme.CA
) -> tuple[Path, str, dict[str, object]]:
    """
    Break the credentials in one way.

    @return: The file that should be named, a piece of the expected reason,
        and extra constructor keywords.
    """
    certPem = certPath.read_bytes()
    keyPem = keyPath.read_bytes()
    if kind == "DER certificate":
        certPath.write_bytes(
            x509.load_pem_x509_certificate(certPem).public_bytes(
                serialization.Encoding.DER
            )
        )
        return certPath, "looks like DER", {}
    if kind == "garbage certificate":
        certPath.write_bytes(b"this is not a certificate\n")
        return certPath, "no PEM data", {}
    if kind == "empty certificate":
        certPath.write_bytes(b"")
        return certPath, "empty", {}
    if kind == "truncated certificate":
        certPath.write_bytes(certPem[: len(certPem) // 2])
        return certPath, "truncated", {}
    if kind == "corrupt certificate body":
        lines = certPem.splitlines(keepends=True)
        lines[3] = b"A" * (len(lines[3]) - 1) + b"\n"
        certPath.write_bytes(b"".join(lines))
        return certPath, "not a valid certificate", {}
    if kind == "text after a BEGIN line":
        certPath.write_bytes(certPem.replace(b"-----\n", b"----- junk\n", 1))
        return certPath, "truncated", {}
    if kind == "BEGIN line inside a block":
        # In a block the certificate file may hold and nothing parses here.
        certPath.write_bytes(
            certPem + b"-----BEGIN EC PARAMETERS-----\n" + _EC_PARAMETERS
        )
        return certPath, "truncated", {}
    if kind == "only EC parameters in the certificate file":
        certPath.write_bytes(_EC_PARAMETERS)
        return certPath, "no certificate found", {}
    if kind == "key where the certificate should be":
        certPath.write_bytes(keyPem)
        return certPath, "private key but no certificate", {}
    if kind == "certificate where the key should be":
        keyPath.write_bytes(certPem)
        return keyPath, "certificate but no private key", {}
    if kind == "truncated key":
        keyPath.write_bytes(keyPem[: len(keyPem) // 2])
        return keyPath, "truncated", {}
    if kind == "garbage key":
        keyPath.write_bytes(
            b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
        )
        return keyPath, "could not be parsed", {}
    if kind == "chain in the wrong order":
        blocks = certPem.split(b"-----END CERTIFICATE-----\n")
        certPath.write_bytes(
            ca.cert_pem.bytes() + blocks[0] + b"-----END CERTIFICATE-----\n"
        )
        return certPath, "put the leaf certificate first", {}
    if kind == "mismatched key":
        keyPath.write_bytes(ca.issue_cert("other.example").private_key_pem.bytes())
        return keyPath, "does not match the certificate", {}
    if kind == "missing certificate":
        certPath.unlink()
        return certPath, "file not found", {}
    if kind == "missing key":
        keyPath.unlink()
        return keyPath, "file not found", {}
    if kind == "directory instead of certificate":
        certPath.unlink()
        certPath.mkdir()
        return certPath, "is a directory", {}
    if kind == "FIFO instead of key":
        keyPath.unlink()
        os.mkfifo(keyPath)
        return keyPath, "not a regular file", {}
    if kind == "TRUSTED CERTIFICATE in CA bundle":
        bundle = certPath.parent / "ca.pem"
        trusted = ca.cert_pem.bytes().replace(
            b"CERTIFICATE-----", b"TRUSTED CERTIFICATE-----"
        )
        bundle.write_bytes(ca.cert_pem.bytes() + trusted)
        return (
            bundle,
            "PEM block 2 is an OpenSSL TRUSTED CERTIFICATE",
            {"clientCAFile": str(bundle)},
        )
    if kind == "two keys":
        other = ca.issue_cert("other.example").private_key_pem.bytes()
        keyPath.write_bytes(keyPem + other)
        return keyPath, "holds 2 private keys; expected exactly one", {}
    if kind == "OpenSSH key":
        keyPath.write_bytes(
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"
            b"-----END OPENSSH PRIVATE KEY-----\n"
        )
        return keyPath, "OpenSSH key format is not supported", {}
    if kind == "certificate request where the key should be":
        keyPath.write_bytes(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
            b"-----END CERTIFICATE REQUEST-----\n"
        )
        return keyPath, "no private key found", {}
    if kind == "certificate request in CA bundle":
        bundle = certPath.parent / "ca.pem"
        bundle.write_bytes(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
            b"-----END CERTIFICATE REQUEST-----\n"
        )
        return (
            bundle,
            "PEM block 1 is a CERTIFICATE REQUEST block, not a CA certificate",
            {"clientCAFile": str(bundle)},
        )
    if kind == "DSA key":
        keyPath.write_bytes(
            dsa.generate_private_key(1024).private_bytes(  # noqa: S505
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return keyPath, "DSAPrivateKey keys cannot serve TLS", {}
    if kind == "empty passphrase file":
        _encryptKey(keyPath, b"right")
        passphraseFile = certPath.parent / "passphrase.txt"
        passphraseFile.write_bytes(b"")
        return (
            passphraseFile,
            "passphrase file is empty",
            {"passphraseFile": str(passphraseFile)},
        )
    if kind == "file over 1 MiB":
        # Valid PEM followed by padding: only the size is wrong.
        certPath.write_bytes(certPem + b"\n" * (1024 * 1024 + 1 - len(certPem)))
        return certPath, "file is larger than 1048576 bytes", {}
    if kind == "RSA-1024 key":
        weakCert, _, _ = writeWeakRSALeaf(ca, certPath.parent, name="server")
        return weakCert, "RSA key of 1024 bits is too small", {}
    if kind == "encrypted key without passphrase":
        _encryptKey(keyPath, b"right")
        return keyPath, "no passphrase", {}
    if kind == "encrypted key with wrong passphrase":
        _encryptKey(keyPath, b"right")
        passphraseFile = certPath.parent / "passphrase.txt"
        passphraseFile.write_bytes(b"wrong\n")
        return keyPath, "wrong passphrase", {"passphraseFile": str(passphraseFile)}
    if kind == "expired certificate":
        certPath2, keyPath2, _ = writeLeaf(
            ca,
            certPath.parent,
            name="expired",
            notAfter=datetime.datetime.now(datetime.timezone.utc)
            - datetime.timedelta(days=1),
        )
        certPath.write_bytes(certPath2.read_bytes())
        keyPath.write_bytes(keyPath2.read_bytes())
        return certPath, "expired", {}
    if kind == "garbage CA bundle":
        bundle = certPath.parent / "ca.pem"
        bundle.write_bytes(b"\x00\x01garbage")
        return bundle, "no PEM data", {"clientCAFile": str(bundle)}
    if kind == "CA bundle without certificates":
        bundle = certPath.parent / "ca.pem"
        bundle.write_bytes(keyPem)
        return bundle, "private key", {"clientCAFile": str(bundle)}
    raise AssertionError(kind)


_BAD_INPUTS = [
    "DER certificate",
    "garbage certificate",
    "empty certificate",
    "truncated certificate",
    "corrupt certificate body",
    "text after a BEGIN line",
    "BEGIN line inside a block",
    "only EC parameters in the certificate file",
    "key where the certificate should be",
    "certificate where the key should be",
    "truncated key",
    "garbage key",
    "mismatched key",
    "chain in the wrong order",
    "missing certificate",
    "missing key",
    "directory instead of certificate",
    "FIFO instead of key",
    "TRUSTED CERTIFICATE in CA bundle",
    "encrypted key without passphrase",
    "encrypted key with wrong passphrase",
    "expired certificate",
    "garbage CA bundle",
    "CA bundle without certificates",
    "file over 1 MiB",
    "RSA-1024 key",
    "two keys",
    "OpenSSH key",
    "certificate request where the key should be",
    "certificate request in CA bundle",
    "DSA key",
    "empty passphrase file",
]


class TestBadInputAtStartup:
    """
    Unusable files stop the factory from being built, with an error that
    names the file and the reason and holds no key material.
    """

    @pytest.mark.parametrize("kind", _BAD_INPUTS)
    def test_refusedWithFileAndReason(
        self, tmp_path: Path, ca: trustme.CA, kind: str
    ) -> None:
        """
        Construction raises L{CredentialError} naming the bad file.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        keyPem = keyPath.read_bytes()
        badPath, reason, kwargs = _corrupt(kind, certPath, keyPath, ca)

        with pytest.raises(CredentialError) as raised:
            ReloadingContextFactory(str(certPath), str(keyPath), **kwargs)  # type: ignore[arg-type]

        error = raised.value
        assert error.path == str(badPath)
        assert reason in error.reason
        assert str(badPath) in str(error)
        assertNoKeyMaterial(everythingReported(error), keyPem, *_refusedKey(keyPath))


class TestBadInputOnReload:
    """
    A reload of unusable files keeps serving the current certificate and does
    not prevent a later good reload.
    """

    @pytest.mark.parametrize("kind", _BAD_INPUTS)
    def test_oldCertificateKeptThenRecovers(
        self, tmp_path: Path, ca: trustme.CA, kind: str
    ) -> None:
        """
        The failed reload reports the file and reason, handshakes still get
        the old certificate, and fixing the files makes the next reload work.
        """
        certPath, keyPath, oldSerial = writeLeaf(ca, tmp_path)
        keyPem = keyPath.read_bytes()
        bundle = tmp_path / "ca.pem"
        bundle.write_bytes(ca.cert_pem.bytes())
        kwargs: dict[str, object] = {}
        if "CA bundle" in kind:
            kwargs = {"clientCAFile": str(bundle), "clientAuth": "optional"}
        if "passphrase" in kind and "without" not in kind:
            # A passphrase for a key that is not encrypted is harmless, so
            # the factory can start with the one the broken files need.
            passphraseFile = tmp_path / "passphrase.txt"
            passphraseFile.write_bytes(b"wrong\n")
            kwargs = {"passphraseFile": str(passphraseFile)}
        factory = ReloadingContextFactory(str(certPath), str(keyPath), **kwargs)  # type: ignore[arg-type]
        badPath, reason, extra = _corrupt(kind, certPath, keyPath, ca)
        assert extra.keys() <= kwargs.keys()

        failed = factory.reload()

        assert not failed.succeeded
        assert not failed.changed
        assert failed.error is not None
        assert failed.error.path == str(badPath)
        assert reason in failed.error.reason
        assertNoKeyMaterial(everythingReported(failed), keyPem, *_refusedKey(keyPath))
        assert failed.certificate.serialNumber == oldSerial
        served = handshake(factory, clientOptions(ca))
        assert served.serverCertificate is not None
        assert served.serverCertificate.serial_number == oldSerial

        if certPath.is_dir():
            certPath.rmdir()
        if keyPath.is_fifo():
            keyPath.unlink()
        if bundle.exists():
            bundle.write_bytes(ca.cert_pem.bytes())
        if "passphraseFile" in kwargs:
            Path(str(kwargs["passphraseFile"])).write_bytes(b"wrong\n")
        _, _, newSerial = writeLeaf(ca, tmp_path)
        recovered = factory.reload()

        assert recovered.succeeded and recovered.changed, recovered
        assert recovered.certificate.serialNumber == newSerial
        served = handshake(factory, clientOptions(ca))
        assert served.serverCertificate is not None
        assert served.serverCertificate.serial_number == newSerial


class TestSubjectAltNames:
    """
    The names a certificate is for, as results and logs report them.
    """

    def test_everyKindOfName(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        DNS names, IP addresses, URIs (as SPIFFE IDs are) and e-mail
        addresses are reported with their kind; other kinds of name (a
        registered ID) are left out.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
        signer = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                        x509.UniformResourceIdentifier("spiffe://example.org/web"),
                        x509.RFC822Name("ops@example.org"),
                        x509.RegisteredID(x509.ObjectIdentifier("1.3.6.1.4.1.99999")),
                    ]
                ),
                critical=True,
            )
            .sign(signer, _sha256())  # type: ignore[arg-type]
        )
        certPath = tmp_path / "cert.pem"
        keyPath = tmp_path / "key.pem"
        certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        keyPath.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        assert factory.certificate.subjectAltNames == (
            "DNS:localhost",
            "IP:::1",
            "URI:spiffe://example.org/web",
            "email:ops@example.org",
        )
        assert servedSerial(factory, clientOptions(ca)) == certificate.serial_number


class TestFileSize:
    """
    Files are read up to 1 MiB: more is refused, not read into memory.
    """

    def test_fileOfExactlyOneMiBServes(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A valid certificate file padded to exactly 1 MiB is still read and
        served, on start-up and on reload.
        """

        def padded(certPath: Path) -> None:
            pem = certPath.read_bytes()
            certPath.write_bytes(pem + b"\n" * (1024 * 1024 - len(pem)))

        certPath, keyPath, serial = writeLeaf(ca, tmp_path)
        padded(certPath)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        assert servedSerial(factory, clientOptions(ca)) == serial
        _, _, newSerial = writeLeaf(ca, tmp_path)
        padded(certPath)
        assert factory.reload().changed
        assert servedSerial(factory, clientOptions(ca)) == newSerial


class TestUnreadableFiles:
    """
    A file the process may not read is refused with "permission denied";
    the checks run in a child that gave up root, which reads anything.
    """

    @pytest.mark.parametrize("when", ["startup", "reload"])
    @pytest.mark.parametrize("which", ["certificate", "key"])
    def test_permissionDenied(self, ca: trustme.CA, when: str, which: str) -> None:
        """
        An unreadable certificate or key stops the start, or is refused on
        reload while the previous certificate is still served.
        """
        with unprivilegedDirectory() as directory:
            certPath, keyPath, serial = writeLeaf(ca, directory)
            unreadable = certPath if which == "certificate" else keyPath

            def scenario() -> tuple[str, str, int | None]:
                if when == "startup":
                    unreadable.chmod(0)
                    with pytest.raises(CredentialError) as raised:
                        ReloadingContextFactory(str(certPath), str(keyPath))
                    return raised.value.path, raised.value.reason, None
                factory = ReloadingContextFactory(str(certPath), str(keyPath))
                writeLeaf(ca, directory, name="next")
                os.replace(directory / "next.crt", certPath)
                os.replace(directory / "next.key", keyPath)
                unreadable.chmod(0)
                result = factory.reload()
                assert result.error is not None
                return (
                    result.error.path,
                    result.error.reason,
                    servedSerial(factory, clientOptions(ca)),
                )

            path, reason, stillServed = runUnprivileged(scenario, directory)

        assert (path, reason) == (str(unreadable), "permission denied")
        assert stillServed == (None if when == "startup" else serial)


def _refusedKey(keyPath: Path) -> list[Path]:
    """
    The key file as the refused reload found it, if it is still a file: a
    message must hold none of the new key's lines, not just the old key's.
    """
    return [keyPath] if keyPath.is_file() and os.access(keyPath, os.R_OK) else []


class TestCABundle:
    """
    A client-CA bundle is read whole.
    """

    def test_everyCAIsLoaded(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A bundle of three CAs (after a comment) trusts all three, not two:
        a client of each is served.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        clientCAs = [trustme.CA() for _ in range(3)]
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(
            b"# a comment before the first block\n"
            + b"\n".join(clientCA.cert_pem.bytes() for clientCA in clientCAs)
        )
        factory = ReloadingContextFactory(
            str(certPath), str(keyPath), clientCAFile=str(bundle)
        )
        for clientCA in clientCAs:
            client = clientOptions(ca, clientCert=clientCA.issue_cert("c@x"))
            assert handshake(factory, client).roundTrip(b"x") == b"x"


class TestDamagedKey:
    """
    A key whose public half matches but whose private half is wrong is
    refused before it can break handshakes.
    """

    @pytest.mark.parametrize(
        "damage",
        [
            {"d": 2, "dmp1": 2, "dmq1": 2},
            # OpenSSL recovers from these when signing (it checks the CRT
            # result and falls back), so only the value check finds them.
            {"iqmp": 2},
            {"dmq1": 2},
        ],
        ids=["exponents", "crt-coefficient", "crt-exponent"],
    )
    def test_damagedRSAKeyRefused(self, tmp_path: Path, damage: dict[str, int]) -> None:
        """
        An RSA key with corrupted private values (public modulus intact, so
        it "matches" the certificate) is refused as damaged.
        """
        key = rsa.generate_private_key(65537, 2048)
        certificate = _selfSigned(key)
        numbers = key.private_numbers()
        damaged = rsa.RSAPrivateNumbers(
            p=numbers.p,
            q=numbers.q,
            d=numbers.d + damage.get("d", 0),
            dmp1=numbers.dmp1 + damage.get("dmp1", 0),
            dmq1=numbers.dmq1 + damage.get("dmq1", 0),
            iqmp=numbers.iqmp + damage.get("iqmp", 0),
            public_numbers=numbers.public_numbers,
        ).private_key(unsafe_skip_rsa_key_validation=True)
        certPath = tmp_path / "cert.pem"
        certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        keyPath = tmp_path / "key.pem"
        keyPath.write_bytes(
            damaged.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

        with pytest.raises(CredentialError) as raised:
            ReloadingContextFactory(str(certPath), str(keyPath))

        assert raised.value.path == str(keyPath)
        assert "damaged" in raised.value.reason
