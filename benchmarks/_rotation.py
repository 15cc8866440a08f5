"""
Hitless under load: the certificate rotates again and again while clients
hammer the server, and every failed handshake or request is counted.

The server is C{tlsreload} in front of a tiny C{twisted.web} site.  Load:

 - C{webClients} processes, each making HTTPS requests on a new connection
   (so a full handshake) as fast as it can;
 - one process holding C{keepAliveConnections} HTTP/1.1 connections open for
   the whole run and making requests on them in turn.

After a quiet second, the benchmark rotates the certificate C{rotations}
times, cycling through three certificates from the same CA: each rotation
writes the new combined PEM file to a temporary name, renames it over the
served one and sends SIGHUP.  A quiet second follows before the clients stop.
All clients stop by themselves at a deadline on the shared monotonic clock.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from _certs import makeCertificateSets
from _processes import Processes, Progress

__all__ = ["measureRotation"]


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    temporary.replace(path)


def measureRotation(
    processes: Processes,
    serverArguments: Any,
    rotations: int,
    interval: float,
    webClients: int,
    keepAliveConnections: int,
    workDirectory: Path,
    progress: Progress,
) -> dict[str, Any]:
    """
    Run the rotation under load.

    @param serverArguments: Given the served combined PEM file, the
        C{server.py} arguments for a C{tlsreload} server reloading it on
        SIGHUP.
    @param interval: Seconds between rotations.
    @return: Counts, the times of every success and failure relative to the
        start, and the rotation moments.
    """
    directory = workDirectory / "rotation"
    directory.mkdir()
    sets = makeCertificateSets(directory, "ecdsa-p256", count=3)
    contents = [s.combinedFile.read_bytes() for s in sets]
    served = directory / "served.pem"
    served.write_bytes(contents[0])
    server = processes.startServer(
        "tlsreload-web", [*serverArguments(served), "--app", "web"]
    )
    quiet = 1.0
    # Leave the clients time to start before the first rotation.
    origin = time.monotonic() + 0.5
    firstRotation = origin + quiet
    until = firstRotation + rotations * interval + quiet
    common = ["--port", str(server.port), "--ca", str(sets[0].caFile)]
    common += ["--until", repr(until)]
    try:
        web = [processes.startClient(["web", *common]) for _ in range(webClients)]
        keepAlive = processes.startClient(
            ["keepalive", *common, "--connections", str(keepAliveConnections)]
        )
        rotatedAt: list[float] = []
        for number in range(1, rotations + 1):
            due = firstRotation + (number - 1) * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            _replace(served, contents[number % len(contents)])
            rotatedAt.append(time.monotonic() - origin)
            server.hangUp()
            if number % max(1, rotations // 5) == 0:
                progress(f"rotation under load: {number}/{rotations} rotations")
        timeout = until - time.monotonic() + 60.0
        webResults = [processes.collect(p, timeout) for p in web]
        keepAliveResult = processes.collect(keepAlive, timeout)
        stats = server.stats()
        how = server.how
    finally:
        processes.stopServer(server)

    okTimes = sorted(t - origin for r in webResults for t in r["ok"])
    failures = sorted((t - origin, why) for r in webResults for t, why in r["failures"])
    keepAliveOk = sorted(t - origin for t in keepAliveResult["ok"])
    keepAliveFailures = sorted(
        (t - origin, why) for t, why in keepAliveResult["failures"]
    )
    seen: Counter[str] = Counter()
    for r in webResults:
        seen.update(r["certificatesSeen"])
    reasons = Counter(why for _, why in failures + keepAliveFailures)
    return {
        "how": how,
        "rotations": rotations,
        "interval": interval,
        "webClients": webClients,
        "keepAliveConnections": keepAliveConnections,
        "handshakes": len(okTimes) + len(failures),
        "failedHandshakesOrRequests": len(failures),
        "keepAliveRequests": len(keepAliveOk) + len(keepAliveFailures),
        "keepAliveFailures": len(keepAliveFailures),
        "keepAliveConnectionsOpened": keepAliveResult["connectionsOpened"],
        "distinctCertificatesSeen": len(seen),
        "failureReasons": dict(reasons.most_common(5)),
        "serverProblemsLogged": stats["problemsLogged"],
        "duration": until - origin,
        "rotatedAt": rotatedAt,
        "okTimes": okTimes,
        "failureTimes": [t for t, _ in failures],
        "keepAliveOkTimes": keepAliveOk,
        "keepAliveFailureTimes": [t for t, _ in keepAliveFailures],
    }
