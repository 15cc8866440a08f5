# -*- test-case-name: tests.test_factory,tests.test_client -*-
"""
Success and failure callbacks for reloads, shared by the server and client
sides so both report reloads the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from twisted.logger import Logger

__all__ = ["ReloadCallbacks"]


class _Outcome(Protocol):
    @property
    def changed(self) -> bool: ...

    @property
    def error(self) -> object: ...


R = TypeVar("R", bound=_Outcome)


class ReloadCallbacks(Generic[R]):
    """
    The callbacks registered with C{addReloadCallbacks}.

    Success callbacks hear about installed reloads and about recovery: the
    first good reload after refused ones, even if it installs nothing new
    (the files were put back as they were), so that whoever was told about
    a failure also learns it is over.  Failure callbacks hear about refused
    reloads.  Any other unchanged reload tells nobody.  A callback that
    raises is logged and never stops the others or the reload.
    """

    _log = Logger()

    def __init__(self) -> None:
        self._onSuccess: list[Callable[[R], object]] = []
        self._onFailure: list[Callable[[R], object]] = []
        self._failing = False

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

    def notify(self, result: R) -> None:
        """
        Tell the right callbacks about C{result}.
        """
        recovered, self._failing = self._failing, result.error is not None
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
