# -*- test-case-name: tests.test_factory,tests.test_loading,tests.test_sighup -*-
"""
The reloading server connection creator for one certificate.

How it stays hitless: every connection is created from one long-lived
I{dispatch} context that holds no certificate (see L{_serving}, shared with
the many-name L{ReloadingCertificateStore
<txtlsreload.ReloadingCertificateStore>}).  Its servername callback, which
OpenSSL runs on every handshake (with or without SNI), switches the connection
to whatever context is current at that moment.  A reload builds a complete
new context off to the side and, only if every check passed, replaces the
current one with a single attribute assignment.  Connections that already
finished their handshake keep the context they got.

This class is a front: the files are read, checked, refused and reported by
L{ExplicitCertificate} (which a store uses for its default certificate too),
and each certificate it loads goes the store's way to the handshakes: its
selection is built into a context by a L{ContextBuilder} and swapped into
the L{Dispatcher}.  Only the lookup differs: one prebuilt context for every
name (L{OneContext}), so that a handshake reads one attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from ._explicit import (
    ExplicitCertificate,
    LoadedCertificate,
    ReloadResult,
)
from ._loading import (
    CertificateInfo,
    CredentialFiles,
    optionalAbsolutePath,
    utcNow,
)
from ._options import ServerOptions, effectiveClientAuth
from ._registry import IReloadable, register
from ._serving import ClientAuth, ContextBuilder, Dispatcher, OneContext
from ._sessions import DEFAULT_SESSION_TIMEOUT

__all__ = ["ClientAuth", "ReloadResult", "ReloadingContextFactory"]


def _oneSessionEntry(selection: object) -> str:
    # One certificate for every name: one session key for all, whatever
    # names a renewal adds or drops.
    return ""


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory, IReloadable)
class ReloadingContextFactory:
    """
    A TLS server connection creator whose certificate, key, chain and
    client-CA bundle are reloaded from files while it serves.

    Use it wherever Twisted takes server TLS options: C{reactor.listenSSL},
    L{twisted.internet.endpoints.SSL4ServerEndpoint},
    L{twisted.internet.endpoints.wrapServerTLS}.  Every context it builds goes
    through L{CertificateOptions}, so Twisted's TLS defaults apply (TLS 1.2 or
    newer, Twisted's cipher list, no session tickets).

    The files are loaded once at construction, which raises
    L{CredentialError} if they are not usable: a server must not start
    without a certificate.  After that, L{reload} never raises; a failed
    reload keeps the current certificate.

    Every instance registers itself for process-wide reload triggers such as
    L{txtlsreload.reloadOnSIGHUP}.
    """

    _log = Logger()

    def __init__(
        self,
        certificateFile: str,
        privateKeyFile: str | None = None,
        *,
        extraChainFile: str | None = None,
        clientCAFile: str | None = None,
        clientAuth: ClientAuth | None = None,
        passphrase: bytes | None = None,
        passphraseFile: str | None = None,
        now: Callable[[], datetime] = utcNow,
        processWide: bool = True,
        sessions: bool = False,
        sessionTimeout: int = DEFAULT_SESSION_TIMEOUT,
    ) -> None:
        """
        Load the files and prepare to serve them.

        @param certificateFile: PEM file with the leaf certificate first,
            optionally followed by its chain.
        @param privateKeyFile: PEM file with the key (PKCS#8, PKCS#1 or SEC1;
            RSA, ECDSA or Ed25519).  Defaults to C{certificateFile}, so one
            combined PEM file works, as with Twisted's C{ssl:} endpoint.
        @param extraChainFile: More chain certificates, sent after any in
            C{certificateFile}.
        @param clientCAFile: A bundle of CA certificates; clients must present
            a certificate issued by one of them.  All of them are trusted.
        @param clientAuth: C{"required"} (the default when C{clientCAFile} is
            given) refuses clients without a certificate; C{"optional"} serves
            them, but still refuses an untrusted certificate.
        @param passphrase: Decrypts an encrypted private key.
        @param passphraseFile: A file whose first line decrypts the key, read
            again on every reload.
        @param now: The wall clock, for tests.
        @param processWide: Register for process-wide reload triggers such as
            L{txtlsreload.reloadOnSIGHUP}; pass C{False} for a factory
            that something else reloads (a test, or a program with its own
            triggers).
        @param sessions: Let clients resume their TLS sessions (TLS 1.2
            session IDs, TLS 1.3 stateful tickets), across certificate
            rotations; a change of client-CA bundle or C{clientAuth} and
            L{flushSessions} discard them.  Off by default, as in Twisted.
            See C{docs/sessions.rst} for the trade-offs.
        @param sessionTimeout: Seconds a session stays resumable, with
            C{sessions} (default 7200, OpenSSL's).

        @raise CredentialError: If the files are unusable.
        @raise ValueError: If the options contradict each other.
        @raise RuntimeError: With C{sessions}, if pyOpenSSL runs on an
            OpenSSL older than 3.0.14.
        """
        options = ServerOptions.check(
            clientCAFile,
            clientAuth,
            passphrase,
            passphraseFile,
            sessions,
            sessionTimeout,
        )
        files = CredentialFiles.absolute(
            certificateFile,
            privateKeyFile,
            extraChainFile,
            clientCAFile,
            passphraseFile,
        )
        self._sessions = options.sessions
        self._source = ExplicitCertificate(
            files, options.clientAuth, options.passphrase, now, self._serve, owner=self
        )
        if processWide:
            register(self)

    def __repr__(self) -> str:
        # A constructor that refused its files leaves a half-made object that
        # error reporters (Sentry, pytest -l) still repr from the frame's
        # locals; an AttributeError there would hide the real error.
        source: ExplicitCertificate | None = getattr(self, "_source", None)
        if source is None:
            return "<ReloadingContextFactory (not loaded)>"
        loaded = source.current
        return (
            f"<ReloadingContextFactory {loaded.files.certificateFile!r} "
            f"serial={loaded.credentials.info.serialHex}>"
        )

    @property
    def _loaded(self) -> LoadedCertificate:
        return self._source.current

    @property
    def lastResult(self) -> ReloadResult:
        """
        The result of the most recent load or reload, for status pages.
        """
        return self._source.reloader.history.last

    @property
    def files(self) -> CredentialFiles:
        """
        The files being served.
        """
        return self._loaded.files

    @property
    def clientAuth(self) -> ClientAuth | None:
        """
        Whether client certificates are C{"required"}, C{"optional"} or not
        asked for (L{None}); change it with L{changeClientAuthentication}.
        """
        return self._loaded.clientAuth

    @property
    def clientCAFile(self) -> str | None:
        """
        The CA bundle client certificates are checked against, if any.
        """
        return self._loaded.files.clientCAFile

    @property
    def certificate(self) -> CertificateInfo:
        """
        The certificate new handshakes are getting now.
        """
        return self._loaded.credentials.info

    @property
    def clientCAs(self) -> tuple[CertificateInfo, ...]:
        """
        The CA certificates trusted to issue client certificates now; empty
        when client certificates are not asked for.
        """
        return tuple(
            CertificateInfo.fromCertificate(ca)
            for ca in self._loaded.credentials.clientCAs
        )

    def watchedPaths(self) -> list[str]:
        """
        Every file a reload reads: certificate, key, chain, client CAs and
        passphrase file, without repeats.
        """
        return self.files.paths()

    def serverConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        """
        Create a connection that will switch to the current context, and take
        its verify mode, when its handshake starts (the servername callback
        does both; nothing is decided here that a reload could outdate).

        See L{IOpenSSLServerConnectionCreator.serverConnectionForTLS}.
        """
        return self._dispatcher.connection()

    def getContext(self) -> SSL.Context:
        """
        Return the dispatch context, for code that still asks for a context.

        Connections made from it switch to the current credentials on their
        handshake, exactly like those from L{serverConnectionForTLS}.
        """
        return self._dispatcher.context

    def reload(self, quietIfRepeated: bool = False) -> ReloadResult:
        """
        Read every file again and, if all of it is valid and anything
        changed, serve it to every handshake from now on.

        Never raises: a refused reload is logged with the file and the reason,
        reported in the result and to the failure callbacks, and the current
        certificate keeps being served.  Files whose bytes did not change are
        not parsed again and install nothing.

        @param quietIfRepeated: Do not log a refusal identical to the
            previous one again (for watchers retrying a half-done rotation).
        @return: What happened.
        """
        return self._source.reload(quietIfRepeated)

    def changeClientAuthentication(
        self, clientCAFile: str | None, clientAuth: ClientAuth | None = None
    ) -> ReloadResult:
        """
        Start or stop asking for client certificates, switch between
        C{"required"} and C{"optional"}, or trust another CA bundle file.

        This is a reload with new settings: everything is read and checked
        again and the change applies to every handshake from now on,
        including connections accepted before it, or not at all.

        @param clientCAFile: The CA bundle to trust, or L{None} to stop
            asking for client certificates.
        @param clientAuth: As for the constructor; C{"required"} by default
            when C{clientCAFile} is given.
        @raise ValueError: If the settings contradict each other.
        @return: What happened.
        """
        clientAuth = effectiveClientAuth(clientCAFile, clientAuth)
        files = replace(self.files, clientCAFile=optionalAbsolutePath(clientCAFile))
        return self._source.reload(False, files, clientAuth)

    def flushSessions(self) -> None:
        """
        Make every session established so far unresumable: their clients
        get a full handshake (with client-certificate checks) next time.
        Does nothing without C{sessions}.

        A change of client-CA bundle or C{clientAuth} does this by itself.
        """
        sessions = self._sessions
        if sessions is None:
            return
        sessions.flush()
        # The current context keys sessions by the old generation, and a
        # used context cannot be changed: build it again.
        loaded = self._loaded
        self._dispatcher.serving = self._servingFor(loaded)
        self._log.info(
            "TLS sessions flushed for {path}", path=loaded.files.certificateFile
        )

    def addReloadCallbacks(
        self,
        onSuccess: Callable[[ReloadResult], object] | None = None,
        onFailure: Callable[[ReloadResult], object] | None = None,
    ) -> Callable[[], None]:
        """
        Be told about reloads.

        @param onSuccess: Called with the result whenever new credentials were
            installed, and on the first good reload after refused ones (even
            if the files were put back unchanged); not on other unchanged
            reloads.
        @param onFailure: Called with the result whenever a reload was refused.
        @return: A function that removes both callbacks again.
        """
        return self._source.reloader.history.add(onSuccess, onFailure)

    def _servingFor(self, loaded: LoadedCertificate) -> OneContext:
        builder = ContextBuilder(
            loaded.credentials.openSSLClientCAs,
            loaded.clientAuth,
            self._sessions,
            _oneSessionEntry,
        )
        return OneContext.build(loaded.selection, builder)

    def _serve(
        self, loaded: LoadedCertificate, previous: LoadedCertificate | None
    ) -> None:
        """
        Build the context for a newly loaded certificate and swap it in.
        """
        if (
            previous is not None
            and self._sessions is not None
            and (
                loaded.clientAuth != previous.clientAuth
                or loaded.credentials.clientCAs != previous.credentials.clientCAs
            )
        ):
            # A resumed session skips client-certificate checks: none made
            # under the old trust may resume under the new.
            self._sessions.flush()
        serving = self._servingFor(loaded)
        if previous is None:
            self._dispatcher = Dispatcher(serving, self._sessions)
        else:
            self._dispatcher.serving = serving
