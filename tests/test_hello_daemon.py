"""
Tests for how C{twistd tlshello} reports start-up failures to the user's
terminal, run as a real daemon (no C{-n}) and next to another instance.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

_TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The source tree first on the path, so that Twisted finds the plugins
    # in twisted/plugins whether or not the project is installed.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


@pytest.fixture
def busyPort() -> Iterator[int]:
    """
    A loopback port something else is listening on.
    """
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


class TestDaemonStartupErrors:
    """
    C{twistd tlshello} without C{-n} forks before it listens; what it cannot
    do must still reach the terminal, plainly.
    """

    def test_portInUsePlain(self, tmp_path: Path, busyPort: int) -> None:
        """
        A port in use ends the daemon's start with status 1 and exactly the
        one plain line of the foreground case: no bytes repr, no class name.
        """
        result = _run(
            [
                *_TWISTD,
                f"--pidfile={tmp_path}/twistd.pid",
                f"--logfile={tmp_path}/twistd.log",
                "tlshello",
                "--port",
                str(busyPort),
            ],
            tmp_path,
        )
        assert result.returncode == 1
        assert result.stdout == (
            f"tlshello: cannot listen on 127.0.0.1:{busyPort}: Address already in use\n"
        )

    def test_listenDescriptionInUseReadable(
        self, tmp_path: Path, busyPort: int
    ) -> None:
        """
        A C{--listen} description that fails only once the daemon listens is
        reported through twistd's status pipe: its line names no private
        class and keeps the whole reason within twistd's 100-byte cut.
        """
        result = _run(
            [
                *_TWISTD,
                f"--pidfile={tmp_path}/twistd.pid",
                f"--logfile={tmp_path}/twistd.log",
                "tlshello",
                "--listen",
                f"tcp:{busyPort}:interface=127.0.0.1",
            ],
            tmp_path,
        )
        assert result.returncode == 1
        assert "txtlsreload" not in result.stdout
        assert (
            f"'tlshello: cannot listen on 127.0.0.1:{busyPort}:"
            " Address already in use'" in result.stdout
        )

    def test_pidfileCheckComesFirst(self, tmp_path: Path) -> None:
        """
        A second C{twistd tlshello} started in the directory of a running one
        stops at twistd's pidfile check, before it gets to the port.
        """
        (tmp_path / "twistd.pid").write_text(str(os.getpid()))
        result = _run([*_TWISTD, "-n", "tlshello"], tmp_path)
        assert result.returncode == 1
        assert result.stdout.startswith(
            f"Another twistd server is running, PID {os.getpid()}"
        )
        assert not (tmp_path / "tlshello-dev").exists()
