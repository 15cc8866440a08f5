"""
Tests for L{txtlsreload.FileWatcher} on the real filesystem: the
ways tools and Kubernetes replace certificate files, each picked up by real
inotify events and, separately, by polling alone.

No reactor runs: the inotify descriptor is read by hand (waiting for it with
C{select}, bounded) and time is a L{MemoryReactorClock}, so the poll never
fires in the inotify runs unless a test advances the clock that far.
"""

from __future__ import annotations

import os
import select
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent

from txtlsreload import (
    FileWatcher,
    ReloadingContextFactory,
    ReloadResult,
    watchFiles,
)

from .tlshelpers import (
    RecordingReloadable,
    issue,
    loud,
    replaceAtomically,
    writeLeaf,
)
from .tlshelpers import servedBy as servedSerial

POLL = 1000.0


def _inotifyWorks() -> bool:
    try:
        from twisted.internet.inotify import INotify

        notifier = INotify(reactor=MemoryReactorClock())  # type: ignore[no-untyped-call]
    except Exception:
        return False
    notifier.loseConnection()
    return True


INOTIFY = _inotifyWorks()


def inotifyDescriptors() -> int:
    """
    How many inotify descriptors this process has open.
    """
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                count += 1
        except OSError:
            pass
    return count


def kernelWatches(reactor: MemoryReactorClock) -> dict[int, int]:
    """
    The inotify watches the kernel holds for the watchers on C{reactor}: the
    watched directory's inode, and the events asked for.
    """
    # The shared inotify descriptor is the one thing the reactor reads.
    [notifier] = reactor.getReaders()
    watches: dict[int, int] = {}
    with open(f"/proc/self/fdinfo/{notifier.fileno()}") as fdinfo:
        for line in fdinfo:
            if line.startswith("inotify wd:"):
                fields = dict(item.split(":", 1) for item in line.split()[1:])
                watches[int(fields["ino"], 16)] = int(fields["mask"], 16)
    return watches


def inodes(directories: set[str]) -> set[int]:
    """
    The inode numbers of C{directories}: what the kernel's watches name.
    """
    return {os.stat(directory).st_ino for directory in directories}


def directoriesOnTheWay(*paths: Path) -> set[str]:
    """
    Every directory the kernel looks a name up in to reach C{paths} (and
    the targets of their symlinks).
    """
    directories: set[str] = set()
    for path in paths:
        for resolved in {path.absolute(), path.resolve()}:
            directories.update(str(parent) for parent in resolved.parents)
    return directories


@dataclass
class Harness:
    """
    Watchers on one fake reactor, picked up either by inotify or by the poll.
    """

    mode: str
    ca: trustme.CA
    reactor: MemoryReactorClock = field(default_factory=MemoryReactorClock)
    watchers: list[FileWatcher] = field(default_factory=list)

    def watch(self, factory: ReloadingContextFactory) -> FileWatcher:
        """
        Start a watcher for C{factory}.
        """
        watcher = FileWatcher(
            factory, POLL, self.reactor, useInotify=self.mode == "inotify"
        )
        watcher.start()
        self.watchers.append(watcher)
        assert watcher.inotifyActive == (self.mode == "inotify")
        return watcher

    def deliver(self, wait: float = 0) -> int:
        """
        Hand every queued inotify event to the watchers.

        @param wait: Seconds to wait, at most, for the first event.
        @return: How many reads found events.
        """
        reads = 0
        while True:
            readers = self.reactor.getReaders()
            if not readers:
                return reads
            ready, _, _ = select.select(readers, [], [], wait)
            if not ready:
                return reads
            for reader in ready:
                reader.doRead()  # type: ignore[attr-defined]
            reads += 1
            wait = 0

    def pickUp(self) -> None:
        """
        Let the watchers notice what was just done to the files: the
        inotify events and the debounce, or one poll.
        """
        if self.mode == "polling":
            self.reactor.advance(POLL)
            return
        assert self.deliver(wait=5) > 0, "no inotify event arrived"
        # Run the debounced reload (and any that the reload's own look
        # schedules), but not the backoff retries or the poll.
        debounce = self.watchers[0].debounce
        for _ in range(10):
            due = [
                call.getTime()
                for call in self.reactor.getDelayedCalls()
                if call.getTime() <= self.now + debounce
            ]
            if not due:
                break
            self.reactor.advance(max(due) - self.now)
            self.deliver()

    @property
    def now(self) -> float:
        return self.reactor.seconds()

    def stopAll(self) -> None:
        for watcher in self.watchers:
            watcher.stop()


#: Each way of noticing changes, for parametrized harness fixtures.
MODES = [
    pytest.param(
        "inotify",
        marks=pytest.mark.skipif(not INOTIFY, reason="inotify is unavailable"),
    ),
    "polling",
]


@contextmanager
def runningHarness(
    mode: str, ca: trustme.CA, timersOfItsOwn: bool = False
) -> Iterator[Harness]:
    """
    A harness; checks at the end that stopping its watchers left no timer
    (unless what they watch has C{timersOfItsOwn}), reader or descriptor
    behind.
    """
    descriptors = inotifyDescriptors() if INOTIFY else 0
    harness = Harness(mode, ca)
    yield harness
    harness.stopAll()
    if not timersOfItsOwn:
        assert harness.reactor.getDelayedCalls() == []
    assert harness.reactor.getReaders() == []
    if INOTIFY:
        assert inotifyDescriptors() == descriptors


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest, ca: trustme.CA) -> Iterator[Harness]:
    """
    A harness for each way of noticing changes.
    """
    with runningHarness(request.param, ca) as harness:
        yield harness


@dataclass
class Recorded:
    """
    What a factory reported through its callbacks.
    """

    successes: list[ReloadResult] = field(default_factory=list)
    failures: list[ReloadResult] = field(default_factory=list)


def record(factory: ReloadingContextFactory) -> Recorded:
    recorded = Recorded()
    factory.addReloadCallbacks(recorded.successes.append, recorded.failures.append)
    return recorded


def publishSecret(directory: Path, files: dict[str, bytes], version: int) -> None:
    """
    Publish C{files} the way the kubelet updates a Secret volume: a new
    timestamped directory, a C{..data_tmp} symlink to it renamed over
    C{..data}, user-visible symlinks through C{..data}, then the old
    directory deleted.
    """
    directory.mkdir(exist_ok=True)
    timestamped = directory / f"..2026_11_29_10_00_{version:02d}.{1234 + version}"
    timestamped.mkdir()
    for name, data in files.items():
        (timestamped / name).write_bytes(data)
    data = directory / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    temporary = directory / "..data_tmp"
    os.symlink(timestamped.name, temporary)
    os.rename(temporary, data)
    for name in files:
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)
    if old is not None:
        shutil.rmtree(directory / old)


class TestReplacingFiles:
    """
    However the files are replaced, the new pair is served.
    """

    @pytest.mark.parametrize(
        "how", ["in-place", "rename-over", "delete-then-create"], ids=str
    )
    def test_replacement(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path, how: str
    ) -> None:
        """
        Writing over the files, renaming new ones over them, or deleting and
        creating them again: the next handshake gets the new certificate.
        """
        live = tmp_path / "live"
        live.mkdir()
        certPath, keyPath, oldSerial = writeLeaf(ca, live)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        recorded = record(factory)
        harness.watch(factory)
        cert, key, newSerial = issue(ca, tmp_path / "staging")
        for path, data in ((certPath, cert), (keyPath, key)):
            if how == "in-place":
                path.write_bytes(data)
            elif how == "rename-over":
                replaceAtomically(path, data)
            else:
                path.unlink()
        assert servedSerial(factory, ca) == oldSerial
        if how == "delete-then-create":
            harness.pickUp()
            assert servedSerial(factory, ca) == oldSerial
            certPath.write_bytes(cert)
            keyPath.write_bytes(key)
        harness.pickUp()
        assert servedSerial(factory, ca) == newSerial
        assert [r.certificate.serialNumber for r in recorded.successes] == [newSerial]

    def test_symlinkToFileElsewhere(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A path that is a symlink to a file in another directory is followed:
        rewriting the target is picked up, and so is pointing the link
        somewhere else.
        """
        store = tmp_path / "store"
        store.mkdir()
        realCert, realKey, _ = writeLeaf(ca, store)
        etc = tmp_path / "etc"
        etc.mkdir()
        (etc / "tls.crt").symlink_to(realCert)
        (etc / "tls.key").symlink_to(realKey)
        factory = ReloadingContextFactory(str(etc / "tls.crt"), str(etc / "tls.key"))
        harness.watch(factory)

        cert, key, serial = issue(ca, tmp_path / "staging")
        realCert.write_bytes(cert)
        realKey.write_bytes(key)
        harness.pickUp()
        assert servedSerial(factory, ca) == serial

        other = tmp_path / "other"
        cert, key, serial = issue(ca, other)
        for name, data in (("tls.crt", cert), ("tls.key", key)):
            (other / name).write_bytes(data)
            replacement = etc / f"{name}.new"
            replacement.symlink_to(other / name)
            os.replace(replacement, etc / name)
        harness.pickUp()
        assert servedSerial(factory, ca) == serial


class TestPaths:
    """
    Paths the watcher has to resolve itself to find what to watch.
    """

    def test_relativeSymlinkUpwards(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        Files reached through relative symlinks going up a directory
        (C{../store/tls.crt}) are picked up when the targets change.
        """
        store = tmp_path / "store"
        store.mkdir()
        realCert, realKey, _ = writeLeaf(ca, store)
        etc = tmp_path / "etc"
        etc.mkdir()
        (etc / "tls.crt").symlink_to(Path("..") / "store" / realCert.name)
        (etc / "tls.key").symlink_to(Path("..") / "store" / realKey.name)
        factory = ReloadingContextFactory(str(etc / "tls.crt"), str(etc / "tls.key"))
        harness.watch(factory)
        cert, key, serial = issue(ca, tmp_path / "staging")
        replaceAtomically(realCert, cert)
        replaceAtomically(realKey, key)
        harness.pickUp()
        assert servedSerial(factory, ca) == serial

    def test_pathUnderAFile(self, harness: Harness, tmp_path: Path) -> None:
        """
        A path that goes through a regular file (so cannot exist) is
        watched as far as it can be, and its appearing later is noticed.
        """
        blocker = tmp_path / "blocker"
        blocker.write_bytes(b"not a directory")
        reloadable = RecordingReloadable(blocker / "cert.pem")
        harness.watchers.append(
            watchFiles(
                reloadable,
                POLL,
                harness.reactor,
                useInotify=harness.mode == "inotify",
            )
        )
        before = reloadable.reloads
        blocker.unlink()
        blocker.mkdir()
        (blocker / "cert.pem").write_bytes(b"x")
        harness.pickUp()
        assert reloadable.reloads > before


class TestKubernetesSecretVolume:
    """
    A Secret volume updated by swapping the C{..data} symlink.
    """

    def test_severalSwapsInARow(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        Three updates one after the other are each served, although every
        one deletes the directory the previous files lived in.
        """
        volume = tmp_path / "secret"
        cert, key, serial = issue(ca, tmp_path / "staging0")
        publishSecret(volume, {"tls.crt": cert, "tls.key": key}, 0)
        factory = ReloadingContextFactory(
            str(volume / "tls.crt"), str(volume / "tls.key")
        )
        recorded = record(factory)
        harness.watch(factory)
        served = [servedSerial(factory, ca)]
        expected = [serial]
        for version in (1, 2, 3):
            cert, key, serial = issue(ca, tmp_path / f"staging{version}")
            publishSecret(volume, {"tls.crt": cert, "tls.key": key}, version)
            harness.pickUp()
            served.append(servedSerial(factory, ca))
            expected.append(serial)
        assert served == expected
        assert len(recorded.successes) == 3
        assert recorded.failures == []

    def test_unchangedUpdate(
        self,
        harness: Harness,
        ca: trustme.CA,
        tmp_path: Path,
        logEvents: list[LogEvent],
    ) -> None:
        """
        An update publishing the same bytes again builds no new context and
        logs nothing at info level.
        """
        volume = tmp_path / "secret"
        cert, key, serial = issue(ca, tmp_path / "staging")
        files = {"tls.crt": cert, "tls.key": key}
        publishSecret(volume, files, 0)
        factory = ReloadingContextFactory(
            str(volume / "tls.crt"), str(volume / "tls.key")
        )
        recorded = record(factory)
        harness.watch(factory)
        logEvents.clear()
        publishSecret(volume, files, 1)
        harness.pickUp()
        assert not factory.lastResult.changed
        assert recorded.successes == []
        assert loud(logEvents) == []
        assert servedSerial(factory, ca) == serial


class TestQuiet:
    """
    A watcher over files that do not change says nothing.
    """

    def test_quietRunLogsNothing(
        self,
        harness: Harness,
        ca: trustme.CA,
        tmp_path: Path,
        logEvents: list[LogEvent],
    ) -> None:
        """
        Other files coming and going next to and above the watched ones,
        and five polls, log nothing at any level.
        """
        live = tmp_path / "live"
        live.mkdir()
        certPath, keyPath, _ = writeLeaf(ca, live)
        harness.watch(ReloadingContextFactory(str(certPath), str(keyPath)))
        logEvents.clear()
        for directory in (live, tmp_path):
            (directory / "other.log").write_bytes(b"x")
            (directory / "other.log").unlink()
        harness.deliver(wait=5 if harness.mode == "inotify" else 0)
        for _ in range(5):
            harness.reactor.advance(POLL)
            harness.deliver()
        assert [
            event.get("log_format")
            for event in logEvents
            if event.get("log_namespace", "").startswith("txtlsreload")
        ] == []


class TestHalfDoneRotation:
    """
    One file of the pair written before the other.
    """

    @pytest.mark.parametrize("firstWritten", ["cert", "key"])
    def test_oneThenTheOther(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path, firstWritten: str
    ) -> None:
        """
        The mismatched pair is refused and the old certificate keeps being
        served; writing the second file gets the new pair served.
        """
        live = tmp_path / "live"
        live.mkdir()
        certPath, keyPath, oldSerial = writeLeaf(ca, live)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        recorded = record(factory)
        watcher = harness.watch(factory)
        cert, key, newSerial = issue(ca, tmp_path / "staging")
        pair = [(certPath, cert), (keyPath, key)]
        if firstWritten == "key":
            pair.reverse()
        replaceAtomically(*pair[0])
        harness.pickUp()
        assert recorded.failures
        assert watcher.failing
        assert servedSerial(factory, ca) == oldSerial
        replaceAtomically(*pair[1])
        harness.pickUp()
        assert servedSerial(factory, ca) == newSerial
        assert not watcher.failing

    def test_burstIsOneReload(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A certificate and key written one right after the other are loaded
        by one reload, with no refusal in between.
        """
        live = tmp_path / "live"
        live.mkdir()
        certPath, keyPath, _ = writeLeaf(ca, live)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        recorded = record(factory)
        watcher = harness.watch(factory)
        before = watcher.reloads
        cert, key, newSerial = issue(ca, tmp_path / "staging")
        replaceAtomically(certPath, cert)
        replaceAtomically(keyPath, key)
        harness.pickUp()
        assert watcher.reloads == before + 1
        assert recorded.failures == []
        assert servedSerial(factory, ca) == newSerial


class TestNoOpRewrite:
    """
    The same bytes written again.
    """

    @pytest.mark.parametrize("atomically", [True, False], ids=["rename", "in-place"])
    def test_identicalRewrite(
        self,
        harness: Harness,
        ca: trustme.CA,
        tmp_path: Path,
        logEvents: list[LogEvent],
        atomically: bool,
    ) -> None:
        """
        Rewriting identical content installs nothing, calls no callback and
        logs nothing at info level.
        """
        certPath, keyPath, serial = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        recorded = record(factory)
        watcher = harness.watch(factory)
        logEvents.clear()
        before = watcher.reloads
        for path in (certPath, keyPath):
            if atomically:
                replaceAtomically(path, path.read_bytes())
            else:
                path.write_bytes(path.read_bytes())
        harness.pickUp()
        assert watcher.reloads == before + 1
        assert not factory.lastResult.changed
        assert recorded.successes == recorded.failures == []
        assert loud(logEvents) == []
        assert servedSerial(factory, ca) == serial


class TestDirectories:
    """
    The directory holding the files is itself replaced.
    """

    def test_deletedAndRecreated(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        With the directory gone the old certificate keeps serving; once it
        is created again with new files they are served, and later changes
        in the new directory are picked up too.
        """
        live = tmp_path / "live"
        live.mkdir()
        certPath, keyPath, oldSerial = writeLeaf(ca, live)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        harness.watch(factory)
        shutil.rmtree(live)
        harness.pickUp()
        assert servedSerial(factory, ca) == oldSerial

        live.mkdir()
        _, _, serial = writeLeaf(ca, live)
        harness.pickUp()
        assert servedSerial(factory, ca) == serial

        _, _, serial = writeLeaf(ca, live)
        harness.pickUp()
        assert servedSerial(factory, ca) == serial

    def test_renamedOver(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A new directory renamed into place (the old one moved aside) is
        served, and later changes in it are picked up too.
        """
        live = tmp_path / "live"
        live.mkdir()
        certPath, keyPath, _ = writeLeaf(ca, live)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        harness.watch(factory)
        incoming = tmp_path / "incoming"
        incoming.mkdir()
        _, _, serial = writeLeaf(ca, incoming)
        live.rename(tmp_path / "previous")
        incoming.rename(live)
        harness.pickUp()
        assert servedSerial(factory, ca) == serial

        _, _, serial = writeLeaf(ca, live)
        harness.pickUp()
        assert servedSerial(factory, ca) == serial

    @pytest.mark.parametrize("through", ["paths", "symlinks"], ids=str)
    def test_ancestorRenamedOver(
        self, harness: Harness, ca: trustme.CA, tmp_path: Path, through: str
    ) -> None:
        """
        A new tree renamed into place above the files' own directory (the
        old tree moved aside, as in C{mv tls tls.old; mv tls.new tls}) is
        served, by inotify without waiting for the poll, whether the files
        or the targets of symlinks to them are in that tree; later changes
        in the new tree are picked up too.
        """
        tree = tmp_path / "tls"
        (tree / "live").mkdir(parents=True)
        certPath, keyPath, _ = writeLeaf(ca, tree / "live")
        if through == "symlinks":
            etc = tmp_path / "etc"
            etc.mkdir()
            for path in (certPath, keyPath):
                (etc / path.name).symlink_to(path)
            certPath, keyPath = etc / certPath.name, etc / keyPath.name
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        harness.watch(factory)
        incoming = tmp_path / "tls.new"
        (incoming / "live").mkdir(parents=True)
        _, _, serial = writeLeaf(ca, incoming / "live")
        tree.rename(tmp_path / "tls.old")
        incoming.rename(tree)
        harness.pickUp()
        assert servedSerial(factory, ca) == serial
        assert harness.mode == "polling" or harness.now < POLL

        _, _, serial = writeLeaf(ca, tree / "live")
        harness.pickUp()
        assert servedSerial(factory, ca) == serial
        assert harness.mode == "polling" or harness.now < POLL


@pytest.mark.skipif(not INOTIFY, reason="inotify is unavailable")
class TestInotify:
    """
    What only the inotify side does.
    """

    def test_unrelatedFileIgnored(self, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Changes to other files in a watched directory do not reload.
        """
        harness = Harness("inotify", ca)
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        watcher = harness.watch(factory)
        before = watcher.reloads
        (tmp_path / "access.log").write_bytes(b"GET /\n")
        assert harness.deliver(wait=5) > 0
        harness.reactor.advance(1)
        assert watcher.reloads == before
        harness.stopAll()

    def test_oneDescriptorShared(self, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Watchers on one reactor share one inotify descriptor, which stays
        open until the last of them stops.
        """
        descriptors = inotifyDescriptors()
        harness = Harness("inotify", ca)
        factories = []
        for name in ("a", "b"):
            directory = tmp_path / name
            directory.mkdir()
            certPath, keyPath, _ = writeLeaf(ca, directory)
            factory = ReloadingContextFactory(str(certPath), str(keyPath))
            harness.watch(factory)
            factories.append(factory)
        assert inotifyDescriptors() == descriptors + 1
        assert len(harness.reactor.getReaders()) == 1

        harness.watchers[0].stop()
        _, _, serial = writeLeaf(ca, tmp_path / "b")
        harness.pickUp()
        assert servedSerial(factories[1], ca) == serial
        assert inotifyDescriptors() == descriptors + 1

        harness.watchers[1].stop()
        assert inotifyDescriptors() == descriptors
        assert harness.reactor.getReaders() == []

    def test_otherDirectoryDeleted(self, ca: trustme.CA, tmp_path: Path) -> None:
        """
        When one watcher's directory is deleted (which makes Twisted close
        the shared descriptor), another watcher's changes are still picked
        up by inotify.
        """
        harness = Harness("inotify", ca)
        factories = []
        for name in ("a", "b"):
            directory = tmp_path / name
            directory.mkdir()
            certPath, keyPath, _ = writeLeaf(ca, directory)
            factories.append(ReloadingContextFactory(str(certPath), str(keyPath)))
            harness.watch(factories[-1])
        shutil.rmtree(tmp_path / "a")
        harness.pickUp()
        _, _, serial = writeLeaf(ca, tmp_path / "b")
        harness.pickUp()
        assert servedSerial(factories[1], ca) == serial
        harness.stopAll()
        assert harness.reactor.getReaders() == []

    def test_busyAncestor(self, ca: trustme.CA, tmp_path: Path) -> None:
        """
        In a directory above the files', writes to other files are not even
        delivered (the kernel filters them), and other names coming and
        going reload nothing.
        """
        from twisted.internet.inotify import IN_MODIFY

        harness = Harness("inotify", ca)
        noise = tmp_path / "noise.log"
        noise.write_bytes(b"")
        (tmp_path / "live").mkdir()
        certPath, keyPath, _ = writeLeaf(ca, tmp_path / "live")
        watcher = harness.watch(ReloadingContextFactory(str(certPath), str(keyPath)))
        watches = kernelWatches(harness.reactor)
        assert not watches[tmp_path.stat().st_ino] & IN_MODIFY
        assert watches[certPath.parent.stat().st_ino] & IN_MODIFY
        before = watcher.reloads
        noise.write_bytes(b"GET /\n")
        (tmp_path / "other").mkdir()
        (tmp_path / "other").rename(tmp_path / "renamed")
        assert harness.deliver(wait=5) > 0
        harness.reactor.advance(1)
        assert watcher.reloads == before
        harness.stopAll()

    def test_watchesSharedAndReleased(self, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Each directory on the way to any watcher's files is watched once,
        however many files and watchers need it, and a stopped watcher's
        own directories are released.
        """
        descriptors = inotifyDescriptors()
        harness = Harness("inotify", ca)
        store = tmp_path / "store"
        store.mkdir()
        pairs = {}
        for name in ("a", "b"):
            live = tmp_path / name / "live"
            live.mkdir(parents=True)
            realCert, key, _ = writeLeaf(ca, store, name=name)
            cert = live / "tls.crt"
            cert.symlink_to(realCert)
            harness.watch(ReloadingContextFactory(str(cert), str(key)))
            pairs[name] = (cert, key)
        everything = directoriesOnTheWay(*pairs["a"], *pairs["b"])
        assert set(kernelWatches(harness.reactor)) == inodes(everything)
        assert len(kernelWatches(harness.reactor)) == len(everything)

        harness.watchers[0].stop()
        remaining = directoriesOnTheWay(*pairs["b"])
        assert remaining < everything
        assert set(kernelWatches(harness.reactor)) == inodes(remaining)
        assert len(kernelWatches(harness.reactor)) == len(remaining)
        harness.watchers[1].stop()
        assert harness.reactor.getReaders() == []
        assert inotifyDescriptors() == descriptors

    def test_directoryMovedBetweenWatchedPaths(
        self, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A watched directory renamed to another watched path (which the
        kernel watches as the same inode) is still heard from there after
        its old path's watch is released.
        """
        harness = Harness("inotify", ca)
        (tmp_path / "x" / "one").mkdir(parents=True)
        (tmp_path / "y").mkdir()
        first, second = tmp_path / "x/one/a.pem", tmp_path / "y/two/b.pem"
        first.write_bytes(b"a")
        reloadable = RecordingReloadable(first, second)
        harness.watchers.append(watchFiles(reloadable, POLL, harness.reactor))
        (tmp_path / "x" / "one").rename(tmp_path / "y" / "two")
        harness.pickUp()
        before = reloadable.reloads
        second.write_bytes(b"b")
        harness.pickUp()
        assert reloadable.reloads > before
        assert harness.now < POLL
        harness.stopAll()

    def test_burstBecomesOneReload(self, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Change events arriving less than the debounce delay apart lead to
        one reload, that long after the last one.
        """
        harness = Harness("inotify", ca)
        path = tmp_path / "cert.pem"
        path.write_bytes(b"x")
        reloadable = RecordingReloadable(path, clock=harness.reactor)
        watcher = harness.watch(reloadable)  # type: ignore[arg-type]
        before = reloadable.reloads
        for _ in range(5):
            path.write_bytes(b"x")
            assert harness.deliver(wait=5) > 0
            harness.reactor.advance(watcher.debounce / 2)
        assert reloadable.reloads == before
        harness.reactor.advance(watcher.debounce)
        assert reloadable.reloads == before + 1
        harness.stopAll()

    def test_steadyStreamIsCapped(self, ca: trustme.CA, tmp_path: Path) -> None:
        """
        A steady stream of change events delays the reload by at most twenty
        debounce periods.
        """
        harness = Harness("inotify", ca)
        path = tmp_path / "cert.pem"
        path.write_bytes(b"x")
        reloadable = RecordingReloadable(path, clock=harness.reactor)
        watcher = FileWatcher(reloadable, POLL, harness.reactor, debounce=0.1)
        watcher.start()
        harness.watchers.append(watcher)
        for _ in range(50):
            path.write_bytes(b"x")
            assert harness.deliver(wait=5) > 0
            harness.reactor.advance(0.05)
        assert reloadable.calls[0] == 0
        assert 2.0 - 0.1 <= reloadable.calls[1] <= 2.0
        harness.stopAll()

    def test_stopWhileDebouncing(self, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Stopping a watcher with a change event waiting out its debounce
        cancels that reload and leaves no timer behind.
        """
        harness = Harness("inotify", ca)
        path = tmp_path / "cert.pem"
        path.write_bytes(b"x")
        reloadable = RecordingReloadable(path, clock=harness.reactor)
        watcher = harness.watch(reloadable)  # type: ignore[arg-type]
        path.write_bytes(b"y")
        assert harness.deliver(wait=5) > 0
        calls = list(reloadable.calls)
        watcher.stop()
        assert harness.reactor.getDelayedCalls() == []
        harness.reactor.pump([1] * 10)
        assert reloadable.calls == calls

    def test_unavailableMeansPolling(
        self,
        ca: trustme.CA,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        logEvents: list[LogEvent],
    ) -> None:
        """
        Where Twisted's inotify module cannot be imported (any platform but
        Linux), the watcher says so once and polling alone picks changes up.
        """
        monkeypatch.setitem(sys.modules, "twisted.internet.inotify", None)
        reactor = MemoryReactorClock()
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        watcher = FileWatcher(factory, 5, reactor)
        watcher.start()
        assert not watcher.inotifyActive
        assert reactor.getReaders() == []
        assert [text for text in loud(logEvents) if "inotify unavailable" in text]
        _, _, serial = writeLeaf(ca, tmp_path)
        reactor.advance(5)
        assert servedSerial(factory, ca) == serial
        watcher.stop()
        assert reactor.getDelayedCalls() == []
        assert reactor.getReaders() == []
