"""
Reactors for tests: stand-ins that record or queue what a reactor would do,
a private real reactor to run a scenario in, and a fixture that keeps the
process-wide SIGHUP handler (bound to one reactor) from leaking between
tests.
"""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest
from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer

from txtlsreload import SIGHUPReloader

__all__ = [
    "CallsFromThreads",
    "ThreadedMemoryReactor",
    "noProcessWideSIGHUP",
    "runInReactor",
    "sighupReloader",
    "uninstallSIGHUPReloaders",
]


@implementer(IReactorFromThreads)
class CallsFromThreads:
    """
    Just enough reactor for a SIGHUP handler: the calls the handler makes are
    queued, and run when the test says so, as the reactor would run them.
    """

    def __init__(self) -> None:
        self.calls: list[Callable[[], object]] = []

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        self.calls.append(lambda: f(*args))

    def runUntilIdle(self) -> None:
        """
        Run the queued calls, and those they queue, until none is left.
        """
        while self.calls:
            self.calls.pop(0)()

    def runUntil(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        """
        Run queued calls until C{done()}, waiting for more if need be.

        @raise AssertionError: If C{done()} is still false after C{timeout}
            seconds.
        """
        # A signal handler runs between two bytecodes of the main thread, so
        # it has normally run before os.kill returns; poll in case not.
        deadline = time.monotonic() + timeout
        while not done():
            if self.calls:
                self.calls.pop(0)()
            elif time.monotonic() > deadline:
                raise AssertionError("the signal was never handled")
            else:
                time.sleep(0.01)


@implementer(IReactorFromThreads)
class ThreadedMemoryReactor(MemoryReactorClock):
    """
    A memory reactor that, like every real one (and unlike
    L{MemoryReactorClock}), can be called from threads.
    """

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        f(*args)


def runInReactor(
    scenario: Callable[[Any], Generator[Any, Any, Any]], timeout: float = 15
) -> Any:
    """
    Run C{scenario} (an C{inlineCallbacks} generator function taking the
    reactor) in a new reactor of its own, and return its result.

    A private reactor can be run once per test, unlike the global one.
    """
    reactor = SelectReactor()
    results: list[object] = []

    def start() -> None:
        running = inlineCallbacks(scenario)(reactor)
        running.addBoth(results.append)
        running.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    timer = reactor.callLater(timeout, reactor.stop)
    reactor.run(installSignalHandlers=False)
    if timer.active():
        timer.cancel()
    for reader in list(getattr(reactor, "_internalReaders", ())):
        reactor.removeReader(reader)
        reader.connectionLost(None)
    if not results:
        raise AssertionError(f"scenario did not finish within {timeout}s")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def sighupReloader() -> SIGHUPReloader | None:
    """
    The L{SIGHUPReloader} whose handler SIGHUP runs now, if any.
    """
    reloader = getattr(signal.getsignal(signal.SIGHUP), "__self__", None)
    return reloader if isinstance(reloader, SIGHUPReloader) else None


def uninstallSIGHUPReloaders() -> None:
    """
    Remove every L{SIGHUPReloader} from the SIGHUP handler chain, through
    their public C{uninstall}, and let the reloadables of earlier tests go.

    The process-wide handler the endpoints share is one of them; once it is
    uninstalled the next endpoint that asks installs a new one.
    """
    for _ in range(100):
        handler = signal.getsignal(signal.SIGHUP)
        reloader = sighupReloader()
        if reloader is None:
            break
        reloader.uninstall()
        if signal.getsignal(signal.SIGHUP) == handler:
            # Not ours to take down (installed over by someone else).
            break
    # The shared handler holds its reloadables weakly: collect the dead ones
    # now, so that a signal in this test cannot reach an earlier test's.
    gc.collect()


@pytest.fixture
def noProcessWideSIGHUP() -> Iterator[None]:
    """
    Start without the process-wide SIGHUP handler and remove the one the
    test installs, so that no other test's (possibly stopped) reactor gets
    our signal or we get theirs.
    """
    uninstallSIGHUPReloaders()
    yield
    uninstallSIGHUPReloaders()
