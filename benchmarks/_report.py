"""
Turning benchmark results into a Markdown report and PNG plots.
"""

from __future__ import annotations

import datetime
import os
import platform
import ssl
import subprocess
from pathlib import Path
from typing import Any

from hostile import table as hostileTable

__all__ = ["environment", "markdownReport", "plotAll"]

HERE = Path(__file__).resolve().parent


def _cpuModel() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gitCommit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(HERE.parent),
                "status",
                "--porcelain",
                "--",
                "txtlsreload",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() + (" (library modified)" if dirty.stdout.strip() else "")


def environment(quick: bool) -> dict[str, str]:
    """
    What the figures depend on: machine, load, and versions.
    """
    import cryptography
    import OpenSSL
    from OpenSSL import SSL

    import twisted

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "mode": "quick" if quick else "full",
        "cpus": f"{os.cpu_count()} x {_cpuModel()}",
        "load average at start": load,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "Twisted": twisted.__version__,
        "pyOpenSSL": OpenSSL.__version__,
        "cryptography": cryptography.__version__,
        "OpenSSL (server, via cryptography)": SSL.OpenSSL_version(
            SSL.OPENSSL_VERSION
        ).decode(),
        "OpenSSL (clients: CPython ssl)": ssl.OPENSSL_VERSION,
        "txtlsreload commit": _gitCommit(),
    }


def _verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[met]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def summaryRows(results: dict[str, Any]) -> list[list[str]]:
    """
    One line per claim: what was measured, the target, and whether it was
    met.
    """
    rows: list[list[str]] = []
    handshakes = results.get("handshakes")
    if handshakes:
        for label, chosen in (
            (
                "CPython clients, both servers loaded at once",
                [r for r in handshakes["rows"] if "s_time" not in r["client"]],
            ),
            (
                "openssl s_time, servers loaded in turn",
                [r for r in handshakes["rows"] if "s_time" in r["client"]],
            ),
        ):
            if not chosen:
                continue
            worst = max(chosen, key=lambda r: r["ratioMedian"])
            met = _verdict(worst["ratioMedian"] <= 1.02)
            if worst["ratioMedian"] > 1.02 and worst.get("ratioQ1", 2.0) <= 1.0:
                # A quarter of the rounds or more found tlsreload no dearer:
                # these rounds cannot tell the two apart.
                met = "cannot tell (noise)"
            rows.append(
                [
                    "Server CPU per handshake, tlsreload / ssl:, median of"
                    f" per-round ratios ({label}; worst configuration)",
                    f"{worst['ratioMedian']:.3f} ({worst['keyType']},"
                    f" {worst['client']}; middle half of rounds"
                    f" {worst.get('ratioQ1', 0):.3f} to {worst.get('ratioQ3', 0):.3f},"
                    f" all {worst['ratioMin']:.3f} to {worst['ratioMax']:.3f})",
                    "<= 1.02",
                    met,
                ]
            )
    for trigger, target in (("sighup", 20.0), ("watch", 200.0)):
        latency = results.get(f"latency-{trigger}")
        name = {"sighup": "SIGHUP", "watch": "File change (watching)"}[trigger]
        if latency is None:
            continue
        if latency.get("pending"):
            rows.append(
                [
                    f"{name} → first handshake with the new certificate, p99",
                    f"pending: {latency['pending']}",
                    f"< {target:.0f} ms",
                    "-",
                ]
            )
            continue
        p99 = latency["p99ms"]
        rows.append(
            [
                f"{name} → first handshake with the new certificate, p99"
                f" ({latency['reloads']} reloads)",
                f"{_ms(p99)} (p50 {_ms(latency['p50ms'])}, {latency['missed']} missed)",
                f"< {target:.0f} ms",
                _verdict(p99 is not None and p99 < target and not latency["missed"]),
            ]
        )
    rotation = results.get("rotation")
    if rotation:
        failed = rotation["failedHandshakesOrRequests"] + rotation["keepAliveFailures"]
        lost = rotation["keepAliveConnectionsOpened"] - rotation["keepAliveConnections"]
        rows.append(
            [
                f"Failed handshakes and requests during {rotation['rotations']}"
                " rotations under load",
                f"{failed} of {rotation['handshakes'] + rotation['keepAliveRequests']}"
                f" ({rotation['handshakes']} new connections,"
                f" {rotation['keepAliveRequests']} keep-alive requests;"
                f" keep-alive connections lost: {lost})",
                "0",
                _verdict(failed == 0 and lost == 0),
            ]
        )
    memory = results.get("memory")
    if memory:
        growth = memory["growthKiB"] / 1024
        before, after = memory["baseline"], memory["final"]
        rows.append(
            [
                f"RSS growth from {before['reloads']} to {after['reloads']} reloads",
                f"{growth:+.2f} MiB ({before['rssKiB'] / 1024:.1f} →"
                f" {after['rssKiB'] / 1024:.1f} MiB)",
                "< 5 MiB",
                _verdict(growth < 5),
            ]
        )
        rows.append(
            [
                "Live `SSL.Context` objects at the same points",
                f"{before['liveContexts']} → {after['liveContexts']}",
                "flat",
                _verdict(after["liveContexts"] <= before["liveContexts"]),
            ]
        )
    for entry in results.get("reloadtime", []):
        rows.append(
            [
                f"Reactor blocked by one reload, {entry['keyType']} leaf,"
                f" {entry['intermediates']} intermediate(s)",
                f"p50 {_ms(entry['changed']['p50ms'])}, p99"
                f" {_ms(entry['changed']['p99ms'])} (unchanged files: p50"
                f" {_ms(entry['unchanged']['p50ms'])})",
                "none set",
                "-",
            ]
        )
    hostile = [
        e
        for e in results.get("hostile", [])
        if "timedOut" in e or not e["case"].startswith("ca-bundle")
    ]
    if hostile:
        worst = max(hostile, key=lambda e: e.get("timedOut", 0) * 1000 or e["firstms"])
        figure = (
            f"> {worst['timedOut']:.0f} s"
            if "timedOut" in worst
            else _ms(worst["firstms"])
        )
        rows.append(
            [
                "Reactor blocked by one reload of a hostile file, worst case"
                " (CA bundles apart)",
                f"{figure} ({worst['what']})",
                "< 100 ms",
                _verdict("timedOut" not in worst and worst["firstms"] < 100),
            ]
        )
    return rows


def markdownReport(
    results: dict[str, Any], env: dict[str, str], plots: list[Path]
) -> str:
    """
    The whole report: summary table, details, machine and versions.
    """
    lines = ["# txtlsreload benchmarks", ""]
    lines += _table(["Measure", "Result", "Target", "Met"], summaryRows(results))
    handshakes = results.get("handshakes")
    if handshakes:
        lines += ["", "## Server CPU per handshake", ""]
        settings = handshakes["settings"]
        lines.append(
            f"tlsreload server: {handshakes['how']}. CPython clients load both"
            " servers at once, alternating handshake by handshake; s_time loads"
            " one after the other, the order flipping every round. Figures are"
            f" medians over {settings['rounds']} rounds ({settings['sTimeRounds']}"
            " for s_time); the ratio is taken per round."
        )
        lines.append("")
        rows = [
            [
                r["keyType"],
                r["client"],
                f"{r['tlsreloadUs']:.0f} µs",
                f"{r['sslUs']:.0f} µs",
                f"{r['ratioMedian']:.3f}",
                f"{r.get('ratioQ1', 0):.3f}-{r.get('ratioQ3', 0):.3f}",
                f"{r['ratioMin']:.3f}-{r['ratioMax']:.3f}",
                f"{r['handshakes']}",
                f"{r['failures']}",
            ]
            for r in handshakes["rows"]
        ]
        lines += _table(
            [
                "Leaf key",
                "Client",
                "tlsreload",
                "ssl:",
                "Ratio (median)",
                "Ratio, middle half",
                "Ratio, all rounds",
                "Handshakes",
                "Failures",
            ],
            rows,
        )
    latencyRows = []
    for trigger in ("sighup", "watch"):
        latency = results.get(f"latency-{trigger}")
        if latency and not latency.get("pending"):
            latencyRows.append(
                [
                    trigger,
                    latency["how"],
                    str(latency["reloads"]),
                    _ms(latency["p50ms"]),
                    _ms(latency["p99ms"]),
                    _ms(latency["maxms"]),
                    str(latency["missed"]),
                    _ms(latency["handshakeMs"]),
                    f"{latency['medianPolls']}",
                    f"{_ms(latency.get('serverP50ms'))} /"
                    f" {_ms(latency.get('serverP99ms'))}",
                ]
            )
    if latencyRows:
        lines += ["", "## Reload latency", ""]
        lines.append(
            "From the trigger to the first handshake showing the new"
            " certificate. The client polls with back-to-back handshakes, so"
            " the figure includes the handshake that was under way when the"
            " reload finished (it still got the old certificate) and the one"
            " that showed the new one. The last column is the server's part"
            " alone: from the trigger to the new credentials being installed,"
            " as the server recorded it."
        )
        lines.append("")
        lines += _table(
            [
                "Trigger",
                "Server",
                "Reloads",
                "p50",
                "p99",
                "max",
                "Missed",
                "One handshake",
                "Handshakes per reload (median)",
                "Server side only, p50 / p99",
            ],
            latencyRows,
        )
    rotation = results.get("rotation")
    if rotation:
        lines += ["", "## Rotation under load", ""]
        lines += _table(
            ["Quantity", "Value"],
            [
                ["Server", rotation["how"] + " + twisted.web"],
                [
                    "Rotations",
                    f"{rotation['rotations']}, every"
                    f" {rotation['interval'] * 1000:.0f} ms",
                ],
                [
                    "Clients",
                    f"{rotation['webClients']} processes of new-connection"
                    " requests, 1 process with"
                    f" {rotation['keepAliveConnections']} keep-alive connections",
                ],
                ["New-connection requests", str(rotation["handshakes"])],
                ["…failed", str(rotation["failedHandshakesOrRequests"])],
                ["Keep-alive requests", str(rotation["keepAliveRequests"])],
                ["…failed", str(rotation["keepAliveFailures"])],
                [
                    "Keep-alive connections opened (should equal their number)",
                    str(rotation["keepAliveConnectionsOpened"]),
                ],
                [
                    "Distinct certificates seen by clients",
                    str(rotation["distinctCertificatesSeen"]),
                ],
                [
                    "Warnings and errors logged by the server",
                    str(rotation["serverProblemsLogged"]),
                ],
                [
                    "Failure reasons",
                    "; ".join(
                        f"{count} x {why}"
                        for why, count in rotation["failureReasons"].items()
                    )
                    or "none",
                ],
            ],
        )
    memory = results.get("memory")
    if memory:
        lines += ["", "## Memory over reloads", ""]
        lines += _table(
            ["Reloads", "RSS", "Live SSL.Context"],
            [
                [
                    str(s["reloads"]),
                    f"{s['rssKiB'] / 1024:.1f} MiB",
                    str(s["liveContexts"]),
                ]
                for s in memory["samples"]
            ],
        )
    reloadTimes = results.get("reloadtime")
    if reloadTimes:
        lines += ["", "## Reactor time per reload", ""]
        lines += _table(
            [
                "Leaf key",
                "Intermediates",
                "Reloads",
                "Changed p50",
                "Changed p99",
                "Changed max",
                "Unchanged p50",
            ],
            [
                [
                    e["keyType"],
                    str(e["intermediates"]),
                    str(e["reloads"]),
                    _ms(e["changed"]["p50ms"]),
                    _ms(e["changed"]["p99ms"]),
                    _ms(e["changed"]["maxms"]),
                    _ms(e["unchanged"]["p50ms"]),
                ]
                for e in reloadTimes
            ],
        )
    hostile = results.get("hostile")
    if hostile:
        lines += ["", "## Reactor time per reload of hostile files", ""]
        lines += [hostileTable(hostile)]
    lines += ["", "## Machine and versions", ""]
    lines += _table(["", ""], [[k, v] for k, v in env.items()])
    if plots:
        lines += ["", "Plots: " + ", ".join(p.name for p in plots)]
    return "\n".join(lines) + "\n"


def plotAll(results: dict[str, Any], directory: Path) -> list[Path]:
    """
    Draw every plot the results allow into C{directory}.
    """
    import matplotlib

    matplotlib.use("Agg")
    drawn = []
    if results.get("rotation"):
        drawn.append(_plotRotation(results["rotation"], directory / "rotation.png"))
    latencies = [
        results[key]
        for key in ("latency-sighup", "latency-watch")
        if results.get(key) and not results[key].get("pending")
    ]
    if latencies:
        drawn.append(_plotLatency(latencies, directory / "reload-latency.png"))
    if results.get("handshakes"):
        drawn.append(
            _plotHandshakes(results["handshakes"], directory / "handshake-cost.png")
        )
    return drawn


def _rate(times: list[float], edges: list[float], width: float) -> list[float]:
    counts = [0] * (len(edges) - 1)
    for t in times:
        index = int((t - edges[0]) // width)
        if 0 <= index < len(counts):
            counts[index] += 1
    return [c / width for c in counts]


def _plotRotation(rotation: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    width = 0.25
    # Whole bins only: a last partial bin would look like a drop.
    steps = int(rotation["duration"] / width)
    edges = [i * width for i in range(steps + 1)]
    centres = [e + width / 2 for e in edges[:-1]]
    figure, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 6), height_ratios=[3, 1]
    )
    top.plot(
        centres,
        _rate(rotation["okTimes"], edges, width),
        label="handshakes + requests on new connections",
    )
    top.plot(
        centres,
        _rate(rotation["keepAliveOkTimes"], edges, width),
        label="requests on keep-alive connections",
    )
    failures = [
        c * width
        for c in _rate(
            rotation["failureTimes"] + rotation["keepAliveFailureTimes"], edges, width
        )
    ]
    bottom.bar(centres, failures, width=width, color="tab:red")
    total = sum(failures)
    bottom.set_ylim(0, max(1.0, max(failures) * 1.2))
    bottom.text(
        0.01,
        0.8,
        f"{total:.0f} failures in total",
        transform=bottom.transAxes,
        color="tab:red",
    )
    for axes in (top, bottom):
        for index, moment in enumerate(rotation["rotatedAt"]):
            axes.axvline(
                moment,
                color="grey",
                linewidth=0.6,
                alpha=0.5,
                label="certificate rotated (SIGHUP)"
                if index == 0 and axes is top
                else None,
            )
    top.set_ylabel("per second")
    top.set_title(
        f"{rotation['rotations']} rotations under load: throughput and failures"
    )
    top.legend(loc="lower right", fontsize="small")
    top.set_ylim(bottom=0)
    bottom.set_ylabel(f"failures per {width * 1000:.0f} ms")
    bottom.set_xlabel("seconds since start")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _plotLatency(latencies: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for latency in latencies:
        values = sorted(latency["latenciesMs"])
        if not values:
            continue
        fractions = [(i + 1) / len(values) for i in range(len(values))]
        axes.step(values, fractions, where="post", label=latency["trigger"])
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.set_xlabel("trigger → first handshake with the new certificate (ms)")
    axes.set_ylabel("fraction of reloads")
    axes.set_title("Reload latency")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _plotHandshakes(handshakes: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    rows = handshakes["rows"]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    for index, row in enumerate(rows):
        for offset, key, colour, label in (
            (-0.15, "tlsreloadRounds", "tab:blue", "tlsreload"),
            (0.15, "sslRounds", "tab:orange", "ssl:"),
        ):
            values = row[key]
            axes.scatter(
                [index + offset] * len(values),
                values,
                s=12,
                color=colour,
                label=label if index == 0 else None,
            )
    axes.set_xticks(
        range(len(rows)),
        [f"{r['keyType']}\n{r['client']}" for r in rows],
        fontsize="small",
    )
    axes.set_ylabel("server CPU per handshake (µs), one dot per round")
    axes.set_ylim(bottom=0)
    axes.set_title("Cost per handshake: tlsreload against Twisted's ssl: endpoint")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
