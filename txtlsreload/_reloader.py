# -*- test-case-name: tests.test_factory,tests.test_client,tests.test_store -*-
"""
One reload, done the same way on every side.

A server certificate (L{ReloadingContextFactory
<txtlsreload.ReloadingContextFactory>}, and a store's default certificate)
and a client's trust roots and certificate (L{ReloadingClientCredentials
<txtlsreload.ReloadingClientCredentials>}) are reloaded by the same rules:
time it; read every file; if the bytes (and settings) are what is in use,
install nothing and say "usable again" only if that ends a run of
refusals; otherwise parse and check, unless the same bytes were refused
before (L{RefusedContents}); build and swap; log; and on any refusal keep
what is in use, log the file and the reason (once, if asked to be quiet
about repeats) and report a failed result; finally tell the history.

Those rules live here once, in L{Reloader}, so that a fix to one of them
reaches every side.  What differs per side (what is read, how it is parsed
and checked, where it is installed, the words of its logs and results) is
a L{ReloadSide} passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from twisted.logger import Logger

from ._callbacks import ReloadHistory
from ._errors import CredentialError, escapeControls
from ._loading import CertificateInfo, acceptValidity
from ._refusals import RefusedContents

__all__ = ["ReloadSide", "Reloader", "warnIfInvalid"]


class _Read(Protocol):
    @property
    def digest(self) -> bytes:
        """
        Identifies the bytes read, for L{RefusedContents}.
        """


class _Outcome(Protocol):
    @property
    def changed(self) -> bool: ...

    @property
    def error(self) -> CredentialError | None: ...


#: What is in use: parsed, checked, installed.
S = TypeVar("S")
#: What one reading of the files gave.
D = TypeVar("D", bound=_Read)
#: The result a reload reports.
R = TypeVar("R", bound=_Outcome)
D_contra = TypeVar("D_contra", bound=_Read, contravariant=True)
R_co = TypeVar("R_co", bound=_Outcome, covariant=True)


class ReloadSide(Protocol[S, D_contra, R_co]):
    """
    The parts of a reload that differ between the server and client sides.
    """

    def unchanged(self, read: D_contra, current: S) -> bool:
        """
        C{read} (with the settings asked for) is what C{current} was made
        from: install nothing.
        """

    def prepare(self, read: D_contra, current: S | None) -> S:
        """
        Parse and check what was read, against C{current} (L{None} at
        start-up) where the checks depend on what is in use.

        @raise CredentialError: If it cannot be used.
        """

    def blame(self, error: Exception) -> CredentialError:
        """
        The refusal to report for an unexpected error while installing.
        """

    def result(self, state: S, changed: bool, initial: bool = False) -> R_co:
        """
        The result of a load or reload that left C{state} in use.
        """

    def refusal(self, error: CredentialError, current: S) -> R_co:
        """
        The result of a refused reload; C{current} stays in use.
        """

    def logInstalled(self, state: S) -> None:
        """
        Log that C{state} is in use from now on.
        """

    def logUsableAgain(self, state: S) -> None:
        """
        Log that the files are good again after refusals, and are what is
        in use.
        """

    def logRefused(self, error: CredentialError, current: S) -> None:
        """
        Log a refusal: the file, the reason, what stays in use.
        """


class Reloader(Generic[S, D, R]):
    """
    Loads once at construction, then reloads on demand, by the rules in
    the module docstring.

    @ivar current: What is in use.
    @ivar history: The results so far and who is told about them.
    """

    def __init__(
        self,
        side: ReloadSide[S, D, R],
        read: Callable[[], D],
        install: Callable[[S, S | None], None],
        owner: object | None,
    ) -> None:
        """
        Load now.

        @param read: Reads the files for the initial load.
        @param install: Makes a prepared state the one in use (builds what
            handshakes or connections need, and swaps it in), given the one
            it replaces (L{None} at start-up).  What it raises is a refusal.
        @param owner: Whose reloads these are, reported process-wide (see
            L{ReloadHistory}); L{None} for a part of something else's.

        @raise CredentialError: If the files are unusable.
        """
        self._side = side
        self._install = install
        self._refused = RefusedContents()
        try:
            state = side.prepare(read(), None)
        except CredentialError as e:
            # The loading frames hold the files' bytes in their locals, and
            # error reporters (Sentry, pytest -l) record every frame's locals:
            # the traceback starts here, where nothing local is secret.
            raise e.with_traceback(None) from None
        try:
            install(state, None)
        except CredentialError as e:
            raise e.with_traceback(None) from None
        except Exception as e:
            raise side.blame(e) from None
        self.current = state
        self.history: ReloadHistory[R] = ReloadHistory(
            side.result(state, changed=True, initial=True), owner=owner
        )
        side.logInstalled(state)

    def reload(self, read: Callable[[], D], quietIfRepeated: bool) -> R:
        """
        Read, and install what changed if all of it is good.  Never raises.

        @param read: Reads the files (with the settings asked for).
        @param quietIfRepeated: Do not log a refusal identical to the
            previous one again (for watchers retrying a half-done rotation).
        """
        started = time.monotonic()
        side = self._side
        current = self.current
        try:
            contents = read()
            if side.unchanged(contents, current):
                # Nothing is logged (watchers call this every few seconds,
                # and twistd prints debug events too), unless it ends a run
                # of refusals: whoever saw those must learn it is over.
                result = side.result(current, changed=False)
                if self.history.failing:
                    side.logUsableAgain(current)
            else:
                new = self._refused.attempt(
                    contents.digest, lambda: side.prepare(contents, current)
                )
                self._install(new, current)
                self.current = new
                side.logInstalled(new)
                result = side.result(new, changed=True)
        except CredentialError as e:
            result = self._refuse(e, current, quietIfRepeated)
        except Exception as e:
            # Building found a problem the checks did not; report it like
            # any other refusal rather than let it escape.
            result = self._refuse(side.blame(e), current, quietIfRepeated)
        self.history.record(result, started)
        return result

    def _refuse(self, error: CredentialError, current: S, quietIfRepeated: bool) -> R:
        # A watcher retrying a half-done rotation refuses the same files
        # again and again; it asks for the repeats to be quiet.
        if not (quietIfRepeated and self.history.repeats(error)):
            self._side.logRefused(error, current)
        return self._side.refusal(error, current)


def warnIfInvalid(
    log: Logger,
    message: str,
    path: str,
    info: CertificateInfo,
    inUse: CertificateInfo | None,
    now: datetime,
) -> None:
    """
    Refuse a certificate that is not valid now, unless the one in use
    (L{None} at start-up) is no better: then log C{message} (with C{path}
    and C{problem}) as a warning.

    @raise CredentialError: If it is refused.
    """
    problem = acceptValidity(path, info, inUse, now)
    if problem is not None:
        log.warn(message, path=escapeControls(path), problem=problem)
