"""
Starting, querying and always stopping the benchmark's child processes.

Every process the runner starts is registered here and killed on the way out
(L{Processes.close}), whatever happened; the servers also stop themselves
after a lifetime and the clients at a deadline, so nothing outlives a
crashed run for long.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Processes",
    "Progress",
    "ServerProcess",
    "escapeEndpoint",
    "findProjectPlugins",
    "sslEndpoint",
    "tlsreloadEndpointPrefix",
]

HERE = Path(__file__).resolve().parent

Progress = Callable[[str], None]


def escapeEndpoint(value: str) -> str:
    """
    Escape a value for an endpoint description, where C{:} separates
    arguments.
    """
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def sslEndpoint(leafFile: Path, keyFile: Path, chainFile: Path) -> str:
    """
    Twisted's own C{ssl:} endpoint for these files, on a free loopback port.
    """
    return (
        "ssl:0:interface=127.0.0.1"
        f":privateKey={escapeEndpoint(str(keyFile))}"
        f":certKey={escapeEndpoint(str(leafFile))}"
        f":extraCertChain={escapeEndpoint(str(chainFile))}"
    )


def findProjectPlugins() -> None:
    """
    Let Twisted find the plugins of the checkout these benchmarks live in.

    Twisted looks for plugins in C{twisted/plugins} under every C{sys.path}
    entry, and an editable install does not put the project root there.
    Appending it (after site-packages, so the real C{twisted} package still
    wins) finds C{tlsreload:} in a checkout; an installed txtlsreload is found
    either way.  Must run before C{twisted.plugins} is first imported.
    """
    root = str(HERE.parent)
    if (HERE.parent / "twisted" / "plugins").is_dir() and root not in sys.path:
        sys.path.append(root)


def tlsreloadEndpointPrefix() -> bool:
    """
    Whether a C{tlsreload:} endpoint plugin is installed, so that the
    benchmark can measure what users run rather than a hand-built server.
    """
    findProjectPlugins()
    try:
        from twisted.internet.interfaces import IStreamServerEndpointStringParser
        from twisted.plugin import getPlugins
    except ImportError:
        return False
    return any(
        getattr(parser, "prefix", None) == "tlsreload"
        for parser in getPlugins(IStreamServerEndpointStringParser)
    )


@dataclass
class ServerProcess:
    """
    A running C{benchmarks/server.py}.

    @ivar name: What the tables call it (C{tlsreload} or C{ssl}).
    @ivar how: How the server under test was built, as the server said.
    """

    name: str
    process: subprocess.Popen[bytes]
    port: int
    controlPort: int
    how: str
    logFile: Path
    _control: socket.socket | None = field(default=None, repr=False)
    _buffer: bytes = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def stats(self) -> dict[str, Any]:
        """
        Ask the server for its CPU time, finished handshakes and logged
        problems.
        """
        if self._control is None:
            self._control = socket.create_connection(
                ("127.0.0.1", self.controlPort), timeout=10.0
            )
        self._control.sendall(b"stats\n")
        while b"\n" not in self._buffer:
            chunk = self._control.recv(4096)
            if not chunk:
                raise RuntimeError(f"{self.name} server closed its control port")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def hangUp(self) -> None:
        """
        Send SIGHUP, the reload trigger under test.
        """
        os.kill(self.pid, signal.SIGHUP)

    def log(self) -> str:
        return self.logFile.read_text(errors="replace")

    def stop(self) -> None:
        if self._control is not None:
            try:
                self._control.sendall(b"quit\n")
            except OSError:
                pass
            self._control.close()
            self._control = None
        try:
            self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Processes:
    """
    Everything the runner started, so that all of it is stopped at the end.
    """

    def __init__(self, workDirectory: Path) -> None:
        self._work = workDirectory
        self._started: list[subprocess.Popen[bytes]] = []
        self._servers: list[ServerProcess] = []
        self._count = 0

    def startServer(
        self, name: str, arguments: Sequence[str], lifetime: float = 900.0
    ) -> ServerProcess:
        """
        Start C{server.py} with C{arguments} and wait until it listens.
        """
        (server,) = self.startServers([(name, arguments)], lifetime)
        return server

    def startServers(
        self, servers: Sequence[tuple[str, Sequence[str]]], lifetime: float = 900.0
    ) -> list[ServerProcess]:
        """
        Start several C{server.py} processes at once (each takes a while to
        import Twisted and OpenSSL) and wait until all of them listen.

        @param servers: A name and the arguments for each.
        """
        launched = []
        for name, arguments in servers:
            self._count += 1
            logFile = self._work / f"server-{self._count}-{name}.log"
            with logFile.open("wb") as log:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "server.py"),
                        *arguments,
                        "--lifetime",
                        str(lifetime),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                )
            self._started.append(process)
            launched.append((name, process, logFile))
        ready = []
        for name, process, logFile in launched:
            line = _readLine(process, 30.0)
            if not line:
                process.kill()
                process.wait()
                raise RuntimeError(
                    f"{name} server did not start:\n"
                    f"{logFile.read_text(errors='replace')}"
                )
            announced = json.loads(line)
            server = ServerProcess(
                name=name,
                process=process,
                port=announced["port"],
                controlPort=announced["control"],
                how=announced["how"],
                logFile=logFile,
            )
            self._servers.append(server)
            ready.append(server)
        return ready

    def startClient(self, arguments: Sequence[str]) -> subprocess.Popen[bytes]:
        """
        Start C{client.py} with C{arguments}; collect it with L{collect}.
        """
        process = subprocess.Popen(
            [sys.executable, str(HERE / "client.py"), *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self._started.append(process)
        return process

    def startInProcess(self, arguments: Sequence[str]) -> subprocess.Popen[bytes]:
        """
        Start C{inprocess.py} with C{arguments}; collect it with L{collect}.
        """
        process = subprocess.Popen(
            [sys.executable, str(HERE / "inprocess.py"), *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self._started.append(process)
        return process

    def collect(
        self, process: subprocess.Popen[bytes], timeout: float
    ) -> dict[str, Any]:
        """
        Wait for a child that prints one JSON object, and return it.
        """
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            raise RuntimeError(
                f"{process.args!r} did not finish in {timeout} s:\n"
                f"{err.decode(errors='replace')}"
            ) from None
        if process.returncode != 0:
            raise RuntimeError(
                f"{process.args!r} failed ({process.returncode}):\n"
                f"{err.decode(errors='replace')}"
            )
        result: dict[str, Any] = json.loads(out)
        return result

    def stopServer(self, server: ServerProcess) -> None:
        server.stop()
        if server in self._servers:
            self._servers.remove(server)

    def close(self) -> None:
        """
        Stop every server politely, then kill whatever is still running.
        """
        for server in list(self._servers):
            try:
                server.stop()
            except OSError:
                pass
        self._servers.clear()
        for process in self._started:
            if process.poll() is None:
                process.kill()
                process.wait()
        self._started.clear()


def _readLine(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """
    Read the server's ready line, giving up at a deadline or when it exits.
    """
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    buffer = b""
    try:
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                return b""
            buffer += chunk
    finally:
        selector.close()
    return buffer.split(b"\n", 1)[0]
