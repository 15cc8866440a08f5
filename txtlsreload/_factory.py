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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
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
    acceptValidity,
    checkPassphrase,
    optionalAbsolutePath,
    parseCredentialFiles,
    readCredentialFiles,
    utcNow,
)
from ._refusals import RefusedContents
from ._registry import IReloadable, register
from ._serving import VERIFY_MODES, ClientAuth, Dispatcher, buildContext
from ._sessions import DEFAULT_SESSION_TIMEOUT, SessionPolicy

__all__ = ["ClientAuth", "ReloadResult", "ReloadingContextFactory"]


@dataclass(frozen=True)
class ReloadResult:
    """
    The outcome of one reload.

    @ivar succeeded: C{True} if the files were good (changed or not).
    @ivar changed: C{True} if new credentials were installed.
    @ivar certificate: The certificate being served after this reload: the new
        one on success, the unchanged old one otherwise.
    @ivar error: Why the reload was refused, if it was.
    @ivar initial: C{True} for the load at construction, which is not a
        reload: C{str()} then says "loaded", not "reloaded".
    """

    succeeded: bool
    changed: bool
    certificate: CertificateInfo
    error: CredentialError | None = None
    initial: bool = False

    def __str__(self) -> str:
        served = (
            f"serial {self.certificate.serialHex}, "
            f"notAfter {self.certificate.notAfter.isoformat()}"
        )
        if self.error is not None:
            return f"reload failed: {self.error}; still serving {served}"
        if self.initial:
            return f"loaded: serving {self.certificate.subject} ({served})"
        if self.changed:
            return f"reloaded: now serving {self.certificate.subject} ({served})"
        return f"unchanged: still serving {served}"


@dataclass(frozen=True, eq=False)
class _Installed:
    """
    Everything a handshake needs, swapped as one object.
    """

    context: SSL.Context
    verifyMode: int
    credentials: Credentials
    files: CredentialFiles
    clientAuth: ClientAuth | None

    def contextFor(self, serverName: bytes | None) -> SSL.Context | None:
        """
        One certificate: every name gets it, with or without SNI.
        """
        # L{None} would mean "refuse the name", which this factory never
        # does: a state without a context is broken, and must be logged.
        if self.context is None:
            raise RuntimeError("no TLS context installed")
        return self.context


def effectiveClientAuth(
    clientCAFile: str | None, clientAuth: ClientAuth | None
) -> ClientAuth | None:
    """
    Check client-authentication settings and fill in the default.

    @raise ValueError: If they contradict each other.
    """
    if clientAuth is not None and clientAuth not in ("required", "optional"):
        raise ValueError(
            f"clientAuth must be 'required' or 'optional', not {clientAuth!r}"
        )
    if clientAuth is not None and clientCAFile is None:
        raise ValueError("clientAuth needs clientCAFile: the CAs to trust")
    if clientCAFile is not None and clientAuth is None:
        return "required"
    return clientAuth


def _contextRefused(path: str, error: Exception) -> CredentialError:
    """
    Blame C{path} for a context that could not be built from checked files.
    """
    return CredentialError(
        path, f"could not build a TLS context: {type(error).__name__}: {error}"
    )


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
            L{txtlsreload.reloadOnSIGHUP}; a
            L{txtlsreload.ReloadingCertificateStore} that reloads this
            factory as its default certificate passes C{False}.
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
        clientAuth = effectiveClientAuth(clientCAFile, clientAuth)
        if passphrase is not None and passphraseFile is not None:
            raise ValueError("give passphrase or passphraseFile, not both")
        files = CredentialFiles.absolute(
            certificateFile,
            privateKeyFile,
            extraChainFile,
            clientCAFile,
            passphraseFile,
        )
        self._passphrase = checkPassphrase(passphrase)
        self._now = now
        self._sessions = SessionPolicy(sessionTimeout) if sessions else None
        self._refused = RefusedContents()

        try:
            read = readCredentialFiles(files, self._passphrase)
            credentials = self._check(
                parseCredentialFiles(read, self._passphrase),
                None,
                files.certificateFile,
            )
        except CredentialError as e:
            # The loading frames hold the files' bytes in their locals, and
            # error reporters (Sentry, pytest -l) record every frame's locals:
            # the traceback starts here, where nothing local is secret.
            raise e.with_traceback(None) from None
        try:
            installed = self._install(credentials, files, clientAuth)
        except Exception as e:
            raise _contextRefused(files.certificateFile, e) from None
        self._dispatcher = Dispatcher(installed, self._sessions)
        self._history = ReloadHistory(
            ReloadResult(
                succeeded=True,
                changed=True,
                certificate=credentials.info,
                initial=True,
            ),
            owner=self,
        )
        self._logInstalled(credentials)
        if processWide:
            register(self)

    def __repr__(self) -> str:
        # A constructor that refused its files leaves a half-made object that
        # error reporters (Sentry, pytest -l) still repr from the frame's
        # locals; an AttributeError there would hide the real error.
        installed: _Installed | None = getattr(self, "_installed", None)
        if installed is None:
            return "<ReloadingContextFactory (not loaded)>"
        return (
            f"<ReloadingContextFactory {installed.files.certificateFile!r} "
            f"serial={installed.credentials.info.serialHex}>"
        )

    @property
    def _installed(self) -> _Installed:
        # The dispatcher holds what handshakes use; this is the one place
        # that knows it is an _Installed.
        installed = self._dispatcher.serving
        assert isinstance(installed, _Installed)
        return installed

    @_installed.setter
    def _installed(self, installed: _Installed) -> None:
        self._dispatcher.serving = installed

    @property
    def lastResult(self) -> ReloadResult:
        """
        The result of the most recent load or reload, for status pages.
        """
        return self._history.last

    @property
    def files(self) -> CredentialFiles:
        """
        The files being served.
        """
        return self._installed.files

    @property
    def clientAuth(self) -> ClientAuth | None:
        """
        Whether client certificates are C{"required"}, C{"optional"} or not
        asked for (L{None}); change it with L{changeClientAuthentication}.
        """
        return self._installed.clientAuth

    @property
    def clientCAFile(self) -> str | None:
        """
        The CA bundle client certificates are checked against, if any.
        """
        return self._installed.files.clientCAFile

    @property
    def certificate(self) -> CertificateInfo:
        """
        The certificate new handshakes are getting now.
        """
        return self._installed.credentials.info

    @property
    def clientCAs(self) -> tuple[CertificateInfo, ...]:
        """
        The CA certificates trusted to issue client certificates now; empty
        when client certificates are not asked for.
        """
        return tuple(
            CertificateInfo.fromCertificate(ca)
            for ca in self._installed.credentials.clientCAs
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
        installed = self._installed
        return self._reloadWith(installed.files, installed.clientAuth, quietIfRepeated)

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
        files = replace(
            self._installed.files, clientCAFile=optionalAbsolutePath(clientCAFile)
        )
        return self._reloadWith(files, clientAuth, quietIfRepeated=False)

    def _reloadWith(
        self,
        files: CredentialFiles,
        clientAuth: ClientAuth | None,
        quietIfRepeated: bool,
    ) -> ReloadResult:
        started = time.monotonic()
        installed = self._installed
        current = installed.credentials
        try:
            read = readCredentialFiles(files, self._passphrase)
            if read.digest == current.digest and clientAuth == installed.clientAuth:
                # Nothing is logged (watchers call this every few seconds,
                # and twistd prints debug events too), unless it ends a run
                # of refusals: whoever saw those must learn it is over.
                result = ReloadResult(
                    succeeded=True, changed=False, certificate=current.info
                )
                if self._history.failing:
                    self._log.info(
                        "TLS files usable again: {path} is what is being served"
                        " (serial {serial})",
                        path=escapeControls(files.certificateFile),
                        serial=current.info.serialHex,
                    )
            else:
                credentials = self._refused.attempt(
                    read.digest,
                    lambda: self._check(
                        parseCredentialFiles(read, self._passphrase),
                        current.info,
                        files.certificateFile,
                    ),
                )
                if self._sessions is not None and (
                    clientAuth != installed.clientAuth
                    or credentials.clientCAs != current.clientCAs
                ):
                    # A resumed session skips client-certificate checks:
                    # none made under the old trust may resume under the new.
                    self._sessions.flush()
                self._installed = self._install(credentials, files, clientAuth)
                self._logInstalled(credentials)
                result = ReloadResult(
                    succeeded=True, changed=True, certificate=credentials.info
                )
        except CredentialError as e:
            result = self._failed(e, current, quietIfRepeated)
        except Exception as e:
            # Building the context found a problem the checks did not; report
            # it like any other refusal rather than let it escape.
            result = self._failed(
                _contextRefused(files.certificateFile, e), current, quietIfRepeated
            )
        self._history.record(result, started)
        return result

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
        installed = self._installed
        # The current context keys sessions by the old generation, and a
        # used context cannot be changed: build it again.
        self._installed = replace(
            installed,
            context=self._buildContext(installed.credentials, installed.clientAuth),
        )
        self._log.info(
            "TLS sessions flushed for {path}", path=installed.files.certificateFile
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
        return self._history.add(onSuccess, onFailure)

    def _check(
        self, credentials: Credentials, served: CertificateInfo | None, path: str
    ) -> Credentials:
        """
        Refuse a certificate that is not valid now, unless what is being
        served (L{None} at start-up) is no better.
        """
        problem = acceptValidity(path, credentials.info, served, self._now())
        if problem is not None:
            self._log.warn(
                "Installing {path} although {problem}: the certificate"
                " being served is no longer valid either",
                path=escapeControls(path),
                problem=problem,
            )
        return credentials

    def _install(
        self,
        credentials: Credentials,
        files: CredentialFiles,
        clientAuth: ClientAuth | None,
    ) -> _Installed:
        return _Installed(
            context=self._buildContext(credentials, clientAuth),
            verifyMode=VERIFY_MODES[clientAuth],
            credentials=credentials,
            files=files,
            clientAuth=clientAuth,
        )

    def _buildContext(
        self, credentials: Credentials, clientAuth: ClientAuth | None
    ) -> SSL.Context:
        context = buildContext((credentials,), credentials.openSSLClientCAs, clientAuth)
        if self._sessions is not None:
            # One certificate for every name: one session key for all.
            self._sessions.prepare(context, "")
        return context

    def _failed(
        self, error: CredentialError, current: Credentials, quietIfRepeated: bool
    ) -> ReloadResult:
        # A watcher retrying a half-done rotation refuses the same files
        # again and again; it asks for the repeats to be quiet.
        if not (quietIfRepeated and self._history.repeats(error)):
            self._log.error(
                "TLS reload refused: {path}: {error}; still serving serial {serial}"
                " (notAfter {notAfter})",
                path=escapeControls(error.path),
                error=escapeControls(error.reason),
                serial=current.info.serialHex,
                notAfter=current.info.notAfter.isoformat(),
            )
        return ReloadResult(
            succeeded=False, changed=False, certificate=current.info, error=error
        )

    def _logInstalled(self, credentials: Credentials) -> None:
        info = credentials.info
        self._log.info(
            "TLS certificate loaded from {path}: {subject}, serial {serial},"
            " notAfter {notAfter}, {chainLength} chain certificate(s),"
            " {clientCACount} client CA(s)",
            path=escapeControls(self.files.certificateFile),
            subject=info.subject,
            serial=info.serialHex,
            notAfter=info.notAfter.isoformat(),
            fingerprint=info.fingerprintSHA256,
            subjectAltNames=list(info.subjectAltNames),
            chainLength=len(credentials.chain),
            clientCACount=len(credentials.clientCAs),
        )
