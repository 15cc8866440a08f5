"""
Tests for L{txtlsreload.reloadOnSIGHUP}: in process with a real signal, and
end to end against a real server process.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
import trustme
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogEvent

from txtlsreload import (
    ReloadingContextFactory,
    ReloadingServerEndpoint,
    reloadOnSIGHUP,
)

from .processes import (
    SCRIPTS,
    ServerProcess,
    checkRotationOnSIGHUP,
    echoRoundTrip,
    python,
    waitFor,
)
from .reactors import CallsFromThreads, ThreadedMemoryReactor, sighupReloader
from .tlshelpers import RecordingReloadable, writeLeaf


@pytest.fixture
def previousHandler() -> Iterator[list[int]]:
    """
    Install a SIGHUP handler that records its calls, and restore whatever
    was there before the test.
    """
    calls: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    original = signal.signal(signal.SIGHUP, handler)
    try:
        yield calls
    finally:
        signal.signal(signal.SIGHUP, original)


def _raiseSIGHUP() -> None:
    os.kill(os.getpid(), signal.SIGHUP)
    # The Python-level handler runs at the next bytecode boundary on the main
    # thread; this call gives it one.
    signal.getsignal(signal.SIGHUP)


class TestInProcess:
    """
    A real SIGHUP delivered to this process.
    """

    def test_reloadsAndChains(
        self, tmp_path: Path, ca: trustme.CA, previousHandler: list[int]
    ) -> None:
        """
        SIGHUP reloads the given factory in the reactor, not in the handler,
        and the previously installed handler is still called.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([factory], reactor=queue)  # type: ignore[arg-type]
        try:
            _, _, newSerial = writeLeaf(ca, tmp_path)
            _raiseSIGHUP()
            assert previousHandler == [signal.SIGHUP]
            assert factory.certificate.serialNumber != newSerial

            queue.runUntilIdle()

            assert factory.certificate.serialNumber == newSerial
        finally:
            reloader.uninstall()

    def test_burstCoalesced(
        self, tmp_path: Path, ca: trustme.CA, previousHandler: list[int]
    ) -> None:
        """
        Five signals that arrive before the reactor runs make one reload,
        which serves the new files; a signal after that reload makes
        another; the previous handler sees every signal.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([factory], reactor=queue)  # type: ignore[arg-type]
        try:
            _, _, newSerial = writeLeaf(ca, tmp_path)
            for _ in range(5):
                _raiseSIGHUP()
            queue.runUntilIdle()
            assert reloader.reloads == 1
            assert factory.certificate.serialNumber == newSerial
            _raiseSIGHUP()
            queue.runUntilIdle()
            assert reloader.reloads == 2
            assert len(previousHandler) == 6
        finally:
            reloader.uninstall()

    def test_uninstallRestoresPrevious(self, previousHandler: list[int]) -> None:
        """
        After uninstalling, the previous handler is installed again and the
        reactor is no longer called.
        """
        before = signal.getsignal(signal.SIGHUP)
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([], reactor=queue)  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGHUP) != before

        reloader.uninstall()
        _raiseSIGHUP()

        assert signal.getsignal(signal.SIGHUP) == before
        assert queue.calls == []
        assert previousHandler == [signal.SIGHUP]

    def test_installAndUninstallTwice(self, previousHandler: list[int]) -> None:
        """
        Installing an installed reloader and uninstalling an uninstalled one
        change nothing: one signal still reloads once, and afterwards the
        previous handler is back.
        """
        before = signal.getsignal(signal.SIGHUP)
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([], reactor=queue)  # type: ignore[arg-type]
        reloader.install()
        _raiseSIGHUP()
        queue.runUntilIdle()
        assert reloader.reloads == 1
        reloader.uninstall()
        reloader.uninstall()
        assert signal.getsignal(signal.SIGHUP) == before

    def test_uninstalledUnderAnotherHandler(self, previousHandler: list[int]) -> None:
        """
        Uninstalling a reloader that another handler was installed over
        leaves that handler in place; when it chains to the reloader, the
        signal reaches the previous handler but reloads nothing.
        """
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([], reactor=queue)  # type: ignore[arg-type]
        chained = signal.getsignal(signal.SIGHUP)
        assert callable(chained)
        seen: list[int] = []

        def onTop(signum: int, frame: FrameType | None) -> None:
            seen.append(signum)
            chained(signum, frame)

        signal.signal(signal.SIGHUP, onTop)
        reloader.uninstall()
        assert signal.getsignal(signal.SIGHUP) == onTop
        _raiseSIGHUP()
        queue.runUntilIdle()
        assert seen == [signal.SIGHUP]
        assert previousHandler == [signal.SIGHUP]
        assert reloader.reloads == 0

    def test_reloadThatRaisesIsLogged(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        previousHandler: list[int],
        logEvents: list[LogEvent],
    ) -> None:
        """
        A reloadable that raises is logged with its traceback, and the
        others are still reloaded.
        """
        broken = RecordingReloadable(tmp_path / "x.pem")
        broken.raiseError = True
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([broken, factory], reactor=queue)  # type: ignore[arg-type, list-item]
        try:
            _, _, newSerial = writeLeaf(ca, tmp_path)
            _raiseSIGHUP()
            queue.runUntilIdle()
        finally:
            reloader.uninstall()
        assert factory.certificate.serialNumber == newSerial
        failures = [e["log_failure"] for e in logEvents if e.get("log_failure")]
        assert len([f for f in failures if f.check(RuntimeError)]) == 1

    def test_noReinstall(self, previousHandler: list[int]) -> None:
        """
        An uninstalled reloader refuses to be installed again, which could
        make it and a handler installed on top of it call each other forever.
        """
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([], reactor=queue)  # type: ignore[arg-type]
        reloader.uninstall()
        with pytest.raises(RuntimeError, match="cannot be installed again"):
            reloader.install()

    def test_defaultReloadsEveryRegisteredFactory(
        self, tmp_path: Path, ca: trustme.CA, previousHandler: list[int]
    ) -> None:
        """
        Without an explicit list, every factory alive in the process is
        reloaded.
        """
        first = tmp_path / "a"
        second = tmp_path / "b"
        first.mkdir()
        second.mkdir()
        factories = [
            ReloadingContextFactory(*map(str, writeLeaf(ca, d)[:2]))
            for d in (first, second)
        ]
        serials = [writeLeaf(ca, d)[2] for d in (first, second)]
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP(reactor=queue)  # type: ignore[arg-type]
        try:
            _raiseSIGHUP()
            queue.runUntilIdle()
        finally:
            reloader.uninstall()
        assert [f.certificate.serialNumber for f in factories] == serials


class TestProcessWide:
    """
    The one handler that C{tlsreload:} endpoints share.
    """

    @pytest.mark.usefixtures("noProcessWideSIGHUP")
    def test_onlyOptedInReloaded(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A real SIGHUP reloads the endpoints that listened with C{sighup} on
        and leaves alone one with C{sighup=no}, although all live in the
        same process.
        """
        reactor = ThreadedMemoryReactor()
        endpoints = {}
        for name, sighup in [("in", True), ("also-in", True), ("out", False)]:
            directory = tmp_path / name
            directory.mkdir()
            cert, key, _ = writeLeaf(ca, directory)
            endpoints[name] = ReloadingServerEndpoint(
                reactor,
                ReloadingContextFactory(str(cert), str(key)),
                0,
                sighup=sighup,
            )
            endpoints[name].listen(Factory.forProtocol(Protocol))
        before = {n: e.contextFactory.certificate for n, e in endpoints.items()}
        written = {n: writeLeaf(ca, tmp_path / n)[2] for n in endpoints}
        reloader = sighupReloader()
        assert reloader is not None

        # This reactor runs what the handler hands it at once.
        _raiseSIGHUP()
        waitFor(lambda: reloader.reloads or None, timeout=5)

        served = {n: e.contextFactory.certificate for n, e in endpoints.items()}
        assert served["in"].serialNumber == written["in"]
        assert served["also-in"].serialNumber == written["also-in"]
        assert served["out"] == before["out"]


class TestEndToEnd:
    """
    A real server process rotates on C{kill -HUP}.
    """

    @pytest.mark.parametrize("how", ["listenSSL", "endpoint", "wrap"])
    def test_rotationOnSIGHUP(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        how: str,
        servers: Callable[..., ServerProcess],
    ) -> None:
        """
        With C{listenSSL}, C{SSL4ServerEndpoint} or C{wrapServerTLS}, SIGHUP
        rotates as L{checkRotationOnSIGHUP} requires, and the program's own
        SIGHUP handler still runs, once per signal.
        """
        certPath, keyPath, _ = writeLeaf(ca, tmp_path)
        portFile = tmp_path / "port"
        marker = tmp_path / "marker"
        server = servers(
            python(
                SCRIPTS / "sighup_server.py", certPath, keyPath, portFile, marker, how
            )
        )
        port = waitFor(lambda: int(portFile.read_text()))

        checkRotationOnSIGHUP(server, port, ca, certPath, keyPath, echoRoundTrip)

        assert marker.read_text() == "previous handler called\n" * 2
