"""
Helpers for end-to-end tests that start real server processes and talk to
them with CPython's C{ssl}.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

from cryptography import x509

T = TypeVar("T")

SCRIPTS = Path(__file__).parent / "scripts"


def freePort() -> int:
    """
    A TCP port on 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


def startPython(args: list[str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """
    Start C{sys.executable} with C{args}, its output going to a temporary
    file (a pipe nobody reads until the end could fill up and block it).
    """
    output = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    _outputs[process.pid] = output
    return process


_outputs: dict[int, IO[bytes]] = {}


def stop(process: subprocess.Popen[bytes]) -> str:
    """
    End C{process} and return everything it printed.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = _outputs.pop(process.pid)
    with output:
        output.seek(0)
        return output.read().decode("utf-8", "replace")
