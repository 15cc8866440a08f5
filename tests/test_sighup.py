"""
Tests for L{txtlsreload.reloadOnSIGHUP}: in process with a real signal, and
end to end against a real server process.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
import trustme
from zope.interface import implementer

from txtlsreload import ReloadingContextFactory, _sighup, reloadOnSIGHUP
from txtlsreload._registry import registered

from .processes import (
    SCRIPTS,
    clientContext,
    servedSerial,
    startPython,
    stop,
    waitFor,
)
from .reactors import CallsFromThreads
from .tlshelpers import writeLeaf


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
        Five signals that arrive before the reactor runs make one reload; a
        signal after that reload makes another.
        """
        reloads: list[int] = []

        @implementer()
        class Counting:
            def reload(self) -> None:
                reloads.append(1)

            def watchedPaths(self) -> list[str]:
                return []

        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([Counting()], reactor=queue)  # type: ignore[list-item, arg-type]
        try:
            for _ in range(5):
                _raiseSIGHUP()
            queue.runUntilIdle()
            assert len(reloads) == 1
            _raiseSIGHUP()
            queue.runUntilIdle()
            assert len(reloads) == 2
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
        assert all(f in registered() for f in factories)
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

    def test_onlyOptedInReloaded(
        self, tmp_path: Path, ca: trustme.CA, previousHandler: list[int]
    ) -> None:
        """
        The shared handler reloads what asked for it and leaves alone a
        factory that did not (an endpoint with C{sighup=no}), although both
        live in the same process.
        """
        optedIn, optedOut = tmp_path / "in", tmp_path / "out"
        optedIn.mkdir()
        optedOut.mkdir()
        inFactory = ReloadingContextFactory(*map(str, writeLeaf(ca, optedIn)[:2]))
        outFactory = ReloadingContextFactory(*map(str, writeLeaf(ca, optedOut)[:2]))
        outSerial = outFactory.certificate.serialNumber
        queue = CallsFromThreads()
        _sighup.ensureProcessWideSIGHUP(queue, inFactory)  # type: ignore[arg-type]
        try:
            newIn = writeLeaf(ca, optedIn)[2]
            writeLeaf(ca, optedOut)
            _raiseSIGHUP()
            queue.runUntilIdle()
        finally:
            assert _sighup._processWide is not None
            _sighup._processWide.uninstall()
            _sighup._processWideReloadables.discard(inFactory)
        assert inFactory.certificate.serialNumber == newIn
        assert outFactory.certificate.serialNumber == outSerial


class TestEndToEnd:
    """
    A real server process rotates on C{kill -HUP}.
    """

    @pytest.mark.parametrize("how", ["listenSSL", "endpoint", "wrap"])
    def test_rotationOnSIGHUP(self, tmp_path: Path, ca: trustme.CA, how: str) -> None:
        """
        With C{listenSSL}, C{SSL4ServerEndpoint} or C{wrapServerTLS}, SIGHUP
        makes new handshakes (with and without SNI) get the new certificate,
        an open connection keeps working, and the program's own SIGHUP
        handler still runs.
        """
        certPath, keyPath, oldSerial = writeLeaf(ca, tmp_path)
        portFile = tmp_path / "port"
        marker = tmp_path / "marker"
        caPem = ca.cert_pem.bytes()
        server = startPython(
            [
                str(SCRIPTS / "sighup_server.py"),
                str(certPath),
                str(keyPath),
                str(portFile),
                str(marker),
                how,
            ]
        )
        try:
            port = waitFor(lambda: int(portFile.read_text()) or None)
            assert servedSerial(port, caPem) == oldSerial
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            openConnection = clientContext(caPem).wrap_socket(
                raw, server_hostname="localhost"
            )
            openConnection.sendall(b"before")
            assert openConnection.recv(100) == b"before"

            _, _, newSerial = writeLeaf(ca, tmp_path)
            os.kill(server.pid, signal.SIGHUP)

            waitFor(lambda: servedSerial(port, caPem) == newSerial or None)
            assert servedSerial(port, caPem, serverName=None) == newSerial
            openConnection.sendall(b"after")
            assert openConnection.recv(100) == b"after"
            assert marker.read_text() == "previous handler called\n"
            openConnection.close()
        finally:
            output = stop(server)
        assert output.count("TLS certificate loaded") == 2

    def test_badFileKeepsServing(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A SIGHUP while the key is broken logs why and keeps the old
        certificate; a SIGHUP after fixing it rotates.
        """
        certPath, keyPath, oldSerial = writeLeaf(ca, tmp_path)
        portFile = tmp_path / "port"
        caPem = ca.cert_pem.bytes()
        server = startPython(
            [
                str(SCRIPTS / "sighup_server.py"),
                str(certPath),
                str(keyPath),
                str(portFile),
                str(tmp_path / "marker"),
                "endpoint",
            ]
        )
        try:
            port = waitFor(lambda: int(portFile.read_text()) or None)
            _, _, newSerial = writeLeaf(ca, tmp_path)
            keyPath.write_bytes(b"-----BEGIN PRIVATE KEY-----\ntrunc")
            os.kill(server.pid, signal.SIGHUP)
            waitFor(lambda: (tmp_path / "marker").exists() or None)
            assert servedSerial(port, caPem) == oldSerial

            writeLeaf(ca, tmp_path)
            newSerial = waitFor(lambda: _resignal(server.pid, port, caPem, oldSerial))
        finally:
            output = stop(server)
        assert str(keyPath) in output
        assert "truncated PEM data" in output
        assert newSerial != oldSerial


def _resignal(pid: int, port: int, caPem: bytes, oldSerial: int) -> int | None:
    os.kill(pid, signal.SIGHUP)
    try:
        serial = servedSerial(port, caPem)
    except ssl.SSLError:
        return None
    return serial if serial != oldSerial else None
