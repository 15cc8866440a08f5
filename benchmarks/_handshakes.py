"""
Cost per handshake: server CPU time per full handshake, C{tlsreload} against
Twisted's own C{ssl:} endpoint serving the same certificate and chain.

Both servers run at once.  The CPython clients load them at the same time:
every client process alternates between the two servers, handshake by
handshake (half of the processes start with one, half with the other), so a
change in machine load during a round hits both alike.  C{openssl s_time}, a
single sequential client, loads one server and then the other, the order
flipping every round.  (Two s_time processes run at once, one per server,
proved useless: how the two servers then share the CPUs swings the cost per
handshake by tens of percent either way.)  The figure per
server and round is the server process's own CPU time (user plus system, from
C{getrusage}) spent during the round divided by the handshakes it finished.
The ratio is taken per round, since each round pairs the two servers under
the same conditions, and summarised by its median and range over the rounds.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _certs import KeyType, makeCertificateSets
from _processes import Processes, Progress, ServerProcess, sslEndpoint

__all__ = ["HandshakeSettings", "measureHandshakeCost"]


@dataclass(frozen=True)
class HandshakeSettings:
    """
    @ivar keyTypes: Leaf key types to measure.
    @ivar rounds: Rounds per configuration; each round loads both servers.
    @ivar handshakes: Handshakes per server per round (CPython clients).
    @ivar clients: Client processes sharing those handshakes; each of them
        loads both servers.
    @ivar sTimeSeconds: Seconds per server per round for C{openssl s_time},
        or 0 to leave that client out.
    @ivar sTimeRounds: Rounds for C{openssl s_time}, which needs more of
        them: its rounds cannot load both servers at once.
    """

    keyTypes: tuple[KeyType, ...]
    rounds: int
    handshakes: int
    clients: int
    sTimeSeconds: int
    sTimeRounds: int


_CLIENTS = (
    ("python-ssl", True, "CPython ssl, SNI"),
    ("python-ssl", False, "CPython ssl, no SNI"),
    ("s_time", False, "openssl s_time -new, no SNI"),
)


def _pythonLoad(
    processes: Processes,
    servers: tuple[ServerProcess, ...],
    caFile: Path,
    sni: bool,
    handshakes: int,
    clients: int,
) -> int:
    """
    Load all C{servers} at once: every client process makes its handshakes
    with each server in turn, half of them starting with the first server,
    half with the second.
    """
    started = []
    for index in range(clients):
        ports: list[str] = []
        ordered = servers if index % 2 == 0 else tuple(reversed(servers))
        for server in ordered:
            ports += ["--port", str(server.port)]
        started.append(
            processes.startClient(
                [
                    "handshakes",
                    *ports,
                    "--ca",
                    str(caFile),
                    "--sni" if sni else "--no-sni",
                    "--count",
                    str(handshakes // clients),
                ]
            )
        )
    failures = 0
    for process in started:
        result = processes.collect(process, timeout=600.0)
        failures += result["failures"]
    return failures


def _sTimeLoad(server: ServerProcess, caFile: Path, seconds: int) -> int:
    """
    Run C{openssl s_time -new} against one server.  It has no option to send
    SNI, and reports no failure count of its own (the server's handshake
    count is what the figure divides by); a non-zero exit counts as one.
    """
    completed = subprocess.run(
        [
            "openssl",
            "s_time",
            "-connect",
            f"127.0.0.1:{server.port}",
            "-new",
            "-time",
            str(seconds),
            "-CAfile",
            str(caFile),
            "-verify",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        timeout=seconds + 60,
        check=False,
    )
    return int(completed.returncode != 0)


def _measure(
    servers: tuple[ServerProcess, ...], load: Callable[[], int]
) -> dict[str, dict[str, float]]:
    """
    Run C{load} and work out each server's CPU time per handshake over it.
    """
    before = {server.name: server.stats() for server in servers}
    failures = load()
    result = {}
    for server in servers:
        after = server.stats()
        handshakes = after["handshakes"] - before[server.name]["handshakes"]
        if handshakes <= 0:
            raise RuntimeError(f"{server.name}: no handshakes finished in a round")
        cpu = after["cpu"] - before[server.name]["cpu"]
        result[server.name] = {
            "cpuPerHandshakeUs": cpu / handshakes * 1e6,
            "handshakes": handshakes,
            "failures": failures,
        }
    return result


def _oneRound(
    processes: Processes,
    servers: tuple[ServerProcess, ...],
    caFile: Path,
    client: str,
    sni: bool,
    settings: HandshakeSettings,
) -> dict[str, dict[str, float]]:
    """
    One round: CPython clients load both servers at once; C{s_time}, a
    single process, loads one server after the other, in the order given.
    """
    if client != "s_time":
        return _measure(
            servers,
            lambda: _pythonLoad(
                processes, servers, caFile, sni, settings.handshakes, settings.clients
            ),
        )
    result = {}
    for server in servers:
        result.update(
            _measure(
                (server,),
                partial(_sTimeLoad, server, caFile, settings.sTimeSeconds),
            )
        )
    return result


def measureHandshakeCost(
    processes: Processes,
    tlsreloadArguments: Any,
    workDirectory: Path,
    settings: HandshakeSettings,
    progress: Progress,
) -> dict[str, Any]:
    """
    Measure every client and key type combination.

    @param tlsreloadArguments: A function taking the leaf, key and chain files
        and returning the C{server.py} arguments for the C{tlsreload} side;
        it gets the same files as the C{ssl:} server.
    @return: One row per configuration, with per-round figures.
    """
    rows = []
    how = ""
    clients = [c for c in _CLIENTS if c[0] != "s_time" or settings.sTimeSeconds > 0]
    if settings.sTimeSeconds > 0 and shutil.which("openssl") is None:
        progress("openssl not found: leaving out the s_time client")
        clients = [c for c in clients if c[0] != "s_time"]
    for keyType in settings.keyTypes:
        directory = workDirectory / f"handshake-{keyType}"
        directory.mkdir()
        (certificates,) = makeCertificateSets(directory, keyType, count=1)
        tlsreload, ssl = processes.startServers(
            [
                (
                    "tlsreload",
                    tlsreloadArguments(
                        certificates.leafFile,
                        certificates.keyFile,
                        certificates.chainFile,
                    ),
                ),
                (
                    "ssl",
                    [
                        "--endpoint",
                        sslEndpoint(
                            certificates.leafFile,
                            certificates.keyFile,
                            certificates.chainFile,
                        ),
                    ],
                ),
            ]
        )
        how = tlsreload.how
        try:
            # Warm both up: imports, first allocations, branch caches.
            _pythonLoad(
                processes,
                (tlsreload, ssl),
                certificates.caFile,
                True,
                min(40, settings.handshakes // 2),
                2,
            )
            for client, sni, label in clients:
                perServer: dict[str, list[dict[str, float]]] = {
                    "tlsreload": [],
                    "ssl": [],
                }
                rounds = settings.sTimeRounds if client == "s_time" else settings.rounds
                for number in range(rounds):
                    order = (tlsreload, ssl) if number % 2 == 0 else (ssl, tlsreload)
                    measured = _oneRound(
                        processes, order, certificates.caFile, client, sni, settings
                    )
                    for name, figures in measured.items():
                        perServer[name].append(figures)
                    progress(
                        f"handshake cost {keyType}, {label}: round"
                        f" {number + 1}/{rounds}: tlsreload"
                        f" {perServer['tlsreload'][-1]['cpuPerHandshakeUs']:.0f} µs,"
                        f" ssl {perServer['ssl'][-1]['cpuPerHandshakeUs']:.0f} µs"
                    )
                rows.append(_summarise(keyType, label, perServer))
            for server in (tlsreload, ssl):
                problems = server.stats()["problemsLogged"]
                if problems:
                    progress(f"{server.name} server logged {problems} problem(s)")
        finally:
            processes.stopServer(tlsreload)
            processes.stopServer(ssl)
    return {"rows": rows, "how": how, "settings": settings.__dict__}


def _summarise(
    keyType: str, client: str, perServer: dict[str, list[dict[str, float]]]
) -> dict[str, Any]:
    ours = [r["cpuPerHandshakeUs"] for r in perServer["tlsreload"]]
    theirs = [r["cpuPerHandshakeUs"] for r in perServer["ssl"]]
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    quartiles = (
        statistics.quantiles(ratios, n=4, method="inclusive")
        if len(ratios) > 1
        else [ratios[0]] * 3
    )
    return {
        "keyType": keyType,
        "client": client,
        "tlsreloadUs": statistics.median(ours),
        "sslUs": statistics.median(theirs),
        "ratioOfMedians": statistics.median(ours) / statistics.median(theirs),
        "ratioMedian": statistics.median(ratios),
        "ratioMin": min(ratios),
        "ratioQ1": quartiles[0],
        "ratioQ3": quartiles[2],
        "ratioMax": max(ratios),
        "tlsreloadRounds": ours,
        "sslRounds": theirs,
        "handshakes": sum(r["handshakes"] for rs in perServer.values() for r in rs),
        "failures": sum(r["failures"] for rs in perServer.values() for r in rs),
        "measuredAt": time.time(),
    }
