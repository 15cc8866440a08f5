# -*- test-case-name: tests.test_client -*-
"""
Reloading TLS for HTTP clients: an L{IPolicyForHTTPS} for
L{twisted.web.client.Agent} (and so for treq).

An agent asks its policy for a connection creator for every new connection.
The answer here is a L{ReloadingClientContextFactory} per host name, kept in
a small cache, all sharing one L{ReloadingClientCredentials}: the files are
read once per reload, never per request, and one reload (SIGHUP, a file
watcher, L{ReloadingPolicyForHTTPS.reload}) moves every host to the new
trust roots and client certificate at once.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from ._client import (
    ClientReloadResult,
    ReloadingClientContextFactory,
    ReloadingClientCredentials,
    credentialsFrom,
)
from ._registry import IReloadable

__all__ = ["ReloadingPolicyForHTTPS"]


@implementer(IPolicyForHTTPS, IReloadable)
class ReloadingPolicyForHTTPS:
    """
    Verify HTTPS servers against a CA bundle (or the platform's trust store)
    and present a client certificate, all reloaded from files.

    Pass it as C{contextFactory} to L{twisted.web.client.Agent}, or as
    C{agent=Agent(reactor, contextFactory=...)} to treq.  Each server's
    certificate must be valid for the host name in the URL, exactly as with
    Twisted's default policy.

    @ivar credentials: The files every host's connections use.
    """

    def __init__(
        self,
        caCertsFile: str | None = None,
        clientCertificateFile: str | None = None,
        clientKeyFile: str | None = None,
        *,
        passphrase: bytes | None = None,
        passphraseFile: str | None = None,
        credentials: ReloadingClientCredentials | None = None,
        cacheSize: int = 64,
    ) -> None:
        """
        Load the files (unless C{credentials} are given).

        @param caCertsFile: See L{ReloadingClientCredentials}.
        @param clientCertificateFile: See L{ReloadingClientCredentials}.
        @param clientKeyFile: See L{ReloadingClientCredentials}.
        @param passphrase: See L{ReloadingClientCredentials}.
        @param passphraseFile: See L{ReloadingClientCredentials}.
        @param credentials: Already loaded credentials to share (with other
            policies or endpoints), instead of the file arguments.
        @param cacheSize: How many hosts' connection creators to keep.  A
            creator keeps its OpenSSL context, so reconnecting to a cached
            host builds nothing; a host pushed out just gets a new creator.

        @raise CredentialError: If the files are unusable.
        @raise ValueError: If the options contradict each other.
        """
        if cacheSize < 1:
            raise ValueError(f"cacheSize must be at least 1, not {cacheSize}")
        credentials = credentialsFrom(
            credentials,
            caCertsFile,
            clientCertificateFile,
            clientKeyFile,
            passphrase,
            passphraseFile,
        )
        self.credentials = credentials
        self._cacheSize = cacheSize
        self._creators: OrderedDict[str, ReloadingClientContextFactory] = OrderedDict()

    def __repr__(self) -> str:
        # getattr: see ReloadingContextFactory.__repr__.
        return f"<ReloadingPolicyForHTTPS {getattr(self, 'credentials', None)!r}>"

    def creatorForNetloc(
        self, hostname: bytes, port: int
    ) -> IOpenSSLClientConnectionCreator:
        """
        The connection creator for C{hostname}, which the server's certificate
        must be valid for.

        See L{IPolicyForHTTPS.creatorForNetloc}.

        @param hostname: The host from the URL, as the agent gives it (IDNA
            bytes, or an IP address).
        @param port: The port from the URL; the same creator serves every
            port, since certificates name hosts, not ports.
        """
        name = hostname.decode("ascii")
        creator = self._creators.get(name)
        if creator is not None:
            self._creators.move_to_end(name)
            return creator
        creator = self.credentials.creatorFor(name)
        self._creators[name] = creator
        if len(self._creators) > self._cacheSize:
            self._creators.popitem(last=False)
        return creator

    def reload(self, quietIfRepeated: bool = False) -> ClientReloadResult:
        """
        Reload the files for every host.

        @see: L{ReloadingClientCredentials.reload}
        """
        return self.credentials.reload(quietIfRepeated)

    def watchedPaths(self) -> list[str]:
        """
        @see: L{ReloadingClientCredentials.watchedPaths}
        """
        return self.credentials.watchedPaths()
