# -*- test-case-name: tests.test_howtos,tests.test_systemd -*-
"""
What operators get from any program that serves through a C{tlsreload:}
endpoint, turned on once per process when the first one listens: expiry
warnings on the reactor's clock and, when systemd started the process with
C{$NOTIFY_SOCKET}, C{READY=1} and the C{Type=notify-reload} handshake.

Host programs such as C{twistd web} and Daphne know nothing of txtlsreload;
starting these from the endpoint is the only way they get them.
"""

from __future__ import annotations

import sys

from twisted.internet.interfaces import IReactorCore, IReactorTime

from ._expiry import ExpiryWarnings
from ._systemd import SystemdNotifier

__all__ = ["ensureOperations"]

_started = False


def ensureOperations(reactor: object) -> None:
    """
    Start expiry warnings for every certificate of the process, and systemd
    notifications if the process runs under systemd, unless already started.

    C{READY=1} is sent once the reactor runs, so that every listener a host
    program sets up before C{reactor.run()} is listening by then.

    Only the process's own reactor (the one C{twisted.internet.reactor}
    installed) starts them: these are process-wide, so an endpoint given
    another reactor (a test's memory reactor, a private reactor) must not
    bind them to it.

    @param reactor: The reactor the endpoint listens with; its clock drives
        the warnings.
    """
    global _started
    if _started or not _isTheProcessReactor(reactor):
        return
    _started = True
    clock = IReactorTime(reactor, None)
    if clock is not None:
        ExpiryWarnings(clock).start()
    notifier = SystemdNotifier.fromEnvironment()
    if notifier is not None:
        notifier.followReloads()
        core = IReactorCore(reactor, None)
        if core is None:
            notifier.ready()
        else:
            core.callWhenRunning(notifier.ready)


def _isTheProcessReactor(reactor: object) -> bool:
    """
    Whether C{reactor} is the installed global reactor.  Nothing is imported
    (importing C{twisted.internet.reactor} would install the default one).
    """
    installed = sys.modules.get("twisted.internet.reactor")
    return installed is not None and installed is reactor
