"""
Tests for L{txtlsreload.FileWatcher}: what it reloads and when,
driven by a L{Clock} over real certificate files (the polling side; the
inotify side is in C{test_watching_fs}).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from twisted.internet.task import Clock
from twisted.logger import LogEvent
from zope.interface import implementer

from txtlsreload import (
    FileWatcher,
    IReloadable,
    ReloadingContextFactory,
    ReloadResult,
    watchFiles,
)

from .tlshelpers import (
    RecordingReloadable,
    ReloadOutcome,
    issue,
    loud,
    replaceAtomically,
    servedBy,
    writeLeaf,
)

POLL = 10.0


@pytest.fixture
def recording(tmp_path: Path) -> RecordingReloadable:
    """
    A L{RecordingReloadable} on a new clock, for one file
    C{tmp_path/cert.pem}.
    """
    path = tmp_path / "cert.pem"
    path.write_bytes(b"x")
    return RecordingReloadable(path, clock=Clock())


@dataclass
class Served:
    """
    A real factory over real files, and what it reported.
    """

    factory: ReloadingContextFactory
    certPath: Path
    keyPath: Path
    serial: int
    successes: list[ReloadResult]
    failures: list[ReloadResult]


@pytest.fixture
def served(tmp_path: Path, ca: trustme.CA) -> Served:
    """
    A factory serving a fresh certificate from C{tmp_path/live}.
    """
    live = tmp_path / "live"
    live.mkdir()
    certPath, keyPath, serial = writeLeaf(ca, live)
    factory = ReloadingContextFactory(str(certPath), str(keyPath))
    successes: list[ReloadResult] = []
    failures: list[ReloadResult] = []
    factory.addReloadCallbacks(successes.append, failures.append)
    return Served(factory, certPath, keyPath, serial, successes, failures)


def servedSerial(served: Served, ca: trustme.CA) -> int:
    """
    The serial a real client gets in a real handshake with the factory.
    """
    return servedBy(served.factory, ca)


def watching(reloadable: IReloadable, clock: Clock, **kwargs: object) -> FileWatcher:
    """
    A started, polling-only watcher on C{clock}.
    """
    watcher = FileWatcher(
        reloadable,
        POLL,
        clock,
        useInotify=False,
        **kwargs,  # type: ignore[arg-type]
    )
    watcher.start()
    return watcher


class TestPolling:
    """
    The poll notices changes by the files' identity and reloads for them.
    """

    def test_unchangedFilesAreNotRead(self, recording: RecordingReloadable) -> None:
        """
        A poll that finds every file's identity unchanged does not reload.
        """
        reloadable = recording
        clock = reloadable.clock
        watcher = watching(reloadable, clock)
        assert reloadable.calls == [0]
        clock.pump([POLL] * 5)
        assert reloadable.calls == [0]
        watcher.stop()

    @pytest.mark.parametrize(
        "change",
        [
            lambda p: p.write_bytes(b"yy"),
            lambda p: replaceAtomically(p, b"x"),
            lambda p: os.utime(p, ns=(1, 1)),
            lambda p: os.chmod(p, 0o600),
            lambda p: p.unlink(),
        ],
        ids=["size", "inode", "mtime", "ctime", "deleted"],
    )
    def test_identityChanges(self, tmp_path: Path, change: object) -> None:
        """
        A different size, inode, modification or change time, or a file
        going away, each counts as a change.
        """
        clock = Clock()
        path = tmp_path / "cert.pem"
        path.write_bytes(b"x")
        os.chmod(path, 0o644)
        reloadable = RecordingReloadable(path, clock=clock)
        watcher = watching(reloadable, clock)
        change(path)  # type: ignore[operator]
        clock.advance(POLL)
        assert reloadable.calls == [0, POLL]
        watcher.stop()

    def test_symlinkRetargeted(self, tmp_path: Path) -> None:
        """
        A symlink pointed at another file with the same size and times still
        counts as a change: the resolved path is part of the identity.
        """
        clock = Clock()
        first, second = tmp_path / "a.pem", tmp_path / "b.pem"
        first.write_bytes(b"x")
        second.write_bytes(b"x")
        stat = first.stat()
        os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        link = tmp_path / "cert.pem"
        link.symlink_to(first.name)
        reloadable = RecordingReloadable(link, clock=clock)
        watcher = watching(reloadable, clock)
        link.unlink()
        link.symlink_to(second.name)
        clock.advance(POLL)
        assert reloadable.calls == [0, POLL]
        watcher.stop()


class TestHalfDoneRotation:
    """
    A certificate and key that do not match yet are refused, the old pair
    keeps serving, and the reload is retried until they match.
    """

    @pytest.mark.parametrize("firstWritten", ["cert", "key"])
    def test_refusedThenRetriedUntilPairMatches(
        self, served: Served, ca: trustme.CA, tmp_path: Path, firstWritten: str
    ) -> None:
        """
        With only one of the pair written, every reload is refused and
        handshakes keep getting the old certificate; once the other arrives,
        a backoff retry installs the new pair and the retries stop.
        """
        clock = Clock()
        watcher = watching(served.factory, clock, retryDelays=(0.1, 0.25, 0.5))
        cert, key, newSerial = issue(ca, tmp_path / "next")
        first, second = (
            ((served.certPath, cert), (served.keyPath, key))
            if firstWritten == "cert"
            else ((served.keyPath, key), (served.certPath, cert))
        )
        replaceAtomically(*first)
        clock.advance(POLL)
        assert len(served.failures) == 1
        assert watcher.failing
        assert servedSerial(served, ca) == served.serial
        clock.advance(0.1)
        clock.advance(0.25)
        clock.advance(0.5)
        clock.advance(0.5)
        assert len(served.failures) == 5
        assert servedSerial(served, ca) == served.serial

        replaceAtomically(*second)
        clock.advance(0.5)
        assert [r.certificate.serialNumber for r in served.successes] == [newSerial]
        assert not watcher.failing
        assert servedSerial(served, ca) == newSerial
        # Only the next poll is left: no retry is pending after success.
        assert [call.getTime() for call in clock.getDelayedCalls()] == [2 * POLL]
        watcher.stop()

    def test_retriesLogOneError(
        self, served: Served, ca: trustme.CA, tmp_path: Path, logEvents: list[LogEvent]
    ) -> None:
        """
        A half-done rotation retried five times logs its refusal at error
        level once, not five times.
        """
        clock = Clock()
        watcher = watching(served.factory, clock, retryDelays=(0.1, 0.25, 0.5))
        cert, _, _ = issue(ca, tmp_path / "next")
        replaceAtomically(served.certPath, cert)
        for delay in (POLL, 0.1, 0.25, 0.5, 0.5):
            clock.advance(delay)
        watcher.stop()
        assert len(served.failures) == 5
        errors = [e for e in logEvents if e["log_level"].name == "error"]
        assert len(errors) == 1
        assert errors[0]["path"] == str(served.keyPath)

    def test_secondFileNoticedByPoll(
        self, served: Served, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        Once the retries have slowed down, the poll noticing the second file
        reloads at once instead of waiting for the next retry.
        """
        clock = Clock()
        watcher = watching(served.factory, clock, retryDelays=(100,))
        cert, key, newSerial = issue(ca, tmp_path / "next")
        replaceAtomically(served.certPath, cert)
        clock.advance(POLL)
        assert len(served.failures) == 1
        replaceAtomically(served.keyPath, key)
        clock.advance(POLL)
        assert servedSerial(served, ca) == newSerial
        assert len(served.failures) == 1
        watcher.stop()

    def test_missingFileThenBack(
        self, served: Served, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A key deleted and later written again (new) is refused while missing
        and served once back.
        """
        clock = Clock()
        watcher = watching(served.factory, clock, retryDelays=(1,))
        cert, key, newSerial = issue(ca, tmp_path / "next")
        served.keyPath.unlink()
        replaceAtomically(served.certPath, cert)
        clock.advance(POLL)
        assert served.failures and "key" in str(served.failures[-1].error).lower()
        assert servedSerial(served, ca) == served.serial
        served.keyPath.write_bytes(key)
        clock.advance(1)
        assert servedSerial(served, ca) == newSerial
        watcher.stop()


def watcherEvents(events: list[LogEvent]) -> list[str]:
    """
    The events, at any level, from any txtlsreload namespace, as text.
    """
    return [
        f"{event['log_level'].name}: {event.get('log_format')}"
        for event in events
        if event.get("log_namespace", "").startswith("txtlsreload")
    ]


class TestLogging:
    """
    What a watcher says: nothing while nothing happens (twistd prints debug
    events too), and one line for each thing that matters.
    """

    def test_quietRunLogsNothing(
        self, served: Served, logEvents: list[LogEvent]
    ) -> None:
        """
        A hundred polls and a hundred interval reloads of unchanged files
        install nothing and log nothing at any level, apart from the one
        line saying the watcher started.
        """
        clock = Clock()
        watcher = FileWatcher(
            served.factory, 1, clock, reloadInterval=1, useInotify=False
        )
        watcher.start()
        clock.pump([0.25] * 400)
        watcher.stop()
        assert watcher.reloads == 1 + 100
        assert served.successes == served.failures == []
        [started] = watcherEvents(logEvents)
        assert started.startswith("info: Watching {count} TLS file(s)")

    def test_failingEpisodeLogsTwoLines(
        self, recording: RecordingReloadable, logEvents: list[LogEvent]
    ) -> None:
        """
        Twenty refused retries are one line saying the watcher keeps
        retrying and, once the files agree, one saying they are usable
        again.
        """
        reloadable = recording
        clock = reloadable.clock
        reloadable.succeed = False
        watcher = watching(reloadable, clock, retryDelays=(1,))
        clock.pump([1] * 20)
        reloadable.succeed = True
        clock.advance(1)
        watcher.stop()
        assert len(reloadable.calls) == 1 + 21
        said = [text for text in watcherEvents(logEvents) if "Watching" not in text]
        assert len(said) == 2
        assert said[0].startswith("info: TLS reload refused;")
        assert said[1].startswith("info: TLS files usable again")


class TestBackoff:
    """
    When and how often a refused reload is retried.
    """

    def test_backoffThenLastDelayForever(self, recording: RecordingReloadable) -> None:
        """
        Retries follow C{retryDelays}, then repeat the last delay for as long
        as the reload is refused, and stop once it succeeds.
        """
        reloadable = recording
        clock = reloadable.clock
        reloadable.succeed = False
        watcher = watching(reloadable, clock, retryDelays=(1, 2, 3))
        clock.pump([0.5] * 30)
        assert reloadable.calls == [0, 1, 3, 6, 9, 12, 15]
        reloadable.succeed = True
        clock.pump([0.5] * 6)
        assert reloadable.calls[-1] == 18
        assert not watcher.failing
        clock.pump([1] * 50)
        assert reloadable.calls[-1] == 18
        watcher.stop()

    def test_changeRestartsBackoff(self, recording: RecordingReloadable) -> None:
        """
        A change noticed while retries are slow reloads at once and starts
        the backoff over from its first delay.
        """
        reloadable = recording
        clock, path = reloadable.clock, reloadable.paths[0]
        reloadable.succeed = False
        watcher = watching(reloadable, clock, retryDelays=(1, 100))
        clock.pump([1] * 5)
        path.write_bytes(b"xy")
        clock.pump([1] * 10)
        assert reloadable.calls == [0, 1, POLL, POLL + 1]
        watcher.stop()

    def test_reloadThatRaisesIsRetried(
        self, recording: RecordingReloadable, logEvents: list[LogEvent]
    ) -> None:
        """
        A reloadable whose C{reload} raises is treated as refused: logged and
        retried, and the watcher keeps running.
        """
        reloadable = recording
        clock = reloadable.clock
        reloadable.raiseError = True
        watcher = watching(reloadable, clock, retryDelays=(1,))
        clock.pump([1] * 3)
        assert reloadable.calls == [0, 1, 2, 3]
        assert watcher.failing and watcher.running
        assert any(event.get("log_failure") is not None for event in logEvents)
        watcher.stop()


class TestReloadInterval:
    """
    C{reloadInterval} reloads on a timer whatever the files look like.
    """

    def test_reloadsEveryInterval(self, recording: RecordingReloadable) -> None:
        """
        With no change at all, the reloadable is still asked every
        C{reloadInterval} seconds.
        """
        reloadable = recording
        clock = reloadable.clock
        watcher = watching(reloadable, clock, reloadInterval=25)
        clock.pump([1] * 100)
        assert reloadable.calls == [0, 25, 50, 75, 100]
        watcher.stop()

    def test_picksUpChangeThePollCannotSee(
        self, served: Served, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        New bytes in a store the poll cannot see into are served after the
        next interval reload, and not before.
        """

        @implementer(IReloadable)
        class Opaque:
            def watchedPaths(self) -> list[str]:
                return []

            def reload(self, quietIfRepeated: bool = False) -> ReloadResult:
                return served.factory.reload()

        clock = Clock()
        watcher = watching(Opaque(), clock, reloadInterval=60)
        cert, key, newSerial = issue(ca, tmp_path / "next")
        served.certPath.write_bytes(cert)
        served.keyPath.write_bytes(key)
        clock.pump([POLL] * 5)
        assert servedSerial(served, ca) == served.serial
        clock.advance(POLL)
        assert servedSerial(served, ca) == newSerial
        watcher.stop()


class TestLifecycle:
    """
    Starting, stopping and starting again.
    """

    @pytest.mark.parametrize("state", ["idle", "retrying", "interval"], ids=str)
    def test_stopCancelsEveryTimer(
        self, tmp_path: Path, recording: RecordingReloadable, state: str
    ) -> None:
        """
        After C{stop}, no delayed call is left on the clock, whatever was
        pending, and nothing more is reloaded.
        """
        reloadable = recording
        clock = reloadable.clock
        reloadable.succeed = state != "retrying"
        watcher = watching(
            reloadable, clock, reloadInterval=5 if state == "interval" else 0
        )
        assert clock.getDelayedCalls()
        watcher.stop()
        assert clock.getDelayedCalls() == []
        calls = list(reloadable.calls)
        clock.pump([1] * 100)
        assert reloadable.calls == calls
        assert not watcher.running

    def test_startAfterStop(
        self, served: Served, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A stopped watcher started again watches again, including changes made
        while it was stopped.
        """
        clock = Clock()
        watcher = watching(served.factory, clock)
        watcher.stop()
        cert, key, newSerial = issue(ca, tmp_path / "next")
        served.certPath.write_bytes(cert)
        served.keyPath.write_bytes(key)
        clock.advance(POLL)
        assert servedSerial(served, ca) == served.serial
        watcher.start()
        assert servedSerial(served, ca) == newSerial
        watcher.stop()
        assert clock.getDelayedCalls() == []

    def test_startTwiceRaises(self, tmp_path: Path) -> None:
        """
        Starting a running watcher is a mistake and says so.
        """
        clock = Clock()
        reloadable = RecordingReloadable(tmp_path / "cert.pem", clock=clock)
        watcher = watching(reloadable, clock)
        with pytest.raises(RuntimeError, match="already running"):
            watcher.start()
        watcher.stop()
        watcher.stop()

    def test_globalReactorByDefault(self, recording: RecordingReloadable) -> None:
        """
        Without a reactor the watcher uses the global one: starting reloads
        once and schedules the poll there; stopping cancels it.
        """
        from twisted.internet import reactor

        before = len(reactor.getDelayedCalls())  # type: ignore[attr-defined]
        watcher = FileWatcher(recording, POLL, useInotify=False)
        watcher.start()
        assert recording.reloads == 1
        assert len(reactor.getDelayedCalls()) == before + 1  # type: ignore[attr-defined]
        watcher.stop()
        assert len(reactor.getDelayedCalls()) == before  # type: ignore[attr-defined]

    def test_watchFilesStarts(self, served: Served) -> None:
        """
        L{watchFiles} returns a started watcher.
        """
        clock = Clock()
        watcher = watchFiles(served.factory, POLL, clock, useInotify=False)
        assert watcher.running
        assert clock.getDelayedCalls()
        watcher.stop()

    def test_clockOnlyReactorFallsBackToPolling(
        self, served: Served, logEvents: list[LogEvent]
    ) -> None:
        """
        A reactor that cannot watch descriptors means polling alone, said
        once at info level.
        """
        clock = Clock()
        watcher = FileWatcher(served.factory, POLL, clock)
        watcher.start()
        assert not watcher.inotifyActive
        assert any("inotify unavailable" in text for text in loud(logEvents))
        watcher.stop()

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"pollInterval": 0},
            {"pollInterval": -1},
            {"reloadInterval": -1},
            {"retryDelays": ()},
            {"retryDelays": (1, 0)},
            {"debounce": -0.1},
        ],
        ids=str,
    )
    def test_badArguments(self, tmp_path: Path, kwargs: dict[str, object]) -> None:
        """
        Intervals and delays out of range are refused at construction.
        """
        clock = Clock()
        reloadable = RecordingReloadable(tmp_path / "cert.pem", clock=clock)
        arguments: dict[str, object] = {"pollInterval": POLL, **kwargs}
        with pytest.raises(ValueError):
            FileWatcher(reloadable, reactor=clock, **arguments)  # type: ignore[arg-type]


class _StoppingReloadable(RecordingReloadable):
    """
    A reloadable that stops its watcher from inside its C{n}th reload, as a
    program shutting down from a reload callback would.
    """

    def __init__(self, path: Path, clock: Clock, n: int) -> None:
        super().__init__(path, clock=clock)
        self.n = n
        self.watcher: FileWatcher | None = None

    def reload(self, quietIfRepeated: bool = False) -> ReloadOutcome:
        outcome = super().reload(quietIfRepeated)
        if self.reloads == self.n and self.watcher is not None:
            self.watcher.stop()
        return outcome


class TestStoppedByReload:
    """
    A watcher stopped from inside a reload it asked for schedules nothing
    more.
    """

    @pytest.mark.parametrize(
        ("n", "reloadInterval"),
        [(1, 0), (2, 0), (2, POLL / 4)],
        ids=["first reload", "poll", "interval"],
    )
    def test_nothingScheduled(
        self, tmp_path: Path, n: int, reloadInterval: float
    ) -> None:
        """
        Whether the first reload, one after a poll or one from the reload
        interval stops it, the watcher is stopped, no timer is left, and
        it never reloads again.
        """
        path = tmp_path / "cert.pem"
        path.write_bytes(b"x")
        clock = Clock()
        reloadable = _StoppingReloadable(path, clock, n)
        watcher = FileWatcher(
            reloadable, POLL, clock, useInotify=False, reloadInterval=reloadInterval
        )
        reloadable.watcher = watcher
        watcher.start()
        if n == 2 and not reloadInterval:
            path.write_bytes(b"changed")
        clock.advance(POLL)
        assert not watcher.running
        assert clock.getDelayedCalls() == []
        clock.pump([POLL] * 5)
        assert reloadable.reloads == n


class _UnlistableReloadable(RecordingReloadable):
    """
    A reloadable whose C{watchedPaths} fails while C{broken} is set.
    """

    broken = False

    def watchedPaths(self) -> list[str]:
        if self.broken:
            raise OSError("paths unavailable")
        return super().watchedPaths()


class TestCannotLook:
    """
    A reloadable that cannot say which files it has does not stop the
    watcher.
    """

    def test_loggedAndPollingGoesOn(
        self, tmp_path: Path, logEvents: list[LogEvent]
    ) -> None:
        """
        The failure is logged with its traceback, nothing is reloaded, and
        the next poll after it recovers picks a change up.
        """
        path = tmp_path / "cert.pem"
        path.write_bytes(b"x")
        clock = Clock()
        reloadable = _UnlistableReloadable(path, clock=clock)
        watcher = watching(reloadable, clock)
        reloadable.broken = True
        path.write_bytes(b"changed")
        clock.advance(POLL)
        failures = [e for e in logEvents if "log_failure" in e]
        formats = [e["log_format"] for e in failures]
        assert formats == ["Could not look at the TLS files"]
        assert isinstance(failures[0]["log_failure"].value, OSError)
        assert reloadable.reloads == 1 and watcher.running
        reloadable.broken = False
        clock.advance(POLL)
        assert reloadable.reloads == 2
        watcher.stop()
