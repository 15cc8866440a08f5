"""
Tests for L{txtlsreload.notifySystemd}: the notify protocol against a real
C{AF_UNIX} datagram socket standing in for systemd, in process and from a
real C{twistd tlshello}.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent

from txtlsreload import (
    FileWatcher,
    ReloadingContextFactory,
    SystemdNotifier,
    notifySystemd,
    reloadOnSIGHUP,
)

from .processes import servedSerial, waitFor
from .reactors import CallsFromThreads
from .tlshelpers import replaceAtomically, writeLeaf

ROOT = Path(__file__).parent.parent


class _Systemd:
    """
    The receiving end of C{$NOTIFY_SOCKET}.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bound = "\0" + address[1:] if address.startswith("@") else address
        self.socket.bind(bound)
        self.socket.settimeout(15)

    def receive(self) -> dict[str, str]:
        """
        The next datagram, as its C{KEY=value} lines.
        """
        data = self.socket.recv(65536).decode("utf-8")
        assert data.endswith("\n")
        return dict(line.split("=", 1) for line in data.splitlines())

    def nothingWaiting(self) -> bool:
        self.socket.settimeout(0.05)
        try:
            self.socket.recv(65536)
        except TimeoutError:
            return True
        finally:
            self.socket.settimeout(15)
        return False


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Systemd]:
    """
    A datagram socket bound at a path, or in the abstract namespace
    (C{@name}).
    """
    if request.param == "path":
        address = str(tmp_path / "notify")
    else:
        address = f"@txtlsreload-test-{uuid.uuid4().hex}"
    receiver = _Systemd(address)
    try:
        yield receiver
    finally:
        receiver.socket.close()


def _served(factory: ReloadingContextFactory) -> str:
    info = factory.certificate
    return f"serial {info.serialHex} notAfter {info.notAfter.isoformat()}"


class TestInProcess:
    """
    Notifications sent from this process.
    """

    def test_ready(self, tmp_path: Path, ca: trustme.CA, systemd: _Systemd) -> None:
        """
        C{notifySystemd} sends C{READY=1} with a C{STATUS=} naming the
        served file, serial and notAfter.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        notifier = notifySystemd({"NOTIFY_SOCKET": systemd.address}, [factory])
        assert notifier is not None
        notifier.stopFollowing()
        assert systemd.receive() == {
            "READY": "1",
            "STATUS": f"{cert}: {_served(factory)}",
        }

    def test_controlCharactersEscaped(
        self, tmp_path: Path, ca: trustme.CA, systemd: _Systemd
    ) -> None:
        """
        A newline in a file name is escaped in C{STATUS=}, so it cannot add a
        line (say, C{READY=1}) to the datagram.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        oddCert = tmp_path / "odd\nREADY=1.crt"
        cert.rename(oddCert)
        factory = ReloadingContextFactory(str(oddCert), str(key))
        notifier = SystemdNotifier(systemd.address, [factory])
        notifier.status()
        assert systemd.receive() == {
            "STATUS": f"{tmp_path}/odd\\nREADY=1.crt: {_served(factory)}"
        }

    def test_notUnderSystemd(self) -> None:
        """
        Without C{$NOTIFY_SOCKET} there is nothing to notify.
        """
        assert notifySystemd({}) is None
        assert SystemdNotifier.fromEnvironment({"NOTIFY_SOCKET": ""}) is None

    def test_sighupRound(
        self, tmp_path: Path, ca: trustme.CA, systemd: _Systemd
    ) -> None:
        """
        A SIGHUP round is bracketed by C{RELOADING=1} with the monotonic time
        it started and C{READY=1} with the new status; a refused round's
        status says why and what is still served.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        notifier = notifySystemd({"NOTIFY_SOCKET": systemd.address}, [factory])
        assert notifier is not None
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([factory], reactor=queue)  # type: ignore[arg-type]
        try:
            systemd.receive()
            writeLeaf(ca, tmp_path)
            before = time.monotonic_ns() // 1000
            os.kill(os.getpid(), signal.SIGHUP)
            queue.runUntil(lambda: reloader.reloads == 1)
            after = time.monotonic_ns() // 1000
            reloading = systemd.receive()
            assert reloading["RELOADING"] == "1"
            assert before <= int(reloading["MONOTONIC_USEC"]) <= after
            assert systemd.receive() == {
                "READY": "1",
                "STATUS": f"{cert}: {_served(factory)}",
            }

            key.write_text("not a key\n")
            os.kill(os.getpid(), signal.SIGHUP)
            queue.runUntil(lambda: reloader.reloads == 2)
            assert systemd.receive()["RELOADING"] == "1"
            ready = systemd.receive()
            assert ready["READY"] == "1"
            assert ready["STATUS"] == (
                f"reload refused: {key}: no PEM data found: no -----BEGIN line; still"
                f" {_served(factory)}"
            )
        finally:
            reloader.uninstall()
            notifier.stopFollowing()

    def test_otherReloads(
        self, tmp_path: Path, ca: trustme.CA, systemd: _Systemd
    ) -> None:
        """
        A reload outside SIGHUP updates C{STATUS=} alone when it installs
        something or is refused, and sends nothing when nothing changed.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        notifier = notifySystemd({"NOTIFY_SOCKET": systemd.address}, [factory])
        assert notifier is not None
        try:
            systemd.receive()
            factory.reload()
            assert systemd.nothingWaiting()
            writeLeaf(ca, tmp_path)
            factory.reload()
            assert systemd.receive() == {"STATUS": f"{cert}: {_served(factory)}"}
        finally:
            notifier.stopFollowing()

    def test_watcherReloadIsNoRound(
        self, tmp_path: Path, ca: trustme.CA, systemd: _Systemd
    ) -> None:
        """
        A reload a file watcher triggers updates C{STATUS=} once, with no
        C{RELOADING=1}, even if told to follow reloads twice.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        notifier = notifySystemd({"NOTIFY_SOCKET": systemd.address}, [factory])
        assert notifier is not None
        notifier.followReloads()
        clock = Clock()
        watcher = FileWatcher(factory, 10, clock, useInotify=False)
        watcher.start()
        try:
            systemd.receive()
            writeLeaf(ca, tmp_path)
            clock.advance(10)
            assert systemd.receive() == {"STATUS": f"{cert}: {_served(factory)}"}
            assert systemd.nothingWaiting()
        finally:
            watcher.stop()
            notifier.stopFollowing()

    def test_unreachable(self, tmp_path: Path, logEvents: list[LogEvent]) -> None:
        """
        A socket nobody listens on makes sending return C{False} and log one
        warning, however often it fails, without raising.
        """
        notifier = SystemdNotifier(str(tmp_path / "nobody"), [])
        assert notifier.ready() is False
        assert notifier.reloading() is False
        warnings = [
            formatEvent(e)
            for e in logEvents
            if formatEvent(e).startswith("Could not notify systemd")
        ]
        assert warnings == [
            f"Could not notify systemd at {tmp_path}/nobody: {os.strerror(2)}"
        ]


_HOSTS = {
    "tlshello": (
        ["tlshello", "--cert", "{cert}", "--key", "{key}", "--port", "0"],
        r"Listening on [^ ]*:(\d+): https://",
    ),
    # A host program that knows nothing of txtlsreload: the endpoint turns
    # the notifications and the expiry warnings on.
    "twistd web": (
        [
            "web",
            "--path",
            "{root}",
            "--listen",
            "tlsreload:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        ],
        r"Site \(TLS\) starting on (\d+)",
    ),
}


class TestEndToEnd:
    """
    Servers started as systemd would start a C{Type=notify-reload} unit.
    """

    @pytest.mark.parametrize("host", list(_HOSTS))
    def test_notifyReload(self, tmp_path: Path, ca: trustme.CA, host: str) -> None:
        """
        C{READY=1} arrives once the server accepts handshakes, and a SIGHUP
        rotation is bracketed by C{RELOADING=1} and C{READY=1} with the new
        serial in C{STATUS=}; a certificate 3 days from expiry is warned
        about in the log.
        """
        systemd = _Systemd(str(tmp_path / "notify"))
        cert, key, firstSerial = writeLeaf(
            ca,
            tmp_path,
            notAfter=datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(days=3),
        )
        root = tmp_path / "root"
        root.mkdir()
        environment = dict(os.environ, NOTIFY_SOCKET=systemd.address)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
        )
        arguments, listening = _HOSTS[host]
        values = {"cert": str(cert), "key": str(key), "root": str(root)}
        logPath = tmp_path / "server.log"
        with logPath.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from twisted.scripts.twistd import run; run()",
                    "-n",
                    "--pidfile=",
                    *(argument.format(**values) for argument in arguments),
                ],
                cwd=tmp_path,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            ready = systemd.receive()
            assert ready["READY"] == "1"
            port = int(waitFor(lambda: re.search(listening, logPath.read_text()))[1])
            # Already accepting: READY=1 came after listening started.
            assert servedSerial(port, ca.cert_pem.bytes()) == firstSerial
            waitFor(
                lambda: re.search(
                    rf"TLS certificate {re.escape(str(cert))} \(serial [0-9A-F]+\)"
                    r" expires on .*, in 2 day\(s\) 23 hour\(s\): rotate it soon",
                    logPath.read_text(),
                )
            )

            nextCert, nextKey, nextSerial = writeLeaf(ca, tmp_path, name="next")
            replaceAtomically(key, nextKey.read_bytes())
            replaceAtomically(cert, nextCert.read_bytes())
            process.send_signal(signal.SIGHUP)
            assert systemd.receive()["RELOADING"] == "1"
            ready = systemd.receive()
            assert ready["READY"] == "1"
            assert f"{nextSerial:X}" in ready["STATUS"]
            waitFor(
                lambda: servedSerial(port, ca.cert_pem.bytes()) == nextSerial or None
            )
        finally:
            process.terminate()
            process.wait(10)
            systemd.socket.close()
