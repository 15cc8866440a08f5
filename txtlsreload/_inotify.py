# -*- test-case-name: tests.test_watching_fs -*-
"""
inotify events about directories, shared by every file watcher of a reactor.

Linux allows few inotify descriptors per user (128 by default, across all
processes), so one descriptor per reactor serves every watcher, and one
watch per directory serves every file in it.  Watchers subscribe to
directories and are told when a name they care about in one of them
changes; everything else is filtered out with one dictionary lookup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorFDSet
from twisted.python.filepath import FilePath

__all__ = [
    "DirectoryEvents",
    "InotifyUnavailable",
    "Names",
    "existingHubFor",
    "hubFor",
]

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


#: The names a subscriber asks about in one directory; L{None} for every
#: name (a directory of certificates, where any new file matters).
Names = frozenset[str] | None


class _Subscriber(Protocol):
    """
    What L{DirectoryEvents} tells about.
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


class InotifyUnavailable(Exception):
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
    @ivar everyName: The subscribers of every name in the directory (a
        directory of certificates, where any new file matters).
    """

    identity: tuple[int, int]
    mask: int
    subscribers: dict[_Subscriber, tuple[Names, bool]] = field(default_factory=dict)
    byName: dict[bytes, set[_Subscriber]] = field(default_factory=dict)
    everyName: set[_Subscriber] = field(default_factory=set)

    def subscribe(self, subscriber: _Subscriber, names: Names, content: bool) -> None:
        previous = self.subscribers.get(subscriber)
        if previous == (names, content):
            return
        self.unsubscribe(subscriber)
        self.subscribers[subscriber] = (names, content)
        if names is None:
            self.everyName.add(subscriber)
            return
        for name in names:
            self.byName.setdefault(os.fsencode(name), set()).add(subscriber)

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        previous = self.subscribers.pop(subscriber, None)
        if previous is None:
            return
        if previous[0] is None:
            self.everyName.discard(subscriber)
            return
        for name in previous[0]:
            key = os.fsencode(name)
            interested = self.byName.get(key)
            if interested is not None:
                interested.discard(subscriber)
                if not interested:
                    del self.byName[key]


class DirectoryEvents:
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
        names: Names,
        content: bool,
    ) -> bool:
        """
        Make sure C{directory} is watched for events about C{names} (or
        about any name, if L{None}), and about their content too if
        C{content}, on behalf of C{subscriber} (replacing what it asked for
        before).

        A watch follows the directory's inode, so if the path now names
        another directory (deleted and re-created, or renamed over), the old
        watch is dropped and a new one made.

        @return: C{False} if the kernel refused to watch the directory (the
            per-user watch limit, no permission), in which case polling
            covers it.  A directory that is gone counts as watched: the
            caller found it a moment ago, so an event in its parent will say
            what happened.
        @raise InotifyUnavailable: If no inotify descriptor can be had.
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

        others: dict[_Subscriber, tuple[Names, bool]] = {}
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
                raise InotifyUnavailable(str(e)) from e
            try:
                notifier: Any = INotify(reactor=self._reactor)  # type: ignore[no-untyped-call]
            except (INotifyError, OSError) as e:
                self._unregister()
                raise InotifyUnavailable(str(e)) from e
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
                if watch.everyName:
                    interested = watch.everyName.union(interested)
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


_hubs: dict[object, DirectoryEvents] = {}


def hubFor(reactor: object) -> DirectoryEvents:
    """
    The shared L{DirectoryEvents} of C{reactor}.

    @raise InotifyUnavailable: If C{reactor} cannot watch descriptors.
    """
    hub = _hubs.get(reactor)
    if hub is None:
        if not IReactorFDSet.providedBy(reactor):
            raise InotifyUnavailable("the reactor cannot watch file descriptors")
        hub = _hubs[reactor] = DirectoryEvents(reactor)
    return hub


def existingHubFor(reactor: object) -> DirectoryEvents | None:
    """
    The shared L{DirectoryEvents} of C{reactor}, if one was made.
    """
    return _hubs.get(reactor)
