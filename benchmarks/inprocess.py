"""
The benchmarks that run inside one process: memory over many reloads, and
how long one reload blocks the reactor.

Run by C{benchmarks/run.py} in a fresh child process, so that nothing else the
runner holds (matplotlib, client results) shows up in the memory figures.
Prints one JSON object on stdout.

Every measured reload really installs something new: the benchmark swaps the
files between two certificate sets (written to a temporary file and renamed
over the served one, as careful tools do) before each reload, because a
reload of unchanged files only reads and hashes them.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _certs import CertificateSet, KeyType, makeCertificateSets
from OpenSSL import SSL

import txtlsreload

__all__ = ["main"]


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def _rssKiB() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _liveContexts() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is SSL.Context)


def _memoryHandshake(
    factory: txtlsreload.ReloadingContextFactory, caFile: Path
) -> None:
    """
    One complete handshake through memory BIOs, so that connections are
    made from the dispatch context and switched to the current one, as in a
    real server, and then dropped.
    """
    clientContext = SSL.Context(SSL.TLS_CLIENT_METHOD)
    clientContext.load_verify_locations(str(caFile))
    clientContext.set_verify(SSL.VERIFY_PEER)
    client = SSL.Connection(clientContext, None)
    client.set_connect_state()
    client.set_tlsext_host_name(b"localhost")
    server = factory.serverConnectionForTLS(None)  # type: ignore[arg-type]
    server.set_accept_state()
    finished = {client: False, server: False}
    for _ in range(20):
        for connection in (client, server):
            if not finished[connection]:
                try:
                    connection.do_handshake()
                    finished[connection] = True
                except SSL.WantReadError:
                    pass
        for source, sink in ((client, server), (server, client)):
            try:
                sink.bio_write(source.bio_read(65536))
            except SSL.WantReadError:
                pass
        if all(finished.values()):
            return
    raise RuntimeError("in-memory handshake did not finish")


def _rotatingFactory(
    directory: Path, sets: list[CertificateSet]
) -> tuple[txtlsreload.ReloadingContextFactory, Path, list[bytes]]:
    served = directory / "served.pem"
    contents = [s.combinedFile.read_bytes() for s in sets]
    served.write_bytes(contents[0])
    return txtlsreload.ReloadingContextFactory(str(served)), served, contents


def memory(reloads: int, baselineAt: int, keyType: KeyType) -> dict[str, Any]:
    """
    RSS and live C{SSL.Context} objects after C{baselineAt} reloads and after
    C{reloads}, with a handshake every 100 reloads.
    """
    with tempfile.TemporaryDirectory(prefix="txtlsreload-bench-") as name:
        directory = Path(name)
        sets = makeCertificateSets(directory, keyType, count=2)
        factory, served, contents = _rotatingFactory(directory, sets)
        samples: list[dict[str, int]] = []
        started = time.perf_counter()
        for number in range(1, reloads + 1):
            _replace(served, contents[number % 2])
            result = factory.reload()
            if not result.changed:
                raise RuntimeError(f"reload {number} installed nothing: {result}")
            if number % 100 == 0:
                _memoryHandshake(factory, sets[0].caFile)
            if number == baselineAt or number == reloads or number % 1000 == 0:
                gc.collect()
                samples.append(
                    {
                        "reloads": number,
                        "rssKiB": _rssKiB(),
                        "liveContexts": _liveContexts(),
                    }
                )
        elapsed = time.perf_counter() - started
    baseline = next(s for s in samples if s["reloads"] == baselineAt)
    final = samples[-1]
    return {
        "keyType": keyType,
        "baseline": baseline,
        "final": final,
        "growthKiB": final["rssKiB"] - baseline["rssKiB"],
        "samples": samples,
        "seconds": elapsed,
    }


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


def reloadTime(reloads: int, keyType: KeyType, intermediates: int) -> dict[str, Any]:
    """
    Wall time of one C{reload()} call, which is how long it blocks the
    reactor: changed files (a new context is built) and unchanged files (read
    and hash only).
    """
    with tempfile.TemporaryDirectory(prefix="txtlsreload-bench-") as name:
        directory = Path(name)
        sets = makeCertificateSets(
            directory, keyType, count=2, intermediates=intermediates
        )
        factory, served, contents = _rotatingFactory(directory, sets)
        changed: list[float] = []
        unchanged: list[float] = []
        for number in range(1, reloads + 1):
            _replace(served, contents[number % 2])
            before = time.perf_counter()
            result = factory.reload()
            changed.append(time.perf_counter() - before)
            if not result.changed:
                raise RuntimeError(f"reload {number} installed nothing: {result}")
            before = time.perf_counter()
            result = factory.reload()
            unchanged.append(time.perf_counter() - before)
            if result.changed:
                raise RuntimeError(f"reload {number} changed nothing: {result}")

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50ms": statistics.median(values) * 1000,
            "p99ms": _percentile(values, 0.99) * 1000,
            "maxms": max(values) * 1000,
        }

    return {
        "keyType": keyType,
        "intermediates": intermediates,
        "reloads": reloads,
        "changed": summary(changed),
        "unchanged": summary(unchanged),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="in-process benchmarks")
    parser.add_argument("mode", choices=["memory", "reloadtime"])
    parser.add_argument("--reloads", type=int, default=10_000)
    parser.add_argument("--baseline-at", type=int, default=100)
    parser.add_argument("--key-type", default="ecdsa-p256")
    parser.add_argument("--intermediates", type=int, default=1)
    options = parser.parse_args(argv)
    if options.mode == "memory":
        result = memory(options.reloads, options.baseline_at, options.key_type)
    else:
        result = reloadTime(options.reloads, options.key_type, options.intermediates)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
