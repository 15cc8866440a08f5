# -*- test-case-name: tests.test_client -*-
"""
What client credentials are made of, read and checked: the client side's
L{ReloadSide <txtlsreload._reloader.ReloadSide>}.

L{ClientFiles} reads a CA bundle (or uses the platform's trust store) and an
optional client certificate, key and passphrase file, parses and checks
them into a L{ClientMaterial} and words the logs and results of its
reloads; the shared L{Reloader <txtlsreload._reloader.Reloader>} decides
when, exactly as it does for a server certificate.
L{ReloadingClientCredentials <txtlsreload.ReloadingClientCredentials>} is
the public front that installs each new material into its creators.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger

from ._errors import CredentialError, escapeControls
from ._loading import (
    CertificateInfo,
    CredentialFiles,
    Credentials,
    FileContents,
    certificatesWithOpenSSLIn,
    parseCredentialFiles,
    readCredentialFiles,
    readFile,
)
from ._reloader import warnIfInvalid
from ._serveridentity import ServerIdentity, VerifyingClientCreator

__all__ = ["ClientFiles", "ClientMaterial", "ClientRead", "ClientReloadResult"]


@dataclass(frozen=True)
class ClientReloadResult:
    """
    The outcome of one reload of client credentials.

    @ivar succeeded: C{True} if the files were good (changed or not).
    @ivar changed: C{True} if new trust roots or a new client certificate are
        used from now on.
    @ivar clientCertificate: The client certificate in use after this reload
        (the new one on success, the old one otherwise), or L{None} when no
        client certificate is configured.
    @ivar trustedCAs: How many CA certificates are trusted after this reload,
        or L{None} when the platform's trust store is used.
    @ivar error: Why the reload was refused, if it was.
    @ivar initial: C{True} for the load at construction, which is not a
        reload: C{str()} then says "loaded", not "reloaded".
    """

    succeeded: bool
    changed: bool
    clientCertificate: CertificateInfo | None
    trustedCAs: int | None
    error: CredentialError | None = None
    initial: bool = False

    def __str__(self) -> str:
        trusting = (
            "the platform trust store"
            if self.trustedCAs is None
            else f"{self.trustedCAs} CA certificate(s)"
        )
        using = f"trusting {trusting}"
        if self.clientCertificate is not None:
            using += (
                f", client certificate serial {self.clientCertificate.serialHex}"
                f" (notAfter {self.clientCertificate.notAfter.isoformat()})"
            )
        if self.error is not None:
            return f"reload failed: {self.error}; still {using}"
        if self.initial:
            return f"loaded: {using}"
        if self.changed:
            return f"reloaded: now {using}"
        return f"unchanged: still {using}"


@dataclass(frozen=True, eq=False)
class ClientMaterial:
    """
    Everything client options are built from, swapped as one object.

    @ivar trustRoot: What verifies servers.
    @ivar caCertificates: The CA certificates in C{trustRoot}, or L{None} for
        the platform's trust store.
    @ivar credentials: The client certificate, its key and chain, if any.
    @ivar digest: Identifies the bytes this was parsed from.
    """

    # Twisted's IOpenSSLTrustRoot lives in a private module.
    trustRoot: Any
    caCertificates: tuple[x509.Certificate, ...] | None
    credentials: Credentials | None
    digest: bytes

    def certificateOptions(self) -> dict[str, Any]:
        """
        The client certificate as keyword arguments for L{CertificateOptions}.

        They are cryptography objects rather than the pyOpenSSL ones a
        L{PrivateCertificate <twisted.internet.ssl.PrivateCertificate>} would
        give: those are deprecated in C{use_certificate}, and this way the
        chain (intermediate CAs) is sent too.
        """
        if self.credentials is None:
            return {}
        return {
            "privateKey": self.credentials.privateKey,
            "certificate": self.credentials.leaf,
            "extraCertChain": list(self.credentials.chain),
        }

    def optionsFor(
        self, identity: ServerIdentity, acceptableProtocols: Sequence[bytes] | None
    ) -> IOpenSSLClientConnectionCreator:
        """
        Client options for the server C{identity} with this material: Twisted's
        (SNI, ALPN, TLS defaults), with our own check of the server's name.
        """
        return VerifyingClientCreator(
            optionsForClientTLS(
                identity.hostname,
                trustRoot=self.trustRoot,
                acceptableProtocols=acceptableProtocols,
                extraCertificateOptions=self.certificateOptions(),
            ),
            identity,
        )

    @property
    def clientCertificate(self) -> CertificateInfo | None:
        return None if self.credentials is None else self.credentials.info

    @property
    def trustedCAs(self) -> int | None:
        return None if self.caCertificates is None else len(self.caCertificates)


@dataclass(frozen=True, repr=False)
class ClientRead:
    """
    One reading of the client's files.

    It has no C{repr} of its own, so that error reporters that record a
    traceback's local variables (Sentry, C{pytest -l}) record none of the
    bytes.

    @ivar digest: Identifies every path and byte read.
    @ivar caData: The CA bundle's bytes, if one is named.
    @ivar client: The client certificate's files, if one is named.
    """

    digest: bytes
    caData: bytes | None
    client: FileContents | None


class ClientFiles:
    """
    The files client credentials are loaded from, and how they are read,
    checked and reported.

    @ivar caCertsFile: The CA bundle, made absolute; L{None} for the
        platform's trust store.
    @ivar clientFiles: The client certificate's files, if any.
    """

    _log = Logger()

    def __init__(
        self,
        caCertsFile: str | None,
        clientFiles: CredentialFiles | None,
        passphrase: bytes | None,
        now: Callable[[], datetime],
    ) -> None:
        self.caCertsFile = caCertsFile
        self.clientFiles = clientFiles
        self._passphrase = passphrase
        self._now = now

    def paths(self) -> list[str]:
        """
        Every file a reload reads: CA bundle, client certificate, key and
        passphrase file, without repeats.
        """
        paths = [] if self.caCertsFile is None else [self.caCertsFile]
        if self.clientFiles is not None:
            paths.extend(p for p in self.clientFiles.paths() if p not in paths)
        return paths

    def read(self) -> ClientRead:
        """
        Read every file and hash what was read.
        """
        digest = hashlib.sha256()
        caData = None
        if self.caCertsFile is not None:
            caData = readFile(self.caCertsFile)
            digest.update(b"ca:")
            digest.update(hashlib.sha256(os.fsencode(self.caCertsFile)).digest())
            digest.update(hashlib.sha256(caData).digest())
        clientRead = None
        if self.clientFiles is not None:
            clientRead = readCredentialFiles(self.clientFiles, self._passphrase)
            digest.update(b"client:" + clientRead.digest)
        return ClientRead(digest.digest(), caData, clientRead)

    # The ReloadSide.

    def unchanged(self, read: ClientRead, current: ClientMaterial) -> bool:
        return read.digest == current.digest

    def prepare(
        self, read: ClientRead, current: ClientMaterial | None
    ) -> ClientMaterial:
        """
        Parse and check what L{read} read, and prove that client options
        can be built from it before anything uses it.
        """
        caCertificates = None
        if self.caCertsFile is not None and read.caData is not None:
            certificates, openSSLCertificates = certificatesWithOpenSSLIn(
                self.caCertsFile, read.caData, "CA certificate"
            )
            caCertificates = tuple(certificates)
            trustRoot = trustRootFromCertificates(  # type: ignore[no-untyped-call]
                [Certificate(ca) for ca in openSSLCertificates]  # type: ignore[no-untyped-call]
            )
        else:
            trustRoot = platformTrust()  # type: ignore[no-untyped-call]
        credentials = None
        if self.clientFiles is not None and read.client is not None:
            credentials = parseCredentialFiles(read.client, self._passphrase)
            # Servers would refuse a client certificate that is not valid
            # now, unless the one in use is no better.
            warnIfInvalid(
                self._log,
                "Using client certificate {path} although {problem}: the one"
                " in use is no longer valid either",
                self.clientFiles.certificateFile,
                credentials.info,
                None if current is None else current.clientCertificate,
                self._now(),
            )
        material = ClientMaterial(
            trustRoot=trustRoot,
            caCertificates=caCertificates,
            credentials=credentials,
            digest=read.digest,
        )
        self._prove(material)
        return material

    def _prove(self, material: ClientMaterial) -> None:
        """
        Build one context from C{material}, the way every connection's options
        will, so that what OpenSSL refuses (a key too weak for its security
        level, say) is refused here and not on every later connection.
        """
        try:
            CertificateOptions(
                trustRoot=material.trustRoot, **material.certificateOptions()
            ).getContext()
        except SSL.Error as e:
            raise CredentialError(
                self._mainPath(), f"OpenSSL refused it: {e}"
            ) from None

    def _mainPath(self) -> str:
        """
        The file to blame for a problem no single file was found at fault
        for: the client certificate (what OpenSSL checks most), else the CA
        bundle.
        """
        if self.clientFiles is not None:
            return self.clientFiles.certificateFile
        return self.caCertsFile or "<platform trust store>"

    def blame(self, error: Exception) -> CredentialError:
        # Defence in depth: what OpenSSL refuses is turned into a
        # CredentialError when the material is proven, so nothing known
        # reaches here.
        return CredentialError(  # pragma: no cover
            self._mainPath(),
            f"could not build client TLS options: {type(error).__name__}: {error}",
        )

    def result(
        self, state: ClientMaterial, changed: bool, initial: bool = False
    ) -> ClientReloadResult:
        return ClientReloadResult(
            succeeded=True,
            changed=changed,
            clientCertificate=state.clientCertificate,
            trustedCAs=state.trustedCAs,
            initial=initial,
        )

    def refusal(
        self, error: CredentialError, current: ClientMaterial
    ) -> ClientReloadResult:
        return ClientReloadResult(
            succeeded=False,
            changed=False,
            clientCertificate=current.clientCertificate,
            trustedCAs=current.trustedCAs,
            error=error,
        )

    def logInstalled(self, state: ClientMaterial) -> None:
        client = state.clientCertificate
        self._log.info(
            "Client TLS files loaded: trusting {trusting};"
            " client certificate {clientSubject} serial {serial}",
            trusting=(
                "the platform trust store"
                if state.trustedCAs is None
                else f"{state.trustedCAs} CA(s) from"
                f" {escapeControls(self.caCertsFile or '')}"
            ),
            clientSubject="none" if client is None else client.subject,
            serial=None if client is None else client.serialHex,
            notAfter=None if client is None else client.notAfter.isoformat(),
        )

    def logUsableAgain(self, state: ClientMaterial) -> None:
        self._log.info(
            "Client TLS files usable again: {paths} are what is being used",
            paths=self.paths(),
        )

    def logRefused(self, error: CredentialError, current: ClientMaterial) -> None:
        client = current.clientCertificate
        self._log.error(
            "Client TLS reload refused: {path}: {error}; still using the"
            " previous files (client certificate serial {serial})",
            path=escapeControls(error.path),
            error=escapeControls(error.reason),
            serial=None if client is None else client.serialHex,
        )
