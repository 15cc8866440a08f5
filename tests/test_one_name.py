"""
Tests that a store's default certificate is the one-name case of the
single-certificate factory: the same files are refused for the same reason,
reported with the same log lines, and recover the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent

from txtlsreload import ReloadingCertificateStore, ReloadingContextFactory

from .tlshelpers import clientOptions, servedSerial, writeLeaf


def _clock() -> Clock:
    clock = Clock()
    clock.advance(time.time())
    return clock


def _lines(events: list[LogEvent], starting: str, directory: Path) -> list[str]:
    """
    The text of the events that start with C{starting} and name a file in
    C{directory}.
    """
    return [
        text
        for text in map(formatEvent, events)
        if text.startswith(starting) and str(directory) in text
    ]


def _mismatchedKey(ca: trustme.CA, cert: Path, key: Path) -> None:
    _, otherKey, _ = writeLeaf(ca, key.parent, name="other")
    key.write_bytes(otherKey.read_bytes())


def _junkCertificate(ca: trustme.CA, cert: Path, key: Path) -> None:
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")


_BREAKAGES: dict[str, Callable[[trustme.CA, Path, Path], None]] = {
    "mismatched key": _mismatchedKey,
    "junk certificate": _junkCertificate,
}


@pytest.fixture
def servers(
    tmp_path: Path, ca: trustme.CA
) -> tuple[ReloadingContextFactory, ReloadingCertificateStore, Path, Path, int]:
    """
    A factory and a store whose default certificate are the same files, and
    the serial they serve.
    """
    cert, key, serial = writeLeaf(ca, tmp_path)
    sites = tmp_path / "sites"
    sites.mkdir()
    writeLeaf(ca, sites, name="a", identities=("a.example",))
    factory = ReloadingContextFactory(str(cert), str(key), processWide=False)
    store = ReloadingCertificateStore(
        str(sites), str(cert), str(key), reactor=_clock(), processWide=False
    )
    return factory, store, cert, key, serial


class TestDefaultAsFactory:
    """
    A store's default certificate is read, checked and reported as a
    factory's certificate is.
    """

    @pytest.mark.parametrize("breakage", _BREAKAGES.values(), ids=_BREAKAGES.keys())
    def test_sameRefusal(
        self,
        servers: tuple[
            ReloadingContextFactory, ReloadingCertificateStore, Path, Path, int
        ],
        ca: trustme.CA,
        logEvents: list[LogEvent],
        breakage: Callable[[trustme.CA, Path, Path], None],
    ) -> None:
        """
        Broken files are refused by the factory and by the store for the
        same file and reason, each with one error line saying which serial
        is still served, and both keep serving it.
        """
        factory, store, cert, key, serial = servers
        breakage(ca, cert, key)

        refused = factory.reload()
        factoryLines = _lines(logEvents, "TLS reload refused", cert.parent)
        storeResult = store.reload()
        storeLines = _lines(logEvents, "TLS reload refused", cert.parent)[
            len(factoryLines) :
        ]

        assert refused.error is not None and storeResult.error is not None
        assert (storeResult.error.path, storeResult.error.reason) == (
            refused.error.path,
            refused.error.reason,
        )
        assert len(factoryLines) == 1 and len(storeLines) == 1
        assert f"still serving serial {factory.certificate.serialHex}" in storeLines[0]
        assert storeLines[0] == factoryLines[0]
        assert servedSerial(factory, clientOptions(ca)) == serial
        assert servedSerial(store, clientOptions(ca, hostname=None)) == serial

    def test_usableAgain(
        self,
        servers: tuple[
            ReloadingContextFactory, ReloadingCertificateStore, Path, Path, int
        ],
        ca: trustme.CA,
        logEvents: list[LogEvent],
    ) -> None:
        """
        After a refusal of the default certificate, putting its files back
        as they were is a successful store reload that says the files are
        usable again, as a factory's does, and a repeat of the same refusal
        in between is not logged twice.
        """
        _, store, cert, key, serial = servers
        good = cert.read_bytes()
        _junkCertificate(ca, cert, key)
        assert store.reload().error is not None
        assert store.reload().error is not None
        assert len(_lines(logEvents, "TLS reload refused", cert.parent)) == 1

        cert.write_bytes(good)
        result = store.reload()

        assert result.succeeded and result.error is None
        assert len(_lines(logEvents, "TLS files usable again", cert.parent)) == 1
        assert servedSerial(store, clientOptions(ca, hostname=None)) == serial
