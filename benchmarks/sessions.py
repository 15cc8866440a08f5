"""
Session resumption with C{sessions=True}: what a resumed handshake saves,
and whether sessions survive certificate rotation under load.

    python benchmarks/sessions.py            # full run
    python benchmarks/sessions.py --quick    # a few seconds (CI)

Also run by C{benchmarks/run.py} (C{--only sessions}).

 1. Server CPU per resumed handshake divided by that of a full one, with
    RSA 2048 and ECDSA P-256 certificates, TLS 1.2 and 1.3 (target: at most
    0.6 with RSA), and the CPU of a full handshake with sessions on divided
    by the same with sessions off (the ClientHello reader's cost).  In one
    process: the server is a L{ReloadingContextFactory}'s connection driven
    directly, the client CPython C{ssl} in memory, and only the server's
    calls are timed (C{time.process_time}); full and resumed handshakes are
    interleaved round by round, and the median round is reported.
 2. Resumption rate across rotations under load: a C{tlsreload:...:
    sessions=yes} server process, client threads that each offer their last
    session on every connection (TLS 1.3 tickets are single-use), and the
    certificate replaced and reloaded (SIGHUP) again and again meanwhile
    (target: at least 99% of offered sessions resumed, no failure).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from OpenSSL import SSL

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from txtlsreload import ReloadingContextFactory  # noqa: E402

KEY_TYPES = {"rsa2048": trustme.KeyType.RSA, "ecdsa-p256": trustme.KeyType.ECDSA}
VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}


def _write(ca: trustme.CA, directory: Path, keyType: trustme.KeyType) -> None:
    leaf = ca.issue_cert("bench.example", key_type=keyType)
    for name, data in (
        ("server.key", leaf.private_key_pem.bytes()),
        ("server.crt", b"".join(b.bytes() for b in leaf.cert_chain_pems)),
    ):
        temporary = directory / (name + ".tmp")
        temporary.write_bytes(data)
        os.replace(temporary, directory / name)


class _Timed:
    """
    Adds up the process CPU time spent in the server's calls only.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, function: Callable[..., Any], *args: Any) -> Any:
        started = time.process_time()
        try:
            return function(*args)
        finally:
            self.seconds += time.process_time() - started


def _handshake(
    server: ReloadingContextFactory,
    context: ssl.SSLContext,
    session: ssl.SSLSession | None,
    timed: _Timed,
) -> tuple[bool, ssl.SSLSession | None]:
    """
    One connection, closed cleanly both ways; returns whether it resumed
    and the session to offer next.
    """
    connection = timed(server.serverConnectionForTLS, None)
    timed(connection.set_accept_state)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(
        incoming, outgoing, server_hostname="bench.example", session=session
    )

    def serverStep() -> None:
        data = outgoing.read()
        if data:
            timed(connection.bio_write, data)
        try:
            timed(connection.do_handshake)
        except SSL.WantReadError:
            pass
        try:
            timed(connection.recv, 100)
        except (SSL.WantReadError, SSL.ZeroReturnError):
            pass
        while True:
            try:
                incoming.write(timed(connection.bio_read, 65536))
            except SSL.WantReadError:
                break

    for _ in range(10):
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            serverStep()
    client.write(b"x")
    serverStep()
    timed(connection.send, b"y")
    serverStep()
    client.read(10)
    try:
        client.unwrap()
    except ssl.SSLWantReadError:
        serverStep()
    try:
        timed(connection.shutdown)
    except SSL.Error:
        pass
    serverStep()
    return client.session_reused, client.session


def cpuRatios(
    rounds: int, handshakes: int, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """
    Server CPU per handshake: resumed ÷ full (sessions on) and full with
    sessions on ÷ full with them off, per key type and TLS version.
    """
    entries = []
    with tempfile.TemporaryDirectory(prefix="txtlsreload-sessions-") as name:
        directory = Path(name)
        ca = trustme.CA()
        for keyName, keyType in KEY_TYPES.items():
            _write(ca, directory, keyType)
            files = (str(directory / "server.crt"), str(directory / "server.key"))
            withSessions = ReloadingContextFactory(
                *files, processWide=False, sessions=True
            )
            without = ReloadingContextFactory(*files, processWide=False)
            for versionName, version in VERSIONS.items():
                progress(f"sessions CPU: {keyName} {versionName}")
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ca.configure_trust(context)
                context.minimum_version = context.maximum_version = version
                perRound: dict[str, list[float]] = {
                    "full": [],
                    "resumed": [],
                    "fullOff": [],
                }
                offered = resumed = 0
                for _ in range(rounds):
                    timings = {key: _Timed() for key in perRound}
                    for _ in range(handshakes):
                        _handshake(without, context, None, timings["fullOff"])
                        reused, session = _handshake(
                            withSessions, context, None, timings["full"]
                        )
                        reused, session = _handshake(
                            withSessions, context, session, timings["resumed"]
                        )
                        offered += 1
                        resumed += reused
                    for key, timed in timings.items():
                        perRound[key].append(timed.seconds / handshakes)
                ratios = [
                    r / f
                    for r, f in zip(perRound["resumed"], perRound["full"], strict=True)
                ]
                overhead = [
                    f / o
                    for f, o in zip(perRound["full"], perRound["fullOff"], strict=True)
                ]
                entries.append(
                    {
                        "keyType": keyName,
                        "version": versionName,
                        "fullMs": statistics.median(perRound["full"]) * 1000,
                        "resumedMs": statistics.median(perRound["resumed"]) * 1000,
                        "fullOffMs": statistics.median(perRound["fullOff"]) * 1000,
                        "ratio": statistics.median(ratios),
                        "ratioRange": [min(ratios), max(ratios)],
                        "fullOnOverOff": statistics.median(overhead),
                        "resumedOfOffered": [resumed, offered],
                    }
                )
    return entries


def _serve(description: str) -> None:
    """
    The server process: answer one line, close cleanly, print the port.
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory, Protocol

    class LineOnce(Protocol):
        def dataReceived(self, data: bytes) -> None:
            assert self.transport is not None
            self.transport.write(data)
            if data.endswith(b"\n"):
                self.transport.loseConnection()

    endpoint = serverFromString(reactor, description)

    def ready(port: Any) -> None:
        print(json.dumps({"port": port.getHost().port}), flush=True)

    endpoint.listen(Factory.forProtocol(LineOnce)).addCallback(ready)
    reactor.callLater(900, reactor.stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def rotationRate(
    rotations: int,
    interval: float,
    clients: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """
    Offered sessions resumed while the certificate rotates under load.
    """
    with tempfile.TemporaryDirectory(prefix="txtlsreload-sessions-") as name:
        directory = Path(name)
        ca = trustme.CA()
        _write(ca, directory, trustme.KeyType.ECDSA)
        description = (
            "tlsreload:0:interface=127.0.0.1"
            f":privateKey={directory / 'server.key'}"
            f":certKey={directory / 'server.crt'}:sessions=yes"
        )
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", description],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            line = server.stdout.readline()  # type: ignore[union-attr]
            port = json.loads(line)["port"]
            counts = {"offered": 0, "resumed": 0, "connections": 0, "failures": 0}
            served: set[bytes] = set()
            lock = threading.Lock()
            stop = threading.Event()

            def client(version: ssl.TLSVersion) -> None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ca.configure_trust(context)
                context.minimum_version = context.maximum_version = version
                session = None
                while not stop.is_set():
                    try:
                        with socket.create_connection(
                            ("127.0.0.1", port), timeout=10
                        ) as raw:
                            with context.wrap_socket(
                                raw, server_hostname="bench.example", session=session
                            ) as tls:
                                tls.sendall(b"ping\n")
                                received = b""
                                while not received.endswith(b"\n"):
                                    chunk = tls.recv(100)
                                    if not chunk:
                                        raise ConnectionError("closed early")
                                    received += chunk
                                reused = tls.session_reused
                                offered = session is not None
                                session = tls.session
                                try:
                                    tls.unwrap()
                                except (OSError, ssl.SSLError):
                                    pass
                        with lock:
                            counts["connections"] += 1
                            counts["offered"] += offered
                            counts["resumed"] += offered and reused
                    except (OSError, ssl.SSLError):
                        with lock:
                            counts["failures"] += 1
                        session = None

            threads = [
                threading.Thread(
                    target=client,
                    args=(list(VERSIONS.values())[i % 2],),
                    daemon=True,
                )
                for i in range(clients)
            ]
            for thread in threads:
                thread.start()
            probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ca.configure_trust(probe)
            started = time.monotonic()
            for rotation in range(rotations):
                time.sleep(interval)
                # A client without a session sees what rotations installed
                # (the others keep the certificate of their session).
                with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                    with probe.wrap_socket(raw, server_hostname="bench.example") as tls:
                        der = tls.getpeercert(binary_form=True)
                        assert der is not None
                        served.add(hashlib.sha256(der).digest())
                _write(ca, directory, trustme.KeyType.ECDSA)
                os.kill(server.pid, signal.SIGHUP)
                if rotation % 20 == 19:
                    progress(f"sessions rotation: {rotation + 1} of {rotations}")
            time.sleep(interval)
            stop.set()
            for thread in threads:
                thread.join(30)
            elapsed = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(10)
    offered = counts["offered"]
    return {
        "rotations": rotations,
        "seconds": elapsed,
        "clients": clients,
        **counts,
        "certificatesServed": len(served),
        "rate": counts["resumed"] / offered if offered else 0.0,
    }


def run(quick: bool, progress: Callable[[str], None]) -> dict[str, Any]:
    """
    Both measurements, quick (CI) or full.
    """
    if quick:
        cpu = cpuRatios(rounds=2, handshakes=20, progress=progress)
        rotation = rotationRate(10, 0.1, 2, progress)
    else:
        cpu = cpuRatios(rounds=7, handshakes=200, progress=progress)
        rotation = rotationRate(100, 0.25, 4, progress)
    return {"cpu": cpu, "rotation": rotation}


def markdown(results: dict[str, Any]) -> str:
    """
    The results as Markdown tables.
    """
    lines = [
        "| Certificate | TLS | full (ms) | resumed (ms) | resumed ÷ full [range]"
        " | full, sessions on ÷ off | resumed of offered |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in results["cpu"]:
        low, high = e["ratioRange"]
        resumed, offered = e["resumedOfOffered"]
        lines.append(
            f"| {e['keyType']} | {e['version']} | {e['fullMs']:.3f}"
            f" | {e['resumedMs']:.3f} | {e['ratio']:.2f} [{low:.2f}-{high:.2f}]"
            f" | {e['fullOnOverOff']:.3f} | {resumed}/{offered} |"
        )
    r = results["rotation"]
    lines += [
        "",
        f"Across {r['rotations']} rotations in {r['seconds']:.1f} s, {r['clients']}"
        f" clients (TLS 1.2 and 1.3) offering their last session:"
        f" {r['resumed']:,} of {r['offered']:,} offered sessions resumed"
        f" ({100 * r['rate']:.2f}%; target ≥ 99%), {r['failures']} failed"
        f" connections of {r['connections']:,}; {r['certificatesServed']}"
        " certificates served to clients without a session.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        _serve(options.serve)
        return 0

    def progress(message: str) -> None:
        sys.stderr.write(message + "\n")

    results = run(options.quick, progress)
    sys.stdout.write(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
