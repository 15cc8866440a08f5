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

A certificate store (L{txtlsreload.ReloadingCertificateStore}) holds up to
tens of thousands of files, where resolving and C{stat}-ing each on every
look would hold the reactor for a third of a second.  It is watched as a
tree instead: each directory it entered for every name in it (a new file
matters as much as a changed one), and each poll is the store's own reload
in steps, which compares every file's C{stat} a few milliseconds at a time
and parses only what changed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ._activity import Trigger, triggeredBy
from ._errors import escapeControls
from ._inotify import InotifyUnavailable, Names, existingHubFor, hubFor
from ._registry import IReloadable

__all__ = ["FileWatcher", "watchFiles", "watcherForEndpoint"]

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

_Identity = tuple[object, ...]


class _Tree(Protocol):
    """
    A reloadable that looks at its own files, in steps: a certificate store.
    """

    def watchedDirectories(self) -> list[str]: ...

    def reloadInSteps(self, quietIfRepeated: bool = False) -> Deferred[Any]: ...


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
        self._tree: _Tree | None = (
            reloadable
            if hasattr(reloadable, "watchedDirectories")
            and hasattr(reloadable, "reloadInSteps")
            else None
        )
        # For a tree: the directories watched for every name, the files
        # outside them watched one by one, and whether they must be
        # watched again (a directory replaced, events lost).
        self._treeDirectories: tuple[str, ...] | None = None
        self._treeNames: dict[str, Names] = {}
        self._treeFiles: list[str] = []
        self._treeStale = True
        self._treeReloading = False
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
        # getattr: a constructor that refused its arguments leaves a
        # half-made object, which error reporters still repr.
        reloadable = getattr(self, "_reloadable", None)
        interval = getattr(self, "pollInterval", None)
        return f"<FileWatcher of {reloadable!r} every {interval}s>"

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
        self._treeDirectories = None
        self._treeStale = True
        self._unwatchable = set()
        self._failures = 0
        self.failing = False
        self._look(force=True, changed=True, trigger="watch")
        if not self.running:
            return
        self._pollCall = self._reactor.callLater(self.pollInterval, self._poll)
        if self.reloadInterval > 0:
            self._intervalCall = self._reactor.callLater(
                self.reloadInterval, self._intervalReload
            )
        how = (
            f"inotify, and a poll every {self.pollInterval:g}s"
            if self.inotifyActive
            else f"a poll every {self.pollInterval:g}s"
        ) + (
            f", and a reload every {self.reloadInterval:g}s"
            if self.reloadInterval > 0
            else ""
        )
        if self._tree is None:
            self._log.info(
                "Watching {count} TLS file(s) for changes: {how}",
                count=len(self._identities),
                how=how,
                paths=list(self._identities),
            )
        else:
            directories = self._tree.watchedDirectories()
            self._log.info(
                "Watching the TLS files of {count} director(ies) for changes: {how}",
                count=len(directories),
                how=how,
                directories=directories[:1],
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
            self._look(force=False, changed=False, trigger="watch")
        finally:
            if self.running:
                self._pollCall = self._reactor.callLater(self.pollInterval, self._poll)

    def _intervalReload(self) -> None:
        self._intervalCall = None
        try:
            self._look(force=True, changed=False, trigger="interval")
        finally:
            if self.running:
                self._intervalCall = self._reactor.callLater(
                    self.reloadInterval, self._intervalReload
                )

    def _retry(self) -> None:
        self._retryCall = None
        self._look(force=True, changed=False, trigger="watch")

    def _noticed(self) -> None:
        self._debounceCall = None
        self._look(force=True, changed=True, trigger="watch")

    def _directoryEvent(self, directory: str, name: str | None) -> None:
        """
        An inotify event about one of our entries: debounce it.
        """
        if name is None or os.path.join(directory, name) in self._treeNames:
            # A watched directory itself went or came: watch the tree again.
            self._treeStale = True
        self._changeNoticed()

    def _eventsLost(self) -> None:
        self._treeStale = True
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

    def _look(self, force: bool, changed: bool, trigger: Trigger) -> None:
        """
        Look at the files and reload if needed.

        @param force: Reload even if no file's identity changed.
        @param changed: This look was caused by a change notice, so a refusal
            starts the backoff over.
        @param trigger: What the reload is counted as, in metrics.
        """
        if self._tree is not None:
            self._lookAtTree(changed, trigger)
            return
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
        with triggeredBy(trigger):
            self._reload(changed)

    def _lookAtTree(self, changed: bool, trigger: Trigger) -> None:
        """
        Look at a store: watch its directories if they changed, then let
        its stepped reload compare every file (one at a time: a look asked
        for while one runs is dropped, as that one sees the change too,
        unless it was a change notice).
        """
        if self._treeReloading and not changed:
            return
        try:
            if self.inotifyActive:
                self._syncTreeWatches()
        except Exception:
            self._log.failure("Could not look at the TLS files")
            return
        with triggeredBy(trigger):
            self._reload(changed)

    def _reload(self, changed: bool) -> None:
        if self._retryCall is not None and self._retryCall.active():
            self._retryCall.cancel()
        self._retryCall = None
        self.reloads += 1
        # Retries of a refusal that nothing new on disk explains are asked
        # to log quietly; a change, SIGHUP or a call is not.
        quiet = self.failing and not changed
        if self._tree is not None:
            self._treeReloading = True
            stepped = self._tree.reloadInSteps(quietIfRepeated=quiet)
            stepped.addCallback(lambda result: bool(result.succeeded))
            stepped.addErrback(self._reloadFailed)
            stepped.addCallback(self._reloaded, changed)
            return
        try:
            result = self._reloadable.reload(quietIfRepeated=quiet)
            succeeded = bool(result.succeeded)
        except Exception:
            succeeded = self._reloadFailed(None)
        self._reloaded(succeeded, changed)

    def _reloadFailed(self, failure: object) -> bool:
        self._log.failure(
            "Reloading {reloadable!r} failed",
            failure=failure,  # type: ignore[arg-type]
            reloadable=self._reloadable,
        )
        return False

    def _reloaded(self, succeeded: bool, changed: bool) -> None:
        """
        Follow a reload up: back off and retry while it is refused.
        """
        self._treeReloading = False
        if not self.running:
            return
        if self._tree is not None and self.inotifyActive:
            self._followNewDirectories()
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

    def _syncWatches(
        self,
        paths: list[str],
        tree: dict[str, Names] | None = None,
        onlyFiles: bool = False,
    ) -> None:
        """
        Watch every directory on the way to C{paths}, and no other.

        @param tree: Directories to watch too, for the names given (L{None}:
            every name, and their content).
        @param onlyFiles: The C{tree} directories are watched already:
            watch only the ways to C{paths} again.
        """
        names: dict[str, Names] = dict(tree or {})
        content: set[str] = {d for d, wanted in names.items() if wanted is None}
        fileDirectories: set[str] = set()
        for path in paths:
            for directory, name, isContent in _watchPoints(path):
                wanted = names.setdefault(directory, frozenset())
                if wanted is not None:
                    names[directory] = wanted | {name}
                fileDirectories.add(directory)
                if isContent:
                    content.add(directory)
        try:
            hub = hubFor(self._reactor)
            unwatchable = {
                directory
                for directory, wanted in names.items()
                if (not onlyFiles or directory in fileDirectories)
                and not hub.ensure(directory, self, wanted, directory in content)
            }
            if onlyFiles:
                unwatchable |= self._unwatchable - fileDirectories
        except InotifyUnavailable as e:
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
                directories=escapeControls(
                    ", ".join(sorted(unwatchable - self._unwatchable))
                ),
                interval=self.pollInterval,
            )
        self._unwatchable = unwatchable
        self._releaseWatches(set(names))
        self._watchedDirectories = set(names)

    def _followNewDirectories(self) -> None:
        """
        Watch the directories a store's reload entered for the first time;
        then look once more, for what changed in them before their watch.
        """
        assert self._tree is not None
        before = self._treeDirectories
        try:
            self._syncTreeWatches()
        except Exception:
            self._log.failure("Could not look at the TLS files")
            return
        if self._treeDirectories != before and self.inotifyActive:
            self._changeNoticed()

    def _syncTreeWatches(self) -> None:
        """
        Watch every directory of a store for every name in it, the
        directories above its root for the names on the way, and any file
        it reads from elsewhere (a default certificate, a client-CA bundle)
        as L{_syncWatches} does.

        The directories are watched again only when the store entered
        others, or one of them was replaced: at 10,000 directories
        (certbot's or Kubernetes' layout) that costs about 30 ms, too much
        for every poll.
        """
        assert self._tree is not None
        directories = tuple(self._tree.watchedDirectories())
        if directories != self._treeDirectories or self._treeStale:
            names: dict[str, Names] = dict.fromkeys(directories)
            if directories:
                for directory, name, _ in _watchPoints(directories[0])[:-1]:
                    wanted = names.setdefault(directory, frozenset())
                    if wanted is not None:
                        names[directory] = wanted | {name}
            inTree = set(directories)
            self._treeFiles = [
                path
                for path in self._reloadable.watchedPaths()
                if path not in inTree and os.path.dirname(path) not in inTree
            ]
            self._treeNames, self._treeDirectories = names, directories
            self._treeStale = False
            self._syncWatches(self._treeFiles, names)
        elif self._treeFiles:
            self._syncWatches(self._treeFiles, self._treeNames, onlyFiles=True)

    def _releaseWatches(self, keep: set[str]) -> None:
        watched = self._watchedDirectories
        hub = existingHubFor(self._reactor)
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


def watcherForEndpoint(
    reloadable: IReloadable, reactor: IReactorTime | None, watch: float, interval: float
) -> FileWatcher:
    """
    The (not yet started) watcher a C{tlsreload:} endpoint's C{watch=} and
    C{interval=} ask for.

    C{interval=} alone needs no change detection: its timer reloads, so the
    poll runs at the same pace and inotify stays off.
    """
    return FileWatcher(
        reloadable,
        pollInterval=watch or interval,
        reactor=reactor,
        reloadInterval=interval,
        useInotify=watch > 0,
    )
