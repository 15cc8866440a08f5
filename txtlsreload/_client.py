# -*- test-case-name: tests.test_client -*-
"""
The reloading client side: trust roots and a client certificate that are
reloaded from files while a program keeps making outgoing connections.

Two layers:

  - L{ReloadingClientCredentials} reads and checks the files (a CA bundle,
    and a client certificate and key for mutual TLS).  It is what reloads:
    SIGHUP, file watchers and L{ReloadingClientCredentials.reload} act on it.
    One instance can serve connections to any number of servers, so an HTTP
    client does not read files per host, let alone per request.

  - L{ReloadingClientContextFactory} is the connection creator for one server
    name.  It holds client options built by Twisted's own
    L{optionsForClientTLS <twisted.internet.ssl.optionsForClientTLS>} (so
    SNI for names but not for IP addresses, ALPN and Twisted's TLS defaults
    all come from Twisted) with the server-name check replaced by ours, which
    fails closed where Twisted's fails open (see L{_serveridentity}), and
    every reload that changed something replaces them with new ones built off
    to the side.  Creating a connection reads one attribute and does no file
    I/O.  Connections already made keep the options they were made with.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakSet

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
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from ._callbacks import ReloadHistory
from ._errors import CredentialError, escapeControls
from ._loading import (
    CertificateInfo,
    CredentialFiles,
    Credentials,
    FileContents,
    acceptValidity,
    certificatesWithOpenSSLIn,
    checkPassphrase,
    optionalAbsolutePath,
    parseCredentialFiles,
    readCredentialFiles,
    readFile,
    utcNow,
)
from ._refusals import RefusedContents
from ._registry import IReloadable, register
from ._serveridentity import ServerIdentity, VerifyingClientCreator

__all__ = [
    "ClientReloadResult",
    "ReloadingClientContextFactory",
    "ReloadingClientCredentials",
    "credentialsFrom",
]


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
class _ClientMaterial:
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


@implementer(IReloadable)
class ReloadingClientCredentials:
    """
    Trust roots and an optional client certificate for outgoing TLS,
    reloaded from files.

    Share one instance between every connection creator that should use the
    same files (L{creatorFor} makes them): one reload then updates them all,
    and the files are read once per reload, not once per server.

    The files are loaded at construction, which raises L{CredentialError} if
    they are unusable.  After that L{reload} never raises: a refused reload
    keeps what was loaded before, logs the file and the reason, and says so
    in its result.

    Every instance registers itself for process-wide reload triggers such as
    L{txtlsreload.reloadOnSIGHUP}.
    """

    _log = Logger()

    def __init__(
        self,
        caCertsFile: str | None = None,
        clientCertificateFile: str | None = None,
        clientKeyFile: str | None = None,
        *,
        passphrase: bytes | None = None,
        passphraseFile: str | None = None,
        now: Callable[[], datetime] = utcNow,
    ) -> None:
        """
        Load the files.

        @param caCertsFile: A PEM bundle of CA certificates; servers must
            present a certificate issued by one of them.  L{None} trusts the
            platform's trust store instead, as web browsers do.
        @param clientCertificateFile: PEM file with a client certificate
            (optionally followed by its chain) to present to servers that ask
            for one.  L{None} presents none.
        @param clientKeyFile: PEM file with the client certificate's key;
            defaults to C{clientCertificateFile}, for a combined file.
        @param passphrase: Decrypts an encrypted client key.
        @param passphraseFile: A file whose first line decrypts the client
            key, read again on every reload.
        @param now: The wall clock, for tests.

        @raise CredentialError: If the files are unusable.
        @raise ValueError: If the options contradict each other.
        """
        if clientCertificateFile is None:
            if clientKeyFile is not None:
                raise ValueError("clientKeyFile needs clientCertificateFile")
            if passphrase is not None or passphraseFile is not None:
                raise ValueError(
                    "a passphrase decrypts a client key: it needs clientCertificateFile"
                )
        if passphrase is not None and passphraseFile is not None:
            raise ValueError("give passphrase or passphraseFile, not both")

        self.caCertsFile = optionalAbsolutePath(caCertsFile)
        self.clientFiles: CredentialFiles | None = None
        if clientCertificateFile is not None:
            self.clientFiles = CredentialFiles.absolute(
                clientCertificateFile, clientKeyFile, passphraseFile=passphraseFile
            )
        self._passphrase = checkPassphrase(passphrase)
        self._now = now
        self._creators: WeakSet[ReloadingClientContextFactory] = WeakSet()
        self._refused = RefusedContents()

        try:
            self._material = self._parse(*self._read(), initial=True)
        except CredentialError as e:
            # As in ReloadingContextFactory: no frame with the files' bytes
            # in its locals goes with the error to error reporters.
            raise e.with_traceback(None) from None
        self._history = ReloadHistory(
            ClientReloadResult(
                succeeded=True,
                changed=True,
                clientCertificate=self._material.clientCertificate,
                trustedCAs=self._material.trustedCAs,
                initial=True,
            ),
            owner=self,
        )
        self._logLoaded(self._material)
        register(self)

    @property
    def lastResult(self) -> ClientReloadResult:
        """
        The result of the most recent load or reload, for status pages.
        """
        return self._history.last

    def __repr__(self) -> str:
        # getattr: see ReloadingContextFactory.__repr__.
        material: _ClientMaterial | None = getattr(self, "_material", None)
        if material is None:
            return "<ReloadingClientCredentials (not loaded)>"
        client = material.clientCertificate
        return (
            f"<ReloadingClientCredentials caCerts={self.caCertsFile!r}"
            f" clientCertificate="
            f"{None if client is None else client.serialHex}>"
        )

    @property
    def clientCertificate(self) -> CertificateInfo | None:
        """
        The client certificate new connections present, if any.
        """
        return self._material.clientCertificate

    @property
    def trustedCAs(self) -> int | None:
        """
        How many CA certificates new connections trust, or L{None} when they
        trust the platform's trust store.
        """
        return self._material.trustedCAs

    @property
    def trustedCertificates(self) -> tuple[CertificateInfo, ...] | None:
        """
        The CA certificates new connections trust, or L{None} when they
        trust the platform's trust store.
        """
        cas = self._material.caCertificates
        return None if cas is None else tuple(map(CertificateInfo.fromCertificate, cas))

    def watchedPaths(self) -> list[str]:
        """
        Every file a reload reads: CA bundle, client certificate, key and
        passphrase file, without repeats.
        """
        paths = [] if self.caCertsFile is None else [self.caCertsFile]
        if self.clientFiles is not None:
            paths.extend(p for p in self.clientFiles.paths() if p not in paths)
        return paths

    def creatorFor(
        self, hostname: str, acceptableProtocols: Sequence[bytes] | None = None
    ) -> ReloadingClientContextFactory:
        """
        Make a connection creator for the server C{hostname} that uses these
        credentials and follows their reloads.

        @param hostname: The DNS name or IP address the server's certificate
            must be valid for.
        @param acceptableProtocols: Protocols to offer over ALPN.
        """
        return ReloadingClientContextFactory(
            hostname, acceptableProtocols=acceptableProtocols, credentials=self
        )

    def reload(self, quietIfRepeated: bool = False) -> ClientReloadResult:
        """
        Read every file again and, if all of it is valid and anything
        changed, use it for every new connection from now on.

        Never raises.  Files whose bytes did not change are not parsed again
        and rebuild nothing.

        @param quietIfRepeated: Do not log a refusal identical to the
            previous one again (for watchers retrying a half-done rotation).
        @return: What happened.
        """
        started = time.monotonic()
        current = self._material
        try:
            digest, caData, clientRead = self._read()
            if digest == current.digest:
                # Nothing is logged (watchers call this every few seconds,
                # and twistd prints debug events too), unless it ends a run
                # of refusals: whoever saw those must learn it is over.
                result = self._result(current, changed=False)
                if self._history.failing:
                    self._log.info(
                        "Client TLS files usable again: {paths} are what is being used",
                        paths=self.watchedPaths(),
                    )
            else:
                material = self._refused.attempt(
                    digest,
                    lambda: self._parse(digest, caData, clientRead, initial=False),
                )
                self._install(material)
                self._logLoaded(material)
                result = self._result(material, changed=True)
        except CredentialError as e:
            result = self._failed(e, current, quietIfRepeated)
        except Exception as e:  # pragma: no cover
            # Defence in depth: what OpenSSL refuses is turned into a
            # CredentialError when the material is proven, so nothing known
            # reaches here; if something does, report it like any other
            # refusal rather than let it escape.
            result = self._failed(
                CredentialError(
                    self._mainPath(),
                    f"could not build client TLS options: {type(e).__name__}: {e}",
                ),
                current,
                quietIfRepeated,
            )
        self._history.record(result, started)
        return result

    def addReloadCallbacks(
        self,
        onSuccess: Callable[[ClientReloadResult], object] | None = None,
        onFailure: Callable[[ClientReloadResult], object] | None = None,
    ) -> Callable[[], None]:
        """
        Be told about reloads.

        @param onSuccess: Called with the result whenever new credentials
            were installed, and on the first good reload after refused ones
            (even if the files were put back unchanged); not on other
            unchanged reloads.
        @param onFailure: Called with the result whenever a reload was
            refused.
        @return: A function that removes both callbacks again.
        """
        return self._history.add(onSuccess, onFailure)

    def _follow(self, creator: ReloadingClientContextFactory) -> _ClientMaterial:
        """
        Rebuild C{creator}'s options on every reload that changes something.

        Creators are held weakly: one nobody uses any more is not kept alive
        (nor rebuilt) because it once followed these credentials.

        @return: The material to build from now.
        """
        self._creators.add(creator)
        return self._material

    def _read(self) -> tuple[bytes, bytes | None, FileContents | None]:
        """
        Read every file and hash what was read.

        @return: The digest, the CA bundle's bytes and the client files.
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
        return digest.digest(), caData, clientRead

    def _parse(
        self,
        digest: bytes,
        caData: bytes | None,
        clientRead: FileContents | None,
        initial: bool,
    ) -> _ClientMaterial:
        """
        Parse and check what L{_read} read, and prove that client options
        can be built from it before anything uses it.
        """
        caCertificates = None
        if self.caCertsFile is not None and caData is not None:
            certificates, openSSLCertificates = certificatesWithOpenSSLIn(
                self.caCertsFile, caData, "CA certificate"
            )
            caCertificates = tuple(certificates)
            trustRoot = trustRootFromCertificates(  # type: ignore[no-untyped-call]
                [Certificate(ca) for ca in openSSLCertificates]  # type: ignore[no-untyped-call]
            )
        else:
            trustRoot = platformTrust()  # type: ignore[no-untyped-call]
        credentials = None
        if clientRead is not None:
            credentials = self._check(
                parseCredentialFiles(clientRead, self._passphrase), initial
            )
        material = _ClientMaterial(
            trustRoot=trustRoot,
            caCertificates=caCertificates,
            credentials=credentials,
            digest=digest,
        )
        self._prove(material)
        return material

    def _prove(self, material: _ClientMaterial) -> None:
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

    def _check(self, credentials: Credentials, initial: bool) -> Credentials:
        """
        Refuse a client certificate that is not valid now (servers would
        refuse it), unless the one in use is no better.
        """
        assert self.clientFiles is not None
        current = None if initial else self._material.clientCertificate
        problem = acceptValidity(
            self.clientFiles.certificateFile, credentials.info, current, self._now()
        )
        if problem is not None:
            self._log.warn(
                "Using client certificate {path} although {problem}: the one"
                " in use is no longer valid either",
                path=escapeControls(self.clientFiles.certificateFile),
                problem=problem,
            )
        return credentials

    def _install(self, material: _ClientMaterial) -> None:
        """
        Build every following creator's new options first, then switch them
        all, so that a failure leaves every creator on the old material.
        """
        creators = list(self._creators)
        rebuilt = [(creator, creator._build(material)) for creator in creators]
        self._material = material
        for creator, options in rebuilt:
            creator._options = options

    def _result(self, material: _ClientMaterial, changed: bool) -> ClientReloadResult:
        return ClientReloadResult(
            succeeded=True,
            changed=changed,
            clientCertificate=material.clientCertificate,
            trustedCAs=material.trustedCAs,
        )

    def _failed(
        self, error: CredentialError, current: _ClientMaterial, quietIfRepeated: bool
    ) -> ClientReloadResult:
        client = current.clientCertificate
        if not (quietIfRepeated and self._history.repeats(error)):
            self._log.error(
                "Client TLS reload refused: {path}: {error}; still using the"
                " previous files (client certificate serial {serial})",
                path=escapeControls(error.path),
                error=escapeControls(error.reason),
                serial=None if client is None else client.serialHex,
            )
        return ClientReloadResult(
            succeeded=False,
            changed=False,
            clientCertificate=client,
            trustedCAs=current.trustedCAs,
            error=error,
        )

    def _logLoaded(self, material: _ClientMaterial) -> None:
        client = material.clientCertificate
        self._log.info(
            "Client TLS files loaded: trusting {trusting};"
            " client certificate {clientSubject} serial {serial}",
            trusting=(
                "the platform trust store"
                if material.trustedCAs is None
                else f"{material.trustedCAs} CA(s) from"
                f" {escapeControls(self.caCertsFile or '')}"
            ),
            clientSubject="none" if client is None else client.subject,
            serial=None if client is None else client.serialHex,
            notAfter=None if client is None else client.notAfter.isoformat(),
        )


def credentialsFrom(
    credentials: ReloadingClientCredentials | None,
    caCertsFile: str | None,
    clientCertificateFile: str | None,
    clientKeyFile: str | None,
    passphrase: bytes | None,
    passphraseFile: str | None,
) -> ReloadingClientCredentials:
    """
    The credentials a creator or policy was given, or new ones loaded from
    the files it was given; never both.

    @raise ValueError: If both were given.
    @raise CredentialError: If the files are unusable.
    """
    if credentials is None:
        return ReloadingClientCredentials(
            caCertsFile,
            clientCertificateFile,
            clientKeyFile,
            passphrase=passphrase,
            passphraseFile=passphraseFile,
        )
    files = (caCertsFile, clientCertificateFile, clientKeyFile)
    if files != (None, None, None) or (passphrase, passphraseFile) != (None, None):
        raise ValueError("give credentials or files, not both")
    return credentials


@implementer(IOpenSSLClientConnectionCreator, IReloadable)
class ReloadingClientContextFactory:
    """
    A TLS client connection creator for one server name whose trust roots
    and client certificate are reloaded from files.

    Use it wherever Twisted takes client TLS options:
    L{twisted.internet.endpoints.wrapClientTLS},
    L{SSL4ClientEndpoint <twisted.internet.endpoints.SSL4ClientEndpoint>},
    C{reactor.connectSSL}, C{startTLS}.  The server's certificate must chain
    to a trusted CA I{and} be valid for C{hostname} (a DNS name, or an IP
    address checked against the certificate's IP address entries): a
    certificate without subjectAltNames, or with one no client may accept
    (C{*}, C{*.com}), is refused, and the connection fails with a
    L{ServerIdentityError <txtlsreload.ServerIdentityError>} saying why.

    @ivar hostname: The name checked and sent as SNI, normalized: lower case,
        IDNA, no trailing dot (or the IP address, in its compressed form).

    Reloading (L{reload}, SIGHUP, file watching) happens in the
    L{ReloadingClientCredentials} it uses; it reports through that.
    """

    def __init__(
        self,
        hostname: str,
        caCertsFile: str | None = None,
        clientCertificateFile: str | None = None,
        clientKeyFile: str | None = None,
        *,
        passphrase: bytes | None = None,
        passphraseFile: str | None = None,
        acceptableProtocols: Sequence[bytes] | None = None,
        credentials: ReloadingClientCredentials | None = None,
    ) -> None:
        """
        Load the files (unless C{credentials} are given) and prepare client
        options for C{hostname}.

        @param hostname: The DNS name or IP address the server's certificate
            must be valid for; also sent as SNI when it is a name.
        @param caCertsFile: See L{ReloadingClientCredentials}.
        @param clientCertificateFile: See L{ReloadingClientCredentials}.
        @param clientKeyFile: See L{ReloadingClientCredentials}.
        @param passphrase: See L{ReloadingClientCredentials}.
        @param passphraseFile: See L{ReloadingClientCredentials}.
        @param acceptableProtocols: Protocols to offer over ALPN, most
            preferred first.
        @param credentials: Already loaded credentials to share, instead of
            the file arguments.

        @raise CredentialError: If the files are unusable.
        @raise ValueError: If C{hostname} is not a DNS name or an IP address,
            or the options contradict each other.
        """
        self._identity = ServerIdentity.parse(hostname)
        self.hostname = self._identity.hostname
        credentials = credentialsFrom(
            credentials,
            caCertsFile,
            clientCertificateFile,
            clientKeyFile,
            passphrase,
            passphraseFile,
        )
        self.credentials = credentials
        self._acceptableProtocols = (
            None if acceptableProtocols is None else list(acceptableProtocols)
        )
        self._options = self._build(credentials._follow(self))

    def __repr__(self) -> str:
        # getattr: see ReloadingContextFactory.__repr__.
        return (
            f"<ReloadingClientContextFactory for {getattr(self, 'hostname', None)!r}>"
        )

    def clientConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        """
        Create a connection with the newest options.

        See L{IOpenSSLClientConnectionCreator.clientConnectionForTLS}.
        """
        return self._options.clientConnectionForTLS(tlsProtocol)

    def reload(self, quietIfRepeated: bool = False) -> ClientReloadResult:
        """
        Reload the credentials this creator uses (and so every creator that
        shares them).

        @see: L{ReloadingClientCredentials.reload}
        """
        return self.credentials.reload(quietIfRepeated)

    def watchedPaths(self) -> list[str]:
        """
        @see: L{ReloadingClientCredentials.watchedPaths}
        """
        return self.credentials.watchedPaths()

    def _build(self, material: _ClientMaterial) -> IOpenSSLClientConnectionCreator:
        return material.optionsFor(self._identity, self._acceptableProtocols)
