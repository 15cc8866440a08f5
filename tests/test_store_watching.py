"""
Tests for L{txtlsreload.FileWatcher} watching a
L{txtlsreload.ReloadingCertificateStore}: the store's directories are
watched for every name in them, and each look is the store's own reload in
steps, so new, changed and removed files in every layout are picked up by
real inotify events and, separately, by polling alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from twisted.logger import LogEvent, formatEvent

from txtlsreload import FileWatcher, ReloadingCertificateStore

from .test_store import (
    _LAYOUTS,
    _clock,
    _issue,
    _pem,
    _serial,
    _served,
    _writeLoose,
)
from .test_watching_fs import MODES, POLL, Harness, runningHarness


def said(events: list[LogEvent]) -> list[str]:
    """
    What the library logged at info level or above, as text.
    """
    return [
        formatEvent(event)
        for event in events
        if event.get("log_namespace", "").startswith("txtlsreload")
        and event["log_level"].name in ("info", "warn", "error", "critical")
    ]


@pytest.fixture(params=MODES)
def watching(request: pytest.FixtureRequest, ca: trustme.CA) -> Iterator[Harness]:
    """
    A harness for each way of noticing changes (a store keeps a timer of
    its own, for its next notAfter).
    """
    with runningHarness(request.param, ca, timersOfItsOwn=True) as harness:
        yield harness


def _store(
    directory: Path, harness: Harness, **kwargs: str
) -> ReloadingCertificateStore:
    """
    A store of C{directory} on the harness's reactor (its clock set to now,
    as certificates are checked against it), not registered for SIGHUP.
    """
    clock = _clock()
    harness.reactor.advance(clock.seconds() - harness.reactor.seconds())
    return ReloadingCertificateStore(
        str(directory), reactor=harness.reactor, processWide=False, **kwargs
    )


def _watch(harness: Harness, store: ReloadingCertificateStore) -> FileWatcher:
    """
    Start watching C{store} and let the reload that starting begins run to
    its end, as a running reactor would.
    """
    watcher = harness.watch(store)  # type: ignore[arg-type]
    harness.reactor.advance(0)
    return watcher


class TestStoreWatched:
    """
    What changes under a watched store's directory is served after one
    notice (or one poll), without a signal.
    """

    @pytest.mark.parametrize("layout", sorted(_LAYOUTS))
    def test_newNameServed(
        self, watching: Harness, ca: trustme.CA, tmp_path: Path, layout: str
    ) -> None:
        """
        A certificate for a new name, written in any layout, is served once
        the watcher notices it; the name served before keeps its own.
        """
        write = _LAYOUTS[layout]
        first = _issue(ca, "a.example")
        write(tmp_path, "a.example", first)
        store = _store(tmp_path, watching)
        _watch(watching, store)
        second = _issue(ca, "b.example")
        write(tmp_path, "b.example", second)
        watching.pickUp()
        assert _served(store, ca, "b.example") == _serial(second)
        assert _served(store, ca, "a.example") == _serial(first)

    @pytest.mark.parametrize("layout", sorted(_LAYOUTS))
    def test_renewalServed(
        self, watching: Harness, ca: trustme.CA, tmp_path: Path, layout: str
    ) -> None:
        """
        A renewed certificate for a served name, written the way its layout
        renews (rewritten in place, symlinks repointed, C{..data} swapped),
        is served once the watcher notices it.
        """
        write = _LAYOUTS[layout]
        write(tmp_path, "a.example", _issue(ca, "a.example"))
        store = _store(tmp_path, watching)
        _watch(watching, store)
        renewed = _issue(ca, "a.example")
        write(tmp_path, "a.example", renewed)
        watching.pickUp()
        assert _served(store, ca, "a.example") == _serial(renewed)

    def test_removedNameStops(
        self, watching: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A name whose files are deleted stops being served once the watcher
        notices; its clients get the default certificate.
        """
        kept = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a.example", kept)
        _writeLoose(tmp_path, "b.example", _issue(ca, "b.example"))
        store = _store(tmp_path, watching)
        _watch(watching, store)
        (tmp_path / "b.example.pem").unlink()
        (tmp_path / "b.example.key.pem").unlink()
        watching.pickUp()
        assert "b.example" not in store.names
        assert store.certificateFor("b.example") == store.certificateFor("a.example")

    def test_newDirectoryWatchedToo(
        self, watching: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A directory created after the watcher started is watched as well:
        a renewal inside it is noticed (with inotify, by an event in the new
        directory, since the poll never runs here).
        """
        _writeLoose(tmp_path / "sites", "a.example", _issue(ca, "a.example"))
        store = _store(tmp_path, watching)
        _watch(watching, store)
        _writeLoose(tmp_path / "more", "b.example", _issue(ca, "b.example"))
        watching.pickUp()
        renewed = _issue(ca, "b.example")
        (tmp_path / "more" / "b.example.pem").write_bytes(
            renewed.cert_chain_pems[0].bytes()
        )
        (tmp_path / "more" / "b.example.key.pem").write_bytes(
            renewed.private_key_pem.bytes()
        )
        watching.pickUp()
        assert _served(store, ca, "b.example") == _serial(renewed)

    @pytest.mark.parametrize("how", ["renamed", "deleted"])
    def test_replacedDirectoryWatchedAgain(
        self, watching: Harness, ca: trustme.CA, tmp_path: Path, how: str
    ) -> None:
        """
        A directory renamed away, or deleted, and made again under the same
        name is watched again: a renewal written in place in the new one is
        noticed (with inotify, by an event, since the poll never runs here).
        """
        _writeLoose(tmp_path / "more", "b.example", _issue(ca, "b.example"))
        store = _store(tmp_path, watching)
        _watch(watching, store)
        if how == "renamed":
            (tmp_path / "more").rename(tmp_path / ".old")
        else:
            shutil.rmtree(tmp_path / "more")
        _writeLoose(tmp_path / "more", "b.example", _issue(ca, "b.example"))
        watching.pickUp()
        renewed = _issue(ca, "b.example")
        (tmp_path / "more" / "b.example.key.pem").write_bytes(
            renewed.private_key_pem.bytes()
        )
        (tmp_path / "more" / "b.example.pem").write_bytes(
            renewed.cert_chain_pems[0].bytes()
        )
        watching.pickUp()
        assert _served(store, ca, "b.example") == _serial(renewed)

    def test_defaultOutsideDirectoryWatched(
        self, watching: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A default certificate kept outside the store's directory is watched
        file by file: its renewal is served to clients without SNI, a
        renewal under the directory after it too.
        """
        _writeLoose(tmp_path / "sites", "a.example", _issue(ca, "a.example"))
        defaultPath = _writeLoose(tmp_path / "default", "d.example", _issue(ca, "d"))
        keyPath = tmp_path / "default" / "d.example.key.pem"
        store = _store(
            tmp_path / "sites",
            watching,
            certificateFile=str(defaultPath),
            privateKeyFile=str(keyPath),
        )
        _watch(watching, store)
        renewed = _issue(ca, "d")
        keyPath.write_bytes(renewed.private_key_pem.bytes())
        defaultPath.write_bytes(renewed.cert_chain_pems[0].bytes())
        watching.pickUp()
        assert _served(store, ca, None) == _serial(renewed)
        site = _issue(ca, "a.example")
        _writeLoose(tmp_path / "sites", "a.example", site)
        watching.pickUp()
        assert _served(store, ca, "a.example") == _serial(site)

    def test_refusedFileRetriedUntilFixed(
        self,
        watching: Harness,
        ca: trustme.CA,
        tmp_path: Path,
        logEvents: list[LogEvent],
    ) -> None:
        """
        A file refused when noticed is logged once, its name keeps its last
        good certificate while the watcher retries, and the fixed file is
        served.
        """
        good = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a.example", good)
        store = _store(tmp_path, watching)
        watcher = _watch(watching, store)
        (tmp_path / "a.example.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\n")
        watching.pickUp()
        assert watcher.failing
        assert _served(store, ca, "a.example") == _serial(good)
        for delay in watcher.retryDelays[:3]:
            watching.reactor.advance(delay)
        refusals = [line for line in said(logEvents) if "a.example.pem" in line]
        assert len(refusals) == 1, refusals
        fixed = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a.example", fixed)
        watching.pickUp()
        watching.reactor.advance(watcher.retryDelays[-1])
        assert not watcher.failing
        assert _served(store, ca, "a.example") == _serial(fixed)

    def test_defaultOutsideDirectoryServed(
        self, watching: Harness, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A default certificate kept outside the store's directory is watched
        too: each of its renewals is served to clients without SNI once the
        watcher notices it.
        """
        _writeLoose(tmp_path / "sites", "a.example", _issue(ca, "a.example"))
        (tmp_path / "default").mkdir()
        default = tmp_path / "default" / "default.pem"
        default.write_bytes(_pem(_issue(ca, "default.example")))
        clock = _clock()
        watching.reactor.advance(clock.seconds() - watching.reactor.seconds())
        store = ReloadingCertificateStore(
            str(tmp_path / "sites"),
            str(default),
            reactor=watching.reactor,
            processWide=False,
        )
        _watch(watching, store)
        for _ in range(2):
            renewed = _issue(ca, "default.example")
            default.write_bytes(_pem(renewed))
            watching.pickUp()
            assert _served(store, ca, None) == _serial(renewed)


class TestStorePolls:
    """
    A poll of a store is the store's own reload in steps: it compares every
    file's C{stat} and parses only what changed.
    """

    def test_quietPollParsesNothing(
        self, ca: trustme.CA, tmp_path: Path, logEvents: list[LogEvent]
    ) -> None:
        """
        Polls that find nothing changed parse no file and log nothing, and
        each is one reload of the store.
        """
        for name in ("a.example", "b.example", "c.example"):
            _writeLoose(tmp_path, name, _issue(ca, name))
        harness = Harness("polling", ca)
        store = _store(tmp_path, harness)
        watcher = _watch(harness, store)
        started = len(said(logEvents))
        for _ in range(5):
            harness.reactor.advance(POLL)
        harness.stopAll()
        assert watcher.reloads == 1 + 5
        assert store.lastResult.parsed == 0
        assert store.lastResult.succeeded
        assert said(logEvents)[started:] == []


def test_watcherSaysWhatItWatches(
    ca: trustme.CA, tmp_path: Path, logEvents: list[LogEvent]
) -> None:
    """
    Starting to watch a store says how many directories are watched, not
    one line per file.
    """
    _writeLoose(tmp_path / "one", "a.example", _issue(ca, "a.example"))
    _writeLoose(tmp_path / "two", "b.example", _issue(ca, "b.example"))
    harness = Harness("polling", ca)
    store = _store(tmp_path, harness)
    watcher = FileWatcher(store, POLL, harness.reactor, useInotify=False)
    watcher.start()
    watcher.stop()
    assert [line for line in said(logEvents) if "Watching" in line] == [
        f"Watching the TLS files of 3 director(ies) for changes: a poll every {POLL:g}s"
    ]
