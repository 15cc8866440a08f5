# -*- test-case-name: tests.test_sighup -*-
"""
The process-wide set of things that can be reloaded.

Triggers that act on "everything in this process" (SIGHUP) look here, so a
program does not have to hand each factory to each trigger.  The set holds
weak references: a factory that is no longer used is not kept alive by it.
"""

from __future__ import annotations

from weakref import WeakSet

from zope.interface import Interface

__all__ = ["IReloadable", "register", "registered"]


class IReloadable(Interface):
    """
    Something that re-reads its TLS files on request.
    """

    def reload() -> object:
        """
        Re-read the files now.  Must not raise; reports its own failures.

        @return: An object with boolean C{succeeded} and C{changed}
            attributes, such as L{txtlsreload.ReloadResult}.
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
    @return: Every live registered reloadable, oldest first is not promised.
    """
    return [IReloadable(r) for r in list(_reloadables)]
