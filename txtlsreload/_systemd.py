# -*- test-case-name: tests.test_systemd -*-
"""
systemd's notify protocol, for C{Type=notify} and C{Type=notify-reload}
units.

The protocol is one datagram per state change, C{KEY=value} lines, sent to
the C{AF_UNIX} socket named by C{$NOTIFY_SOCKET} (a leading C{@} means the
abstract namespace).  That is a few lines, so it is written here rather
than taken from a library.  With C{Type=notify-reload}, systemd sends
SIGHUP for C{systemctl reload} and waits for C{RELOADING=1} (with
C{MONOTONIC_USEC=}, the reload's start on C{CLOCK_MONOTONIC}) and then
C{READY=1}; so those bracket each SIGHUP round of reloads, and C{STATUS=}
says what is served, or why the latest reload was refused, for
C{systemctl status}.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from twisted.logger import Logger

from ._activity import ReloadRecord, Trigger, observeReloads, observeRounds
from ._errors import escapeControls
from ._inventory import Reloadables, inventory

__all__ = ["SystemdNotifier", "notifySystemd", "statusLine"]


def statusLine(reloadables: Reloadables = None) -> str:
    """
    One line for C{STATUS=}: the serial and notAfter served from each
    certificate file, or why its latest reload was refused.
    """
    parts = []
    for entry in inventory(reloadables):
        leaf = entry.leaf
        serving = (
            "no client certificate"
            if leaf is None
            else f"serial {leaf.info.serialHex}"
            f" notAfter {leaf.info.notAfter.isoformat()}"
        )
        if entry.error is not None:
            parts.append(f"reload refused: {entry.error}; still {serving}")
        else:
            # Escaped: a newline in a file name would start a new KEY=value
            # line in the datagram.
            parts.append(f"{escapeControls(entry.path)}: {serving}")
    return "; ".join(parts) if parts else "no TLS files loaded"


class SystemdNotifier:
    """
    Sends notifications to systemd.

    Sending never raises: a failure is logged once, since a service must
    keep serving even if its supervisor stopped listening.
    """

    _log = Logger()

    def __init__(
        self,
        address: str,
        reloadables: Reloadables = None,
        monotonicMicroseconds: Callable[[], int] = lambda: time.monotonic_ns() // 1000,
    ) -> None:
        """
        @param address: The socket, as in C{$NOTIFY_SOCKET}: a path, or
            C{@name} for the abstract namespace.
        @param reloadables: Whose state C{STATUS=} describes; by default
            everything alive in the process.
        @param monotonicMicroseconds: C{CLOCK_MONOTONIC} in microseconds,
            for C{MONOTONIC_USEC=}.
        """
        self.address = address
        self._reloadables = reloadables
        self._monotonic = monotonicMicroseconds
        self._failed = False
        self._stops: list[Callable[[], None]] = []

    @classmethod
    def fromEnvironment(
        cls, environ: Mapping[str, str] | None = None, reloadables: Reloadables = None
    ) -> SystemdNotifier | None:
        """
        A notifier for C{$NOTIFY_SOCKET}, or L{None} when it is not set
        (not started by systemd as C{Type=notify} or C{notify-reload}).
        """
        address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
        if not address:
            return None
        return cls(address, reloadables)

    def send(self, **fields: object) -> bool:
        """
        Send one datagram of C{KEY=value} lines (C{send(READY=1)}).

        @return: Whether it was sent.
        """
        message = "".join(f"{key}={value}\n" for key, value in fields.items())
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # A full queue on systemd's side must not stall the reactor.
                sock.setblocking(False)
                sock.sendto(message.encode("utf-8"), target)
        except OSError as e:
            if not self._failed:
                self._failed = True
                self._log.warn(
                    "Could not notify systemd at {address}: {error}",
                    address=self.address,
                    error=e.strerror or str(e),
                )
            return False
        self._failed = False
        return True

    def ready(self) -> bool:
        """
        Say the service is up (listening) with C{READY=1} and C{STATUS=}.
        """
        return self.send(READY=1, STATUS=statusLine(self._reloadables))

    def reloading(self) -> bool:
        """
        Say a reload started: C{RELOADING=1} and C{MONOTONIC_USEC=}.
        """
        return self.send(RELOADING=1, MONOTONIC_USEC=self._monotonic())

    def status(self) -> bool:
        """
        Update C{STATUS=} with what is served now.
        """
        return self.send(STATUS=statusLine(self._reloadables))

    def followReloads(self) -> None:
        """
        From now on, bracket every SIGHUP round of reloads with
        C{RELOADING=1} and C{READY=1}, and update C{STATUS=} after any other
        reload that installed something or was refused.
        """
        if self._stops:
            return
        self._stops = [
            observeRounds(self._round),
            observeReloads(self._reloaded),
        ]

    def stopFollowing(self) -> None:
        """
        Undo L{followReloads}.
        """
        for stop in self._stops:
            stop()
        self._stops = []

    def _round(self, trigger: Trigger, starting: bool) -> None:
        if trigger != "sighup":
            return
        if starting:
            self.reloading()
        else:
            self.ready()

    def _reloaded(self, reloadable: object, record: ReloadRecord) -> None:
        # Within a SIGHUP round READY=1 carries the status at its end.
        if record.lastTrigger != "sighup" and record.lastResult != "unchanged":
            self.status()


def notifySystemd(
    environ: Mapping[str, str] | None = None, reloadables: Reloadables = None
) -> SystemdNotifier | None:
    """
    When started by systemd (C{$NOTIFY_SOCKET} set), send C{READY=1} now
    and follow every later reload; call this once listening.

    @return: The notifier, or L{None} outside systemd.
    """
    notifier = SystemdNotifier.fromEnvironment(environ, reloadables)
    if notifier is not None:
        notifier.followReloads()
        notifier.ready()
    return notifier
