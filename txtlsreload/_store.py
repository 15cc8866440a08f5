# -*- test-case-name: tests.test_store -*-
"""
Many certificates on one port, chosen by the client's server name (SNI),
reloaded from a directory.

What a handshake costs: one dict lookup (several on a name's first handshake
after a reload, or for names that are not in the table) and, on the first handshake
for a name since its context was dropped from the cache, building that
context from objects parsed at the last reload (no file I/O, no parsing).
What a reload costs: a C{stat} per file, a read and hash per file whose
C{stat} changed, a parse per file whose bytes changed, and choosing again
for the names those files serve.

Why contexts are built lazily: a built C{SSL.Context} costs about 20-30 KiB
and half a millisecond, so 10,000 of them would take about 300 MiB and five
seconds at every start.  Parsed credentials cost about 3 KiB each; so every
file is parsed (and refused, if bad) at start-up and reload, never at a
handshake, but only the contexts of the C{cacheSize} most recently used
names are kept (10,000 by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Literal

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from ._activity import Trigger, attributedTo, currentTrigger, holdRound
from ._callbacks import ReloadHistory
from ._directory import DirectoryReader, ScanResult, refuseUnservable
from ._errors import CredentialError, escapeControls
from ._explicit import ExplicitCertificate, LoadedCertificate
from ._loading import CertificateInfo, CredentialFiles
from ._names import ServedNames, StoreReloadResult
from ._options import ServerOptions
from ._registry import IReloadable, register
from ._selection import NameTable
from ._serveridentity import ServerIdentity
from ._serving import (
    ClientAuth,
    ClientCABundle,
    ContextBuilder,
    ContextCache,
    Dispatcher,
    TableServing,
    sessionEntry,
)
from ._sessions import DEFAULT_SESSION_TIMEOUT
from ._steps import Steps

__all__ = ["ReloadingCertificateStore", "StoreReloadResult", "UnknownNames"]

#: What a store does for clients without SNI or naming a host none of its
#: certificates has: C{"default"} serves them the default certificate,
#: C{"refuse"} fails their handshake.
UnknownNames = Literal["default", "refuse"]

#: How many built contexts a store keeps by default: up to about 300 MiB, and
#: only as many as names are in use.
DEFAULT_CACHE_SIZE = 10_000


def _installedByReload(
    loaded: LoadedCertificate, previous: LoadedCertificate | None
) -> None:
    """
    A new default certificate is put in use by the store's reload, which
    chooses the names again with its selection; before that, refuse it if
    OpenSSL would not serve it (its context is built on the first handshake
    that needs it, too late to refuse the files), as the directory's
    certificates are.
    """
    refuseUnservable(loaded.files.certificateFile, loaded.credentials.leaf)


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory, IReloadable)
class ReloadingCertificateStore:
    """
    A TLS server connection creator that serves every certificate found
    under a directory, chosen by the name the client asks for, and reloads
    them while it serves.

    Use it wherever Twisted takes server TLS options, as
    L{ReloadingContextFactory}.  Which files are found, which certificate a
    name gets and what a reload does are described in C{docs/sni.rst}.
    """

    _log = Logger()

    def __init__(
        self,
        directory: str,
        certificateFile: str | None = None,
        privateKeyFile: str | None = None,
        *,
        extraChainFile: str | None = None,
        clientCAFile: str | None = None,
        clientAuth: ClientAuth | None = None,
        passphrase: bytes | None = None,
        passphraseFile: str | None = None,
        unknownNames: UnknownNames = "default",
        cacheSize: int = DEFAULT_CACHE_SIZE,
        reactor: IReactorTime | None = None,
        sessions: bool = False,
        sessionTimeout: int = DEFAULT_SESSION_TIMEOUT,
        processWide: bool = True,
    ) -> None:
        """
        Load every certificate under C{directory} and prepare to serve them.

        @param directory: Searched recursively for certificates (see the
            module docstring for the layouts).
        @param certificateFile: The default certificate (leaf first, chain
            may follow) for clients without SNI or naming an unknown host;
            it also serves its own names.  Without it, the default is what
            the name that sorts first gets.
        @param privateKeyFile: The default certificate's key (default:
            C{certificateFile}).
        @param extraChainFile: More chain certificates for the default.
        @param clientCAFile: Ask every client, whatever name it asks for, for
            a certificate from these CAs.
        @param clientAuth: C{"required"} (the default with C{clientCAFile})
            or C{"optional"}.
        @param passphrase: Decrypts the default certificate's key.
        @param passphraseFile: A file whose first line decrypts it.
        @param unknownNames: C{"default"} serves the default certificate to
            clients naming an unknown host; C{"refuse"} fails their handshake
            (and that of clients without SNI).
        @param cacheSize: How many built contexts to keep, the least
            recently used dropped first: 10,000 by default (about 30 KiB
            each, built on a name's first handshake).  Smaller saves memory;
            a handshake for a name whose context was dropped costs about
            three times as much CPU, since it builds the context again.
        @param reactor: Tells the time (its C{seconds()}, POSIX time as
            with every real reactor) and schedules the moments when
            held-back certificates become valid and served ones expire.
            Default: the global reactor.
        @param sessions: Let clients resume their TLS sessions across
            rotations, as L{ReloadingContextFactory}; a session is only
            resumed for a name served by the certificate files it was made
            with.  A change of the client-CA bundle and L{flushSessions}
            discard them.
        @param sessionTimeout: Seconds a session stays resumable, with
            C{sessions} (default 7200).
        @param processWide: Register for process-wide reload triggers such as
            L{txtlsreload.reloadOnSIGHUP}, as L{ReloadingContextFactory} does.

        @raise CredentialError: If any file is unusable, or nothing at all
            can be served.
        @raise ValueError: If the options contradict each other.
        """
        if unknownNames not in ("default", "refuse"):
            raise ValueError(
                f"unknownNames must be 'default' or 'refuse', not {unknownNames!r}"
            )
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        assert reactor is not None
        options = ServerOptions.check(
            clientCAFile,
            clientAuth,
            passphrase,
            passphraseFile,
            sessions,
            sessionTimeout,
        )
        self._clientAuth = options.clientAuth
        self._clientCAs = ClientCABundle(clientCAFile)
        self._cacheSize = cacheSize
        self._sessions = options.sessions
        self._reader = DirectoryReader(directory)
        self._steps: Steps[StoreReloadResult] = Steps(reactor)
        self._names = ServedNames(reactor, unknownNames == "refuse", self._publish)
        self._paths: list[str] = []
        self._directories: list[str] = []
        self._default: ExplicitCertificate | None = None
        if certificateFile is not None:
            # The default certificate is the one-name case, read, checked and
            # refused exactly as a single-certificate factory's; its
            # candidate is installed by choosing the names again.
            self._default = ExplicitCertificate(
                CredentialFiles.absolute(
                    certificateFile,
                    privateKeyFile,
                    extraChainFile,
                    passphraseFile=passphraseFile,
                ),
                None,
                options.passphrase,
                self._names.now,
                _installedByReload,
                owner=None,
            )
        elif privateKeyFile or extraChainFile or passphrase or passphraseFile:
            raise ValueError(
                "the default's key, chain and passphrase need its certificate"
            )

        self._clientCAs.changed()
        scanned = self._reader.read()
        if scanned.refused:
            # Refusals carry no traceback: the frames that read the files
            # hold their bytes in their locals.
            raise scanned.refused[0] from None
        self._dispatcher = Dispatcher(
            self._newServing(self._names.table), self._sessions
        )
        result = self._install(scanned, [], clientCAsChanged=False)
        if result.names == 0 and self._default is None:
            raise CredentialError(
                self._reader.root, "no certificate with a matching private key found"
            )
        self._history = ReloadHistory(result, owner=self)
        # For check, which refuses them: a reload would, while they are new.
        self._keyless = tuple(scanned.keyless)
        for path in scanned.keyless:
            self._log.warn(
                "TLS certificate in {path} not served: no private key in"
                " {directory} matches it",
                path=escapeControls(path),
                directory=self._reader.root,
            )
        self._log.info(
            "TLS certificates loaded from {directory}: {names} name(s)",
            directory=self._reader.root,
            names=result.names,
        )
        if processWide:
            register(self)

    def __repr__(self) -> str:
        return (
            f"<ReloadingCertificateStore {self._reader.root!r}"
            f" names={len(self._table)}>"
        )

    @property
    def _table(self) -> NameTable:
        return self._names.table

    @property
    def directory(self) -> str:
        """
        The directory searched for certificates, made absolute.
        """
        return self._reader.root

    @property
    def clientCAFile(self) -> str | None:
        """
        The CA bundle client certificates are checked against, for every
        name; L{None} if none are asked for.
        """
        return self._clientCAs.path

    @property
    def names(self) -> dict[str, CertificateInfo]:
        """
        Every name served now, with the certificate it gets (the ECDSA one,
        for a name that also has RSA).
        """
        return {
            name: selection.candidates[0].credentials.info
            for name, selection in self._table.exact.items()
        }

    @property
    def certificate(self) -> CertificateInfo | None:
        """
        The default certificate, for clients without SNI or naming an
        unknown host; L{None} if there is none.
        """
        selection = self._table.default
        return None if selection is None else selection.candidates[0].credentials.info

    @property
    def lastResult(self) -> StoreReloadResult:
        """
        The result of the most recent load or reload.
        """
        return self._history.last

    def certificateFor(self, serverName: str) -> CertificateInfo | None:
        """
        The certificate a client asking for C{serverName} gets now (L{None}:
        its handshake fails).
        """
        try:
            # Normalized as the client side does: IDNA, case, trailing dot.
            name = ServerIdentity.parse(serverName).hostname
        except ValueError:
            # Not a host name (an empty label, say): no certificate has it.
            name = serverName
        selection = self._table.lookup(name.encode("utf-8", "surrogateescape"))
        return None if selection is None else selection.candidates[0].credentials.info

    def watchedPaths(self) -> list[str]:
        """
        Every directory entered and every file read, for file watchers: a
        new file changes its directory's modification time.
        """
        paths = list(self._paths)
        if self._default is not None:
            paths.extend(self._default.current.files.paths())
        if self._clientCAs.path is not None:
            paths.append(self._clientCAs.path)
        return list(dict.fromkeys(paths))

    def watchedDirectories(self) -> list[str]:
        """
        Every directory entered, the root first, for file watchers that
        watch directories (L{txtlsreload.FileWatcher} does, for a store):
        any name in them matters, since a new file can hold a new name.
        """
        return list(self._directories)

    def serverConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        """
        Create a connection that switches to its name's context when its
        handshake starts.  See
        L{IOpenSSLServerConnectionCreator.serverConnectionForTLS}.
        """
        return self._dispatcher.connection()

    def getContext(self) -> SSL.Context:
        """
        The dispatch context, for code that still asks for a context.
        """
        return self._dispatcher.context

    def reload(self, quietIfRepeated: bool = False) -> StoreReloadResult:
        """
        Look at every file and serve what changed: new names start, names
        whose files are gone stop, a bad file is refused and the names it
        served keep their last good certificate.  Never raises.

        @param quietIfRepeated: Do not log refusals identical to the
            previous reload's again.
        """
        return self._steps.runNow(self._reloadSteps(quietIfRepeated, currentTrigger()))

    def reloadInSteps(
        self, quietIfRepeated: bool = False
    ) -> Deferred[StoreReloadResult]:
        """
        L{reload}, spread over reactor iterations so that no single one is
        held for more than a few milliseconds, whatever the number of files; what
        SIGHUP uses.  A reload asked for while one runs starts after it.

        @return: Fires with the result; never fails.
        """
        # The trigger (SIGHUP, say) is over by the time the reload ends: its
        # name is kept for the record, and its round held open till then.
        trigger = currentTrigger()
        release = holdRound()
        finished = self._steps.runInSteps(
            lambda: self._reloadSteps(quietIfRepeated, trigger)
        )
        finished.addBoth(lambda result: (release(), result)[1])
        return finished

    def _reloadSteps(
        self, quietIfRepeated: bool, trigger: Trigger
    ) -> Generator[None, None, StoreReloadResult]:
        started = time.monotonic()
        try:
            refused: list[CredentialError] = []
            if self._default is not None:
                defaultResult = self._default.reload(quietIfRepeated=True)
                if defaultResult.error is not None:
                    refused.append(defaultResult.error)
            try:
                clientCAsChanged = self._clientCAs.changed()
            except CredentialError as e:
                refused.append(e)
                clientCAsChanged = False
            scanned = yield from self._reader.steps()
            if clientCAsChanged:
                if self._sessions is not None:
                    # A resumed session skips client-certificate checks:
                    # none made under the old CAs may resume under the new.
                    self._sessions.flush()
                # Every context trusts the client CAs: build them all anew.
                self._dispatcher.serving = self._newServing(self._names.table)
            result = self._install(scanned, refused, clientCAsChanged)
        except CredentialError as e:
            result = StoreReloadResult(
                succeeded=False,
                changed=False,
                refused=(e,),
                error=e,
                certificate=self.certificate,
                names=len(self._table),
            )
        except Exception as e:
            error = CredentialError(
                self._reader.root, f"reload failed: {type(e).__name__}: {e}"
            )
            self._log.failure(
                "TLS reload of {directory} failed", directory=self.directory
            )
            result = StoreReloadResult(
                succeeded=False, changed=False, refused=(error,), error=error
            )
        self._report(result, quietIfRepeated)
        with attributedTo(trigger):
            self._history.record(result, started)
        return result

    def flushSessions(self) -> None:
        """
        Make every session established so far unresumable, for every name,
        as L{ReloadingContextFactory.flushSessions}.  Does nothing without
        C{sessions}.
        """
        if self._sessions is None:
            return
        self._sessions.flush()
        # Cached contexts key sessions by the old generation.
        current = self._dispatcher.serving
        assert isinstance(current, TableServing)
        self._dispatcher.serving = self._newServing(current.table)
        self._log.info("TLS sessions flushed for {directory}", directory=self.directory)

    def addReloadCallbacks(
        self,
        onSuccess: Callable[[StoreReloadResult], object] | None = None,
        onFailure: Callable[[StoreReloadResult], object] | None = None,
    ) -> Callable[[], None]:
        """
        Be told about reloads, as L{ReloadingContextFactory.addReloadCallbacks}.

        @return: A function that removes both callbacks again.
        """
        return self._history.add(onSuccess, onFailure)

    def _newServing(self, table: NameTable) -> TableServing:
        builder = ContextBuilder(
            self._clientCAs.certificates,
            self._clientAuth,
            self._sessions,
            sessionEntry,
        )
        return TableServing(
            table, builder.verifyMode, ContextCache(builder, self._cacheSize)
        )

    def _publish(self, table: NameTable) -> None:
        """
        Serve C{table} from the next handshake on, with the contexts already
        built (selections of unchanged names are the same objects).
        """
        serving = getattr(self, "_dispatcher", None)
        if serving is not None:
            current = serving.serving
            assert isinstance(current, TableServing)
            serving.serving = TableServing(table, current.verifyMode, current.contexts)

    def _install(
        self,
        scanned: ScanResult,
        refused: list[CredentialError],
        clientCAsChanged: bool,
    ) -> StoreReloadResult:
        """
        Choose again for the names the scan changed and serve the result.
        """
        refused = refused + scanned.refused
        if scanned.paths:
            self._paths = scanned.paths
            self._directories = scanned.directories
        change = self._names.update(
            scanned.added,
            scanned.removed,
            None if self._default is None else self._default.current.selection,
        )
        default = self._table.default
        return StoreReloadResult(
            succeeded=not refused,
            changed=bool(change.added or change.replaced or change.removed)
            or clientCAsChanged,
            added=change.added,
            replaced=change.replaced,
            removed=change.removed,
            refused=tuple(refused),
            error=refused[0] if refused else None,
            certificate=None
            if default is None
            else default.candidates[0].credentials.info,
            names=len(self._table),
            parsed=scanned.parsed,
        )

    def _report(self, result: StoreReloadResult, quietIfRepeated: bool) -> None:
        history = getattr(self, "_history", None)
        previous = (
            set()
            if history is None
            else {(e.path, e.reason) for e in history.last.refused}
        )
        # The default certificate's source logs its own refusals.
        own = (
            set() if self._default is None else set(self._default.current.files.paths())
        )
        for error in result.refused:
            if error.path in own or (
                quietIfRepeated and (error.path, error.reason) in previous
            ):
                continue
            self._log.error(
                "TLS reload refused: {path}: {error}; the names it served keep"
                " their last good certificate",
                path=error.path,
                error=error.reason,
            )
        if result.changed:
            self._log.info(
                "TLS certificates reloaded from {directory}: {added} name(s) added,"
                " {replaced} replaced, {removed} removed, {names} served",
                directory=self.directory,
                added=len(result.added),
                replaced=len(result.replaced),
                removed=len(result.removed),
                names=result.names,
            )
