# -*- test-case-name: tests.test_sighup -*-
"""
The process-wide set of things that can be reloaded.

Triggers that act on "everything in this process" (SIGHUP) look here, so a
program does not have to hand each factory to each trigger.  The set holds
weak references: a factory that is no longer used is not kept alive by it.
"""

from __future__ import annotations

from typing import Protocol
from weakref import WeakSet

from zope.interface import Interface

__all__ = ["IReloadable", "ReloadOutcome", "register", "registered"]


class ReloadOutcome(Protocol):
    """
    What every reload reports, whichever side it reloads.
    """

    @property
    def succeeded(self) -> bool:
        """
        The files were usable (changed or not).
        """

    @property
    def changed(self) -> bool:
        """
        New credentials were installed.
        """


class IReloadable(Interface):
    """
    Something that re-reads its TLS files on request.
    """

    def reload(quietIfRepeated: bool = False) -> ReloadOutcome:
        """
        Re-read the files now.  Must not raise; reports its own failures.

        @param quietIfRepeated: Do not log a refusal identical to the
            previous one again.  File watchers retrying a half-done rotation
            ask for this; SIGHUP and explicit calls do not, so an operator
            always sees why.
        @return: What happened, such as L{txtlsreload.ReloadResult}.
        """

    def watchedPaths() -> list[str]:
        """
        @return: Every file C{reload} reads, for file watchers.
        """


_reloadables: WeakSet[object] = WeakSet()


def register(reloadable: object) -> None:
    """
    Add C{reloadable} (providing L{IReloadable}) to the process-wide set.
    """
    _reloadables.add(reloadable)


def registered() -> list[IReloadable]:
    """
    @return: Every live registered reloadable, in no particular order.
    """
    return [IReloadable(r) for r in list(_reloadables)]
