# -*- test-case-name: tests.test_loading -*-
"""
Reading and checking certificate, key, chain and CA files.

Everything here is pure: it reads files and returns parsed objects or raises
L{CredentialError}.  Nothing in this module touches OpenSSL contexts, so a
reload can check everything before anything becomes visible to a handshake.

Loading happens in two steps, L{readCredentialFiles} then
L{parseCredentialFiles}, so that a reload of files whose bytes did not change
costs a read and a hash, not a parse.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from ipaddress import IPv4Address, IPv6Address

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from OpenSSL import crypto

from ._errors import CredentialError, escapeControls, quoted
from ._limits import checkKeyDerivation, keySizeProblem
from ._refusals import ValidityRefusal

__all__ = [
    "CertificateInfo",
    "CredentialFiles",
    "Credentials",
    "FileContents",
    "ServableKey",
    "absolutePath",
    "acceptValidity",
    "certificatesIn",
    "certificatesWithOpenSSLIn",
    "checkPassphrase",
    "optionalAbsolutePath",
    "parseCredentialFiles",
    "readCredentialFiles",
    "readFile",
    "utcNow",
    "validityProblem",
]

ServableKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

# Certificate and key files are small; a huge file is a mistake (a log, a
# disk image) and reading it on every reload would hurt.
_MAX_FILE_SIZE = 1024 * 1024

# The label cannot contain "-", so a search reads each BEGIN line once and
# cannot run into the next one: splitting a file is linear in its size,
# whatever it holds.
_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(\r?\n)?")

_CERTIFICATE_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})
_KEY_FILE_LABELS_EXTRA = frozenset({b"EC PARAMETERS"})
_KEY_LABELS = frozenset(
    {
        b"PRIVATE KEY",
        b"ENCRYPTED PRIVATE KEY",
        b"RSA PRIVATE KEY",
        b"EC PRIVATE KEY",
    }
)
# What may stand beside the key in a key or combined file: `openssl ecparam
# -genkey` writes the curve's parameters before the key.
_KEY_FILE_LABELS = _KEY_LABELS | _KEY_FILE_LABELS_EXTRA


@dataclass(frozen=True)
class CredentialFiles:
    """
    Where the credentials live on disk.

    @ivar certificateFile: PEM file with the leaf certificate first, optionally
        followed by its chain (and, in a combined file, the key).
    @ivar privateKeyFile: PEM file with the private key.
    @ivar extraChainFile: Optional PEM file with more chain certificates, sent
        after those found in C{certificateFile}.
    @ivar clientCAFile: Optional PEM bundle of CA certificates trusted to
        issue client certificates.
    @ivar passphraseFile: Optional file whose first line decrypts the key; read
        on every reload so a key and its passphrase can rotate together.
    """

    certificateFile: str
    privateKeyFile: str
    extraChainFile: str | None = None
    clientCAFile: str | None = None
    passphraseFile: str | None = None

    @classmethod
    def absolute(
        cls,
        certificateFile: str,
        privateKeyFile: str | None = None,
        extraChainFile: str | None = None,
        clientCAFile: str | None = None,
        passphraseFile: str | None = None,
    ) -> CredentialFiles:
        """
        Name the files by absolute paths, so that reloads still find them
        after the program changes its working directory (as C{twistd} does
        when it daemonizes); the key defaults to the certificate file.
        """
        return cls(
            certificateFile=absolutePath(certificateFile),
            privateKeyFile=absolutePath(privateKeyFile or certificateFile),
            extraChainFile=optionalAbsolutePath(extraChainFile),
            clientCAFile=optionalAbsolutePath(clientCAFile),
            passphraseFile=optionalAbsolutePath(passphraseFile),
        )

    def paths(self) -> list[str]:
        """
        @return: Every file named here, in the order they are read.
        """
        candidates = [
            self.certificateFile,
            self.privateKeyFile,
            self.extraChainFile,
            self.clientCAFile,
            self.passphraseFile,
        ]
        seen: list[str] = []
        for path in candidates:
            if path is not None and path not in seen:
                seen.append(path)
        return seen


@dataclass(frozen=True, repr=False)
class FileContents:
    """
    The bytes of every credential file, read in one go.

    Its C{repr} names the files and their sizes only: error reporters that
    record the local variables of a traceback (Sentry, C{pytest -l}) would
    otherwise record the private key.

    @ivar files: What was read.
    @ivar contents: Each path's bytes.
    @ivar digest: SHA-256 over all paths and contents (and the in-memory
        passphrase, if any); equal digests mean nothing changed.
    """

    files: CredentialFiles
    contents: dict[str, bytes]
    digest: bytes

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{quoted(path)}: {len(data)} bytes" for path, data in self.contents.items()
        )
        return f"<FileContents {{{sizes}}}>"


@dataclass(frozen=True)
class CertificateInfo:
    """
    What an operator wants to know about a served certificate.

    The subject and names are whatever the certificate's issuer wrote, so
    they are kept with control characters (newlines, terminal escapes, bidi
    overrides) escaped as C{repr} escapes them: they end up in log lines,
    results and status pages.

    @ivar subject: The subject as an RFC 4514 string.
    @ivar subjectAltNames: DNS names, IP addresses, URIs and e-mail addresses.
    @ivar serialNumber: The serial number.
    @ivar fingerprintSHA256: Colon-separated upper-case hex SHA-256 of the DER.
    @ivar notBefore: Start of validity (timezone-aware, UTC).
    @ivar notAfter: End of validity (timezone-aware, UTC).
    """

    subject: str
    subjectAltNames: tuple[str, ...]
    serialNumber: int
    fingerprintSHA256: str
    notBefore: datetime
    notAfter: datetime

    @property
    def serialHex(self) -> str:
        """
        The serial number in upper-case hex, padded to whole bytes, as
        C{openssl x509 -serial} prints it.
        """
        text = f"{self.serialNumber:X}"
        return text.zfill(len(text) + len(text) % 2)

    @classmethod
    def fromCertificate(cls, certificate: x509.Certificate) -> CertificateInfo:
        """
        Describe C{certificate}.

        The description is read from a copy: the certificate object keeps the
        subject and extensions it parsed, about 1.6 KiB that a store of many
        certificates would carry for each.
        """
        return cls._fromScratchCopy(
            x509.load_der_x509_certificate(
                certificate.public_bytes(serialization.Encoding.DER)
            )
        )

    @classmethod
    def _fromScratchCopy(cls, certificate: x509.Certificate) -> CertificateInfo:
        """
        Describe C{certificate}, a copy that will be thrown away (reading it
        makes it bigger).
        """
        return cls(
            subject=escapeControls(certificate.subject.rfc4514_string()),
            subjectAltNames=_subjectAltNames(certificate),
            serialNumber=certificate.serial_number,
            fingerprintSHA256=certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
            notBefore=certificate.not_valid_before_utc,
            notAfter=certificate.not_valid_after_utc,
        )


@dataclass(frozen=True, eq=False)
class Credentials:
    """
    A checked, matching set of certificate, key, chain and client CAs.

    @ivar leaf: The certificate presented to clients.
    @ivar privateKey: Its private key (checked to match C{leaf}).
    @ivar chain: Intermediate certificates sent after C{leaf}.
    @ivar clientCAs: Every CA trusted to issue client certificates; empty
        when client certificates are not asked for.
    @ivar digest: See L{FileContents.digest}.
    @ivar info: A description of C{leaf}.
    @ivar openSSLClientCAs: C{clientCAs} as pyOpenSSL objects, converted
        once while checking that OpenSSL reads them, for building contexts.
    """

    leaf: x509.Certificate
    privateKey: ServableKey
    chain: tuple[x509.Certificate, ...]
    clientCAs: tuple[x509.Certificate, ...]
    digest: bytes
    info: CertificateInfo
    openSSLClientCAs: tuple[crypto.X509, ...] = ()

    def __repr__(self) -> str:
        # Never let a repr (in a traceback, a log) carry the key.
        return f"<Credentials {self.info.subject} serial={self.info.serialHex}>"


def absolutePath(path: str) -> str:
    """
    C{path} made absolute against the current working directory.

    @raise TypeError: If C{path} is not text.
    """
    if not isinstance(path, str):
        raise TypeError(f"file names must be str, not {type(path).__name__}")
    return os.path.abspath(path)


def optionalAbsolutePath(path: str | None) -> str | None:
    """
    L{absolutePath}, passing L{None} through.
    """
    return None if path is None else absolutePath(path)


def checkPassphrase(passphrase: object) -> bytes | None:
    """
    Refuse a passphrase that is not bytes, with a message saying so.

    @raise TypeError: If C{passphrase} is neither bytes nor L{None}.
    """
    if passphrase is None or isinstance(passphrase, bytes):
        return passphrase
    raise TypeError(
        f"passphrase must be bytes (e.g. b'secret' or text.encode()),"
        f" not {type(passphrase).__name__}"
    )


def readCredentialFiles(
    files: CredentialFiles, passphrase: bytes | None = None
) -> FileContents:
    """
    Read every file named by C{files}.

    @param passphrase: An in-memory passphrase; it is mixed into the digest so
        that changing it counts as a change.

    @raise CredentialError: If any file cannot be read.
    """
    contents: dict[str, bytes] = {}
    digest = hashlib.sha256()
    for path in files.paths():
        data = readFile(path)
        contents[path] = data
        digest.update(hashlib.sha256(os.fsencode(path)).digest())
        digest.update(hashlib.sha256(data).digest())
    if passphrase is not None:
        digest.update(b"passphrase:" + hashlib.sha256(passphrase).digest())
    return FileContents(files=files, contents=contents, digest=digest.digest())


def parseCredentialFiles(
    read: FileContents, passphrase: bytes | None = None
) -> Credentials:
    """
    Parse and cross-check what L{readCredentialFiles} read.

    @param passphrase: Decrypts the key, unless the files name a passphrase
        file, which then wins.

    @raise CredentialError: Naming the file at fault and the reason.
    """
    try:
        return _parseCredentialFiles(read, passphrase)
    except CredentialError:
        raise
    except Exception as e:
        # A parser raised what none of the checks expected.  The contract is
        # a CredentialError for any bad file; the library's message is left
        # out, as it could quote the file.
        raise CredentialError(
            read.files.certificateFile,
            f"could not be parsed ({type(e).__name__})",
        ) from None


def _parseCredentialFiles(read: FileContents, passphrase: bytes | None) -> Credentials:
    files = read.files
    if files.passphraseFile is not None:
        passphrase = _passphraseFrom(files.passphraseFile, read.contents)

    certificates = certificatesIn(
        files.certificateFile,
        read.contents[files.certificateFile],
        "certificate",
        allowKeys=True,
    )
    leaf, chain = certificates[0], list(certificates[1:])
    # Before the key is even read: a leaf whose key is too small for OpenSSL
    # to serve, or too large to use cheaply, is refused for what it is.
    problem = keySizeProblem(leaf.public_key(), servable=True)
    if problem is not None:
        raise CredentialError(files.certificateFile, f"certificate 1: {problem}")
    # Names and extensions were read when the certificate was (a malformed
    # one is refused there).
    info = CertificateInfo.fromCertificate(leaf)
    if files.extraChainFile is not None:
        chain.extend(
            certificatesIn(
                files.extraChainFile,
                read.contents[files.extraChainFile],
                "chain certificate",
            )
        )

    privateKey = _privateKeyIn(
        files.privateKeyFile, read.contents[files.privateKeyFile], passphrase
    )
    keySPKI = _spki(privateKey.public_key())
    if keySPKI != _spki(leaf.public_key()):
        for number, other in enumerate(chain, start=2):
            if _spki(other.public_key()) == keySPKI:
                raise CredentialError(
                    files.certificateFile,
                    f"the private key belongs to certificate {number} of the"
                    " chain, not to the first: put the leaf certificate first",
                )
        raise CredentialError(
            files.privateKeyFile,
            f"private key does not match the certificate in {files.certificateFile}"
            f" (subject {quoted(leaf.subject.rfc4514_string())})",
        )

    _proveKeyWorks(files.privateKeyFile, privateKey, leaf)

    clientCAs: list[x509.Certificate] = []
    openSSLClientCAs: list[crypto.X509] = []
    if files.clientCAFile is not None:
        clientCAs, openSSLClientCAs = certificatesWithOpenSSLIn(
            files.clientCAFile, read.contents[files.clientCAFile], "CA certificate"
        )

    return Credentials(
        leaf=leaf,
        privateKey=privateKey,
        chain=tuple(chain),
        clientCAs=tuple(clientCAs),
        openSSLClientCAs=tuple(openSSLClientCAs),
        digest=read.digest,
        info=info,
    )


def utcNow() -> datetime:
    """
    The current time, timezone-aware, for validity checks.
    """
    return datetime.now(timezone.utc)


def acceptValidity(
    path: str, new: CertificateInfo, served: CertificateInfo | None, now: datetime
) -> str | None:
    """
    Decide whether a certificate may replace the one in use, as far as its
    validity period goes.

    A certificate that is not valid now is refused while the one in use
    (C{served}; L{None} at start-up) is valid.  When that one is no longer
    valid either, a certificate that expires later is accepted, since it is
    no worse, and its problem is returned for the caller to warn about.

    @return: L{None} if C{new} is valid now, else the problem it has.
    @raise ValidityRefusal: If C{new} is refused (a L{CredentialError} that
        depends on the time, not only on the bytes).
    """
    problem = validityProblem(new, now)
    if problem is None:
        return None
    if (
        served is not None
        and validityProblem(served, now) is not None
        and new.notAfter > served.notAfter
    ):
        return problem
    raise ValidityRefusal(path, problem)


def validityProblem(info: CertificateInfo, now: datetime) -> str | None:
    """
    Say why a certificate is not valid at C{now}, or return L{None}.
    """
    if now > info.notAfter:
        return f"certificate expired on {info.notAfter.isoformat()}"
    if now < info.notBefore:
        return f"certificate is not valid until {info.notBefore.isoformat()}"
    return None


def readFile(path: str) -> bytes:
    """
    Read a credential file, refusing anything that is not a regular file.

    The file is opened without blocking and checked with C{fstat} before it
    is read, so a FIFO or a device put where a certificate should be is
    refused instead of blocking the reactor forever.

    @raise CredentialError: If the file cannot be read.
    """
    if "\0" in path:
        raise CredentialError(path, "file name contains a NUL character")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CredentialError(path, "file not found") from None
    except PermissionError:
        raise CredentialError(path, "permission denied") from None
    except OSError as e:
        raise CredentialError(path, f"cannot read: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise CredentialError(path, "is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise CredentialError(path, "is not a regular file")
        chunks = []
        size = 0
        while size <= _MAX_FILE_SIZE:
            chunk = os.read(fd, _MAX_FILE_SIZE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise CredentialError(path, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > _MAX_FILE_SIZE:
        raise CredentialError(
            path, f"file is larger than {_MAX_FILE_SIZE} bytes; not a PEM file?"
        )
    return b"".join(chunks)


def _pemBlocks(path: str, data: bytes) -> list[tuple[bytes, bytes]]:
    """
    Split C{data} into (label, block) pairs, refusing truncated blocks.
    """
    return list(_iterPemBlocks(path, data))


def _iterPemBlocks(path: str, data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """
    L{_pemBlocks}, one block at a time, so that a caller refusing the first
    block of a file of tens of thousands does not split all of them first.
    """
    if not data.strip():
        raise CredentialError(path, "file is empty")
    truncated = CredentialError(
        path, "truncated PEM data: a BEGIN line has no matching END line"
    )
    count = 0
    search = _PEM_BEGIN.search
    begin = search(data)
    while begin is not None:
        if begin.group(2) is None:
            # Something follows the BEGIN line's dashes on the same line.
            raise truncated
        label = begin.group(1)
        endLine = b"-----END " + label + b"-----"
        # One search per BEGIN line, and a failed one ends the split: a file
        # of BEGIN lines without END lines is refused after one pass.
        end = data.find(endLine, begin.end())
        if end < 0:
            raise truncated
        stop = end + len(endLine)
        count += 1
        yield label, data[begin.start() : stop]
        begin = search(data, stop)
    if len(_PEM_BEGIN.findall(data)) != count:
        # A BEGIN line inside a block: that block's own END line came first.
        raise truncated
    if not count:
        if data[:1] == b"\x30":
            # An ASN.1 SEQUENCE: most likely a DER certificate or key.
            raise CredentialError(
                path, "no PEM data found: looks like DER, which is not supported"
            )
        raise CredentialError(path, "no PEM data found: no -----BEGIN line")


def certificatesIn(
    path: str, data: bytes, what: str, allowKeys: bool = False
) -> list[x509.Certificate]:
    """
    L{certificatesWithOpenSSLIn}, without the pyOpenSSL objects.
    """
    return certificatesWithOpenSSLIn(path, data, what, allowKeys)[0]


def certificatesWithOpenSSLIn(
    path: str, data: bytes, what: str, allowKeys: bool = False
) -> tuple[list[x509.Certificate], list[crypto.X509]]:
    """
    Parse every certificate in C{data}; there must be at least one.

    Any other kind of PEM block is refused rather than skipped, so that a
    bundle is never silently cut short; only a certificate file may also hold
    the key (C{allowKeys}), as in a combined PEM file.

    Each certificate is also read by OpenSSL, which is stricter than
    cryptography in places (string types in names), so that what OpenSSL
    would refuse when a context is built is refused here, naming the block.
    Contexts are built from the pyOpenSSL objects this returns, so that a
    bundle of thousands of CAs is converted once, not twice.

    @param what: What the certificates are, for messages.
    @return: The certificates, and the same as pyOpenSSL objects.
    @raise CredentialError: Naming the file and the block at fault.
    """
    certificates = []
    openSSLCertificates = []
    labels = set()
    for number, (label, block) in enumerate(_iterPemBlocks(path, data), start=1):
        labels.add(label)
        if label not in _CERTIFICATE_LABELS:
            if allowKeys and label in _KEY_FILE_LABELS:
                continue
            raise CredentialError(path, _unexpectedBlock(number, label, what))
        certificate, openSSLCertificate = _certificateIn(path, number, block)
        certificates.append(certificate)
        openSSLCertificates.append(openSSLCertificate)
    if not certificates:
        if labels & _KEY_LABELS:
            raise CredentialError(path, f"holds a private key but no {what}")
        raise CredentialError(path, f"no {what} found")
    return certificates, openSSLCertificates


def _certificateIn(
    path: str, number: int, block: bytes
) -> tuple[x509.Certificate, crypto.X509]:
    """
    Parse one certificate and read now what cryptography would otherwise
    parse later, so that a malformed field is refused here, naming the
    block, rather than raising some other exception in the middle of a
    reload.
    """
    try:
        certificate = x509.load_pem_x509_certificate(block)
        publicKey = certificate.public_key()
        openSSLCertificate = crypto.X509.from_cryptography(certificate)
    except x509.InvalidVersion:
        raise CredentialError(
            path, f"PEM block {number} is a certificate of an unknown X.509 version"
        ) from None
    except UnsupportedAlgorithm:
        raise CredentialError(
            path, f"PEM block {number} is a certificate with an unsupported key type"
        ) from None
    except crypto.Error:
        raise CredentialError(
            path, f"PEM block {number} is a certificate OpenSSL cannot read"
        ) from None
    except ValueError:
        raise CredentialError(
            path, f"PEM block {number} is not a valid certificate"
        ) from None
    try:
        # cryptography parses names and extensions only when they are read:
        # read them on a copy (the kept object stays lean), so that a field
        # it refuses (a BasicConstraints flag encoded as 0x01, a repeated
        # extension) is refused now, naming the file, not raised later by a
        # status page or a metric.
        scratch = x509.load_pem_x509_certificate(block)
        scratch.subject.rfc4514_string()
        scratch.issuer.rfc4514_string()
        scratch.extensions  # noqa: B018
    except (ValueError, x509.DuplicateExtension):
        raise CredentialError(
            path, f"PEM block {number} has a malformed subject, issuer or extension"
        ) from None
    problem = keySizeProblem(publicKey, servable=False)
    if problem is not None:
        raise CredentialError(path, f"PEM block {number}: {problem}")
    return certificate, openSSLCertificate


def _unexpectedBlock(number: int, label: bytes, what: str) -> str:
    name = label.decode("ascii")
    if label in _KEY_LABELS:
        return (
            f"PEM block {number} is a private key, which does not belong with {what}s"
        )
    if label == b"TRUSTED CERTIFICATE":
        return (
            f"PEM block {number} is an OpenSSL TRUSTED CERTIFICATE; convert it"
            " to a plain CERTIFICATE with 'openssl x509'"
        )
    return f"PEM block {number} is a {name} block, not a {what}"


def _privateKeyIn(path: str, data: bytes, passphrase: bytes | None) -> ServableKey:
    """
    Parse the single private key in C{data}.

    Error messages are written here rather than passed through, so that no
    library message can ever echo key bytes.
    """
    blocks = _pemBlocks(path, data)
    keyBlocks = [block for label, block in blocks if label in _KEY_LABELS]
    if not keyBlocks:
        if any(label == b"OPENSSH PRIVATE KEY" for label, _ in blocks):
            raise CredentialError(
                path, "OpenSSH key format is not supported; convert it to PKCS#8"
            )
        if any(label in _CERTIFICATE_LABELS for label, _ in blocks):
            raise CredentialError(path, "holds a certificate but no private key")
        raise CredentialError(path, "no private key found")
    if len(keyBlocks) > 1:
        raise CredentialError(
            path, f"holds {len(keyBlocks)} private keys; expected exactly one"
        )
    if keyBlocks[0].startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"):
        checkKeyDerivation(path, keyBlocks[0])
    try:
        key = serialization.load_pem_private_key(
            keyBlocks[0], password=passphrase, unsafe_skip_rsa_key_validation=True
        )
    except TypeError:
        if passphrase is None:
            raise CredentialError(
                path, "private key is encrypted and no passphrase was given"
            ) from None
        # A passphrase for a key that is not encrypted: harmless, use the key.
        try:
            key = serialization.load_pem_private_key(
                keyBlocks[0], password=None, unsafe_skip_rsa_key_validation=True
            )
        except (TypeError, ValueError, UnsupportedAlgorithm):
            raise CredentialError(path, "private key could not be parsed") from None
    except ValueError:
        if passphrase is not None and b"ENCRYPTED" in keyBlocks[0][:200]:
            raise CredentialError(
                path, "private key could not be decrypted: wrong passphrase?"
            ) from None
        raise CredentialError(
            path, "private key could not be parsed (corrupt or truncated?)"
        ) from None
    except UnsupportedAlgorithm:
        raise CredentialError(
            path, "private key uses an unsupported algorithm"
        ) from None
    except Exception as e:
        raise CredentialError(
            path, f"private key could not be parsed ({type(e).__name__})"
        ) from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise CredentialError(
            path,
            f"{type(key).__name__} keys cannot serve TLS; use RSA, ECDSA or Ed25519",
        )
    # Before anything computes with the key: a huge RSA key takes seconds
    # per operation.
    problem = keySizeProblem(key, servable=True)
    if problem is not None:
        raise CredentialError(path, f"private key: {problem}")
    return key


def _proveKeyWorks(path: str, key: ServableKey, leaf: x509.Certificate) -> None:
    """
    Check the private half of C{key}, which matching public halves do not.

    RSA keys are loaded without cryptography's full key validation, which
    costs hundreds of milliseconds for a 4096-bit key (its primality tests)
    and would block the reactor on every reload.  Instead the private values
    are checked against each other and the modulus with a few big-integer
    operations (a flipped bit anywhere in them breaks one of these
    equations), and one signature made with the key must verify with the
    certificate's public key.
    """
    challenge = b"txtlsreload key check"
    try:
        if isinstance(key, rsa.RSAPrivateKey):
            if not _rsaValuesAgree(key.private_numbers()):
                raise ValueError("inconsistent RSA values")
            pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
            signature = key.sign(challenge, pss, hashes.SHA256())
            publicRSA = leaf.public_key()
            assert isinstance(publicRSA, rsa.RSAPublicKey)
            publicRSA.verify(signature, challenge, pss, hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            # The public point computed from the private scalar must be the
            # certificate's: a third of the cost of a signature and its
            # verification, and it leaves no precomputed tables behind on
            # the certificate (about 2 KiB each, verifying does).
            derived = ec.derive_private_key(
                key.private_numbers().private_value, key.curve
            ).public_key()
            if _spki(derived) != _spki(leaf.public_key()):
                raise ValueError("the private value does not give the public key")
    except (InvalidSignature, ValueError):
        raise CredentialError(
            path, "private key is damaged: its private values do not agree"
        ) from None


def _rsaValuesAgree(numbers: rsa.RSAPrivateNumbers) -> bool:
    p, q, d = numbers.p, numbers.q, numbers.d
    e, n = numbers.public_numbers.e, numbers.public_numbers.n
    return (
        p > 1
        and q > 1
        and p * q == n
        and numbers.dmp1 == d % (p - 1)
        and numbers.dmq1 == d % (q - 1)
        and (numbers.iqmp * q) % p == 1
        and (e * d) % (p - 1) == 1
        and (e * d) % (q - 1) == 1
    )


def _passphraseFrom(path: str, contents: dict[str, bytes]) -> bytes:
    lines = contents[path].splitlines()
    if not lines or not lines[0]:
        raise CredentialError(path, "passphrase file is empty")
    return lines[0]


def _spki(publicKey: CertificatePublicKeyTypes) -> bytes:
    return publicKey.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _subjectAltNames(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = []
    for name in extension.value:
        value: object = name.value
        if isinstance(value, IPv4Address | IPv6Address):
            names.append(f"IP:{value}")
        elif isinstance(name, x509.DNSName):
            names.append(f"DNS:{value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            names.append(f"URI:{value}")
        elif isinstance(name, x509.RFC822Name):
            names.append(f"email:{value}")
    return tuple(escapeControls(name) for name in names)
