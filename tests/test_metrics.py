"""
Tests for L{txtlsreload.MetricsCollector}: in process through a private
registry, and scraped over real HTTP from C{twistd tlshello --admin}
through a rotation and a refused reload.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from txtlsreload import (
    FileWatcher,
    MetricsCollector,
    ReloadingClientCredentials,
    ReloadingContextFactory,
    reloadOnSIGHUP,
)

from .processes import ServerProcess, servedSerial, waitFor
from .reactors import CallsFromThreads
from .tlshelpers import replaceAtomically, serialOf, writeLeaf

ROOT = Path(__file__).parent.parent

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def _scrape(collector: MetricsCollector) -> Samples:
    registry = CollectorRegistry()
    registry.register(collector)
    return _parse(generate_latest(registry).decode("utf-8"))


def _named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


NOT_AFTER = "txtlsreload_certificate_not_after_timestamp_seconds"
NOT_BEFORE = "txtlsreload_certificate_not_before_timestamp_seconds"
RELOADS = "txtlsreload_reloads_total"
FAILING = "txtlsreload_reload_failing"
LAST_SUCCESS = "txtlsreload_last_successful_reload_timestamp_seconds"
DURATION_COUNT = "txtlsreload_reload_duration_seconds_count"


def _reloads(samples: Samples, result: str, trigger: str) -> float:
    return samples[RELOADS, _labels(result=result, trigger=trigger)]


class TestCertificateSeries:
    """
    One series per certificate served or trusted, and none for certificates
    no longer in use.
    """

    def test_server(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A server factory with a client-CA bundle yields its leaf
        (C{role="server"}) and the CA (C{role="client_ca"}) with their
        validity as timestamps.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        caFile = tmp_path / "clients.pem"
        clientCA = trustme.CA()
        clientCA.cert_pem.write_to_path(str(caFile))
        factory = ReloadingContextFactory(str(cert), str(key), clientCAFile=str(caFile))
        info = factory.certificate
        samples = _scrape(MetricsCollector([factory]))
        leafLabels = _labels(
            role="server",
            path=str(cert),
            subject=info.subject,
            serial=info.serialHex,
            server_names=",".join(info.subjectAltNames),
        )
        assert samples[NOT_AFTER, leafLabels] == info.notAfter.timestamp()
        assert samples[NOT_BEFORE, leafLabels] == info.notBefore.timestamp()
        caSeries = [
            dict(labels)
            for labels in _named(samples, NOT_AFTER)
            if labels != leafLabels
        ]
        assert [(s["role"], s["path"]) for s in caSeries] == [
            ("client_ca", str(caFile))
        ]

    def test_client(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Client credentials yield their client certificate (C{role="client"})
        and every trusted CA (C{role="trust"}).
        """
        cert, key, _ = writeLeaf(ca, tmp_path, identities=("client@example.org",))
        caFile = tmp_path / "roots.pem"
        roots = [trustme.CA(), trustme.CA()]
        caFile.write_bytes(b"".join(r.cert_pem.bytes() for r in roots))
        credentials = ReloadingClientCredentials(str(caFile), str(cert), str(key))
        series = _named(_scrape(MetricsCollector([credentials])), NOT_AFTER)
        roles = sorted((dict(s)["role"], dict(s)["path"]) for s in series)
        assert roles == [
            ("client", str(cert)),
            ("trust", str(caFile)),
            ("trust", str(caFile)),
        ]

    def test_rotation(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        After a rotation only the new certificate has series.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        collector = MetricsCollector([factory])
        firstSerial = factory.certificate.serialHex
        before = _named(_scrape(collector), NOT_AFTER)
        writeLeaf(ca, tmp_path)
        assert factory.reload().changed
        after = _named(_scrape(collector), NOT_AFTER)
        assert [dict(s)["serial"] for s in before] == [firstSerial]
        assert [dict(s)["serial"] for s in after] == [factory.certificate.serialHex]
        assert firstSerial != factory.certificate.serialHex

    def test_thousandRotations(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        The set of series (names and labels) is the same after 1,000
        rotations as after the first: nothing accumulates.
        """
        pairs = []
        for number in range(3):
            cert, key, _ = writeLeaf(ca, tmp_path, name=f"pair{number}")
            pairs.append((cert.read_bytes(), key.read_bytes()))
        cert, key = tmp_path / "served.crt", tmp_path / "served.key"
        cert.write_bytes(pairs[0][0])
        key.write_bytes(pairs[0][1])
        factory = ReloadingContextFactory(str(cert), str(key))
        collector = MetricsCollector([factory])

        def shape() -> set[tuple[str, tuple[str, ...]]]:
            return {
                (name, tuple(sorted(dict(labels))))
                for name, labels in _scrape(collector)
            }

        firstShape, firstCount = shape(), len(_scrape(collector))
        for rotation in range(1, 1001):
            newCert, newKey = pairs[rotation % 3]
            key.write_bytes(newKey)
            cert.write_bytes(newCert)
            assert factory.reload().changed
        assert shape() == firstShape
        assert len(_scrape(collector)) == firstCount
        [current] = _named(_scrape(collector), NOT_AFTER)
        assert dict(current)["serial"] == factory.certificate.serialHex


class TestReloadSeries:
    """
    Reload counts by result and trigger, the failing flag, the last success
    and the duration histogram.
    """

    def test_callResults(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A direct call counts as C{trigger="call"} with result C{unchanged},
        C{changed} or C{refused}; the failing flag follows the latest one
        and a refusal does not move the last success.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        collector = MetricsCollector([factory])
        factoryLabels = _labels(role="server", path=str(cert))
        start = _scrape(collector)

        factory.reload()
        writeLeaf(ca, tmp_path)
        factory.reload()
        good = _scrape(collector)
        key.write_text("broken\n")
        factory.reload()
        refused = _scrape(collector)

        assert (
            _reloads(good, "unchanged", "call") - _reloads(start, "unchanged", "call")
            == 1
        )
        assert (
            _reloads(good, "changed", "call") - _reloads(start, "changed", "call") == 1
        )
        assert (
            _reloads(refused, "refused", "call") - _reloads(good, "refused", "call")
            == 1
        )
        assert good[FAILING, factoryLabels] == 0
        assert refused[FAILING, factoryLabels] == 1
        assert good[LAST_SUCCESS, factoryLabels] > start[LAST_SUCCESS, factoryLabels]
        assert refused[LAST_SUCCESS, factoryLabels] == good[LAST_SUCCESS, factoryLabels]
        assert (
            refused[DURATION_COUNT, frozenset()] - start[DURATION_COUNT, frozenset()]
            == 3
        )

    def test_watcherTriggers(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A watcher's reloads count as C{trigger="watch"} (a change it saw)
        and C{trigger="interval"} (its unconditional reloads).
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        collector = MetricsCollector([factory])
        clock = Clock()
        watcher = FileWatcher(
            factory, 5.0, clock, reloadInterval=60.0, useInotify=False
        )
        watcher.start()
        try:
            before = _scrape(collector)
            nextCert, nextKey, _ = writeLeaf(ca, tmp_path, name="next")
            replaceAtomically(key, nextKey.read_bytes())
            replaceAtomically(cert, nextCert.read_bytes())
            clock.advance(5.0)
            clock.advance(55.0)
            after = _scrape(collector)
        finally:
            watcher.stop()
        assert (
            _reloads(after, "changed", "watch") - _reloads(before, "changed", "watch")
            == 1
        )
        assert (
            _reloads(after, "unchanged", "interval")
            - _reloads(before, "unchanged", "interval")
            == 1
        )

    def test_sighupTrigger(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A reload run by a real SIGHUP counts as C{trigger="sighup"}.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        collector = MetricsCollector([factory])
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([factory], reactor=queue)  # type: ignore[arg-type]
        try:
            before = _scrape(collector)
            writeLeaf(ca, tmp_path)
            os.kill(os.getpid(), signal.SIGHUP)
            queue.runUntil(lambda: reloader.reloads == 1)
            after = _scrape(collector)
        finally:
            reloader.uninstall()
        assert (
            _reloads(after, "changed", "sighup") - _reloads(before, "changed", "sighup")
            == 1
        )

    def test_defaultRegistry(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        With prometheus-client installed, prometheus-client's default
        registry reports every factory of the process.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        samples = _parse(generate_latest(REGISTRY).decode("utf-8"))
        served = _named(samples, NOT_AFTER)
        assert (
            _labels(
                role="server",
                path=str(cert),
                subject=factory.certificate.subject,
                serial=factory.certificate.serialHex,
                server_names=",".join(factory.certificate.subjectAltNames),
            )
            in served
        )


class TestWithoutExtra:
    """
    Without prometheus-client everything else works and nothing imports it.
    """

    def test_notInstalled(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        With prometheus-client unimportable, factories load, C{/metrics}
        answers 501 saying how to install it, and C{MetricsCollector} is an
        ImportError; with it installed, importing txtlsreload alone does not
        import it.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        script = f"""
import sys
sys.modules["prometheus_client"] = None  # as if the extra were not installed
import txtlsreload
from twisted.web.test.requesthelper import DummyRequest
txtlsreload.ReloadingContextFactory({str(cert)!r}, {str(key)!r})
request = DummyRequest([b""])
metrics = txtlsreload.adminResource().getChildWithDefault(b"metrics", request)
body = metrics.render(request)
print(request.responseCode, body.decode().strip())
try:
    txtlsreload.MetricsCollector
except ImportError:
    print("no collector")
"""
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert done.stdout.splitlines() == [
            "501 Metrics need prometheus-client: pip install 'txtlsreload[metrics]'",
            "no collector",
        ], done.stderr
        imported = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, txtlsreload; print('prometheus_client' in sys.modules)",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert imported.stdout == "False\n"


# End to end: twistd tlshello --admin, scraped over HTTP.


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    paths = [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def _tlshello(cert: Path, key: Path, *options: str) -> list[str]:
    """
    The command line of C{twistd -n tlshello} serving C{cert} and C{key}.
    """
    twistd = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    files = ["--cert", str(cert), "--key", str(key)]
    return [*twistd, "-n", "--pidfile=", "tlshello", *files, *options]


class _Hello:
    """
    A C{twistd -n tlshello} process with an admin listener on port 0.
    """

    def __init__(self, process: ServerProcess) -> None:
        self.process = process
        self.tlsPort = int(process.waitFor(r"Listening on [^ ]*:(\d+): https://"))
        self.adminPort = int(
            process.waitFor(r"Admin listener \(operators only\) on 127\.0\.0\.1:(\d+)")
        )

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.adminPort}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode("utf-8")  # type: ignore[no-any-return]


@pytest.fixture
def hello(
    tmp_path: Path, ca: trustme.CA, servers: Callable[..., ServerProcess]
) -> tuple[_Hello, Path, Path]:
    """
    A running C{twistd tlshello --admin}, and its certificate and key files.
    """
    cert, key, _ = writeLeaf(ca, tmp_path)
    process = servers(
        _tlshello(cert, key, "--port", "0", "--admin", "tcp:0:interface=127.0.0.1"),
        cwd=tmp_path,
        env=_environment(),
    )
    return _Hello(process), cert, key


class TestAdminEndToEnd:
    """
    C{twistd tlshello --admin tcp:0:...} serves C{/metrics} and C{/status}
    over plain HTTP, following rotations and refusals.
    """

    def test_rotationAndRefusal(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        hello: tuple[_Hello, Path, Path],
    ) -> None:
        """
        After a SIGHUP rotation the metrics show the new serial only and one
        changed reload by SIGHUP; after a refused one, a refused reload, the
        failing flag and the still-served serial; the status document says
        the same, with the error, and never the key.
        """
        server, cert, key = hello
        caPem = ca.cert_pem.bytes()
        firstSerial = serialOf(cert)
        assert servedSerial(server.tlsPort, caPem) == firstSerial
        first = _parse(server.get("/metrics"))
        factoryLabels = _labels(role="server", path=str(cert))
        assert first[FAILING, factoryLabels] == 0

        nextCert, nextKey, nextSerial = writeLeaf(ca, tmp_path, name="next")
        replaceAtomically(key, nextKey.read_bytes())
        replaceAtomically(cert, nextCert.read_bytes())
        os.kill(server.process.pid, signal.SIGHUP)
        waitFor(lambda: servedSerial(server.tlsPort, caPem) == nextSerial or None)
        rotated = _parse(server.get("/metrics"))
        serials = [dict(s)["serial"] for s in _named(rotated, NOT_AFTER)]
        assert [int(s, 16) for s in serials] == [nextSerial]
        assert _reloads(rotated, "changed", "sighup") == 1
        assert rotated[DURATION_COUNT, frozenset()] == 1

        keyText = nextKey.read_text()
        key.write_text("-----BEGIN PRIVATE KEY-----\ntruncated")
        os.kill(server.process.pid, signal.SIGHUP)
        server.process.waitFor("TLS reload refused")
        refused = _parse(server.get("/metrics"))
        assert _reloads(refused, "refused", "sighup") == 1
        assert refused[FAILING, factoryLabels] == 1
        assert [int(dict(s)["serial"], 16) for s in _named(refused, NOT_AFTER)] == [
            nextSerial
        ]
        assert servedSerial(server.tlsPort, caPem) == nextSerial

        statusText = server.get("/status")
        status = json.loads(statusText)
        [entry] = status["reloadables"]
        assert int(entry["served"]["serial"], 16) == nextSerial
        assert entry["lastReload"]["trigger"] == "sighup"
        assert entry["lastReload"]["result"] == "refused"
        assert (
            entry["error"]
            == f"{key}: truncated PEM data: a BEGIN line has no matching END line"
        )
        assert entry["refusalsInARow"] == 1
        for line in keyText.splitlines():
            if "-----" not in line:
                assert line not in statusText


class TestAdminOption:
    """
    C{--admin} with a description that cannot be used.
    """

    def test_badDescription(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        C{twistd tlshello} refuses to start with a one-line message naming
        C{--admin} and the description.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        done = subprocess.run(
            _tlshello(cert, key, "--admin", "nonsense:9100"),
            cwd=tmp_path,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1
        assert "tlshello: --admin nonsense:9100: " in done.stderr + done.stdout
