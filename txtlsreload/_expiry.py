# -*- test-case-name: tests.test_expiry -*-
"""
Warnings about served certificates that will soon expire, or have.

A rotation that silently stopped working is otherwise found only when
clients start failing.  So the served certificate (and a client
certificate presented to servers) is looked at when the warnings start,
after every reload that installed something or began a run of refusals,
and every hour on the reactor's clock (so tests drive it with
L{Clock <twisted.internet.task.Clock>}).  A warning is repeated every 24
hours while it stays true, an error about an expired certificate still in
use every hour: often enough to be seen, rarely enough not to bury a log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ._activity import ReloadRecord, observeReloads
from ._errors import escapeControls
from ._inventory import Certificate, Entry, Reloadables, inventory
from ._loading import CertificateInfo
from ._registry import IReloadable

__all__ = ["ExpiryWarnings", "expiryThreshold", "warnBeforeExpiry"]

_HOUR = 3600.0
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY


def expiryThreshold(info: CertificateInfo) -> float:
    """
    How many seconds before its notAfter a certificate is warned about: a
    third of its lifetime, or 7 days, whichever is less.

    The lesser of the two, so that a certificate living hours (cert-manager,
    SPIFFE) is not warned about from the moment it is issued, and one living
    a year is not warned about for four months.
    """
    lifetime = (info.notAfter - info.notBefore).total_seconds()
    return min(lifetime / 3, _WEEK)


class ExpiryWarnings:
    """
    Log a warning naming the file, serial and notAfter of every served or
    presented certificate close to expiry, and an error for one that
    expired and is still in use.

    Start one with L{warnBeforeExpiry}.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        reloadables: Reloadables = None,
        checkEvery: float = _HOUR,
    ) -> None:
        """
        @param reactor: Whose clock tells the time and schedules the checks.
        @param reloadables: What to look at: a collection, a function
            returning one, or by default everything alive in the process.
        @param checkEvery: Seconds between looks, and between errors about
            an expired certificate.
        """
        self._reactor = reactor
        self._reloadables = reloadables
        self._checkEvery = checkEvery
        self._lastWarned: dict[tuple[str, str, str], float] = {}
        self._call: IDelayedCall | None = None
        self._stopObserving: Callable[[], None] | None = None

    @property
    def running(self) -> bool:
        """
        Whether the checks are scheduled.
        """
        return self._call is not None

    def start(self) -> None:
        """
        Look now, after every reload, and every C{checkEvery} seconds.
        """
        if self.running:
            return
        self._stopObserving = observeReloads(self._reloaded)
        self._tick()

    def stop(self) -> None:
        """
        Stop looking.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._stopObserving is not None:
            self._stopObserving()
            self._stopObserving = None

    def check(self) -> None:
        """
        Look at every certificate now, warning about those due a warning.
        """
        now = self._reactor.seconds()
        seen = set()
        for entry in inventory(self._reloadables):
            for certificate in _served(entry):
                seen.add(self._look(certificate, now, force=False))
        # Forget certificates no longer in use, so the dictionary stays as
        # small as what is served.
        for key in list(self._lastWarned):
            if key not in seen:
                del self._lastWarned[key]

    def _tick(self) -> None:
        self._call = None
        try:
            self.check()
        finally:
            self._call = self._reactor.callLater(self._checkEvery, self._tick)

    def _reloaded(self, reloadable: object, record: ReloadRecord) -> None:
        if record.lastResult == "changed" or (
            record.lastResult == "refused" and record.refusalsInARow == 1
        ):
            if not self._covers(reloadable):
                return
            # Only the one that reloaded is described: describing every
            # reloadable of the process on each reload would make a reload's
            # cost grow with everything else loaded.
            now = self._reactor.seconds()
            for entry in inventory([cast(IReloadable, reloadable)]):
                for certificate in _served(entry):
                    self._look(certificate, now, force=True)

    def _covers(self, reloadable: object) -> bool:
        """
        Whether C{reloadable} is among those these warnings look at.
        """
        if self._reloadables is None:
            return True
        chosen = (
            self._reloadables() if callable(self._reloadables) else self._reloadables
        )
        return any(candidate is reloadable for candidate in chosen)

    def _look(
        self, certificate: Certificate, now: float, force: bool
    ) -> tuple[str, str, str]:
        info = certificate.info
        key = (certificate.role, certificate.path, info.fingerprintSHA256)
        left = info.notAfter.timestamp() - now
        if left > expiryThreshold(info):
            return key
        last = self._lastWarned.get(key)
        expired = left <= 0
        # The hourly tick may run a little early; a small tolerance keeps a
        # repeat from slipping a whole period.
        repeatAfter = (self._checkEvery if expired else _DAY) - 1
        if not force and last is not None and now - last < repeatAfter:
            return key
        self._lastWarned[key] = now
        when = datetime.fromtimestamp(now, timezone.utc)
        if expired:
            self._log.error(
                "TLS certificate {path} (serial {serial}) expired on {notAfter}"
                " and is still in use: every update was refused or none came;"
                " replace the files and reload",
                path=escapeControls(certificate.path),
                serial=info.serialHex,
                notAfter=info.notAfter.isoformat(),
                role=certificate.role,
                now=when.isoformat(),
            )
        else:
            self._log.warn(
                "TLS certificate {path} (serial {serial}) expires on {notAfter},"
                " in {left}: rotate it soon",
                path=escapeControls(certificate.path),
                serial=info.serialHex,
                notAfter=info.notAfter.isoformat(),
                left=_duration(left),
                role=certificate.role,
            )
        return key


def _served(entry: Entry) -> list[Certificate]:
    """
    The certificates C{entry} serves or presents (a store serves many), not
    the CAs it trusts.
    """
    return [c for c in entry.certificates if c.role in ("server", "client")]


def _duration(seconds: float) -> str:
    left = timedelta(seconds=int(seconds))
    if left.days:
        return f"{left.days} day(s) {left.seconds // 3600} hour(s)"
    return f"{left.seconds // 3600} hour(s) {left.seconds % 3600 // 60} minute(s)"


def warnBeforeExpiry(
    reactor: IReactorTime | None = None, reloadables: Reloadables = None
) -> ExpiryWarnings:
    """
    Start warning about certificates close to expiry, and about expired
    ones still in use.

    @param reactor: Whose clock to use; the global reactor by default.
    @param reloadables: What to watch; by default everything alive in the
        process, now and later.
    @return: The running warnings; call their C{stop} to end them.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = IReactorTime(globalReactor)
    warnings = ExpiryWarnings(reactor, reloadables)
    warnings.start()
    return warnings
