# -*- test-case-name: tests.test_sighup -*-
"""
Reload on SIGHUP.

A Python signal handler runs on the main thread between two bytecodes, which
may be in the middle of reactor code.  So the handler does nothing but hand
the work to the reactor with C{callFromThread} (safe there, and it wakes the
reactor) and call whatever handler was installed before ours.  The reload
itself runs in the reactor as ordinary code.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any
from weakref import WeakSet

from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger

from ._activity import triggeredBy
from ._registry import IReloadable, registered

__all__ = [
    "SIGHUPReloader",
    "ensureProcessWideSIGHUP",
    "joinProcessWideSIGHUP",
    "reloadOnSIGHUP",
]

_log = Logger()

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class SIGHUPReloader:
    """
    An installed SIGHUP handler that reloads TLS files.

    Create one with L{reloadOnSIGHUP}; remove it with L{uninstall}.

    @ivar reloads: How many reloads (not signals) it has run, for status.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorFromThreads,
        reloadables: Iterable[IReloadable] | Callable[[], list[IReloadable]] | None,
    ) -> None:
        self._reactor = reactor
        self._reloadables: Callable[[], list[IReloadable]]
        if reloadables is None:
            self._reloadables = registered
        elif callable(reloadables):
            self._reloadables = reloadables
        else:
            fixed = list(reloadables)
            self._reloadables = lambda: fixed
        self._pending = False
        self._installed = False
        self._everInstalled = False
        self._previous: _Handler = None
        self.reloads = 0

    def install(self) -> None:
        """
        Install the handler, remembering the previous one to chain to.

        @raise ValueError: If called from a thread other than the main one.
        @raise RuntimeError: If this reloader was uninstalled before.
        """
        if self._installed:
            return
        if self._everInstalled:
            # The handler installed on top of ours may chain to ours; taking
            # it as our "previous" would make the two call each other forever.
            raise RuntimeError(
                "a SIGHUPReloader cannot be installed again once uninstalled;"
                " call reloadOnSIGHUP() for a new one"
            )
        self._previous = signal.signal(signal.SIGHUP, self._handleSignal)
        self._installed = True
        self._everInstalled = True

    def uninstall(self) -> None:
        """
        Stop reloading on SIGHUP and put the previous handler back.

        If someone installed another handler on top of ours since, theirs is
        left in place (it may chain to ours, which then only chains on).
        """
        if not self._installed:
            return
        self._installed = False
        if signal.getsignal(signal.SIGHUP) == self._handleSignal:
            previous = self._previous
            signal.signal(
                signal.SIGHUP, previous if previous is not None else signal.SIG_DFL
            )

    def _handleSignal(self, signum: int, frame: FrameType | None) -> None:
        """
        The signal handler itself: schedule, chain, nothing else.
        """
        if self._installed:
            self._reactor.callFromThread(self._signalled)
        previous = self._previous
        if callable(previous):
            previous(signum, frame)

    def _signalled(self) -> None:
        """
        In the reactor: coalesce the signals that arrived before the reload
        got to run into that one reload.  A signal arriving after the reload
        started schedules another, so no change on disk is ever missed.
        """
        if self._pending:
            return
        self._pending = True
        self._reactor.callFromThread(self._reloadAll)

    def _reloadAll(self) -> None:
        self._pending = False
        reloadables = self._reloadables()
        self._log.info(
            "SIGHUP: reloading {count} TLS configuration(s)", count=len(reloadables)
        )
        self.reloads += 1
        with triggeredBy("sighup"):
            for reloadable in reloadables:
                try:
                    reloadable.reload()
                except Exception:
                    self._log.failure(
                        "Reloading {reloadable!r} failed", reloadable=reloadable
                    )


def reloadOnSIGHUP(
    reloadables: Iterable[IReloadable] | Callable[[], list[IReloadable]] | None = None,
    reactor: IReactorFromThreads | None = None,
) -> SIGHUPReloader:
    """
    Make SIGHUP reload TLS files.

    Works under C{twistd} and under a plain C{reactor.run()}: Twisted's reactor
    never touches SIGHUP.  Any SIGHUP handler installed before this one is
    still called.  A burst of signals becomes one reload.  Must be called from
    the main thread.

    @param reloadables: What to reload: a fixed collection, or a function
        asked on every signal; by default every reloadable object (server
        factories, client credentials) alive in the process when the signal
        arrives.
    @param reactor: The reactor to run reloads in; the global one by default.
    @return: The installed handler; call its C{uninstall} to remove it.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = IReactorFromThreads(globalReactor)
    reloader = SIGHUPReloader(reactor, reloadables)
    reloader.install()
    return reloader


_processWide: SIGHUPReloader | None = None
_processWideReloadables: WeakSet[IReloadable] = WeakSet()


def ensureProcessWideSIGHUP(
    reactor: IReactorFromThreads | None, reloadable: IReloadable
) -> None:
    """
    Make SIGHUP reload C{reloadable}, through one handler per process shared
    by every endpoint that asks.

    Only what was handed to this function is reloaded by that handler, so an
    endpoint that opted out (C{sighup=no}) is left alone even when others in
    the same process opted in.
    """
    global _processWide
    _processWideReloadables.add(reloadable)
    if _processWide is None or not _processWide._installed:
        _processWide = reloadOnSIGHUP(lambda: list(_processWideReloadables), reactor)


def joinProcessWideSIGHUP(
    reactor: object,
    reloadable: IReloadable,
    action: str,
    ensure: Callable[
        [IReactorFromThreads | None, IReloadable], None
    ] = ensureProcessWideSIGHUP,
) -> None:
    """
    What a C{tlsreload:} endpoint does when it starts with C{sighup=yes}:
    have the shared handler reload C{reloadable}, warning rather than
    failing where that cannot work as asked.

    SIGHUP is on by default, so refusing to start would break programs that
    never asked for it.  A reactor that cannot be called from threads (a
    test double) gets its reloads scheduled on the global reactor; off the
    main thread no handler can be installed at all.  Both are said once.

    @param reactor: The endpoint's reactor.
    @param action: What the endpoint was doing (C{"listen"}, C{"connect"}),
        for the advice in the warning.
    @param ensure: Installs the handler; endpoints pass their test seam.
    """
    paths = reloadable.watchedPaths()
    threaded = IReactorFromThreads(reactor, None)
    if threaded is None:
        _log.warn(
            "{reactor!r} cannot be called from threads: SIGHUP reloads of"
            " {paths} will be scheduled on the global reactor",
            reactor=reactor,
            paths=paths,
        )
    try:
        ensure(threaded, reloadable)
    except ValueError as e:
        # signal.signal only works on the main thread.
        _log.warn(
            "Not reloading {paths} on SIGHUP: {error}; {action} from the main"
            " thread, or add sighup=no",
            paths=paths,
            error=str(e),
            action=action,
        )
