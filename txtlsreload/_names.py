# -*- test-case-name: tests.test_store -*-
"""
The names a store serves: candidates go in, an immutable L{NameTable} comes
out and is handed to whoever serves handshakes; and the report of what a
reload changed.

The table is chosen again when files change (L{ServedNames.update}) and when
a certificate's validity starts or ends: that moment is scheduled with the
reactor, so a certificate whose notBefore is in the future starts being
served at notBefore with no reload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ._errors import CredentialError
from ._loading import CertificateInfo
from ._selection import Candidate, NameTable, Selection, Selector, TableChange

__all__ = ["ServedNames", "StoreReloadResult"]


@dataclass(frozen=True)
class StoreReloadResult:
    """
    The outcome of one load or reload of a
    L{txtlsreload.ReloadingCertificateStore}.

    @ivar succeeded: C{True} if every file was usable (changed or not).
    @ivar changed: C{True} if any name now gets another certificate, or the
        client CAs changed.
    @ivar added: Names served now that were not before.
    @ivar replaced: Names that now get another certificate.
    @ivar removed: Names no longer served.
    @ivar refused: Every file that could not be used; the certificates it
        held when last good are still served.
    @ivar error: The first of C{refused}, or L{None}.
    @ivar certificate: The default certificate, for clients without SNI or
        naming an unknown host (L{None} if there is none).
    @ivar names: How many names are served.
    @ivar parsed: How many files (or certificate and key pairs) were parsed:
        only those whose bytes changed.
    """

    succeeded: bool
    changed: bool
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    refused: tuple[CredentialError, ...] = ()
    error: CredentialError | None = None
    certificate: CertificateInfo | None = None
    names: int = 0
    parsed: int = 0

    def __str__(self) -> str:
        counts = (
            f"{self.names} names; {len(self.added)} added, {len(self.replaced)}"
            f" replaced, {len(self.removed)} removed"
        )
        if self.refused:
            files = "; ".join(str(e) for e in self.refused)
            return f"reload refused {len(self.refused)} file(s): {files} ({counts})"
        return f"reloaded: {counts}" if self.changed else f"unchanged: {counts}"


def _order(name: str) -> tuple[bool, str]:
    # Exact names before wildcards, so that "*." does not win by sorting
    # before letters.
    return (name.startswith("*"), name)


class ServedNames:
    """
    Keeps the name table up to date and publishes each new one.

    @ivar table: The table being served.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        refuseUnknown: bool,
        publish: Callable[[NameTable], None],
    ) -> None:
        """
        @param reactor: Tells the time and schedules validity boundaries.
        @param refuseUnknown: Refuse names no certificate has (and clients
            without SNI) instead of giving them the default.
        @param publish: Called with every new table.
        """
        self._reactor = reactor
        self._refuseUnknown = refuseUnknown
        self._publish = publish
        self._selector = Selector()
        self._default: Selection | None = None
        self._firstName: str | None = None
        self._timer: IDelayedCall | None = None
        self.table = NameTable({}, None, refuseUnknown)

    def now(self) -> datetime:
        """
        The reactor's time, as a timezone-aware datetime.
        """
        return datetime.fromtimestamp(self._reactor.seconds(), timezone.utc)

    def update(
        self,
        added: Iterable[Candidate],
        removed: Iterable[Candidate],
        default: Selection | None,
    ) -> TableChange:
        """
        Add and remove candidates, choose again for the names they touch,
        and publish the new table.

        @param default: The explicitly given default certificate, which also
            serves its own names; L{None} for the name that sorts first.
            Served as it is: the same object keeps its built context.
        """
        added, removed = set(added), set(removed)
        if default is not self._default:
            if default is not None:
                added.update(default.candidates)
            if self._default is not None:
                removed.update(self._default.candidates)
            self._default = default
        now = self.now()
        change = self._selector.update(added, removed, now)
        exact = self._selector.exact
        self.table = NameTable(
            exact, self._defaultSelection(change), self._refuseUnknown
        )
        self._publish(self.table)
        self._schedule(now)
        return change

    def _defaultSelection(self, change: TableChange) -> Selection | None:
        exact = self._selector.exact
        if self._default is not None:
            return self._default
        # Only the added names are compared with the previous first one,
        # unless that one is gone.
        first = self._firstName
        if first is None or first not in exact:
            first = min(exact, key=_order, default=None)
        else:
            first = min([first, *change.added], key=_order)
        self._firstName = first
        return None if first is None else exact[first]

    def _schedule(self, now: datetime) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        boundary = self._selector.nextBoundary(now)
        if boundary is not None:
            delay = (boundary - now).total_seconds()
            # notAfter is inclusive: choose again just after it.
            self._timer = self._reactor.callLater(delay + 0.001, self._boundaryPassed)

    def _boundaryPassed(self) -> None:
        """
        A held-back certificate became valid or a served one expired:
        choose again for its names, with no file read.
        """
        self._timer = None
        try:
            change = self.update((), (), self._default)
        except Exception:
            self._log.failure("Could not choose certificates again")
            return
        if change.added or change.replaced or change.removed:
            self._log.info(
                "TLS certificates changed by the clock: {added} name(s) added,"
                " {replaced} replaced, {removed} removed",
                added=len(change.added),
                replaced=len(change.replaced),
                removed=len(change.removed),
            )
