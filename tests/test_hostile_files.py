"""
Hostile and malformed credential files: each is refused with a
L{CredentialError} naming the file and the reason, at construction and on
reload, on the server side and the client side, and a refused reload
changes nothing served.

How long each case blocks the reactor is measured in
C{benchmarks/hostile.py}, not here.
"""

from __future__ import annotations

import base64
import datetime
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from twisted.logger import LogEvent, LogLevel

from txtlsreload import (
    CredentialError,
    ReloadingCertificateStore,
    ReloadingClientCredentials,
    ReloadingContextFactory,
)

from .tlshelpers import clientOptions, handshake, writeLeaf

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    """
    C{der} wrapped in a PEM block.
    """
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        f"-----BEGIN {label}-----\n".encode()
        + b"\n".join(lines)
        + f"\n-----END {label}-----\n".encode()
    )


def _der(*parts: bytes, tag: int = 0x30) -> bytes:
    """
    A DER tag-length-value holding C{parts}.
    """
    content = b"".join(parts)
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def _derInteger(value: int) -> bytes:
    return _der(value.to_bytes(value.bit_length() // 8 + 1, "big"), tag=0x02)


def _derOID(hexOID: str) -> bytes:
    return _der(bytes.fromhex(hexOID), tag=0x06)


def _certificateDER(
    publicKey: object,
    signer: ec.EllipticCurvePrivateKey,
    name: str = "localhost",
    issuerAltName: bool = False,
    basicConstraints: bool = False,
) -> bytes:
    """
    A certificate for C{publicKey} (of any size) signed by C{signer}, as DER;
    with C{basicConstraints}, a CA's.
    """
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(publicKey)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(hours=1))
        .not_valid_after(_NOW + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    )
    if issuerAltName:
        builder = builder.add_extension(
            x509.IssuerAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    if basicConstraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    return builder.sign(signer, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER
    )


def _keyPEM(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _fakeRSAKey(bits: int) -> rsa.RSAPrivateKey:
    """
    An RSA private key of C{bits} bits made of random numbers: generating a
    real one of 32768 bits takes minutes, and only the size matters here.
    """
    half = bits // 2
    # The two top bits set make the product exactly C{bits} long.
    p = secrets.randbits(half) | (3 << (half - 2)) | 1
    q = secrets.randbits(half) | (3 << (half - 2)) | 1
    n = p * q
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=secrets.randbits(bits - 8) | 1,
        dmp1=secrets.randbits(half - 8) | 1,
        dmq1=secrets.randbits(half - 8) | 1,
        iqmp=secrets.randbits(half - 8) | 1,
        public_numbers=rsa.RSAPublicNumbers(65537, n),
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def _encryptedKeyHeader(algorithm: bytes) -> bytes:
    """
    An C{ENCRYPTED PRIVATE KEY} block with the encryption C{algorithm}
    identifier given and random bytes for the encrypted key: the limits
    must refuse it from the header alone, before decrypting anything.
    """
    return _pem(
        _der(algorithm, _der(secrets.token_bytes(96), tag=0x04)),
        "ENCRYPTED PRIVATE KEY",
    )


_ID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")
_PBES2 = "2a864886f70d01050d"
_PBKDF2 = "2a864886f70d01050c"
_HMAC_SHA256 = "2a864886f70d0209"
_AES256_CBC = "608648016503040102"
_SCRYPT = "2b06010401da47040b"
_PKCS12_3DES = "2a864886f70d010c0103"


def _pbkdf2Key(iterations: int) -> bytes:
    return _encryptedKeyHeader(
        _der(
            _derOID(_PBES2),
            _der(
                _der(
                    _derOID(_PBKDF2),
                    _der(
                        _der(b"saltsalt", tag=0x04),
                        _derInteger(iterations),
                        _der(_derOID(_HMAC_SHA256), b"\x05\x00"),
                    ),
                ),
                _der(_derOID(_AES256_CBC), _der(bytes(16), tag=0x04)),
            ),
        )
    )


def _scryptKey(n: int, r: int, p: int) -> bytes:
    return _encryptedKeyHeader(
        _der(
            _derOID(_PBES2),
            _der(
                _der(
                    _derOID(_SCRYPT),
                    _der(
                        _der(b"saltsalt", tag=0x04),
                        _derInteger(n),
                        _derInteger(r),
                        _derInteger(p),
                    ),
                ),
                _der(_derOID(_AES256_CBC), _der(bytes(16), tag=0x04)),
            ),
        )
    )


def _pkcs12Key(iterations: int) -> bytes:
    return _encryptedKeyHeader(
        _der(
            _derOID(_PKCS12_3DES),
            _der(_der(b"saltsalt", tag=0x04), _derInteger(iterations)),
        )
    )


def _unknownKDFKey() -> bytes:
    """
    PBES2 with a key-derivation function neither PBKDF2 nor scrypt (an
    HMAC identifier in its place), which the limits leave to cryptography.
    """
    return _encryptedKeyHeader(
        _der(
            _derOID(_PBES2),
            _der(
                _der(
                    _derOID(_HMAC_SHA256),
                    _der(_der(b"saltsalt", tag=0x04), _derInteger(2048)),
                ),
                _der(_derOID(_AES256_CBC), _der(bytes(16), tag=0x04)),
            ),
        )
    )


class _Files:
    """
    A good certificate and key, served or used, and a way to put hostile
    contents in their place.
    """

    def __init__(self, ca: trustme.CA, directory: Path) -> None:
        self.ca = ca
        self.directory = directory
        self.cert, self.key, self.serial = writeLeaf(ca, directory)
        self.caFile = directory / "ca.pem"
        self.caFile.write_bytes(ca.cert_pem.bytes())


def _ecCertificateAndKey(
    mutate: Callable[[bytes], bytes] = lambda der: der,
    curve: ec.EllipticCurve | None = None,
    issuerAltName: bool = False,
    name: str = "localhost",
    basicConstraints: bool = False,
) -> tuple[bytes, bytes]:
    """
    A self-signed certificate (its DER passed through C{mutate}) and its key.
    """
    key = ec.generate_private_key(curve or ec.SECP256R1())
    der = _certificateDER(key.public_key(), key, name, issuerAltName, basicConstraints)
    return _pem(mutate(der)), _keyPEM(key)


def _replaceOnce(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def mutate(der: bytes) -> bytes:
        assert old in der
        return der.replace(old, new, 1)

    return mutate


def _corruptPoint(der: bytes) -> bytes:
    """
    Flip a bit of the public point, which leaves it off the curve.
    """
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der.replace(spki, spki[:-1] + bytes([spki[-1] ^ 1]), 1)


def _duplicateSAN(der: bytes) -> bytes:
    """
    Turn the issuerAltName extension into a second subjectAltName.
    """
    return der.replace(bytes.fromhex("551d12"), bytes.fromhex("551d11"), 1)


def _rsaCertificate(bits: int) -> tuple[bytes, bytes]:
    """
    A certificate for an RSA key of C{bits} bits (cryptography makes none
    under 1024 bits, and one of 32768 takes minutes), with that key.
    """
    signer = ec.generate_private_key(ec.SECP256R1())
    key = _fakeRSAKey(bits)
    return _pem(_certificateDER(key.public_key(), signer)), _keyPEM(key)


def _hugeRSAKeyOnly() -> tuple[bytes, bytes]:
    cert, _ = _ecCertificateAndKey()
    return cert, _keyPEM(_fakeRSAKey(32768))


# Each real-world case: (certificate PEM, key PEM), which file is blamed, and
# words the reason must contain.
_CASES: dict[str, tuple[Callable[[], tuple[bytes, bytes]], str, str]] = {
    "x509-version-18": (
        lambda: _ecCertificateAndKey(
            _replaceOnce(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x11")
        ),
        "cert",
        "unknown X.509 version",
    ),
    "spki-point-off-curve": (
        lambda: _ecCertificateAndKey(_corruptPoint),
        "cert",
        "not a valid certificate",
    ),
    "spki-unknown-algorithm": (
        lambda: _ecCertificateAndKey(
            _replaceOnce(
                bytes.fromhex("2a8648ce3d0201"), bytes.fromhex("2a8648ce3d0299")
            )
        ),
        "cert",
        "not a valid certificate",
    ),
    "duplicate-subjectAltName": (
        lambda: _ecCertificateAndKey(_duplicateSAN, issuerAltName=True),
        "cert",
        "has a malformed subject, issuer or extension",
    ),
    "subjectAltName-not-ascii": (
        lambda: _ecCertificateAndKey(
            lambda der: (
                der[: der.rfind(b"localhost")]
                + b"localhos\xff"
                + der[der.rfind(b"localhost") + 9 :]
            )
        ),
        "cert",
        "has a malformed subject, issuer or extension",
    ),
    "basicConstraints-flag-not-der": (
        lambda: _ecCertificateAndKey(
            _replaceOnce(bytes.fromhex("30030101ff"), bytes.fromhex("3003010101")),
            basicConstraints=True,
        ),
        "cert",
        "PEM block 1 has a malformed subject, issuer or extension",
    ),
    "utf8string-openssl-refuses": (
        lambda: _ecCertificateAndKey(_replaceOnce(b"localhost", b"localhos\xff")),
        "cert",
        "OpenSSL cannot read",
    ),
    "rsa-512": (lambda: _rsaCertificate(512), "cert", "512 bits is too small"),
    "rsa-1024": (lambda: _rsaCertificate(1024), "cert", "1024 bits is too small"),
    "ecdsa-p192": (
        lambda: _ecCertificateAndKey(curve=ec.SECP192R1()),
        "cert",
        "secp192r1 (192 bits) is too small",
    ),
    "rsa-32768-certificate": (
        lambda: _rsaCertificate(32768),
        "cert",
        "PEM block 1: RSA key of 32768 bits is too large (at most 16384",
    ),
    "rsa-16384-certificate": (
        lambda: _rsaCertificate(16384),
        "cert",
        "16384 bits is too large to serve (at most 8192",
    ),
    "rsa-32768-key": (
        _hugeRSAKeyOnly,
        "key",
        "32768 bits is too large to serve (at most 8192",
    ),
    "pbkdf2-5M-iterations": (
        lambda: (_ecCertificateAndKey()[0], _pbkdf2Key(5_000_000)),
        "key",
        "5000000 key-derivation iterations; more than 100000 are refused",
    ),
    "scrypt-N-2^20": (
        lambda: (_ecCertificateAndKey()[0], _scryptKey(2**20, 8, 1)),
        "key",
        "scrypt N=1048576, r=8, p=1",
    ),
    "pkcs12-pbe-5M-iterations": (
        lambda: (_ecCertificateAndKey()[0], _pkcs12Key(5_000_000)),
        "key",
        "5000000 key-derivation iterations",
    ),
    "pbkdf2-zero-iterations": (
        lambda: (_ecCertificateAndKey()[0], _pbkdf2Key(0)),
        "key",
        "encrypted with 0 key-derivation iterations",
    ),
    "encrypted-key-not-der": (
        lambda: (
            _ecCertificateAndKey()[0],
            _pem(b"\x04\x02ab" + secrets.token_bytes(64), "ENCRYPTED PRIVATE KEY"),
        ),
        "key",
        "encrypted private key could not be parsed",
    ),
    "encrypted-key-one-byte": (
        lambda: (_ecCertificateAndKey()[0], _pem(b"\x30", "ENCRYPTED PRIVATE KEY")),
        "key",
        "encrypted private key could not be parsed",
    ),
    "encrypted-key-indefinite-length": (
        lambda: (
            _ecCertificateAndKey()[0],
            _pem(b"\x30\x80" + secrets.token_bytes(64), "ENCRYPTED PRIVATE KEY"),
        ),
        "key",
        "encrypted private key could not be parsed",
    ),
    "encrypted-key-length-past-end": (
        lambda: (
            _ecCertificateAndKey()[0],
            _pem(b"\x30\x7f" + secrets.token_bytes(64), "ENCRYPTED PRIVATE KEY"),
        ),
        "key",
        "encrypted private key could not be parsed",
    ),
    "pbes2-unknown-kdf": (
        lambda: (_ecCertificateAndKey()[0], _unknownKDFKey()),
        "key",
        "private key could not be parsed (corrupt or truncated?)",
    ),
    "unknown-encryption-scheme": (
        lambda: (
            _ecCertificateAndKey()[0],
            _encryptedKeyHeader(_der(_derOID(_AES256_CBC), _der(bytes(16), tag=0x04))),
        ),
        "key",
        "private key is encrypted and no passphrase was given",
    ),
    "begin-lines-without-end": (
        lambda: (b"-----BEGIN A-----\n" * 50_000, b""),
        "cert",
        "truncated PEM data",
    ),
    "certificate-without-end": (
        lambda: (
            b"-----BEGIN CERTIFICATE-----\n" + b"QUFB" * 200_000,
            b"",
        ),
        "cert",
        "truncated PEM data",
    ),
}


def _write(directory: Path, case: str) -> tuple[Path, Path, str, str]:
    make, blamed, reason = _CASES[case]
    certPEM, keyPEM = make()
    cert, key = directory / "hostile.crt", directory / "hostile.key"
    cert.write_bytes(certPEM)
    key.write_bytes(keyPEM or _ecCertificateAndKey()[1])
    return cert, key, str(cert if blamed == "cert" else key), reason


class TestRealWorldCases:
    """
    Each hostile or malformed file seen in review is refused by name.
    """

    @pytest.mark.parametrize("case", list(_CASES))
    def test_serverConstruction(self, tmp_path: Path, case: str) -> None:
        """
        The server refuses to start on the file, with a CredentialError
        naming the file and saying why.
        """
        cert, key, blamed, reason = _write(tmp_path, case)
        with pytest.raises(CredentialError) as raised:
            ReloadingContextFactory(str(cert), str(key))
        assert raised.value.path == blamed
        assert reason in raised.value.reason

    @pytest.mark.parametrize("case", list(_CASES))
    def test_storeConstruction(self, tmp_path: Path, case: str) -> None:
        """
        A certificate store refuses to start on the file in its directory
        (the certificate read first), with a CredentialError naming the file
        and saying why, as a single certificate's server does.
        """
        cert, key, blamed, reason = _write(tmp_path, case)
        directory = tmp_path / "sites"
        directory.mkdir()
        names = {str(cert): "a-site.pem", str(key): "b-site.key.pem"}
        shutil.copyfile(cert, directory / names[str(cert)])
        shutil.copyfile(key, directory / names[str(key)])
        with pytest.raises(CredentialError) as raised:
            ReloadingCertificateStore(str(directory), processWide=False)
        assert raised.value.path == str(directory / names[blamed])
        assert reason in raised.value.reason

    @pytest.mark.parametrize("case", list(_CASES))
    def test_clientConstruction(self, tmp_path: Path, case: str) -> None:
        """
        Client credentials refuse the same file as a client certificate,
        the same way.
        """
        cert, key, blamed, reason = _write(tmp_path, case)
        with pytest.raises(CredentialError) as raised:
            ReloadingClientCredentials(None, str(cert), str(key))
        assert raised.value.path == blamed
        assert reason in raised.value.reason

    @pytest.mark.parametrize("case", list(_CASES))
    def test_serverReloadKeepsServing(
        self, tmp_path: Path, ca: trustme.CA, case: str
    ) -> None:
        """
        A reload onto the file is refused with the same reason, twice in a
        row (the second time from memory), and handshakes still get the
        certificate served before.
        """
        files = _Files(ca, tmp_path)
        factory = ReloadingContextFactory(str(files.cert), str(files.key))
        hostileCert, hostileKey, _, reason = _write(tmp_path, case)
        shutil.copyfile(hostileCert, files.cert)
        shutil.copyfile(hostileKey, files.key)
        blamed = str(files.cert if _CASES[case][1] == "cert" else files.key)
        for _ in range(2):
            result = factory.reload()
            assert not result.succeeded
            assert result.error is not None
            assert result.error.path == blamed
            assert reason in result.error.reason
        served = handshake(factory, clientOptions(ca))
        assert served.succeeded, served.failureText()
        assert served.serverCertificate is not None
        assert served.serverCertificate.serial_number == files.serial

    @pytest.mark.parametrize(
        "case",
        [
            "x509-version-18",
            "utf8string-openssl-refuses",
            "basicConstraints-flag-not-der",
            "begin-lines-without-end",
        ],
    )
    def test_clientCABundleReloadKeepsTrust(
        self, tmp_path: Path, ca: trustme.CA, case: str
    ) -> None:
        """
        A client whose CA bundle is replaced by a bad file refuses the
        reload and still trusts the CA it had, proven by a handshake.
        """
        files = _Files(ca, tmp_path)
        server = ReloadingContextFactory(str(files.cert), str(files.key))
        credentials = ReloadingClientCredentials(str(files.caFile))
        hostileCert, _, _, reason = _write(tmp_path, case)
        shutil.copyfile(hostileCert, files.caFile)
        result = credentials.reload()
        assert result.error is not None
        assert result.error.path == str(files.caFile)
        assert reason in result.error.reason
        served = handshake(server, credentials.creatorFor("localhost"))
        assert served.succeeded, served.failureText()
        assert served.roundTrip(b"ping") == b"ping"


class TestCABundles:
    """
    Certificates that are only verified against may have larger keys than
    those served, up to a limit.
    """

    @pytest.mark.parametrize(
        ("bits", "refused"), [(16384, False), (32768, True)], ids=["16384", "32768"]
    )
    def test_largeCAKey(
        self, tmp_path: Path, ca: trustme.CA, bits: int, refused: bool
    ) -> None:
        """
        A client-CA bundle may hold an RSA-16384 CA (verifying with it is
        cheap); an RSA-32768 one is refused, naming its block and the limit.
        """
        files = _Files(ca, tmp_path)
        bundle = tmp_path / "clients.pem"
        bundle.write_bytes(ca.cert_pem.bytes() + _rsaCertificate(bits)[0])
        if not refused:
            factory = ReloadingContextFactory(
                str(files.cert), str(files.key), clientCAFile=str(bundle)
            )
            assert len(factory.files.paths()) == 3
            return
        with pytest.raises(CredentialError) as raised:
            ReloadingContextFactory(
                str(files.cert), str(files.key), clientCAFile=str(bundle)
            )
        assert raised.value.path == str(bundle)
        assert raised.value.reason == (
            "PEM block 2: RSA key of 32768 bits is too large"
            " (at most 16384 bits are accepted)"
        )


class TestPaths:
    """
    File names that cannot name a file are refused like unreadable files.
    """

    @pytest.mark.parametrize("side", ["server", "client"])
    def test_nulInPath(self, tmp_path: Path, side: str) -> None:
        """
        A NUL character in a file name gives a CredentialError saying so,
        not Python's ValueError.
        """
        path = str(tmp_path / "cert\0.pem")
        with pytest.raises(CredentialError) as raised:
            if side == "server":
                ReloadingContextFactory(path)
            else:
                ReloadingClientCredentials(path)
        assert raised.value.path.endswith("cert\0.pem")
        assert "NUL" in raised.value.reason


class TestLimitsLetRealKeysThrough:
    """
    The limits refuse what is hostile and nothing real tools write.
    """

    @pytest.mark.parametrize("iterations", [2048, 100_000])
    def test_pbkdf2WithinLimit(self, tmp_path: Path, iterations: int) -> None:
        """
        A PBKDF2 header at or under the limit is not refused for its
        iterations: the key is then decrypted (and here, being random
        bytes, refused as undecryptable).
        """
        cert, _ = _ecCertificateAndKey()
        (tmp_path / "c.pem").write_bytes(cert)
        (tmp_path / "k.pem").write_bytes(_pbkdf2Key(iterations))
        with pytest.raises(CredentialError) as raised:
            ReloadingContextFactory(
                str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), passphrase=b"x"
            )
        assert "iterations" not in raised.value.reason
        assert "could not be decrypted" in raised.value.reason

    @pytest.mark.parametrize(
        "arguments",
        [
            ["-v2", "aes-256-cbc"],
            ["-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA512", "-iter", "100000"],
            ["-scrypt"],
        ],
        ids=["openssl-default", "pbkdf2-sha512-100000", "openssl-scrypt-default"],
    )
    def test_opensslEncryptedKeys(
        self, tmp_path: Path, ca: trustme.CA, arguments: list[str]
    ) -> None:
        """
        Keys encrypted by the openssl command line with its defaults, and at
        the PBKDF2 limit, load and serve.
        """
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("no openssl command")
        files = _Files(ca, tmp_path)
        encrypted = tmp_path / "encrypted.key"
        subprocess.run(
            [openssl, "pkcs8", "-topk8", *arguments, "-passout", "pass:secret"],
            input=files.key.read_bytes(),
            stdout=encrypted.open("wb"),
            check=True,
        )
        factory = ReloadingContextFactory(
            str(files.cert), str(encrypted), passphrase=b"secret"
        )
        served = handshake(factory, clientOptions(ca))
        assert served.succeeded, served.failureText()


class TestRefusalsThatDependOnTime:
    """
    Only what depends on the bytes alone is remembered; validity is checked
    again on every reload.
    """

    def test_notYetValidBecomesValid(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A certificate refused because it is not valid yet is installed by a
        reload of the same bytes once its validity period has started.
        """
        # The server's clock runs three hours behind, so that the new
        # certificate is valid for the real client of the handshake below.
        now = [_NOW - datetime.timedelta(hours=3)]
        old = ca.issue_cert("localhost", not_before=_NOW - datetime.timedelta(days=1))
        new = ca.issue_cert("localhost", not_before=_NOW - datetime.timedelta(hours=1))
        cert, key = tmp_path / "c.pem", tmp_path / "k.pem"

        def write(leaf: trustme.LeafCert) -> None:
            cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
            key.write_bytes(leaf.private_key_pem.bytes())

        write(old)
        factory = ReloadingContextFactory(str(cert), str(key), now=lambda: now[0])
        write(new)
        first = factory.reload(quietIfRepeated=True)
        assert first.error is not None
        assert "not valid until" in first.error.reason
        now[0] = _NOW
        second = factory.reload(quietIfRepeated=True)
        assert second.changed, second
        served = handshake(factory, clientOptions(ca))
        assert served.serverCertificate is not None
        assert served.serverCertificate.serial_number == second.certificate.serialNumber
        assert (
            second.certificate.serialNumber
            == x509.load_pem_x509_certificate(
                new.cert_chain_pems[0].bytes()
            ).serial_number
        )

    def test_refusedBytesRefusedAgainAfterOthers(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        Bad bytes are refused again when they come back after other bad
        bytes, and good bytes after them are installed: remembering
        refusals never sticks to old contents.
        """
        files = _Files(ca, tmp_path)
        factory = ReloadingContextFactory(str(files.cert), str(files.key))
        original = files.cert.read_bytes()
        reasons = []
        for contents in [b"junk one\n", b"-----BEGIN A-----\n", b"junk one\n"]:
            files.cert.write_bytes(contents)
            result = factory.reload()
            assert result.error is not None
            reasons.append(result.error.reason)
        assert reasons[0] == reasons[2] != reasons[1]
        files.cert.write_bytes(original)
        assert factory.reload().succeeded

    def test_rememberedRefusalLoggedOnce(
        self, tmp_path: Path, ca: trustme.CA, logEvents: list[LogEvent]
    ) -> None:
        """
        A watcher's retries of remembered bad bytes log the refusal once,
        as for any repeated refusal; a plain reload logs it again.
        """
        files = _Files(ca, tmp_path)
        factory = ReloadingContextFactory(str(files.cert), str(files.key))
        files.cert.write_bytes(b"-----BEGIN A-----\n" * 1000)
        for _ in range(3):
            factory.reload(quietIfRepeated=True)
        factory.reload()
        refusals = [e for e in logEvents if e.get("log_level") == LogLevel.error]
        assert len(refusals) == 2
        assert all("truncated PEM data" in e["error"] for e in refusals)
