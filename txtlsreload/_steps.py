# -*- test-case-name: tests.test_store -*-
"""
Running a reload either to the end at once, or spread over reactor steps.

Why: a store of 10,000 certificates looks at 10,000 files on every reload
(one C{stat} each, a read and a parse only for those that changed).  That is
25-40 ms of work, too long to hold the reactor: every connection would wait.
Written as a generator that yields every few hundred files, the same reload
can run to the end at once (L{Steps.runNow}, for C{reload()}, which must
return its result) or a few milliseconds per reactor iteration through a
L{Cooperator} (L{Steps.runInSteps}, for SIGHUP: about 4 ms per
iteration).  Only one runs at a time: a
reload asked for during a stepped one finishes that one first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Cooperator
from twisted.python.failure import Failure

__all__ = ["Steps", "drain"]

R = TypeVar("R")

# Seconds of steps per reactor iteration.
_SLICE = 0.004
_Run = Generator[None, None, R]


def _budget() -> Callable[[], bool]:
    deadline = time.monotonic() + _SLICE
    return lambda: time.monotonic() >= deadline


def drain(steps: _Run[R]) -> R:
    """
    Run C{steps} to the end now and return its result.
    """
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: R = done.value
            return result


class Steps(Generic[R]):
    """
    One reload at a time, run now or in reactor steps.
    """

    def __init__(self, reactor: IReactorTime) -> None:
        # Steps for up to about 4 ms, then the reactor gets its turn.
        self._cooperator = Cooperator(
            terminationPredicateFactory=_budget,
            scheduler=lambda work: reactor.callLater(0, work),
        )
        self._current: _Run[R] | None = None
        self._currentWaiting: list[Deferred[R]] = []
        self._queued: Callable[[], _Run[R]] | None = None
        self._queuedWaiting: list[Deferred[R]] = []

    def runNow(self, steps: _Run[R]) -> R:
        """
        Finish any stepped run at once, then run C{steps} to the end.
        """
        current = self._current
        if current is not None:
            self._finished(current, drain(current))
        return drain(steps)

    def runInSteps(self, make: Callable[[], _Run[R]]) -> Deferred[R]:
        """
        Run C{make()} in reactor steps; if a run is in progress, once more
        after it (one run for every request made meanwhile: it sees all
        their changes).

        @return: Fires with the result of the run that served this request.
        """
        waiting: Deferred[R] = Deferred()
        if self._current is None:
            self._start(make(), [waiting])
        else:
            self._queued = make
            self._queuedWaiting.append(waiting)
        return waiting

    def _start(self, steps: _Run[R], waiting: list[Deferred[R]]) -> None:
        self._current, self._currentWaiting = steps, waiting
        self._cooperator.cooperate(self._iterate(steps))

    def _iterate(self, steps: _Run[R]) -> Generator[None, None, None]:
        # Stops early if runNow finished this run in the meantime.
        while self._current is steps:
            try:
                next(steps)
            except StopIteration as done:
                self._finished(steps, done.value)
                return
            except Exception:  # pragma: no cover
                # Defence in depth: a store's reload catches everything.
                self._failed(steps, Failure())  # type: ignore[no-untyped-call]
                return
            yield None

    def _finished(self, steps: _Run[R], result: R) -> None:
        waiting = self._currentWaiting
        self._current, self._currentWaiting = None, []
        for each in waiting:
            each.callback(result)
        self._startQueued()

    def _failed(self, steps: _Run[R], failure: Failure) -> None:  # pragma: no cover
        waiting = self._currentWaiting
        self._current, self._currentWaiting = None, []
        for each in waiting:
            each.errback(failure)
        self._startQueued()

    def _startQueued(self) -> None:
        if self._queued is not None:
            make, waiting = self._queued, self._queuedWaiting
            self._queued, self._queuedWaiting = None, []
            self._start(make(), waiting)
