# -*- test-case-name: tests.test_hello -*-
"""
The self-signed development certificate C{twistd tlshello} serves when it is
given no certificate of its own.

Made once, reused while it can serve, and replaced (with a log line saying
why) when it cannot: corrupt, mismatched, expired or about to expire.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.logger import Logger

from ._errors import CredentialError
from ._loading import (
    CredentialFiles,
    parseCredentialFiles,
    readCredentialFiles,
    utcNow,
)

__all__ = [
    "DEVELOPMENT_DIRECTORY",
    "DevelopmentCertificate",
    "ensureDevelopmentCertificate",
]

_log = Logger(namespace="tlshello")

# Relative to the directory tlshello is started in, so that each checkout or
# scratch directory gets its own and nothing is written to $HOME behind the
# user's back.  Resolved once, at start-up, before twistd changes directory.
DEVELOPMENT_DIRECTORY = "tlshello-dev"

_DEVELOPMENT_VALIDITY = timedelta(days=90)
# A certificate this close to its end is replaced at start-up, so that a
# server started today does not stop working tomorrow.
_RENEW_BEFORE = timedelta(days=1)


@dataclass(frozen=True)
class DevelopmentCertificate:
    """
    A self-signed certificate for C{localhost}, for trying tlshello out.

    @ivar certificateFile: The certificate; clients trust this file.
    @ivar privateKeyFile: Its key, readable by its owner only.
    @ivar notAfter: When it expires.
    @ivar created: C{True} if it was made just now, C{False} if reused.
    """

    certificateFile: str
    privateKeyFile: str
    notAfter: datetime
    created: bool


def ensureDevelopmentCertificate(
    directory: str, now: Callable[[], datetime] = utcNow
) -> DevelopmentCertificate:
    """
    Reuse the development certificate in C{directory}, or make one if there
    is none or it cannot serve (corrupt, unreadable, mismatched, expired or
    about to expire).

    The certificate is self-signed, ECDSA P-256, for C{localhost},
    C{127.0.0.1} and C{::1}, valid for 90 days.

    @param directory: Where C{cert.pem} and C{key.pem} live; created (mode
        0700) if missing.
    @param now: The wall clock, for tests.
    """
    directory = os.path.abspath(directory)
    certificateFile = os.path.join(directory, "cert.pem")
    privateKeyFile = os.path.join(directory, "key.pem")
    current = now()
    if os.path.lexists(certificateFile) or os.path.lexists(privateKeyFile):
        problem, notAfter = _reusable(certificateFile, privateKeyFile, current)
        if problem is None:
            return DevelopmentCertificate(
                certificateFile, privateKeyFile, notAfter, created=False
            )
        _log.warn(
            "Replacing the development certificate {path}: {problem}",
            path=certificateFile,
            problem=problem,
        )
    notAfter = _writeDevelopmentCertificate(
        directory, certificateFile, privateKeyFile, current
    )
    _log.info("Created a self-signed development certificate in {path}", path=directory)
    return DevelopmentCertificate(
        certificateFile, privateKeyFile, notAfter, created=True
    )


def _reusable(
    certificateFile: str, privateKeyFile: str, now: datetime
) -> tuple[str | None, datetime]:
    """
    @return: Why the files cannot be reused, or L{None}; and the
        certificate's end of validity, if it could be read.
    """
    files = CredentialFiles(
        certificateFile=certificateFile, privateKeyFile=privateKeyFile
    )
    try:
        info = parseCredentialFiles(readCredentialFiles(files)).info
    except CredentialError as e:
        return str(e), now
    if info.notBefore > now:
        return f"it is not valid until {info.notBefore.isoformat()}", info.notAfter
    if info.notAfter <= now:
        return f"it expired on {info.notAfter.isoformat()}", info.notAfter
    if info.notAfter - now < _RENEW_BEFORE:
        return f"it expires soon, on {info.notAfter.isoformat()}", info.notAfter
    return None, info.notAfter


def _writeDevelopmentCertificate(
    directory: str, certificateFile: str, privateKeyFile: str, now: datetime
) -> datetime:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, "txtlsreload tlshello development"
            ),
        ]
    )
    notAfter = (now + _DEVELOPMENT_VALIDITY).replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A little slack for clients whose clock is behind ours.
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(notAfter)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(IPv4Address("127.0.0.1")),
                    x509.IPAddress(IPv6Address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    # Key first: a reload that runs in between sees a mismatched pair and
    # keeps serving the old one, rather than a new certificate without its key.
    _writeAtomically(
        privateKeyFile,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _writeAtomically(
        certificateFile, certificate.public_bytes(serialization.Encoding.PEM), 0o644
    )
    return notAfter


def _writeAtomically(path: str, data: bytes, mode: int) -> None:
    """
    Write C{data} to a new file with C{mode} from the start (a key must never
    be readable by others, not even briefly), then rename it over C{path}.
    """
    temporary = f"{path}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
