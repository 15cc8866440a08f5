"""
The SNI certificate store at up to 10,000 names, beside Twisted's own
C{tls:} endpoint pointed at the same directory.

    python benchmarks/sni.py            # full: 1, 100, 1,000, 10,000 names
    python benchmarks/sni.py --quick    # 1 and 200 names, for CI

Everything runs in process, on memory BIOs: the server side of each
handshake is timed alone (C{time.thread_time} around the server's OpenSSL
calls, the servername callback included), so client work never counts.
Start-up time and memory are measured in a fresh child process per server.
Certificates (one ECDSA P-256 CA, one ECDSA leaf per name, Twisted C{tls:}
layout: one C{NAME.pem} with key and certificate) are cached under
C{benchmarks/.sni-certificates/} (not in git): making 10,000 takes a while.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".sni-certificates"
SIZES_FULL = (1, 100, 1000, 10000)
SIZES_QUICK = (1, 200)


# Certificates


def _name(i: int) -> str:
    return f"host{i:05d}.example"


def certificates(count: int) -> tuple[Path, Path]:
    """
    A directory with C{count} names and the CA file, made once and cached.
    """
    base = CACHE / str(count)
    directory, caFile = base / "pems", base / "ca.pem"
    if (base / "done").exists():
        return directory, caFile
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    caKey = ec.generate_private_key(ec.SECP256R1())
    caName = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(caName)
        .issuer_name(caName)
        .public_key(caKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(caKey, hashes.SHA256())
    )
    caFile.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for i in range(count):
        write(directory, i, ca, caKey, now)
    (base / "done").write_text("")
    return directory, caFile


def write(
    directory: Path,
    i: int,
    ca: x509.Certificate,
    caKey: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> int:
    """
    Issue and write the certificate for name C{i}; return its serial.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _name(i))]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(_name(i))]), False)
        .sign(caKey, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + leaf.public_bytes(serialization.Encoding.PEM)
    path = directory / f"{_name(i)}.pem"
    temporary = path.with_name("." + path.name + ".tmp")
    temporary.write_bytes(pem)
    os.replace(temporary, path)
    return serial


def _caAndKey(count: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    # The CA key is not cached; rotations use a new CA's leaves, which a
    # client that does not verify (as here) accepts just as well.
    caKey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA 2")])
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(caKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(caKey, hashes.SHA256())
    )
    return ca, caKey


# Servers


class _Call:
    def __init__(self, reactor: StepReactor, when: float, call: Callable[[], object]):
        self.reactor, self.when, self.call = reactor, when, call

    def active(self) -> bool:
        return self in self.reactor.calls

    def cancel(self) -> None:
        self.reactor.calls.remove(self)


class StepReactor:
    """
    A reactor clock that runs one due call per L{step}, so that each reactor
    iteration of a stepped reload can be timed on its own (L{Clock.advance}
    would also run the calls scheduled while it runs).
    """

    def __init__(self) -> None:
        self.calls: list[_Call] = []

    def seconds(self) -> float:
        return time.time()

    def callLater(self, delay: float, f: Any, *args: Any, **kwargs: Any) -> _Call:
        call = _Call(self, time.time() + delay, lambda: f(*args, **kwargs))
        self.calls.append(call)
        return call

    def step(self) -> bool:
        """
        Run the first due call; C{False} if none was due.
        """
        now = time.time()
        for call in self.calls:
            if call.when <= now:
                self.calls.remove(call)
                call.call()
                return True
        return False


def ours(directory: Path, **kwargs: Any) -> Any:
    from txtlsreload import ReloadingCertificateStore

    return ReloadingCertificateStore(str(directory), reactor=StepReactor(), **kwargs)


def twistedTLS(directory: Path) -> Any:
    from twisted.protocols._sni import (
        SNIConnectionCreator,
        autoReloadingDirectoryOfPEMs,
    )
    from twisted.python.filepath import FilePath

    return SNIConnectionCreator(autoReloadingDirectoryOfPEMs(FilePath(str(directory))))


def oneCertificate(directory: Path) -> Any:
    from txtlsreload import ReloadingContextFactory

    path = str(directory / f"{_name(0)}.pem")
    return ReloadingContextFactory(path, path)


class BareSNI:
    """
    The least any SNI server can do, as a floor for the others: one context
    per name built at start, chosen by one dict lookup in the servername
    callback; nothing reloads.  What it pays above one certificate is what
    10,000 keys and contexts cost the CPU's caches, whoever holds them.
    """

    def __init__(self, directory: Path, count: int) -> None:
        from cryptography.x509 import load_pem_x509_certificate
        from twisted.internet.ssl import CertificateOptions

        self.contexts: dict[bytes, SSL.Context] = {}
        for i in range(count):
            pem = (directory / f"{_name(i)}.pem").read_bytes()
            options = CertificateOptions(
                privateKey=serialization.load_pem_private_key(pem, None),  # type: ignore[arg-type]
                certificate=load_pem_x509_certificate(pem),  # type: ignore[arg-type]
            )
            self.contexts[_name(i).encode("ascii")] = options.getContext()
        self.dispatch = CertificateOptions().getContext()
        self.dispatch.set_tlsext_servername_callback(self._switch)

    def _switch(self, connection: SSL.Connection) -> None:
        connection.set_context(self.contexts[connection.get_servername() or b""])

    def serverConnectionForTLS(self, protocol: object) -> SSL.Connection:
        return SSL.Connection(self.dispatch, None)


# Handshakes on memory BIOs, the server side timed alone


_CLIENT = SSL.Context(SSL.TLS_CLIENT_METHOD)


def handshake(server: Any, name: str | None) -> tuple[float, int | None]:
    """
    One full handshake; return the server's CPU seconds and the served
    certificate's serial (L{None} if the handshake failed).
    """
    spent = 0.0
    started = time.thread_time()
    serverConnection = server.serverConnectionForTLS(None)
    serverConnection.set_accept_state()
    spent += time.thread_time() - started
    client = SSL.Connection(_CLIENT, None)
    client.set_connect_state()
    if name is not None:
        client.set_tlsext_host_name(name.encode("ascii"))
    done = [False, False]
    try:
        for _ in range(20):
            try:
                client.do_handshake()
                done[0] = True
            except SSL.WantReadError:
                pass
            data = _drain(client)
            started = time.thread_time()
            if data:
                serverConnection.bio_write(data)
            try:
                serverConnection.do_handshake()
                done[1] = True
            except SSL.WantReadError:
                pass
            reply = _drain(serverConnection)
            spent += time.thread_time() - started
            if reply:
                client.bio_write(reply)
            if all(done) and not reply and not data:
                break
    except SSL.Error:
        return spent, None
    peer = client.get_peer_certificate(as_cryptography=True)
    return spent, None if peer is None else peer.serial_number


def _drain(connection: SSL.Connection) -> bytes:
    chunks = []
    while True:
        try:
            chunks.append(connection.bio_read(65536))
        except SSL.WantReadError:
            return b"".join(chunks)


def cpuPerHandshake(
    server: Any, names: Callable[[], str | None], count: int
) -> tuple[float, int]:
    """
    Median server CPU microseconds over C{count} handshakes, and how many
    failed.
    """
    times, failed = [], 0
    for _ in range(count):
        spent, serial = handshake(server, names())
        times.append(spent)
        failed += serial is None
    return statistics.median(times) * 1e6, failed


def countOpens(function: Callable[[], object]) -> int:
    """
    How many files C{function} opens, counted by an audit hook.
    """
    opened = [0]
    counting = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if counting[0] and event == "open":
            opened[0] += 1

    sys.addaudithook(hook)
    try:
        function()
    finally:
        counting[0] = False
    return opened[0]


# Start-up in a child process


def startupChild(kind: str, directory: str) -> dict[str, float]:
    import resource

    started = time.perf_counter()
    before = _rss()
    server = {"ours": ours, "twisted": twistedTLS}[kind](Path(directory))
    if kind == "twisted":
        server.defaultContext  # noqa: B018 (what Twisted builds when listening)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    after = _rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "cpuSeconds": cpu,
        "seconds": seconds,
        "rssMiB": after,
        "growthMiB": after - before,
        "peakMiB": peak,
    }


def _rss() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def startup(kind: str, directory: Path) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--startup-child", kind, str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    return json.loads(output)  # type: ignore[no-any-return]


# The measurements


def measureSize(
    count: int, quick: bool, progress: Callable[[str], None]
) -> dict[str, Any]:
    """
    Everything for one number of names.
    """
    directory, _ = certificates(count)
    rng = random.Random(count)
    handshakes = 200 if quick else 1000
    result: dict[str, Any] = {"names": count}
    progress(f"{count} names: start-up")
    result["startup"] = {"ours": startup("ours", directory)}
    result["startup"]["twisted"] = startup("twisted", directory)

    progress(f"{count} names: handshakes")
    store = ours(directory, cacheSize=max(count, 1))
    known = lambda: _name(rng.randrange(count))  # noqa: E731
    unknown = lambda: f"random{rng.randrange(10**9)}.example"  # noqa: E731
    single = oneCertificate(directory)
    tls = twistedTLS(directory)
    bare = BareSNI(directory, count)
    # Warm up: every context built once, as a long-running server has them.
    for i in range(count):
        handshake(store, _name(i))
        handshake(tls, _name(i))
        handshake(bare, _name(i))
    # One handshake of each kind in turn, so that load from elsewhere on
    # the machine falls on all of them alike.
    smallCache = ours(directory, cacheSize=max(1, count // 10))
    kinds = {
        "one": (single, known),
        "knownSmallCache": (smallCache, known),
        "known": (store, known),
        "unknown": (store, unknown),
        "twistedKnown": (tls, known),
        "bareKnown": (bare, known),
    }
    times: dict[str, list[float]] = {k: [] for k in kinds}
    order = list(kinds.items())
    for _ in range(handshakes):
        # In a new order each round: a handshake after one that built a
        # context (knownSmallCache) finds colder CPU caches.
        rng.shuffle(order)
        for kind, (server, names) in order:
            times[kind].append(handshake(server, names())[0])
    cpu = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    result["cpuMicroseconds"] = cpu
    unknownCount = 1000 if not quick else 200
    failed = [0]

    def unknownNames() -> None:
        failed[0] = cpuPerHandshake(store, unknown, unknownCount)[1]

    result["unknownOpens"] = countOpens(unknownNames)
    result["unknownHandshakes"] = unknownCount
    result["unknownFailed"] = failed[0]
    twistedUnknown = unknownCount
    twistedCPU = [0.0]

    def twistedUnknownNames() -> None:
        twistedCPU[0] = cpuPerHandshake(tls, unknown, twistedUnknown)[0]

    result["twistedUnknownOpens"] = countOpens(twistedUnknownNames)
    result["twistedUnknownMicroseconds"] = twistedCPU[0]
    result["twistedUnknownHandshakes"] = twistedUnknown

    progress(f"{count} names: reload latency")
    result["reload"] = reloadLatency(store, tls, directory, count, 20 if quick else 100)
    result["watchPoll"] = watchPoll(store, 3 if quick else 10)
    return result


def watchPoll(store: Any, polls: int) -> dict[str, float]:
    """
    What C{watch=} costs the reactor at each poll of a store (the poll
    alone, without inotify): the longest reactor iteration, and the CPU of
    the whole poll.
    """
    from txtlsreload import FileWatcher

    reactor = store._names._reactor  # the StepReactor it was made with
    watcher = FileWatcher(store, 3600, reactor, useInotify=False)
    stalls, totals = [], []
    watcher.start()
    try:
        for poll in range(polls + 1):
            if poll:
                # The poll's call is due now rather than in an hour.
                for call in reactor.calls:
                    call.when = 0
            spent = 0.0
            while True:
                started = time.perf_counter()
                cpu = time.thread_time()
                if not reactor.step():
                    break
                spent += time.thread_time() - cpu
                stalls.append(time.perf_counter() - started)
            totals.append(spent)
    finally:
        watcher.stop()
    return {
        "polls": polls,
        "stallMaxMs": max(stalls) * 1000,
        "cpuMs": statistics.median(totals[1:]) * 1000,
    }


def reloadLatency(
    store: Any, tls: Any, directory: Path, count: int, reloads: int
) -> dict[str, Any]:
    """
    Replace one certificate, reload in steps (as SIGHUP does), handshake for
    its name: the time until that handshake shows the new certificate, and
    the longest reactor iteration the reload took.  Twisted's C{tls:} never
    picks a renewed name up; the time of the full re-read it would do is
    reported beside.
    """
    ca, caKey = _caAndKey(count)
    now = datetime.datetime.now(datetime.timezone.utc)
    rng = random.Random(7)
    reactor = store._names._reactor  # the StepReactor it was made with
    latencies, stalls, parsed = [], [], []
    for _ in range(reloads):
        i = rng.randrange(count)
        serial = write(directory, i, ca, caKey, now)
        results: list[Any] = []
        started = time.perf_counter()
        store.reloadInSteps().addCallback(results.append)
        # Each step is one reactor iteration: the longest is the stall.
        while not results:
            step = time.perf_counter()
            reactor.step()
            stalls.append(time.perf_counter() - step)
        _, served = handshake(store, _name(i))
        latencies.append(time.perf_counter() - started)
        parsed.append(results[0].parsed)
        assert served == serial, (served, serial)
    twistedNoticed = handshake(tls, _name(i))[1] == serial
    from twisted.protocols._sni import PEMObjects
    from twisted.python.filepath import FilePath

    started = time.perf_counter()
    PEMObjects.fromDirectory(FilePath(str(directory))).inferDomainMapping()
    rescan = time.perf_counter() - started

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "reloads": reloads,
        "p50ms": pct(latencies, 0.5),
        "p99ms": pct(latencies, 0.99),
        "stallMaxMs": max(stalls) * 1000,
        "stallP99Ms": pct(stalls, 0.99),
        "stallP50Ms": pct(stalls, 0.5),
        "parsedMax": max(parsed),
        "twistedPicksUpRenewal": twistedNoticed,
        "twistedRescanMs": rescan * 1000,
    }


def rotationsUnderLoad(
    count: int, rotations: int, perRotation: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    """
    Rotate C{perRotation} names C{rotations} times while new connections
    handshake and keep-alive connections exchange data; count failures.
    """
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.task import Clock
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from twisted.test.iosim import connectedServerAndClient

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[union-attr]

    class Record(Protocol):
        received = b""
        lost = False

        def dataReceived(self, data: bytes) -> None:
            self.received += data

        def connectionLost(self, reason: object = None) -> None:
            self.lost = True

    directory, _ = certificates(count)
    store = ours(directory)
    ca, caKey = _caAndKey(count)
    now = datetime.datetime.now(datetime.timezone.utc)
    rng = random.Random(3)
    clock = Clock()

    class NoVerify:
        def clientConnectionForTLS(self, protocol: object) -> SSL.Connection:
            connection = SSL.Connection(_CLIENT, None)
            connection.set_tlsext_host_name(protocol._bench_name)  # type: ignore[attr-defined]
            return connection

    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
    from zope.interface import classImplements

    classImplements(NoVerify, IOpenSSLClientConnectionCreator)

    def connect(name: str) -> tuple[Any, Record, Any]:
        record = Record()
        serverFactory = TLSMemoryBIOFactory(
            store, False, Factory.forProtocol(Echo), clock=clock
        )
        clientFactory = TLSMemoryBIOFactory(
            NoVerify(), True, Factory.forProtocol(lambda: record), clock=clock
        )

        def buildClient() -> Any:
            protocol = clientFactory.buildProtocol(None)
            protocol._bench_name = name.encode()
            return protocol

        client, _, pump = connectedServerAndClient(
            lambda: serverFactory.buildProtocol(None), buildClient, clock=clock
        )
        pump.flush()
        return client, record, pump

    keepAlive = [connect(_name(rng.randrange(count))) for _ in range(20)]
    requests = failures = 0
    for rotation in range(rotations):
        for i in rng.sample(range(count), min(perRotation, count)):
            write(directory, i, ca, caKey, now)
        result = store.reload()
        if not result.succeeded or len(result.replaced) != min(perRotation, count):
            failures += 1
        for _ in range(50):
            client, record, pump = connect(_name(rng.randrange(count)))
            client.write(b"ping")
            pump.flush()
            requests += 1
            failures += record.received != b"ping" or record.lost
        for client, record, pump in keepAlive:
            before = len(record.received)
            client.write(b"again")
            pump.flush()
            requests += 1
            failures += record.received[before:] != b"again" or record.lost
        progress(f"rotation {rotation + 1}/{rotations}: {failures} failure(s) so far")
    return {
        "rotations": rotations,
        "namesPerRotation": perRotation,
        "requests": requests,
        "failures": failures,
    }


def run(quick: bool, progress: Callable[[str], None]) -> dict[str, Any]:
    """
    Every measurement; the full run takes several minutes.
    """
    sizes = SIZES_QUICK if quick else SIZES_FULL
    results: dict[str, Any] = {
        "sizes": [measureSize(n, quick, progress) for n in sizes]
    }
    largest = sizes[-1]
    results["rotation"] = rotationsUnderLoad(
        largest, 5 if quick else 20, 20 if quick else 100, progress
    )
    return results


def markdown(results: dict[str, Any]) -> str:
    """
    The bars of issue 10 side by side with Twisted's C{tls:}.
    """
    largest = results["sizes"][-1]
    n = largest["names"]
    cpu = largest["cpuMicroseconds"]
    up, reload, rot = largest["startup"], largest["reload"], results["rotation"]
    rows = [
        ("What", "txtlsreload", "Twisted tls:", "Target"),
        (
            f"Server CPU per handshake, random known name of {n:,} ÷ one-certificate"
            " tlsreload",
            f"{cpu['known'] / cpu['one']:.3f} ({cpu['known']:.0f} µs)",
            f"{cpu['twistedKnown'] / cpu['one']:.3f} ({cpu['twistedKnown']:.0f} µs)",
            "≤ 1.02",
        ),
        (
            "The same ÷ a bare pyOpenSSL SNI server holding the same names"
            f" (the floor: {cpu['bareKnown'] / cpu['one']:.3f} ÷ one certificate)",
            f"{cpu['known'] / cpu['bareKnown']:.3f}",
            f"{cpu['twistedKnown'] / cpu['bareKnown']:.3f}",
            "≤ 1.02",
        ),
        (
            f"Same with cacheSize={max(1, n // 10):,} (a tenth of the names):"
            " most handshakes build a context",
            f"{cpu['knownSmallCache'] / cpu['one']:.3f}"
            f" ({cpu['knownSmallCache']:.0f} µs)",
            "",
            "",
        ),
        (
            f"Start-up with {n:,} names: time (process CPU), RSS (growth)",
            f"{up['ours']['seconds']:.2f} s ({up['ours']['cpuSeconds']:.2f}),"
            f" {up['ours']['rssMiB']:.0f} MiB (+{up['ours']['growthMiB']:.0f})",
            f"{up['twisted']['seconds']:.2f} s ({up['twisted']['cpuSeconds']:.2f}),"
            f" {up['twisted']['rssMiB']:.0f} MiB (+{up['twisted']['growthMiB']:.0f})",
            "≤ 5 s, ≤ 150 MiB",
        ),
        (
            f"Replace 1 of {n:,}, reload → handshake with it, p50 / p99"
            f" ({reload['reloads']} reloads)",
            f"{reload['p50ms']:.1f} / {reload['p99ms']:.1f} ms",
            "never (renewed known names are not picked up)"
            if not reload["twistedPicksUpRenewal"]
            else "picked up",
            "≤ 50 / 150 ms",
        ),
        (
            "Longest reactor iteration during those reloads (p99 / p50)",
            f"{reload['stallMaxMs']:.1f} ms ({reload['stallP99Ms']:.1f} /"
            f" {reload['stallP50Ms']:.1f})",
            f"{reload['twistedRescanMs']:.0f} ms: its full re-read, in one step",
            "≤ 20 ms",
        ),
        (
            f"watch= poll of {n:,} names (no inotify): CPU; longest reactor iteration",
            f"{largest['watchPoll']['cpuMs']:.1f} ms;"
            f" {largest['watchPoll']['stallMaxMs']:.1f} ms",
            "(no watching)",
            "≤ 20 ms",
        ),
        (
            f"{largest['unknownHandshakes']:,} unknown names: files opened;"
            " CPU ÷ known",
            f"{largest['unknownOpens']}; {cpu['unknown'] / cpu['known']:.3f}",
            f"{largest['twistedUnknownOpens']}; "
            f"{largest['twistedUnknownMicroseconds'] / cpu['twistedKnown']:.3f}"
            " (never rescans: see docs/sni.rst)",
            "0; ≤ 1.05",
        ),
        (
            f"{rot['rotations']} rotations of {rot['namesPerRotation']} names under"
            " load: failures",
            f"0 of {rot['requests']:,}"
            if not rot["failures"]
            else f"{rot['failures']} of {rot['requests']:,}",
            "",
            "0",
        ),
    ]
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|---|---|---|---|")
    perSize = [
        "",
        "| Names | CPU/handshake ours (µs) | tls: (µs) | bare (µs) | one-cert (µs)"
        " | reload p50 (ms) | start-up ours / tls: (s) | RSS ours / tls: (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in results["sizes"]:
        c, s = size["cpuMicroseconds"], size["startup"]
        perSize.append(
            f"| {size['names']:,} | {c['known']:.0f} | {c['twistedKnown']:.0f}"
            f" | {c['bareKnown']:.0f} | {c['one']:.0f} | {size['reload']['p50ms']:.1f}"
            f" | {s['ours']['seconds']:.2f} / {s['twisted']['seconds']:.2f}"
            f" | {s['ours']['rssMiB']:.0f} / {s['twisted']['rssMiB']:.0f} |"
        )
    return "\n".join(lines + perSize) + "\n"


def plot(results: dict[str, Any], out: Path) -> Path:
    """
    Handshake cost and reload latency against the number of names.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [s["names"] for s in results["sizes"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    # (axes, what, key, style, label)
    series = [
        (left, "cpuMicroseconds", "known", "o-", "txtlsreload"),
        (left, "cpuMicroseconds", "twistedKnown", "s--", "Twisted tls:"),
        (left, "cpuMicroseconds", "bareKnown", "^-.", "bare pyOpenSSL SNI (floor)"),
        (left, "cpuMicroseconds", "one", ":", "one certificate"),
        (right, "reload", "p50ms", "o-", "txtlsreload: reload → handshake p50"),
        (right, "reload", "twistedRescanMs", "s--", "Twisted tls: full re-read"),
    ]
    for axes, what, key, style, label in series:
        values = [s[what][key] for s in results["sizes"]]
        axes.plot(sizes, values, style, label=label)
    left.set(xscale="log", xlabel="names", ylabel="server CPU per handshake (µs)")
    left.legend()
    right.set(xscale="log", yscale="log", xlabel="names", ylabel="ms")
    right.legend()
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sni.png"
    figure.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--startup-child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.startup_child:
        print(json.dumps(startupChild(*options.startup_child)))
        return 0
    sys.path.insert(0, str(HERE.parent))

    def progress(message: str) -> None:
        print(f"[sni] {message}", file=sys.stderr, flush=True)

    results = run(options.quick, progress)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "sni.json").write_text(json.dumps(results, indent=1))
    table = markdown(results)
    (options.out / "sni.md").write_text(table)
    plot(results, options.out)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
