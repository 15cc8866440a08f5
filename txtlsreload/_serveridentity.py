# -*- test-case-name: tests.test_server_identity -*-
"""
Checking that a server's certificate is valid for the name we connect to.

Every client path of txtlsreload (L{ReloadingClientContextFactory}, the
C{tlsreload:} client endpoint, L{ReloadingPolicyForHTTPS}) makes its
connections through L{VerifyingClientCreator}, which replaces the verify
callback Twisted's C{optionsForClientTLS} installs with the one here.

Why not Twisted's own check: since Twisted 26.4 its callback catches only
C{service_identity}'s C{VerificationError}.  A certificate with no
subjectAltName, or with one C{service_identity} refuses as malformed (C{*},
C{*.com}, C{*.*.example.com}, an IP address written as a DNS name), raises
C{CertificateError} instead, which Twisted logs and then returns OpenSSL's
verdict on the chain, I{true}: the connection goes ahead for any name.  Here
any exception from the name check refuses the handshake.  Fail closed.

The common name is never looked at: a certificate without subjectAltNames
is valid for no name, as in every current browser and TLS library.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import idna
from cryptography import x509
from OpenSSL import SSL
from OpenSSL.crypto import X509
from service_identity import VerificationError
from service_identity.cryptography import extract_patterns
from service_identity.exceptions import Mismatch
from service_identity.hazmat import (
    DNS_ID,
    IPAddress_ID,
    ServiceID,
    verify_service_identity,
)
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ._errors import escapeControls, quoted, shortened

__all__ = ["ServerIdentity", "ServerIdentityError", "VerifyingClientCreator"]

# How many of a refused certificate's names an error lists.
_NAMES_SHOWN = 5

# What a certificate says must not rewrite a terminal or a log line: every
# name and subject in a message goes through escapeControls (see _errors).


class ServerIdentityError(VerificationError):
    """
    The server's certificate, although issued by a trusted CA, is not valid
    for the name or address the client connected to, or its names could not
    be checked at all.

    A connection refused for this reason fails with this error (for an
    L{Agent <twisted.web.client.Agent>}, inside C{ResponseNeverReceived}).
    It is a C{service_identity.VerificationError}, so code that catches
    Twisted's own name-mismatch error catches this one too.

    @ivar hostname: The name (or IP address) that was checked.
    @ivar message: What was wrong, naming the certificate's subject and its
        names.
    """

    def __init__(
        self, hostname: str, message: str, errors: Sequence[Mismatch] = ()
    ) -> None:
        """
        @param hostname: See C{hostname}.
        @param message: See C{message}.
        @param errors: C{service_identity}'s mismatches, when the names could
            be read but none matched (C{DNSMismatch}, C{IPAddressMismatch}).
        """
        super().__init__(errors=list(errors))
        self.hostname = hostname
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ServerIdentityError({self.message!r})"


@dataclass(frozen=True)
class ServerIdentity:
    """
    The name or address a server's certificate must be valid for.

    @ivar hostname: The name as it is checked and sent in SNI: lower case,
        IDNA (A-labels), no trailing dot; or an IP address in its compressed
        form.
    @ivar isIPAddress: Whether C{hostname} is an IP address (checked against
        the certificate's IP address entries, and never sent as SNI).
    """

    hostname: str
    isIPAddress: bool

    @classmethod
    def parse(cls, hostname: str) -> ServerIdentity:
        """
        Normalize what a user wrote: a bracketed IPv6 literal as in URLs, a
        trailing dot (a fully qualified name), upper case, and Unicode
        (internationalized) names.

        @raise TypeError: If C{hostname} is not text.
        @raise ValueError: If it is neither a DNS name nor an IP address.
        """
        if not isinstance(hostname, str):
            raise TypeError(
                f"hostname must be text (str), not {type(hostname).__name__}"
            )
        text = hostname.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        if not text:
            raise ValueError("hostname must not be empty")
        try:
            return cls(str(ipaddress.ip_address(text)), isIPAddress=True)
        except ValueError:
            pass
        if text.endswith("."):
            text = text[:-1]
        try:
            # IDNA 2008 with UTS 46 mapping, as Twisted (and browsers) do:
            # refuses what is not a host name (spaces, a wildcard, a leading
            # hyphen, an empty label); DNS_ID then refuses what only looks
            # like one (999.1.1.1).
            ascii = idna.encode(text.lower(), uts46=True).decode("ascii")
            DNS_ID(ascii)
        except (ValueError, UnicodeError, idna.IDNAError) as e:
            raise ValueError(
                f"{quoted(hostname)} is neither a valid DNS name nor an IP"
                f" address ({shortened(str(e))})"
            ) from None
        return cls(ascii, isIPAddress=False)

    @property
    def serviceID(self) -> ServiceID:
        """
        What C{service_identity} matches the certificate's names against.
        """
        if self.isIPAddress:
            return IPAddress_ID(self.hostname)
        return DNS_ID(self.hostname)

    def check(self, certificate: x509.Certificate) -> ServerIdentityError | None:
        """
        Why C{certificate} is not valid for this name, or L{None} if it is.

        Never raises: a certificate that cannot even be read is valid for no
        name.
        """
        mismatches: Sequence[Mismatch] = ()
        try:
            patterns = extract_patterns(certificate)
            verify_service_identity(patterns, [self.serviceID], [])
        except VerificationError as e:
            mismatches = e.errors
            problem = f"its names are {_namesOf(certificate)}"
        except Exception as e:
            problem = _unusableNames(certificate, e)
        else:
            return None
        return ServerIdentityError(
            self.hostname,
            f"the server's certificate {_subjectOf(certificate)} is not valid"
            f" for {self.hostname}: {problem}",
            mismatches,
        )


def _unusableNames(certificate: x509.Certificate, error: Exception) -> str:
    """
    Say why the names of C{certificate} could not be checked at all.
    """
    try:
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return (
            "it has no subjectAltName, so it is valid for no name (the common"
            " name is not checked)"
        )
    except Exception:
        return "its extensions cannot be parsed"
    return (
        f"it has a subjectAltName no client may accept ({escapeControls(str(error))});"
        f" its names are {_namesOf(certificate)}"
    )


def _namesOf(certificate: x509.Certificate) -> str:
    """
    The DNS names and IP addresses of C{certificate}, shortened for a message.
    """
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        names = [
            str(name)
            for name in extension.get_values_for_type(x509.DNSName)
            + extension.get_values_for_type(x509.IPAddress)
        ]
    except Exception:
        return "unreadable"
    if not names:
        return "none (no DNS name or IP address)"
    shown = ", ".join(escapeControls(name) for name in names[:_NAMES_SHOWN])
    if len(names) > _NAMES_SHOWN:
        shown += f" and {len(names) - _NAMES_SHOWN} more"
    return shown


def _subjectOf(certificate: x509.Certificate) -> str:
    try:
        return escapeControls(certificate.subject.rfc4514_string())
    except Exception:
        return "with an unreadable subject"


@implementer(IOpenSSLClientConnectionCreator)
class VerifyingClientCreator:
    """
    Twisted's client options, with the server-name check owned here.

    Everything else (SNI, ALPN, trust roots, client certificate, protocol
    versions and ciphers) stays as Twisted's C{optionsForClientTLS} set it
    up; only the connection's verify callback is replaced.
    """

    def __init__(
        self, options: IOpenSSLClientConnectionCreator, identity: ServerIdentity
    ) -> None:
        """
        @param options: What C{optionsForClientTLS} returned for the same
            name.
        @param identity: The name the server's certificate must be valid for.
        """
        self._options = options
        self._identity = identity

    def clientConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        """
        Make Twisted's connection, then set our verify callback on it.
        """
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        connection.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
            _verifyCallback(tlsProtocol, self._identity),
        )
        return connection


def _verifyCallback(
    tlsProtocol: TLSMemoryBIOProtocol, identity: ServerIdentity
) -> Callable[[SSL.Connection, X509, int, int, int], bool]:
    """
    An OpenSSL verify callback that accepts the server's certificate only if
    its chain verified I{and} it is valid for C{identity}.

    The callback must never raise (OpenSSL would lose the exception), so
    every failure becomes a refusal, reported to the protocol as a
    L{ServerIdentityError}.
    """
    # Dropped after the leaf was checked, so that the connection (which
    # holds this callback) does not keep the protocol alive in a cycle.
    protocols = [tlsProtocol]

    def verify(
        connection: SSL.Connection, certificate: X509, error: int, depth: int, ok: int
    ) -> bool:
        if depth != 0 or not ok:
            # OpenSSL's verdict on the chain stands; the name is checked on
            # the leaf, which comes last (depth 0).
            return bool(ok)
        try:
            refusal = identity.check(certificate.to_cryptography())
        except Exception as e:
            refusal = ServerIdentityError(
                identity.hostname,
                f"the server's certificate cannot be read ({type(e).__name__})",
            )
        if refusal is None:
            protocols.clear()
            return True
        while protocols:
            protocols.pop().failVerification(  # type: ignore[no-untyped-call]
                Failure(refusal)  # type: ignore[no-untyped-call]
            )
        return False

    return verify
