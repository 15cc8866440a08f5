"""
Helpers for end-to-end tests that start real server processes and talk to
them with CPython's C{ssl}.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import trustme
from cryptography import x509

from .tlshelpers import replaceAtomically, serialOf, writeLeaf

T = TypeVar("T")

SCRIPTS = Path(__file__).parent / "scripts"


@contextlib.contextmanager
def unprivilegedDirectory() -> Iterator[Path]:
    """
    A new directory that L{runUnprivileged} may use: reachable by everyone
    (pytest's own temporary directories are not) and owned, with everything
    made in it, by the unprivileged user once L{runUnprivileged} runs.
    """
    directory = Path(tempfile.mkdtemp(prefix="txtlsreload-unprivileged-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def runUnprivileged(function: Callable[[], T], directory: Path) -> T:
    """
    Call C{function} in a forked child that is not root, and return what it
    returned (it must pickle); an exception in the child fails the caller.

    Root reads files whatever their mode, so permission checks only mean
    something without it.  As root, the child first hands every file under
    C{directory} (an L{unprivilegedDirectory}) to C{nobody} (so it may change
    their modes) and then becomes C{nobody}.  Not as root, it is already
    unprivileged and C{function} simply runs here.
    """
    if os.geteuid() != 0:
        return function()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child exits without saving coverage)
        status = 1
        try:
            os.close(reader)
            for path in [directory, *directory.rglob("*")]:
                os.chown(path, _NOBODY, _NOBODY)
            os.setgroups([])
            os.setgid(_NOBODY)
            os.setuid(_NOBODY)
            try:
                outcome: tuple[bool, object] = (True, function())
            except BaseException:
                outcome = (False, traceback.format_exc())
            with os.fdopen(writer, "wb") as out:
                pickle.dump(outcome, out)
            status = 0
        finally:
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader, "rb") as incoming:
        data = incoming.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and data, f"the unprivileged child died (status {status})"
    succeeded, value = pickle.loads(data)  # noqa: S301 (our own child wrote it)
    if not succeeded:
        raise AssertionError(f"in the unprivileged child:\n{value}")
    return value  # type: ignore[no-any-return]


# The conventional unprivileged user and group.
_NOBODY = 65534


def waitFor(check: Callable[[], T | None], timeout: float = 15.0) -> T:
    """
    Call C{check} until it returns something other than L{None} or raises
    nothing, polling until C{timeout} seconds have passed.
    """
    deadline = time.monotonic() + timeout
    lastError: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, ssl.SSLError) as e:
            lastError = e
        else:
            if result is not None:
                return result
        time.sleep(0.02)
    raise AssertionError(f"gave up after {timeout}s; last error: {lastError!r}")


def clientContext(caPem: bytes) -> ssl.SSLContext:
    """
    A CPython client context trusting only C{caPem}.
    """
    context = ssl.create_default_context(cadata=caPem.decode("ascii"))
    return context


def servedSerial(
    port: int,
    caPem: bytes,
    serverName: str | None = "localhost",
    host: str = "127.0.0.1",
) -> int:
    """
    Handshake with C{host}:C{port} and return the served certificate's
    serial; C{serverName=None} sends no SNI.
    """
    context = clientContext(caPem)
    if serverName is None:
        context.check_hostname = False
    with socket.create_connection((host, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=serverName) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number


class ServerProcess:
    """
    A server process whose output goes to a file the test reads while it
    runs: for the port it listens on (it is told port 0, so no other
    process can take the port between a test choosing it and the server
    binding it) and for the log lines that say a reload has happened.
    """

    def __init__(
        self,
        argv: list[str | Path],
        logPath: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: int | None = None,
    ) -> None:
        """
        @param stdin: As for L{subprocess.Popen}: C{subprocess.PIPE} to
            write to the process.
        """
        self.logPath = logPath
        self._logFile = logPath.open("wb")
        self.process = subprocess.Popen(
            [str(a) for a in argv],
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=self._logFile,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        """
        Everything it printed so far.
        """
        return self.logPath.read_text("utf-8", "replace")

    def waitForLog(self, pattern: str, count: int = 1, timeout: float = 15.0) -> str:
        """
        Wait until C{pattern} (a regular expression) occurs C{count} times in
        the log, and return the log.

        @raise AssertionError: If the process exits first, or on timeout.
        """

        def found() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log}")
            log = self.log
            return log if len(re.findall(pattern, log)) >= count else None

        return waitFor(found, timeout)

    def waitFor(self, pattern: str, count: int = 1, timeout: float = 15.0) -> str:
        """
        Wait for the C{count}th match of C{pattern} (a regular expression)
        in the log, and return its first group, or the whole match if it
        has none.

        @raise AssertionError: If the process exits first, or on timeout.
        """

        def found() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"process exited early:\n{self.log}")
            matches = list(re.finditer(pattern, self.log))
            if len(matches) < count:
                return None
            match = matches[count - 1]
            return match.group(1) if match.groups() else match.group(0)

        return waitFor(found, timeout)

    def listeningPort(self, timeout: float = 15.0) -> int:
        """
        Wait until the process listens on a TCP port and return it: told
        port 0, a server gets a free port from the kernel, so no other
        process can take it between the test choosing it and the server
        binding it.  Read from C{/proc}, so it works for programs that log
        nothing too.
        """

        def listening() -> int | None:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log}")
            ports = listeningPorts(self.process.pid)
            return min(ports) if ports else None

        return waitFor(listening, timeout)

    def signal(self, number: int) -> None:
        """
        Send signal C{number}.
        """
        os.kill(self.process.pid, number)

    def hangUp(self) -> None:
        """
        Send SIGHUP.  The reload runs later, in the reactor: wait for its
        log line before checking what is served.
        """
        os.kill(self.process.pid, signal.SIGHUP)

    def stop(self) -> str:
        """
        End the process (SIGTERM, as twistd expects) and return its output.
        """
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._logFile.close()
        return self.log


def listeningPorts(pid: int) -> set[int]:
    """
    The TCP ports (IPv4 and IPv6) process C{pid} is listening on, from
    C{/proc}: its socket descriptors matched with the kernel's tables.
    """
    sockets = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address, state (0A is LISTEN), and the socket's inode.
            if fields[3] == "0A" and fields[9] in sockets:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """
    Start server processes (arguments as for L{ServerProcess}, the log
    file chosen here); every one is stopped at the end of the test.
    """
    started: list[ServerProcess] = []

    def start(
        argv: list[str | Path],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: int | None = None,
    ) -> ServerProcess:
        logPath = tmp_path / f"server-{len(started)}.log"
        server = ServerProcess(argv, logPath, cwd, env, stdin)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def checkRotationOnSIGHUP(
    server: ServerProcess,
    port: int,
    ca: trustme.CA,
    certPath: Path,
    keyPath: Path,
    roundTrip: Callable[[ssl.SSLSocket], None],
) -> int:
    """
    What every way of running a server must do on SIGHUP, end to end: new
    handshakes, with and without SNI, get the new certificate once the log
    says it is loaded; a connection opened before keeps working on the old
    one; a broken key is then refused, with its reason in the log, while the
    new certificate is still served.

    @param roundTrip: Exchanges something over an open connection and
        asserts that the server answered.
    @return: The serial being served at the end.
    """
    caPem = ca.cert_pem.bytes()
    firstSerial = serialOf(certPath)
    assert servedSerial(port, caPem) == firstSerial
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with clientContext(caPem).wrap_socket(raw, server_hostname="localhost") as kept:
        roundTrip(kept)
        nextCert, nextKey, nextSerial = writeLeaf(ca, certPath.parent, name="next")
        replaceAtomically(keyPath, nextKey.read_bytes())
        replaceAtomically(certPath, nextCert.read_bytes())
        loads = server.log.count("TLS certificate loaded")
        server.hangUp()
        server.waitForLog("TLS certificate loaded", count=loads + 1)
        assert servedSerial(port, caPem) == nextSerial
        assert servedSerial(port, caPem, serverName=None) == nextSerial
        roundTrip(kept)
        der = kept.getpeercert(binary_form=True)
        assert der is not None
        assert x509.load_der_x509_certificate(der).serial_number == firstSerial

    keyPath.write_bytes(b"-----BEGIN PRIVATE KEY-----\ntruncated")
    server.hangUp()
    log = server.waitForLog("TLS reload refused")
    assert f"{keyPath}: truncated PEM data" in log
    assert servedSerial(port, caPem) == nextSerial
    return nextSerial


def echoRoundTrip(connection: ssl.SSLSocket) -> None:
    """
    Send a line to an echo server and check that it comes back.
    """
    connection.sendall(b"ping\n")
    assert connection.recv(100) == b"ping\n"


def httpRoundTrip(path: str, body: str) -> Callable[[ssl.SSLSocket], None]:
    """
    A round trip that GETs C{path} over a kept-alive HTTP/1.1 connection and
    checks the answer ends with C{body}.
    """

    def roundTrip(connection: ssl.SSLSocket) -> None:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        received = b""
        while not received.endswith(body.encode()):
            chunk = connection.recv(4096)
            assert chunk, f"connection closed after {received!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 "), received

    return roundTrip


def startOnFreePort(
    start: Callable[[int], ServerProcess], ready: str, attempts: int = 5
) -> tuple[ServerProcess, int]:
    """
    Start a server that must listen on a fixed port (several listeners on
    the same port number, say), retrying with another port if something
    took the chosen one before the server bound it.

    Prefer port 0 and L{ServerProcess.listeningPort} wherever one listener
    will do: this is for the rest.

    @param ready: A regular expression the log shows once it listens.
    """
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        server = start(port)

        def settled(server: ServerProcess = server) -> bool | None:
            if re.search(ready, server.log):
                return True
            if server.process.poll() is not None:
                return False
            return None

        if waitFor(settled):
            return server, port
        if "in use" not in server.stop():
            raise AssertionError(f"server exited early:\n{server.log}")
    raise AssertionError(f"no free port found in {attempts} attempts")


def python(*args: str | Path) -> list[str | Path]:
    """
    A command line running this test's Python with C{args}.
    """
    return [sys.executable, *args]
