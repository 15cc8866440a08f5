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

from collections.abc import Callable, Sequence
from datetime import datetime
from weakref import WeakSet

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from ._clientfiles import ClientFiles, ClientMaterial, ClientRead, ClientReloadResult
from ._loading import (
    CertificateInfo,
    CredentialFiles,
    optionalAbsolutePath,
    utcNow,
)
from ._options import checkPassphrases
from ._registry import IReloadable, register
from ._reloader import Reloader
from ._serveridentity import ServerIdentity

__all__ = [
    "ClientReloadResult",
    "ReloadingClientContextFactory",
    "ReloadingClientCredentials",
    "credentialsFrom",
]


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
        passphrase = checkPassphrases(passphrase, passphraseFile)
        clientFiles = None
        if clientCertificateFile is not None:
            clientFiles = CredentialFiles.absolute(
                clientCertificateFile, clientKeyFile, passphraseFile=passphraseFile
            )
        self._files = ClientFiles(
            optionalAbsolutePath(caCertsFile), clientFiles, passphrase, now
        )
        self._creators: WeakSet[ReloadingClientContextFactory] = WeakSet()
        self._reloader: Reloader[ClientMaterial, ClientRead, ClientReloadResult] = (
            Reloader(self._files, self._files.read, self._install, owner=self)
        )
        register(self)

    @property
    def caCertsFile(self) -> str | None:
        """
        The CA bundle servers are checked against, made absolute; L{None}
        for the platform's trust store.
        """
        return self._files.caCertsFile

    @property
    def clientFiles(self) -> CredentialFiles | None:
        """
        The client certificate's files, if one is presented.
        """
        return self._files.clientFiles

    @property
    def _material(self) -> ClientMaterial:
        return self._reloader.current

    @property
    def lastResult(self) -> ClientReloadResult:
        """
        The result of the most recent load or reload, for status pages.
        """
        return self._reloader.history.last

    def __repr__(self) -> str:
        # getattr: see ReloadingContextFactory.__repr__.
        reloader = getattr(self, "_reloader", None)
        if reloader is None:
            return "<ReloadingClientCredentials (not loaded)>"
        client = self._material.clientCertificate
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
        return self._files.paths()

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
        return self._reloader.reload(self._files.read, quietIfRepeated)

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
        return self._reloader.history.add(onSuccess, onFailure)

    def _follow(self, creator: ReloadingClientContextFactory) -> ClientMaterial:
        """
        Rebuild C{creator}'s options on every reload that changes something.

        Creators are held weakly: one nobody uses any more is not kept alive
        (nor rebuilt) because it once followed these credentials.

        @return: The material to build from now.
        """
        self._creators.add(creator)
        return self._material

    def _install(
        self, material: ClientMaterial, previous: ClientMaterial | None
    ) -> None:
        """
        Build every following creator's new options first, then switch them
        all, so that a failure leaves every creator on the old material.
        """
        creators = list(self._creators)
        rebuilt = [(creator, creator._build(material)) for creator in creators]
        for creator, options in rebuilt:
            creator._options = options


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

    def _build(self, material: ClientMaterial) -> IOpenSSLClientConnectionCreator:
        return material.optionsFor(self._identity, self._acceptableProtocols)
