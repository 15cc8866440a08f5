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

    @param reactor: Its clock drives the warnings; a reactor without one (a
        test double) gets none.
    """
    global _started
    if _started:
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
