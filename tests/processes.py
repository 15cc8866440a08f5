"""
Helpers for end-to-end tests that start real server processes and talk to
them with CPython's C{ssl}.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
