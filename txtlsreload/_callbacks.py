# -*- test-case-name: tests.test_factory,tests.test_client -*-
"""
What the server and client sides remember of their reloads, and whom they
tell, kept in one place so that both report reloads the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from twisted.logger import Logger

from . import _activity
from ._errors import CredentialError

__all__ = ["ReloadHistory"]


class _Outcome(Protocol):
    @property
    def changed(self) -> bool: ...

    @property
    def error(self) -> CredentialError | None: ...


R = TypeVar("R", bound=_Outcome)


class ReloadHistory(Generic[R]):
    """
    The most recent reload result, and the callbacks registered with
    C{addReloadCallbacks}.

    Success callbacks hear about installed reloads and about recovery: the
    first good reload after refused ones, even if it installs nothing new
    (the files were put back as they were), so that whoever was told about
    a failure also learns it is over.  Failure callbacks hear about refused
    reloads.  Any other unchanged reload tells nobody.  A callback that
    raises is logged and never stops the others or the reload.

    @ivar last: The most recent result (the initial load's, at first).
    """

    _log = Logger()

    def __init__(self, initial: R, owner: object | None = None) -> None:
        """
        @param initial: The initial load's result.
        @param owner: Whose reloads these are; given, every reload is also
            reported process-wide for metrics, status and systemd.
        """
        self.last = initial
        self._owner = owner
        if owner is not None:
            _activity.reported(owner, initial)
        self._onSuccess: list[Callable[[R], object]] = []
        self._onFailure: list[Callable[[R], object]] = []

    @property
    def failing(self) -> bool:
        """
        The most recent reload was refused.
        """
        return self.last.error is not None

    def repeats(self, error: CredentialError) -> bool:
        """
        C{error} is the refusal the most recent reload reported: same file,
        same reason.
        """
        last = self.last.error
        return last is not None and (last.path, last.reason) == (
            error.path,
            error.reason,
        )

    def add(
        self,
        onSuccess: Callable[[R], object] | None,
        onFailure: Callable[[R], object] | None,
    ) -> Callable[[], None]:
        """
        Register callbacks.

        @return: A function that removes both again.
        """
        if onSuccess is not None:
            self._onSuccess.append(onSuccess)
        if onFailure is not None:
            self._onFailure.append(onFailure)

        def remove() -> None:
            if onSuccess in self._onSuccess:
                self._onSuccess.remove(onSuccess)
            if onFailure in self._onFailure:
                self._onFailure.remove(onFailure)

        return remove

    def record(self, result: R, started: float | None = None) -> None:
        """
        Remember C{result} and tell the right callbacks about it.

        @param started: The C{time.monotonic()} at which the reload began,
            for the reload duration metric.
        """
        recovered = self.failing
        self.last = result
        if self._owner is not None:
            _activity.reported(
                self._owner, result, time.monotonic() if started is None else started
            )
        if result.error is not None:
            callbacks = self._onFailure
        elif result.changed or recovered:
            callbacks = self._onSuccess
        else:
            return
        for callback in list(callbacks):
            try:
                callback(result)
            except Exception:
                self._log.failure(
                    "Reload callback {callback!r} failed", callback=callback
                )
