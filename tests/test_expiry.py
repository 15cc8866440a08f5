"""
Tests for L{txtlsreload.warnBeforeExpiry}: warnings about certificates close
to expiry and errors about expired ones still served, on a L{Clock}.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from twisted.internet.task import Clock
from twisted.logger import LogEvent, LogLevel, formatEvent

from txtlsreload import ReloadingContextFactory, warnBeforeExpiry

from .tlshelpers import pemOf, selfSigned, writeLeaf

HOUR = 3600.0
DAY = 24 * HOUR
START = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def _writeCertificate(
    directory: Path, notBefore: datetime.datetime, notAfter: datetime.datetime
) -> tuple[Path, Path]:
    """
    Write a self-signed certificate valid from C{notBefore} to C{notAfter}
    (trustme fixes notBefore in 2000) and its key.
    """
    certificate, key = selfSigned(notBefore=notBefore, notAfter=notAfter)
    certPath, keyPath = directory / "server.crt", directory / "server.key"
    certPEM, keyPEM = pemOf(certificate, key)
    certPath.write_bytes(certPEM)
    keyPath.write_bytes(keyPEM)
    return certPath, keyPath


class _Scene:
    """
    A clock at L{START}, and a factory whose validity checks use it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.clock = Clock()
        self.clock.advance(START.timestamp())

    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(
            self.clock.seconds(), datetime.timezone.utc
        )

    def write(self, lifetime: float, left: float) -> tuple[Path, Path]:
        """
        Write a certificate of C{lifetime} seconds with C{left} of them
        left now.
        """
        notAfter = self.now() + datetime.timedelta(seconds=left)
        return _writeCertificate(
            self.directory, notAfter - datetime.timedelta(seconds=lifetime), notAfter
        )

    def factory(self, lifetime: float, left: float) -> ReloadingContextFactory:
        cert, key = self.write(lifetime, left)
        return ReloadingContextFactory(str(cert), str(key), now=self.now)


@pytest.fixture
def scene(tmp_path: Path) -> _Scene:
    """
    A clock and certificates valid around it.
    """
    return _Scene(tmp_path)


def _expiryLines(events: list[LogEvent]) -> Callable[[], list[tuple[str, str]]]:
    """
    A function returning every expiry message logged so far, with its level.
    """

    def lines() -> list[tuple[str, str]]:
        found = []
        for event in events:
            text = formatEvent(event)
            if re.match(r"TLS certificate \S+ \(serial \w+\) expire", text):
                level: LogLevel = event["log_level"]
                found.append((level.name, text))
        return found

    return lines


class TestThreshold:
    """
    When a certificate counts as close to expiry.
    """

    @pytest.mark.parametrize(
        ("lifetime", "left", "warned"),
        [
            (90 * DAY, 8 * DAY, False),
            (90 * DAY, 6 * DAY, True),
            (3 * DAY, 1.5 * DAY, False),
            (3 * DAY, 0.9 * DAY, True),
            (365 * DAY, 30 * DAY, False),
        ],
        ids=["90d-8d", "90d-6d", "3d-36h", "3d-21h", "1y-30d"],
    )
    def test_atStart(
        self,
        scene: _Scene,
        logEvents: list[LogEvent],
        lifetime: float,
        left: float,
        warned: bool,
    ) -> None:
        """
        A warning is logged at start when less than a third of the
        lifetime or less than 7 days is left, whichever is less, naming the
        file, serial and notAfter.
        """
        factory = scene.factory(lifetime, left)
        warnings = warnBeforeExpiry(scene.clock, [factory])
        warnings.stop()
        lines = _expiryLines(logEvents)()
        if not warned:
            assert lines == []
            return
        info = factory.certificate
        [(level, text)] = lines
        assert level == "warn"
        assert text.startswith(
            f"TLS certificate {factory.files.certificateFile} (serial"
            f" {info.serialHex}) expires on {info.notAfter.isoformat()}, in "
        )


class TestRepeats:
    """
    Warnings repeat daily, errors about expired certificates hourly.
    """

    def test_daily(self, scene: _Scene, logEvents: list[LogEvent]) -> None:
        """
        A certificate staying close to expiry is warned about again after 24
        hours, not before.
        """
        factory = scene.factory(90 * DAY, 5 * DAY)
        lines = _expiryLines(logEvents)
        warnings = warnBeforeExpiry(scene.clock, [factory])
        try:
            assert len(lines()) == 1
            scene.clock.advance(23 * HOUR)
            assert len(lines()) == 1
            scene.clock.advance(HOUR)
            assert len(lines()) == 2
        finally:
            warnings.stop()

    def test_expiredHourly(self, scene: _Scene, logEvents: list[LogEvent]) -> None:
        """
        Once expired and still served, the certificate gets an error every
        hour saying so.
        """
        factory = scene.factory(90 * DAY, 0.5 * HOUR)
        lines = _expiryLines(logEvents)
        warnings = warnBeforeExpiry(scene.clock, [factory])
        try:
            scene.clock.advance(HOUR)
            scene.clock.advance(HOUR)
        finally:
            warnings.stop()
        levels = [level for level, _ in lines()]
        assert levels == ["warn", "error", "error"]
        assert (
            f"expired on {factory.certificate.notAfter.isoformat()} and is still in"
            " use" in lines()[-1][1]
        )

    def test_stop(self, scene: _Scene, logEvents: list[LogEvent]) -> None:
        """
        Stopped warnings log nothing more.
        """
        factory = scene.factory(90 * DAY, 0.5 * HOUR)
        warnings = warnBeforeExpiry(scene.clock, [factory])
        warnings.stop()
        scene.clock.advance(3 * DAY)
        assert len(_expiryLines(logEvents)()) == 1


class TestAfterReload:
    """
    A reload is followed by a look at what it installed.
    """

    def test_reloadInstallsCloseToExpiry(
        self, scene: _Scene, logEvents: list[LogEvent]
    ) -> None:
        """
        A reload that installs a certificate close to expiry is warned about
        at once, without waiting for the hourly look; one that installs a
        fresh certificate ends the warnings.
        """
        factory = scene.factory(90 * DAY, 60 * DAY)
        lines = _expiryLines(logEvents)
        warnings = warnBeforeExpiry(scene.clock, [factory])
        try:
            assert lines() == []
            scene.write(90 * DAY, 2 * DAY)
            assert factory.reload().changed
            assert len(lines()) == 1
            assert factory.certificate.serialHex in lines()[0][1]
            scene.write(90 * DAY, 60 * DAY)
            assert factory.reload().changed
            scene.clock.advance(2 * DAY)
            assert len(lines()) == 1
        finally:
            warnings.stop()


class TestLifecycle:
    """
    Starting, stopping and choosing what to look at.
    """

    def test_startAndStopTwice(self, scene: _Scene, logEvents: list[LogEvent]) -> None:
        """
        Starting running warnings again looks no second time, and stopping
        stopped warnings is harmless: one warning, then none.
        """
        factory = scene.factory(90 * DAY, 5 * DAY)
        lines = _expiryLines(logEvents)
        warnings = warnBeforeExpiry(scene.clock, [factory])
        warnings.start()
        assert warnings.running and len(lines()) == 1
        warnings.stop()
        warnings.stop()
        scene.clock.advance(3 * DAY)
        assert not warnings.running and len(lines()) == 1

    def test_reloadOfOtherIgnored(
        self, scene: _Scene, tmp_path: Path, logEvents: list[LogEvent]
    ) -> None:
        """
        Warnings given what to look at say nothing when another factory
        reloads a certificate close to expiry.
        """
        watched = scene.factory(90 * DAY, 60 * DAY)
        other = _Scene(tmp_path / "other")
        other.directory.mkdir()
        unwatched = other.factory(90 * DAY, 60 * DAY)
        lines = _expiryLines(logEvents)
        warnings = warnBeforeExpiry(scene.clock, lambda: [watched])
        try:
            other.write(90 * DAY, 2 * DAY)
            assert unwatched.reload().changed
            assert lines() == []
        finally:
            warnings.stop()

    def test_globalReactorByDefault(
        self, tmp_path: Path, ca: trustme.CA, logEvents: list[LogEvent]
    ) -> None:
        """
        Without a reactor, the global reactor's clock is used: a certificate
        a day from expiry now is warned about at once, and stopping leaves
        no call scheduled on the global reactor.
        """
        from twisted.internet import reactor

        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        certPath, keyPath, _ = writeLeaf(ca, tmp_path, notAfter=soon)
        factory = ReloadingContextFactory(str(certPath), str(keyPath))
        before = set(reactor.getDelayedCalls())
        warnings = warnBeforeExpiry(reloadables=[factory])
        try:
            [(level, text)] = _expiryLines(logEvents)()
            assert level == "warn" and str(certPath) in text
            assert len(set(reactor.getDelayedCalls()) - before) == 1
        finally:
            warnings.stop()
        assert set(reactor.getDelayedCalls()) == before
