# -*- test-case-name: tests.test_metrics,tests.test_status,tests.test_systemd -*-
"""
What the reloads of this process did: the record that metrics, the status
page, expiry warnings and systemd notifications are made from.

Reloads report here from L{ReloadHistory <txtlsreload._callbacks>}, which
every server factory and client credential set already uses, so a new kind
of reloadable gets all of this by using it too.  Which trigger caused a
reload is not passed through C{reload()} (its signature is shared by every
reloadable, and L{IReloadable} is public): triggers say what they are with
L{triggeredBy} around their calls, and a reload outside of any is a C{call}.

Nothing here imports prometheus-client or twisted.web: the observers that
need them register themselves when they are used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol
from weakref import WeakKeyDictionary

from twisted.logger import Logger

from ._errors import CredentialError

__all__ = [
    "DURATION_BUCKETS",
    "RESULTS",
    "TRIGGERS",
    "ReloadRecord",
    "Result",
    "Trigger",
    "counts",
    "currentTrigger",
    "durations",
    "observeReloads",
    "observeRounds",
    "recordOf",
    "reported",
    "triggeredBy",
]

Trigger = Literal["sighup", "watch", "interval", "call"]
Result = Literal["changed", "unchanged", "refused"]

TRIGGERS: tuple[Trigger, ...] = ("sighup", "watch", "interval", "call")
RESULTS: tuple[Result, ...] = ("changed", "unchanged", "refused")

# Reloads take milliseconds (DESIGN.md: 2-13 ms p50); the buckets resolve
# that range and still catch a reactor stalled for seconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

_log = Logger()


class _Outcome(Protocol):
    @property
    def changed(self) -> bool: ...

    @property
    def error(self) -> CredentialError | None: ...


@dataclass
class ReloadRecord:
    """
    What one reloadable's reloads did, kept beside it (weakly) for as long
    as it lives.

    @ivar loadedAt: Wall-clock time of the initial load.
    @ivar lastAt: Wall-clock time of the latest reload, or L{None} before the
        first one.
    @ivar lastTrigger: What caused the latest reload.
    @ivar lastResult: C{"changed"}, C{"unchanged"} or C{"refused"}.
    @ivar lastError: Why the latest reload was refused, if it was.
    @ivar lastSuccessAt: Wall-clock time of the latest load or reload whose
        files were good.
    @ivar refusalsInARow: Refused reloads since the last good one.
    """

    loadedAt: float
    lastSuccessAt: float
    lastAt: float | None = None
    lastTrigger: Trigger | None = None
    lastResult: Result | None = None
    lastError: CredentialError | None = None
    refusalsInARow: int = 0


@dataclass
class _Totals:
    """
    Process-wide reload counts and durations: bounded by the trigger and
    result vocabularies, whatever the number of rotations or reloadables.
    """

    counts: dict[tuple[Result, Trigger], int] = field(
        default_factory=lambda: {(r, t): 0 for r in RESULTS for t in TRIGGERS}
    )
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    durationCount: int = 0
    durationSum: float = 0.0


_records: WeakKeyDictionary[object, ReloadRecord] = WeakKeyDictionary()
_totals = _Totals()
_trigger: list[Trigger] = []
_reloadObservers: list[Callable[[object, ReloadRecord], object]] = []
_roundObservers: list[Callable[[Trigger, bool], object]] = []


def currentTrigger() -> Trigger:
    """
    What the reload running now was caused by.
    """
    return _trigger[-1] if _trigger else "call"


@contextmanager
def triggeredBy(trigger: Trigger) -> Iterator[None]:
    """
    Attribute the reloads run inside to C{trigger}, and tell round observers
    (systemd's C{RELOADING=1}/C{READY=1}) when the round starts and ends.
    """
    _trigger.append(trigger)
    _tellRounds(trigger, True)
    try:
        yield
    finally:
        _trigger.pop()
        _tellRounds(trigger, False)


def _tellRounds(trigger: Trigger, starting: bool) -> None:
    for observer in list(_roundObservers):
        try:
            observer(trigger, starting)
        except Exception:
            _log.failure("Reload round observer {observer!r} failed", observer=observer)


def observeRounds(observer: Callable[[Trigger, bool], object]) -> Callable[[], None]:
    """
    Call C{observer(trigger, starting)} when a trigger starts and finishes a
    round of reloads.

    @return: A function that stops the observation.
    """
    _roundObservers.append(observer)
    return lambda: _roundObservers.remove(observer)


def observeReloads(
    observer: Callable[[object, ReloadRecord], object],
) -> Callable[[], None]:
    """
    Call C{observer(reloadable, record)} after every reload of any
    reloadable in the process.

    @return: A function that stops the observation.
    """
    _reloadObservers.append(observer)
    return lambda: _reloadObservers.remove(observer)


def recordOf(reloadable: object) -> ReloadRecord | None:
    """
    @return: What C{reloadable}'s reloads did, if it reports them.
    """
    return _records.get(reloadable)


def counts() -> dict[tuple[Result, Trigger], int]:
    """
    @return: How many reloads had each result, per trigger, in this process.
    """
    return dict(_totals.counts)


def durations() -> tuple[list[int], int, float]:
    """
    @return: Per-bucket (not cumulative) counts of reload durations for
        L{DURATION_BUCKETS}, the number of reloads timed and their total
        seconds.
    """
    return list(_totals.buckets), _totals.durationCount, _totals.durationSum


def reported(
    reloadable: object, outcome: _Outcome, started: float | None = None
) -> None:
    """
    Note one load or reload of C{reloadable}.

    @param started: The C{time.monotonic()} at which the reload began;
        L{None} for the initial load, which is not counted as a reload.
    """
    now = time.time()
    record = _records.get(reloadable)
    if record is None or started is None:
        _records[reloadable] = ReloadRecord(loadedAt=now, lastSuccessAt=now)
        _startMetrics()
        return
    result: Result
    if outcome.error is not None:
        result = "refused"
        record.refusalsInARow += 1
    else:
        result = "changed" if outcome.changed else "unchanged"
        record.refusalsInARow = 0
        record.lastSuccessAt = now
    trigger = currentTrigger()
    record.lastAt, record.lastTrigger = now, trigger
    record.lastResult, record.lastError = result, outcome.error
    _totals.counts[result, trigger] += 1
    _time(time.monotonic() - started)
    for observer in list(_reloadObservers):
        try:
            observer(reloadable, record)
        except Exception:
            _log.failure("Reload observer {observer!r} failed", observer=observer)


def _time(seconds: float) -> None:
    _totals.durationCount += 1
    _totals.durationSum += seconds
    for index, bound in enumerate(DURATION_BUCKETS):
        if seconds <= bound:
            _totals.buckets[index] += 1
            return


_metricsStarted = False


def _startMetrics() -> None:
    """
    Register the metrics collector in prometheus-client's default registry
    the first time anything loads, if the C{metrics} extra is installed.
    """
    global _metricsStarted
    if _metricsStarted:
        return
    _metricsStarted = True
    try:
        from ._metrics import registerDefaultCollector
    except ImportError:
        return
    registerDefaultCollector()
