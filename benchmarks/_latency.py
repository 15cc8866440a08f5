"""
Reload latency: from the trigger to the first new handshake that shows the
new certificate.

The server serves one combined PEM file (chain and key) that the benchmark
replaces with a single atomic rename, alternating between two certificates
from the same CA.  The clock starts right after the rename (file watching)
or right before the signal is sent (SIGHUP); then the benchmark makes
handshakes with CPython's C{ssl}, back to back, until one shows the new leaf.
The figure therefore includes up to one handshake of polling, whose typical
length is reported next to it.  The server also records when each reload
installed the new credentials, which gives the server's part alone.
"""

from __future__ import annotations

import socket
import ssl
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _certs import CertificateSet, makeCertificateSets
from _processes import Processes, Progress, ServerProcess

__all__ = ["measureReloadLatency", "percentile"]


def percentile(values: list[float], fraction: float) -> float:
    """
    The nearest-rank percentile: a value that was really measured.
    """
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def _servedLeaf(port: int, context: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True) or b""


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    temporary.replace(path)


def measureReloadLatency(
    processes: Processes,
    serverArguments: Callable[[Path], list[str]],
    trigger: str,
    reloads: int,
    workDirectory: Path,
    progress: Progress,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """
    Rotate C{reloads} times and time each one.

    @param serverArguments: Given the served combined PEM file, the
        C{server.py} arguments for a C{tlsreload} server that reloads it on
        C{trigger}.
    @param trigger: C{"sighup"} or C{"watch"}.
    @param timeout: A reload not visible after this long counts as missed.
    """
    directory = workDirectory / f"latency-{trigger}"
    directory.mkdir()
    sets: list[CertificateSet] = makeCertificateSets(directory, "ecdsa-p256", count=2)
    contents = [s.combinedFile.read_bytes() for s in sets]
    served = directory / "served.pem"
    served.write_bytes(contents[0])
    server: ServerProcess = processes.startServer(
        f"tlsreload-{trigger}", serverArguments(served)
    )
    context = ssl.create_default_context(cafile=str(sets[0].caFile))
    latencies: list[float] = []
    polls: list[int] = []
    serverSide: list[float] = []
    missed = 0
    try:
        handshakeTimes = []
        for _ in range(50):
            before = time.perf_counter()
            _servedLeaf(server.port, context)
            handshakeTimes.append(time.perf_counter() - before)
        for number in range(1, reloads + 1):
            new = sets[number % 2]
            _replace(served, contents[number % 2])
            # The monotonic clock is system-wide: the server's record of when
            # it installed the new credentials is comparable with it.
            started = time.monotonic()
            if trigger == "sighup":
                server.hangUp()
            attempts = 0
            while True:
                attempts += 1
                if _servedLeaf(server.port, context) == new.leafDER:
                    latencies.append(time.monotonic() - started)
                    polls.append(attempts)
                    installed = [
                        t for t in server.stats()["installedAt"] if t >= started
                    ]
                    if installed:
                        serverSide.append(installed[0] - started)
                    break
                if time.monotonic() - started > timeout:
                    missed += 1
                    break
            if number % max(1, reloads // 5) == 0:
                progress(
                    f"reload latency ({trigger}): {number}/{reloads},"
                    f" p50 so far {statistics.median(latencies) * 1000:.1f} ms"
                    if latencies
                    else f"reload latency ({trigger}): {number}/{reloads}"
                )
        problems = server.stats()["problemsLogged"]
        how = server.how
    finally:
        processes.stopServer(server)
    return {
        "trigger": trigger,
        "how": how,
        "reloads": reloads,
        "missed": missed,
        "p50ms": statistics.median(latencies) * 1000 if latencies else None,
        "p99ms": percentile(latencies, 0.99) * 1000 if latencies else None,
        "maxms": max(latencies) * 1000 if latencies else None,
        "handshakeMs": statistics.median(handshakeTimes) * 1000,
        "medianPolls": statistics.median(polls) if polls else None,
        "serverP50ms": statistics.median(serverSide) * 1000 if serverSide else None,
        "serverP99ms": percentile(serverSide, 0.99) * 1000 if serverSide else None,
        "problemsLogged": problems,
        "latenciesMs": [value * 1000 for value in latencies],
    }
