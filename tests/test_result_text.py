"""
Tests for the one-line summaries of load and reload results: the first load
is not called a reload.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from txtlsreload import ReloadingClientCredentials, ReloadingContextFactory

from .peers import writeCA, writeClient
from .tlshelpers import writeLeaf


def _server(ca: trustme.CA, directory: Path) -> tuple[Any, Callable[[], None]]:
    certPath, keyPath, _ = writeLeaf(ca, directory)
    return ReloadingContextFactory(str(certPath), str(keyPath)), lambda: writeLeaf(
        ca, directory
    )


def _client(ca: trustme.CA, directory: Path) -> tuple[Any, Callable[[], None]]:
    clientPath = directory / "client.pem"
    writeClient(ca, clientPath)
    credentials = ReloadingClientCredentials(
        str(writeCA(ca, directory / "ca.pem")), str(clientPath)
    )
    return credentials, lambda: writeClient(ca, clientPath)


@pytest.mark.parametrize("make", [_server, _client], ids=["server", "client"])
class TestResultText:
    """
    C{str()} of C{lastResult} on the server and client sides.
    """

    def test_initialLoadSaysLoaded(
        self, tmp_path: Path, ca: trustme.CA, make: Callable[..., Any]
    ) -> None:
        """
        Before any reload, the last result reads "loaded: ...", never
        "reloaded".
        """
        reloadable, _ = make(ca, tmp_path)
        text = str(reloadable.lastResult)
        assert text.startswith("loaded: ")
        assert "reload" not in text

    def test_reloadSaysReloaded(
        self, tmp_path: Path, ca: trustme.CA, make: Callable[..., Any]
    ) -> None:
        """
        After a reload that installed new files, the last result reads
        "reloaded: now ..."; one of unchanged files reads "unchanged: ...".
        """
        reloadable, rotate = make(ca, tmp_path)
        assert str(reloadable.reload()).startswith("unchanged: ")
        rotate()
        reloadable.reload()
        assert str(reloadable.lastResult).startswith("reloaded: now ")
