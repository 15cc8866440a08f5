# -*- test-case-name: tests.test_hello -*-
"""
The self-signed development certificate C{twistd tlshello} serves when it is
given no certificate of its own.

Made once, reused while it can serve, and replaced (with a log line saying
why) when it cannot: corrupt, mismatched, expired or about to expire.

The directory holds a private key, in a place (the working directory) that
may be shared, so nothing in it is trusted blindly.  The directory must be a
real directory (not a link), owned by us and closed to everybody else; the
files in it must be regular files (not links) owned by us, the key readable
by us alone.  Anything else is refused with a message saying what to do,
rather than silently reused or repaired: it means someone else had, or still
has, a hand on the key.  Once the directory is known to be ours and private,
nobody else can put anything in it, so what was checked stays true.  New
files are written under a temporary name created exclusively (C{O_EXCL},
C{O_NOFOLLOW}: a file or link already there is never opened, let alone
written through) and renamed into place, all relative to the directory's
descriptor.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.logger import Logger

from ._errors import CredentialError, escapeControls
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

# How often to try another temporary name when one is taken.
_TEMPORARY_ATTEMPTS = 10

_CERTIFICATE = "cert.pem"
_KEY = "key.pem"


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
    @raise CredentialError: If the directory or a file in it is not safe to
        use: a symbolic link, not a directory or regular file, owned by
        another user, or open to others (the directory at all, the key for
        reading, the certificate for writing).  The message names the path
        and what to do.
    @raise OSError: If the directory cannot be created or written.
    """
    directory = os.path.abspath(directory)
    certificateFile = os.path.join(directory, _CERTIFICATE)
    privateKeyFile = os.path.join(directory, _KEY)
    current = now()
    descriptor = _openPrivateDirectory(directory)
    try:
        # The certificate only needs protecting from writers; the key from
        # readers too.
        found = [
            _checkFile(descriptor, directory, _CERTIFICATE, 0o022, "chmod go-w"),
            _checkFile(descriptor, directory, _KEY, 0o077, "chmod 600"),
        ]
        if any(found):
            problem, notAfter = _reusable(certificateFile, privateKeyFile, current)
            if problem is None:
                return DevelopmentCertificate(
                    certificateFile, privateKeyFile, notAfter, created=False
                )
            _log.warn(
                "Replacing the development certificate {path}: {problem}",
                path=escapeControls(certificateFile),
                problem=problem,
            )
        notAfter = _writeDevelopmentCertificate(descriptor, directory, current)
    finally:
        os.close(descriptor)
    _log.info(
        "Created a self-signed development certificate in {path}",
        path=escapeControls(directory),
    )
    return DevelopmentCertificate(
        certificateFile, privateKeyFile, notAfter, created=True
    )


def _openPrivateDirectory(directory: str) -> int:
    """
    Create C{directory} (mode 0700) if it is missing, and open it without
    following a link.

    @return: A descriptor of the directory, checked to be ours and closed to
        everybody else.
    @raise CredentialError: If it is not.
    """
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        descriptor = os.open(directory, flags)
    except OSError:
        # Say which of the usual suspects it is; lstat does not follow links.
        status = os.lstat(directory)
        if stat.S_ISLNK(status.st_mode):
            raise CredentialError(
                directory,
                "is a symbolic link; the development certificate's directory"
                " must be a real directory: remove the link",
            ) from None
        if not stat.S_ISDIR(status.st_mode):
            raise CredentialError(
                directory,
                "is not a directory: remove it or start tlshello elsewhere",
            ) from None
        # Another user's private directory: say whose, rather than EACCES.
        _checkOwnerAndMode(directory, status, 0o077, "chmod 700")
        raise
    try:
        _checkOwnerAndMode(directory, os.fstat(descriptor), 0o077, "chmod 700")
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _checkFile(
    descriptor: int, directory: str, name: str, forbidden: int, fix: str
) -> bool:
    """
    Check C{name} in the directory open as C{descriptor} without following a
    link: a regular file owned by us, with none of the C{forbidden} mode bits.

    @return: Whether it exists.
    @raise CredentialError: If it exists and is not safe to use.
    """
    path = os.path.join(directory, name)
    try:
        status = os.stat(name, dir_fd=descriptor, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(status.st_mode):
        raise CredentialError(
            path,
            "is a symbolic link; the development certificate and key must be"
            " regular files: remove the link",
        )
    if not stat.S_ISREG(status.st_mode):
        raise CredentialError(path, "is not a regular file: remove it")
    _checkOwnerAndMode(path, status, forbidden, fix)
    return True


def _checkOwnerAndMode(
    path: str, status: os.stat_result, forbidden: int, fix: str
) -> None:
    """
    Refuse what another user owns, or what has any C{forbidden} mode bit.

    @param fix: The command that would take the forbidden bits away.
    """
    if status.st_uid != os.geteuid():
        raise CredentialError(
            path,
            f"is owned by uid {status.st_uid}, not by this user (uid"
            f" {os.geteuid()}): remove the directory, or start tlshello as its"
            " owner",
        )
    mode = stat.S_IMODE(status.st_mode)
    if mode & forbidden:
        who = "read or write" if forbidden & 0o044 else "write"
        raise CredentialError(
            path,
            f"others can {who} it (mode {mode:04o}): run {fix} {path}, or"
            " remove the directory to make a new certificate",
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
    descriptor: int, directory: str, now: datetime
) -> datetime:
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
        descriptor,
        directory,
        _KEY,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _writeAtomically(
        descriptor,
        directory,
        _CERTIFICATE,
        certificate.public_bytes(serialization.Encoding.PEM),
        0o644,
    )
    return notAfter


def _writeAtomically(
    descriptor: int, directory: str, name: str, data: bytes, mode: int
) -> None:
    """
    Write C{data} to a new file with C{mode} from the start (a key must never
    be readable by others, not even briefly), then rename it over C{name} in
    the directory open as C{descriptor}.

    The new file is created exclusively and without following links: a file
    or link already at the temporary name is left alone and another name is
    tried, so nothing is ever written through a link planted there.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(_TEMPORARY_ATTEMPTS):
        suffix = "" if attempt == 0 else f".{secrets.token_hex(8)}"
        temporary = f"{name}.{os.getpid()}{suffix}.tmp"
        try:
            fd = os.open(temporary, flags, mode, dir_fd=descriptor)
        except FileExistsError:
            continue
        break
    else:
        raise CredentialError(
            os.path.join(directory, name),
            f"could not create a temporary file beside it in"
            f" {_TEMPORARY_ATTEMPTS} tries: remove the *.tmp files there",
        )
    try:
        with os.fdopen(fd, "wb") as f:
            # The umask may have taken bits away; put back exactly these.
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(temporary, name, src_dir_fd=descriptor, dst_dir_fd=descriptor)
    except BaseException:
        # Only this file, which this call created, is removed.
        os.unlink(temporary, dir_fd=descriptor)
        raise
