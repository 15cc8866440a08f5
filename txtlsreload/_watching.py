# -*- test-case-name: tests.test_watching,tests.test_watching_fs -*-
"""
Reload when the files change, with no signal.

Two sources of change notices feed one decision:

  - inotify, where the platform has it, for prompt pickup.  It watches
    I{directories}, never the files themselves: a watch on a file (or on
    the directory holding it) follows its inode, so it goes deaf the moment
    a tool renames a new file, or a new directory, over it, which is how
    careful tools and Kubernetes publish certificates.  So every directory
    on the way to each file and to each symlink's target is watched, for
    the one name that leads on from it.

  - A poll every C{pollInterval} seconds as the safety net, because inotify
    misses things: network filesystems, an overflowing event queue (which
    Twisted drops silently), a directory deleted and re-created between two
    looks.  A poll costs one C{stat} per file plus resolving its path; the
    files are read and hashed only when that identity changed.

Either way the decision is the reloadable's own C{reload}, which compares a
hash of the bytes and installs nothing when they did not change, so a
spurious notice costs a read and a hash, never a new TLS context.

A refused reload (the certificate written, its key not yet) is retried with
a short backoff until the files agree; any new change tries again at once.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorFDSet, IReactorTime
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from ._registry import IReloadable

__all__ = ["FileWatcher", "watchFiles"]

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
"""
Seconds to wait before each retry of a refused reload; the last one repeats
for as long as the reload keeps being refused.
"""

DEFAULT_DEBOUNCE = 0.05
"""
Seconds of quiet after a change notice before reloading, so that a burst of
notices (a certificate and its key written one after the other, a
Kubernetes symlink swap) becomes one reload.
"""

# Linux gives up resolving after 40 symlinks (ELOOP); so do we.
_MAX_SYMLINKS = 40

# The inotify events that can mean "what this path reads is different now".
# In the directory holding a file, its content changing matters too; IN_MODIFY
# is included for writers that keep a file open, and the debounce waits for
# them to go quiet.  In the directories above, only names coming and going
# matter, which keeps the (far more frequent) writes to other files in busy
# directories such as /tmp from being delivered at all.
_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_UNMOUNT = 0x00002000
_IN_ONLYDIR = 0x01000000
_NAMES_MASK = (
    _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
    | _IN_UNMOUNT
    | _IN_ONLYDIR
)
_CONTENT_MASK = _NAMES_MASK | _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE

_Identity = tuple[object, ...]


def _identify(path: str) -> _Identity:
    """
    A cheap fingerprint of what C{path} reads: the resolved target's real
    path, device, inode, size, modification and change times.

    C{st_ctime_ns} is there for the copy that preserves the modification
    time (C{cp -p}) of a same-sized file: only the change time moves then.
    An unreadable or missing file has an identity too, so that it appearing
    again counts as a change.
    """
    try:
        real = os.path.realpath(path)
        stat = os.stat(real)
    except OSError as e:
        return ("unavailable", path, e.errno)
    return (
        real,
        stat.st_dev,
        stat.st_ino,
        stat.st_size,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
    )


def _watchPoints(path: str) -> list[tuple[str, str, bool]]:
    """
    The directory entries whose change can change what C{path} reads.

    Resolves C{path} one component at a time, the way the kernel does, and
    records every entry looked up on the way: each directory above the file
    (so that renaming C{/etc/tls} away and a new one into place is noticed
    although the file's own directory saw nothing), every symlink followed,
    and the final entry.  For a Kubernetes Secret volume's C{/v/tls.crt}
    that is C{("/", "v")}, C{("/v", "tls.crt")}, C{("/v", "..data")},
    C{("/v", "..2026_...")} and C{("/v/..2026_...", "tls.crt")}.  Resolving
    stops at the first name that does not exist, so its creation is
    noticed.

    @return: C{(directory, name, content)} triples; the directories
        contain no symlinks.  C{content} is true for the file's own entry,
        whose content changing matters too, and false for entries where
        only a name coming or going does.
    """
    points: list[tuple[str, str, bool]] = []
    pending = os.path.abspath(path).split(os.sep)[::-1]
    resolved = os.sep
    links = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        points.append((resolved, part, False))
        candidate = os.path.join(resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError as e:
            if e.errno == errno.ENOTDIR:
                # The entry before is a file, not a directory: watching it
                # for its name is all that can be done.
                points.pop()
                break
            if e.errno == errno.ENOENT:
                break
            # Not a symlink (or not ours to read): a real file or directory.
            resolved = candidate
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            break
        if os.path.isabs(target):
            resolved = os.sep
        pending.extend(reversed(target.split(os.sep)))
    if points and not any(part not in ("", ".") for part in pending):
        directory, name, _ = points[-1]
        points[-1] = (directory, name, True)
    return points


class _Subscriber(Protocol):
    """
    What L{_DirectoryEvents} tells about.
    """

    def _directoryEvent(self, directory: str, name: str | None) -> None:
        """
        Something happened to C{name} in C{directory}, one of the names the
        subscriber asked about, or to C{directory} itself if C{name} is
        C{None}.
        """

    def _eventsLost(self) -> None:
        """
        The inotify descriptor was lost: events may have been missed, and
        every watch must be asked for again.
        """


class _InotifyUnavailable(Exception):
    """
    This platform, process or reactor cannot use inotify.
    """


@dataclass
class _Watch:
    """
    One watched directory and who cares about which of its names.

    @ivar identity: The directory's device and inode when the watch was
        made; the watch follows that inode, not the path.
    @ivar mask: The inotify events asked for.
    @ivar subscribers: For each subscriber, the names it asked about and
        whether their content matters.
    @ivar byName: The subscribers of each name, as bytes, so that an event
        about an unrelated name costs one lookup.
    """

    identity: tuple[int, int]
    mask: int
    subscribers: dict[_Subscriber, tuple[frozenset[str], bool]] = field(
        default_factory=dict
    )
    byName: dict[bytes, set[_Subscriber]] = field(default_factory=dict)

    def subscribe(
        self, subscriber: _Subscriber, names: frozenset[str], content: bool
    ) -> None:
        previous = self.subscribers.get(subscriber)
        if previous == (names, content):
            return
        self.unsubscribe(subscriber)
        self.subscribers[subscriber] = (names, content)
        for name in names:
            self.byName.setdefault(os.fsencode(name), set()).add(subscriber)

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        previous = self.subscribers.pop(subscriber, None)
        if previous is None:
            return
        for name in previous[0]:
            key = os.fsencode(name)
            interested = self.byName.get(key)
            if interested is not None:
                interested.discard(subscriber)
                if not interested:
                    del self.byName[key]


class _DirectoryEvents:
    """
    One inotify descriptor per reactor, shared by every L{FileWatcher} on it.

    Each inotify descriptor counts against a small per-user limit (128 by
    default on Linux, for all of the user's processes together), so a
    process with many watched certificates must not open one each.  Twisted's
    L{INotify} allows one watch per path, so this keeps one watch per
    directory, whoever asked for it, and hands each event only to the
    subscribers of the name it is about.  The number of watches is the
    number of distinct directories on the way to the files.

    Twisted closes the whole descriptor when any watched directory is
    deleted (C{IN_DELETE_SELF}), which a Kubernetes Secret volume does on
    every update.  So a lost descriptor is normal here: every subscriber is
    told, and the next L{ensure} opens a new one.
    """

    def __init__(self, reactor: IReactorFDSet) -> None:
        self._reactor = reactor
        self._notifier: Any = None
        self._watches: dict[str, _Watch] = {}

    def ensure(
        self,
        directory: str,
        subscriber: _Subscriber,
        names: frozenset[str],
        content: bool,
    ) -> bool:
        """
        Make sure C{directory} is watched for events about C{names}, and
        about their content too if C{content}, on behalf of C{subscriber}
        (replacing what it asked for before).

        A watch follows the directory's inode, so if the path now names
        another directory (deleted and re-created, or renamed over), the old
        watch is dropped and a new one made.

        @return: C{False} if the kernel refused to watch the directory (the
            per-user watch limit, no permission), in which case polling
            covers it.  A directory that is gone counts as watched: the
            caller found it a moment ago, so an event in its parent will say
            what happened.
        @raise _InotifyUnavailable: If no inotify descriptor can be had.
        """
        notifier = self._connectedNotifier()
        try:
            stat = os.stat(directory)
        except OSError:
            return True
        identity = (stat.st_dev, stat.st_ino)
        mask = _CONTENT_MASK if content else _NAMES_MASK
        watch = self._watches.get(directory)
        if (
            watch is not None
            and watch.identity == identity
            and watch.mask & mask == mask
        ):
            watch.subscribe(subscriber, names, content)
            return True

        from twisted.internet.inotify import INotifyError

        others: dict[_Subscriber, tuple[frozenset[str], bool]] = {}
        if watch is not None:
            others = {s: v for s, v in watch.subscribers.items() if s is not subscriber}
            if any(otherContent for _, otherContent in others.values()):
                mask |= _CONTENT_MASK
            self._ignore(directory)
        # Stat before watching: if the directory is replaced in between, the
        # identity is stale and the next look replaces the watch again.
        watched = self._forgetMoved(identity)
        if watched:
            try:
                notifier.watch(
                    FilePath(directory),
                    mask=mask,
                    callbacks=[self._callbackFor(directory)],
                )
            except INotifyError:
                watched = False
        if watched:
            watch = self._watches[directory] = _Watch(identity, mask)
            for other, (otherNames, otherContent) in others.items():
                watch.subscribe(other, otherNames, otherContent)
            watch.subscribe(subscriber, names, content)
        # The others may have missed events while there was no watch.
        for other in others:
            other._eventsLost()
        return watched

    def release(self, directory: str, subscriber: _Subscriber) -> None:
        """
        C{subscriber} no longer cares about C{directory}; close the
        descriptor when nobody cares about anything.
        """
        watch = self._watches.get(directory)
        if watch is not None:
            watch.unsubscribe(subscriber)
            if not watch.subscribers:
                self._ignore(directory)
        if not self._watches:
            self._close()

    def _forgetMoved(self, identity: tuple[int, int]) -> bool:
        """
        Drop any watch, kept under an old path, on the directory that is
        about to be watched under a new one.

        The kernel has one watch per inode: watching a directory that was
        renamed from one watched path to another would hand back the old
        watch, and removing the old path's watch later would silently end
        the new one too.

        @return: C{False} if another watched path still names the same
            directory (a bind mount), which cannot be watched twice.
        """
        for directory, watch in list(self._watches.items()):
            if watch.identity == identity:
                try:
                    stat = os.stat(directory)
                except OSError:
                    pass
                else:
                    if (stat.st_dev, stat.st_ino) == identity:
                        return False
                self._ignore(directory)
                for subscriber in watch.subscribers:
                    subscriber._eventsLost()
        return True

    def _connectedNotifier(self) -> Any:
        if self._notifier is not None and not self._notifier.connected:
            self._lost()
        if self._notifier is None:
            try:
                from twisted.internet.inotify import INotify, INotifyError
            except ImportError as e:
                self._unregister()
                raise _InotifyUnavailable(str(e)) from e
            try:
                notifier: Any = INotify(reactor=self._reactor)  # type: ignore[no-untyped-call]
            except (INotifyError, OSError) as e:
                self._unregister()
                raise _InotifyUnavailable(str(e)) from e
            notifier.startReading()
            self._notifier = notifier
        return self._notifier

    def _ignore(self, directory: str) -> None:
        self._watches.pop(directory, None)
        if self._notifier is not None and self._notifier.connected:
            try:
                self._notifier.ignore(FilePath(directory))
            except KeyError:
                pass

    def _callbackFor(self, directory: str) -> Any:
        """
        The callback Twisted calls with each event in C{directory}.

        Busy directories such as C{/} or C{/tmp} are watched for the one
        name on the way to a file; what this does with an event about any
        other name must stay cheap, so it looks the name up as bytes as
        Twisted hands it over, and decodes nothing.
        """
        raw = os.fsencode(directory)

        def event(_: object, path: FilePath[Any], mask: int) -> None:
            watch = self._watches.get(directory)
            if watch is None:
                return
            eventPath = path.asBytesMode().path
            if eventPath == raw:
                name = None
                interested: Any = watch.subscribers
            else:
                interested = watch.byName.get(os.path.basename(eventPath), ())
                name = os.fsdecode(os.path.basename(eventPath)) if interested else None
            for subscriber in list(interested):
                subscriber._directoryEvent(directory, name)
            if mask & _IN_DELETE_SELF:
                # Twisted closes the descriptor right after this callback.
                self._lost()

        return event

    def _lost(self) -> None:
        """
        Forget the (closed) descriptor and every watch, and tell everyone.
        """
        subscribers: set[_Subscriber] = set()
        for watch in self._watches.values():
            subscribers.update(watch.subscribers)
        self._watches.clear()
        self._notifier = None
        for subscriber in subscribers:
            subscriber._eventsLost()

    def _unregister(self) -> None:
        if _hubs.get(self._reactor) is self:
            del _hubs[self._reactor]

    def _close(self) -> None:
        notifier, self._notifier = self._notifier, None
        self._unregister()
        if notifier is not None and notifier.connected:
            notifier.loseConnection()


_hubs: dict[object, _DirectoryEvents] = {}


def _hubFor(reactor: object) -> _DirectoryEvents:
    """
    The shared L{_DirectoryEvents} of C{reactor}.

    @raise _InotifyUnavailable: If C{reactor} cannot watch descriptors.
    """
    hub = _hubs.get(reactor)
    if hub is None:
        if not IReactorFDSet.providedBy(reactor):
            raise _InotifyUnavailable("the reactor cannot watch file descriptors")
        hub = _hubs[reactor] = _DirectoryEvents(reactor)
    return hub


class FileWatcher:
    """
    Reload an L{IReloadable} whenever its files change on disk.

    Notices of change come from inotify (Linux), watching the directories
    on the way to each file, and from a poll every C{pollInterval} seconds;
    where inotify is missing the poll alone does the job.  Either triggers
    C{reloadable.reload()}, which installs nothing if the bytes are the
    same, so an identical rewrite costs a read and a hash.

    A refused reload (say the certificate was written and its key not yet)
    leaves the old credentials serving and is retried after each of
    C{retryDelays} in turn, then every last delay, for as long as it takes;
    a new change notice retries at once and starts the backoff over.

    @ivar running: Whether L{start} was called and L{stop} not since.
    @ivar failing: Whether the latest reload was refused (retries are
        scheduled).
    @ivar inotifyActive: Whether inotify notices are being used now, as
        opposed to the poll alone.
    @ivar reloads: How many reloads it has asked for, for status pages.
    """

    _log = Logger()

    def __init__(
        self,
        reloadable: IReloadable,
        pollInterval: float,
        reactor: IReactorTime | None = None,
        *,
        reloadInterval: float = 0,
        useInotify: bool = True,
        retryDelays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        debounce: float = DEFAULT_DEBOUNCE,
    ) -> None:
        """
        @param reloadable: What to reload, such as a
            L{ReloadingContextFactory <txtlsreload.ReloadingContextFactory>};
            its C{watchedPaths()} are asked for on every look, so a
            reloadable whose file list changes is followed.
        @param pollInterval: Seconds between two looks at the files, with or
            without inotify.  Must be positive.
        @param reactor: Provides L{IReactorTime}, and L{IReactorFDSet} for
            inotify; the global reactor by default.
        @param reloadInterval: If positive, also reload every this many
            seconds whatever the files look like, for stores that change
            files without changing what C{stat} shows.
        @param useInotify: C{False} to rely on polling alone.
        @param retryDelays: Seconds to wait before each retry of a refused
            reload; the last one repeats.
        @param debounce: Seconds of quiet to wait after an inotify notice
            before reloading, so that a burst of notices becomes one reload.
            A steady stream of notices delays the reload by at most twenty
            times this.

        @raise ValueError: If an interval or delay is out of range.
        """
        if not pollInterval > 0:
            raise ValueError(f"pollInterval must be positive, not {pollInterval!r}")
        if reloadInterval < 0:
            raise ValueError(
                f"reloadInterval must be 0 (off) or positive, not {reloadInterval!r}"
            )
        retryDelays = tuple(retryDelays)
        if not retryDelays or any(not delay > 0 for delay in retryDelays):
            raise ValueError(
                f"retryDelays must be positive numbers, not {retryDelays!r}"
            )
        if debounce < 0:
            raise ValueError(f"debounce must not be negative, not {debounce!r}")
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = IReactorTime(globalReactor)
        self._reloadable = reloadable
        self._reactor = reactor
        self.pollInterval = pollInterval
        self.reloadInterval = reloadInterval
        self.retryDelays = retryDelays
        self.debounce = debounce
        self._useInotify = useInotify
        self.running = False
        self.failing = False
        self.inotifyActive = False
        self.reloads = 0
        self._identities: dict[str, _Identity] = {}
        self._watchedDirectories: set[str] = set()
        self._unwatchable: set[str] = set()
        self._failures = 0
        self._firstNotice = 0.0
        self._pollCall: IDelayedCall | None = None
        self._intervalCall: IDelayedCall | None = None
        self._debounceCall: IDelayedCall | None = None
        self._retryCall: IDelayedCall | None = None

    def __repr__(self) -> str:
        return f"<FileWatcher of {self._reloadable!r} every {self.pollInterval}s>"

    def start(self) -> None:
        """
        Start watching.  Looks at the files and reloads once right away, so
        a change between loading them and starting to watch is not missed.

        @raise RuntimeError: If already running.  A stopped watcher can be
            started again.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self.running = True
        self.inotifyActive = self._useInotify
        self._identities = {}
        self._unwatchable = set()
        self._failures = 0
        self.failing = False
        self._look(force=True, changed=True)
        if not self.running:
            return
        self._pollCall = self._reactor.callLater(self.pollInterval, self._poll)
        if self.reloadInterval > 0:
            self._intervalCall = self._reactor.callLater(
                self.reloadInterval, self._intervalReload
            )
        self._log.info(
            "Watching {count} TLS file(s) for changes: {how}",
            count=len(self._identities),
            how=(
                f"inotify, and a poll every {self.pollInterval:g}s"
                if self.inotifyActive
                else f"a poll every {self.pollInterval:g}s"
            )
            + (
                f", and a reload every {self.reloadInterval:g}s"
                if self.reloadInterval > 0
                else ""
            ),
            paths=list(self._identities),
        )

    def stop(self) -> None:
        """
        Stop watching: cancel every timer and release every inotify watch,
        closing the descriptor if no other watcher uses it.  Safe to call
        when not running.
        """
        self.running = False
        for call in (
            self._pollCall,
            self._intervalCall,
            self._debounceCall,
            self._retryCall,
        ):
            if call is not None and call.active():
                call.cancel()
        self._pollCall = self._intervalCall = None
        self._debounceCall = self._retryCall = None
        self._releaseWatches(set())

    def _poll(self) -> None:
        self._pollCall = None
        try:
            self._look(force=False, changed=False)
        finally:
            if self.running:
                self._pollCall = self._reactor.callLater(self.pollInterval, self._poll)

    def _intervalReload(self) -> None:
        self._intervalCall = None
        try:
            self._look(force=True, changed=False)
        finally:
            if self.running:
                self._intervalCall = self._reactor.callLater(
                    self.reloadInterval, self._intervalReload
                )

    def _retry(self) -> None:
        self._retryCall = None
        self._look(force=True, changed=False)

    def _noticed(self) -> None:
        self._debounceCall = None
        self._look(force=True, changed=True)

    def _directoryEvent(self, directory: str, name: str | None) -> None:
        """
        An inotify event about one of our entries: debounce it.
        """
        self._changeNoticed()

    def _eventsLost(self) -> None:
        self._changeNoticed()

    def _changeNoticed(self) -> None:
        """
        Reload after C{debounce} seconds of quiet, or at the latest twenty
        debounce periods after the first notice.
        """
        if not self.running:
            return
        now = self._reactor.seconds()
        call = self._debounceCall
        if call is not None and call.active():
            if now + self.debounce <= self._firstNotice + 20 * self.debounce:
                call.reset(self.debounce)
            return
        self._firstNotice = now
        self._debounceCall = self._reactor.callLater(self.debounce, self._noticed)

    def _look(self, force: bool, changed: bool) -> None:
        """
        Look at the files and reload if needed.

        @param force: Reload even if no file's identity changed.
        @param changed: This look was caused by a change notice, so a refusal
            starts the backoff over.
        """
        try:
            paths = self._reloadable.watchedPaths()
            if self.inotifyActive:
                self._syncWatches(paths)
            # Identities are taken after the watches are in place, so that
            # a change is either seen here or noticed by a watch.
            identities = {path: _identify(path) for path in paths}
        except Exception:
            self._log.failure("Could not look at the TLS files")
            return
        differing = any(
            identities[path] != self._identities.get(path) for path in paths
        )
        self._identities = identities
        if differing:
            changed = True
        elif not force:
            return
        self._reload(changed)

    def _reload(self, changed: bool) -> None:
        if self._retryCall is not None and self._retryCall.active():
            self._retryCall.cancel()
        self._retryCall = None
        self.reloads += 1
        try:
            # Retries of a refusal that nothing new on disk explains are
            # asked to log quietly; a change, SIGHUP or a call is not.
            result = self._reloadable.reload(
                quietIfRepeated=self.failing and not changed
            )
            succeeded = bool(result.succeeded)
        except Exception:
            self._log.failure(
                "Reloading {reloadable!r} failed", reloadable=self._reloadable
            )
            succeeded = False
        if not self.running:
            return
        if succeeded:
            if self.failing:
                self._log.info(
                    "TLS files usable again after {count} refusal(s)",
                    count=self._failures,
                )
            self.failing = False
            self._failures = 0
            return
        if changed:
            self._failures = 0
        delay = self.retryDelays[min(self._failures, len(self.retryDelays) - 1)]
        if not self.failing:
            # Once per failing episode, not once per retry: the retries go
            # on for as long as it takes, every minute in the end.
            self._log.info(
                "TLS reload refused; still serving the previous credentials, "
                "retrying with backoff ({delay:g}s first) until the files agree",
                delay=delay,
            )
        self.failing = True
        self._failures += 1
        self._retryCall = self._reactor.callLater(delay, self._retry)

    def _syncWatches(self, paths: list[str]) -> None:
        """
        Watch every directory on the way to C{paths}, and no other.
        """
        names: dict[str, set[str]] = {}
        content: set[str] = set()
        for path in paths:
            for directory, name, isContent in _watchPoints(path):
                names.setdefault(directory, set()).add(name)
                if isContent:
                    content.add(directory)
        try:
            hub = _hubFor(self._reactor)
            unwatchable = {
                directory
                for directory, wanted in names.items()
                if not hub.ensure(
                    directory, self, frozenset(wanted), directory in content
                )
            }
        except _InotifyUnavailable as e:
            self._log.info(
                "inotify unavailable ({reason}): relying on a poll every {interval:g}s",
                reason=str(e),
                interval=self.pollInterval,
            )
            self.inotifyActive = False
            self._releaseWatches(set())
            return
        if unwatchable - self._unwatchable:
            # Said once, not at every look: it stays true until it changes.
            self._log.info(
                "inotify cannot watch {directories}; the poll every "
                "{interval:g}s covers changes there",
                directories=", ".join(sorted(unwatchable - self._unwatchable)),
                interval=self.pollInterval,
            )
        self._unwatchable = unwatchable
        self._releaseWatches(set(names))
        self._watchedDirectories = set(names)

    def _releaseWatches(self, keep: set[str]) -> None:
        watched = self._watchedDirectories
        hub = _hubs.get(self._reactor)
        if hub is not None:
            for directory in watched - keep:
                hub.release(directory, self)
        self._watchedDirectories = watched & keep


def watchFiles(
    reloadable: IReloadable,
    pollInterval: float,
    reactor: IReactorTime | None = None,
    **kwargs: Any,
) -> FileWatcher:
    """
    Start reloading C{reloadable} whenever its files change.

    @param kwargs: Any keyword argument of L{FileWatcher}.
    @return: The started watcher; call its C{stop} to stop.
    """
    watcher = FileWatcher(reloadable, pollInterval, reactor, **kwargs)
    watcher.start()
    return watcher
