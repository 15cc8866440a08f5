"""
Run the txtlsreload benchmarks: one command, progress while it runs, a
Markdown table at the end (printed and written to a file) and PNG plots.

    python benchmarks/run.py            # full run, several minutes
    python benchmarks/run.py --quick    # a few seconds, to keep it working

What it measures (see docs/benchmarks.rst for the method and the figures):

 1. server CPU per handshake, C{tlsreload} against Twisted's C{ssl:}
    endpoint serving the same certificate (ECDSA P-256 and RSA 2048; with
    and without SNI; CPython C{ssl} clients and C{openssl s_time});
 2. reload latency, from SIGHUP and from a file change with watching on, to
    the first handshake showing the new certificate;
 3. failed handshakes and requests while the certificate rotates under load;
 4. memory and live C{SSL.Context} objects over thousands of reloads;
 5. how long one reload blocks the reactor (ECDSA; RSA 4096 with a long
    chain);
 6. how long one reload of a hostile or huge file blocks the reactor
    (C{hostile.py});
 7. plots: throughput and failures over the rotation run, reload latency
    distribution, per-round handshake cost.

Everything runs on 127.0.0.1 with certificates made for this run in a
temporary directory; every child process is stopped at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _handshakes import HandshakeSettings, measureHandshakeCost
from _latency import measureReloadLatency
from _processes import Processes, escapeEndpoint, tlsreloadEndpointPrefix
from _report import environment, markdownReport, plotAll, summaryRows
from _rotation import measureRotation
from hostile import CASES as HOSTILE_CASES
from hostile import runAll as runHostile

HERE = Path(__file__).resolve().parent

BENCHMARKS = ("handshakes", "latency", "rotation", "memory", "reloadtime", "hostile")


@dataclass(frozen=True)
class Settings:
    """
    How much of everything to do: quick (CI) or full (by hand).
    """

    handshakes: HandshakeSettings
    latencyReloads: int
    rotations: int
    rotationInterval: float
    webClients: int
    keepAliveConnections: int
    memoryReloads: int
    memoryBaselineAt: int
    reloadTimeECDSA: int
    reloadTimeRSA4096: int
    hostileCases: tuple[str, ...]
    hostileRepeat: int


QUICK = Settings(
    handshakes=HandshakeSettings(
        keyTypes=("ecdsa-p256",),
        rounds=2,
        handshakes=60,
        clients=2,
        sTimeSeconds=1,
        sTimeRounds=1,
    ),
    latencyReloads=30,
    rotations=8,
    rotationInterval=0.15,
    webClients=2,
    keepAliveConnections=4,
    memoryReloads=600,
    memoryBaselineAt=100,
    reloadTimeECDSA=20,
    reloadTimeRSA4096=2,
    hostileCases=("begin-lines-1m", "rsa-32768-key", "pbkdf2-5m"),
    hostileRepeat=1,
)

FULL = Settings(
    handshakes=HandshakeSettings(
        keyTypes=("ecdsa-p256", "rsa2048"),
        rounds=9,
        handshakes=600,
        clients=2,
        sTimeSeconds=1,
        sTimeRounds=15,
    ),
    latencyReloads=500,
    rotations=100,
    rotationInterval=0.25,
    webClients=2,
    keepAliveConnections=4,
    memoryReloads=10_000,
    memoryBaselineAt=100,
    reloadTimeECDSA=500,
    reloadTimeRSA4096=40,
    hostileCases=tuple(HOSTILE_CASES),
    hostileRepeat=3,
)


class _Progress:
    def __init__(self) -> None:
        self._started = time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self._started
        sys.stderr.write(f"[{elapsed:6.1f}s] {message}\n")
        sys.stderr.flush()


def _watchingAvailable() -> bool:
    return importlib.util.find_spec("txtlsreload._watching") is not None


def tlsreloadServer(
    certificateFile: Path,
    keyFile: Path,
    chainFile: Path | None = None,
    watch: float | None = None,
) -> list[str]:
    """
    The C{server.py} arguments for the C{tlsreload} side: the C{tlsreload:}
    endpoint if its plugin can be found (what users run: the description is
    Twisted's C{ssl:} one with the prefix changed), else the library
    assembled by hand the way that endpoint does it.

    @param watch: Also reload on file changes, checking by polling every
        C{watch} seconds besides inotify.
    """
    if tlsreloadEndpointPrefix():
        description = (
            "tlsreload:0:interface=127.0.0.1"
            f":privateKey={escapeEndpoint(str(keyFile))}"
            f":certKey={escapeEndpoint(str(certificateFile))}"
        )
        if chainFile is not None:
            description += f":extraCertChain={escapeEndpoint(str(chainFile))}"
        if watch is not None:
            description += f":watch={watch}"
        return ["--endpoint", description]
    arguments = ["--library", str(certificateFile), str(keyFile)]
    if chainFile is not None:
        arguments += ["--chain", str(chainFile)]
    if watch is not None:
        arguments += ["--watch", str(watch)]
    return arguments


def _inProcess(
    processes: Processes, arguments: list[str], timeout: float
) -> dict[str, Any]:
    return processes.collect(processes.startInProcess(arguments), timeout)


def runAll(
    settings: Settings, only: tuple[str, ...], progress: _Progress
) -> tuple[dict[str, Any], list[str]]:
    """
    Run the chosen benchmarks, each on its own: one that crashes is reported
    and the others still run.

    @return: The results by benchmark, and the errors.
    """
    results: dict[str, Any] = {}
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="txtlsreload-bench-") as name:
        work = Path(name)
        processes = Processes(work)

        def attempt(label: str, function: Callable[[], None]) -> None:
            progress(f"{label}: starting")
            try:
                function()
            except Exception:
                errors.append(f"{label}: {traceback.format_exc()}")
                progress(f"{label}: FAILED\n{traceback.format_exc()}")
            else:
                progress(f"{label}: done")

        def handshakes() -> None:
            results["handshakes"] = measureHandshakeCost(
                processes,
                tlsreloadServer,
                work,
                settings.handshakes,
                progress,
            )

        def latencySIGHUP() -> None:
            results["latency-sighup"] = measureReloadLatency(
                processes,
                lambda served: tlsreloadServer(served, served),
                "sighup",
                settings.latencyReloads,
                work,
                progress,
            )

        def latencyWatch() -> None:
            if not (_watchingAvailable() or tlsreloadEndpointPrefix()):
                results["latency-watch"] = {
                    "pending": "file watching (txtlsreload._watching) not there yet"
                }
                progress("reload latency (watch): pending, no file watcher yet")
                return
            results["latency-watch"] = measureReloadLatency(
                processes,
                lambda served: tlsreloadServer(served, served, watch=5.0),
                "watch",
                settings.latencyReloads,
                work,
                progress,
            )

        def rotation() -> None:
            results["rotation"] = measureRotation(
                processes,
                lambda served: tlsreloadServer(served, served),
                settings.rotations,
                settings.rotationInterval,
                settings.webClients,
                settings.keepAliveConnections,
                work,
                progress,
            )

        def memory() -> None:
            progress(f"memory: {settings.memoryReloads} reloads in a child process")
            results["memory"] = _inProcess(
                processes,
                [
                    "memory",
                    "--reloads",
                    str(settings.memoryReloads),
                    "--baseline-at",
                    str(settings.memoryBaselineAt),
                ],
                timeout=900.0,
            )

        def reloadTime() -> None:
            entries = []
            for keyType, intermediates, reloads in (
                ("ecdsa-p256", 1, settings.reloadTimeECDSA),
                ("rsa4096", 4, settings.reloadTimeRSA4096),
            ):
                progress(
                    f"reactor time per reload: {keyType}, {intermediates}"
                    f" intermediate(s), {reloads} reloads"
                )
                entries.append(
                    _inProcess(
                        processes,
                        [
                            "reloadtime",
                            "--reloads",
                            str(reloads),
                            "--key-type",
                            keyType,
                            "--intermediates",
                            str(intermediates),
                        ],
                        timeout=900.0,
                    )
                )
            results["reloadtime"] = entries

        def hostile() -> None:
            progress(f"hostile files: {len(settings.hostileCases)} cases")
            results["hostile"] = runHostile(
                60.0, list(settings.hostileCases), settings.hostileRepeat
            )

        try:
            if "handshakes" in only:
                attempt("handshake cost", handshakes)
            if "latency" in only:
                attempt("reload latency (SIGHUP)", latencySIGHUP)
                attempt("reload latency (watch)", latencyWatch)
            if "rotation" in only:
                attempt("rotation under load", rotation)
            if "memory" in only:
                attempt("memory", memory)
            if "reloadtime" in only:
                attempt("reactor time per reload", reloadTime)
            if "hostile" in only:
                attempt("hostile files", hostile)
        finally:
            processes.close()
    return results, errors


def _hardTargetsMissed(results: dict[str, Any]) -> list[str]:
    """
    The targets that do not depend on how busy the machine is: no failure
    during rotation, no memory or context growth.
    """
    missed = []
    rotation = results.get("rotation")
    if rotation and (
        rotation["failedHandshakesOrRequests"]
        or rotation["keepAliveFailures"]
        or rotation["keepAliveConnectionsOpened"] != rotation["keepAliveConnections"]
    ):
        missed.append("rotation under load had failures")
    if rotation and rotation["distinctCertificatesSeen"] < 2:
        missed.append("rotation under load: clients never saw a new certificate")
    memory = results.get("memory")
    if memory and (
        memory["final"]["liveContexts"] > memory["baseline"]["liveContexts"]
        or memory["growthKiB"] >= 5 * 1024
    ):
        missed.append("memory or live contexts grew")
    for trigger in ("sighup", "watch"):
        latency = results.get(f"latency-{trigger}")
        if latency and not latency.get("pending") and latency["missed"]:
            missed.append(f"{trigger}: {latency['missed']} reloads never showed")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the txtlsreload benchmarks.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds, for CI (default: full)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="where to write latest.md, latest.json and the plots",
    )
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if a target that does not depend on machine load is"
        " missed (failures under rotation, memory growth, missed reloads)",
    )
    options = parser.parse_args(argv)
    only = tuple(name.strip() for name in options.only.split(",") if name.strip())
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    if importlib.util.find_spec("matplotlib") is None:
        # Found out now rather than after minutes of measuring.
        parser.error("matplotlib is needed for the plots: pip install '.[bench]'")

    progress = _Progress()
    env = environment(options.quick)
    progress(
        f"{env['mode']} run on {env['cpus']}, load average"
        f" {env['load average at start']}"
    )
    settings = QUICK if options.quick else FULL
    results, errors = runAll(settings, only, progress)

    options.out.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    try:
        plots = plotAll(results, options.out)
    except Exception:
        errors.append(f"plots: {traceback.format_exc()}")
    report = markdownReport(results, env, plots)
    (options.out / "latest.md").write_text(report, encoding="utf-8")
    (options.out / "latest.json").write_text(
        json.dumps({"environment": env, "results": results}, indent=1),
        encoding="utf-8",
    )
    sys.stdout.write(report)
    progress(f"wrote {options.out / 'latest.md'} and {len(plots)} plot(s)")

    if not summaryRows(results):
        errors.append("no benchmark produced a result")
    if errors:
        sys.stderr.write("\nErrors:\n" + "\n".join(errors))
        return 1
    if options.strict:
        missed = _hardTargetsMissed(results)
        if missed:
            sys.stderr.write("\nTargets missed:\n" + "\n".join(missed) + "\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
