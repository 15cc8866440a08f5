"""
The how-tos of docs/operating.rst run as written: the systemd units, the
Kubernetes Deployment's description on a Secret-style volume, Daphne, Klein
and treq.  (The certbot deploy hook is run in C{test_check}.)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from .processes import ServerProcess, servedSerial, waitFor
from .tlshelpers import replaceAtomically, writeLeaf

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "docs" / "examples"
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _environment(**extra: str) -> dict[str, str]:
    environment = dict(os.environ, **extra)
    paths = [str(ROOT), str(EXAMPLES), *filter(None, [environment.get("PYTHONPATH")])]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def _get(url: str, caPem: bytes | None = None) -> str:
    context = None
    if caPem is not None:
        context = ssl.create_default_context(cadata=caPem.decode("ascii"))
    with urllib.request.urlopen(url, timeout=10, context=context) as response:  # noqa: S310
        return response.read().decode("utf-8")  # type: ignore[no-any-return]


def _unitLines(unit: Path, key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in unit.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


class TestSystemdUnits:
    """
    The example units' commands, run as systemd runs them.
    """

    @pytest.mark.parametrize("unit", ["txtlsreload.service", "txtlsreload-hup.service"])
    def test_unit(
        self,
        unit: str,
        tmp_path: Path,
        ca: trustme.CA,
        servers: Callable[..., ServerProcess],
    ) -> None:
        """
        ExecStart serves the files and says READY=1; a reload the way the
        unit asks for it (SIGHUP for notify-reload, ExecReload otherwise)
        rotates the certificate, and the older form's check refuses a bad
        key before any signal is sent.
        """
        path = EXAMPLES / unit
        tls = tmp_path / "tls"
        tls.mkdir()
        cert, key, _ = writeLeaf(ca, tls)
        cert.rename(tls / "fullchain.pem")
        key.rename(tls / "privkey.pem")
        cert, key = tls / "fullchain.pem", tls / "privkey.pem"

        def command(line: str, mainPID: int = 0) -> list[str]:
            line = (
                line.replace("/etc/myservice/tls", str(tls))
                .replace("--port 8443", "--port 0")
                .replace("tcp:9100", "tcp:0")
                .replace("$MAINPID", str(mainPID))
            )
            words = shlex.split(line)
            if words[0] == "/opt/myservice/venv/bin/twistd":
                return [*TWISTD, *words[1:]]
            if words[0] == "/opt/myservice/venv/bin/python":
                return [sys.executable, *words[1:]]
            return words

        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(15)

        def received() -> str:
            return notify.recv(65536).decode()

        try:
            [start] = _unitLines(path, "ExecStart")
            server = servers(
                command(start),
                tmp_path,
                _environment(NOTIFY_SOCKET=str(tmp_path / "notify")),
            )
            assert received().startswith("READY=1\n")
            port = int(server.waitFor(r"Listening on [^ ]*:(\d+): https://"))

            nextCert, nextKey, nextSerial = writeLeaf(ca, tmp_path, name="next")
            replaceAtomically(key, nextKey.read_bytes())
            replaceAtomically(cert, nextCert.read_bytes())
            reloads = _unitLines(path, "ExecReload")
            pid = server.process.pid
            if "Type=notify-reload" in path.read_text():
                assert reloads == []
                os.kill(pid, signal.SIGHUP)
                assert received().startswith("RELOADING=1\nMONOTONIC_USEC=")
                assert received().startswith("READY=1\n")
            else:
                for line in reloads:
                    subprocess.run(
                        command(line, pid), check=True, env=_environment(), timeout=60
                    )
            waitFor(
                lambda: servedSerial(port, ca.cert_pem.bytes()) == nextSerial or None
            )

            if reloads:
                key.write_text("not a key\n")
                checked = subprocess.run(
                    command(reloads[0], pid),
                    env=_environment(),
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert checked.returncode == 1
                assert checked.stdout.startswith(f"refused: {key}: ")
        finally:
            notify.close()


class TestKubernetes:
    """
    The Deployment's C{tlsreload:} description, on a volume updated the way
    the kubelet updates a Secret volume.
    """

    def test_secretVolume(
        self, tmp_path: Path, ca: trustme.CA, servers: Callable[..., ServerProcess]
    ) -> None:
        """
        A renewal published by swapping the C{..data} symlink is served
        without a signal, and the admin listener's C{/status} shows it.
        """
        manifest = (EXAMPLES / "kubernetes.yaml").read_text()
        [description] = re.findall(r"- (tlsreload:\S+)", manifest)
        volume = tmp_path / "tls"
        volume.mkdir()

        def publish(version: str) -> int:
            # What the kubelet does: a new timestamped directory, a new
            # ..data symlink renamed over the old one.
            cert, key, serial = writeLeaf(ca, tmp_path, name=version)
            directory = volume / f"..{version}"
            directory.mkdir()
            cert.rename(directory / "tls.crt")
            key.rename(directory / "tls.key")
            (volume / "..data_tmp").symlink_to(directory.name)
            (volume / "..data_tmp").rename(volume / "..data")
            return serial

        firstSerial = publish("2026_12_01_first")
        for name in ("tls.crt", "tls.key"):
            (volume / name).symlink_to(f"..data/{name}")
        description = description.replace("/etc/tls", str(volume)).replace(
            "tlsreload:8443:", "tlsreload:0:interface=127.0.0.1:"
        )
        server = servers(
            [
                *TWISTD,
                "--nodaemon",
                "--pidfile=",
                "tlshello",
                "--listen",
                description,
                "--admin",
                "tcp:0:interface=127.0.0.1",
            ],
            tmp_path,
            _environment(),
        )
        port = int(server.waitFor(r"Listening on [^ ]*:(\d+): https://"))
        admin = int(server.waitFor(r"Admin listener .* on 127\.0\.0\.1:(\d+)"))
        caPem = ca.cert_pem.bytes()
        assert servedSerial(port, caPem) == firstSerial

        nextSerial = publish("2026_12_31_renewed")
        waitFor(lambda: servedSerial(port, caPem) == nextSerial or None)
        [entry] = json.loads(_get(f"http://127.0.0.1:{admin}/status"))["reloadables"]
        assert int(entry["served"]["serial"], 16) == nextSerial
        assert entry["lastReload"]["trigger"] == "watch"


class TestHostPrograms:
    """
    Daphne, Klein and treq, each with the example from the docs.
    """

    def test_daphne(
        self, tmp_path: Path, ca: trustme.CA, servers: Callable[..., ServerProcess]
    ) -> None:
        """
        Daphne at its default verbosity serves the example over
        C{tlsreload:}; a SIGHUP rotation works; a refused reload is visible
        in the output (thanks to the example's observer), in C{/metrics}
        and in C{/status}.
        """
        cert, key, firstSerial = writeLeaf(ca, tmp_path)
        server = servers(
            [
                sys.executable,
                "-m",
                "daphne",
                "-e",
                f"tlsreload:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
                "daphne_asgi:application",
            ],
            tmp_path,
            _environment(ADMIN_ENDPOINT="tcp:0:interface=127.0.0.1"),
        )
        port = int(server.waitFor(r"Listening on TCP address 127\.0\.0\.1:(\d+)"))
        admin = int(server.waitFor(r"admin on port (\d+)"))
        caPem = ca.cert_pem.bytes()
        assert _get(f"https://localhost:{port}/", caPem) == "Hello from Daphne.\n"
        assert servedSerial(port, caPem) == firstSerial

        _, _, nextSerial = writeLeaf(ca, tmp_path)
        os.kill(server.process.pid, signal.SIGHUP)
        waitFor(lambda: servedSerial(port, caPem) == nextSerial or None)

        key.write_text("not a key\n")
        os.kill(server.process.pid, signal.SIGHUP)
        server.waitFor(rf"TLS reload refused: {re.escape(str(key))}: ")
        metrics = _get(f"http://127.0.0.1:{admin}/metrics")
        assert f'txtlsreload_reload_failing{{path="{cert}",role="server"}} 1.0' in (
            metrics
        )
        [entry] = json.loads(_get(f"http://127.0.0.1:{admin}/status"))["reloadables"]
        assert entry["error"].startswith(f"{key}: ")
        assert servedSerial(port, caPem) == nextSerial

    def test_klein(
        self, tmp_path: Path, ca: trustme.CA, servers: Callable[..., ServerProcess]
    ) -> None:
        """
        The Klein example (the recipes page's, which the operating page
        shows too) serves its route over C{tlsreload:} and picks up a
        replaced certificate on SIGHUP.
        """
        cert, key, firstSerial = writeLeaf(ca, tmp_path)
        server = servers(
            [sys.executable, str(EXAMPLES / "klein_site.py"), str(cert), str(key), "0"],
            tmp_path,
            _environment(),
        )
        port = int(server.waitFor(r"Site \(TLS\) starting on (\d+)"))
        caPem = ca.cert_pem.bytes()
        assert (
            _get(f"https://localhost:{port}/", caPem) == "Hello from Klein, over TLS.\n"
        )
        assert servedSerial(port, caPem) == firstSerial
        nextCert, nextKey, nextSerial = writeLeaf(ca, tmp_path, name="next")
        replaceAtomically(key, nextKey.read_bytes())
        replaceAtomically(cert, nextCert.read_bytes())
        os.kill(server.process.pid, signal.SIGHUP)
        waitFor(lambda: servedSerial(port, caPem) == nextSerial or None)

    def test_treq(
        self, tmp_path: Path, ca: trustme.CA, servers: Callable[..., ServerProcess]
    ) -> None:
        """
        The treq example trusts its CA file; after the server moves to a
        certificate from a new CA, requests fail until the file names the
        new CA and SIGHUP reloads it, then succeed.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        server = servers(
            [
                *TWISTD,
                "-n",
                "--pidfile=",
                "tlshello",
                "--listen",
                f"tlsreload:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            ],
            tmp_path,
            _environment(),
        )
        port = int(server.waitFor(r"Listening on [^ ]*:(\d+): https://"))
        caFile = tmp_path / "trusted.pem"
        ca.cert_pem.write_to_path(str(caFile))
        client = servers(
            [sys.executable, str(EXAMPLES / "treq_client.py"), str(caFile)],
            tmp_path,
            _environment(),
            stdin=subprocess.PIPE,
        )
        assert client.process.stdin is not None

        def fetch(count: int) -> str:
            assert client.process.stdin is not None
            client.process.stdin.write(f"https://localhost:{port}/\n".encode())
            client.process.stdin.flush()
            return client.waitFor(r"(?m)^(200 .*|failed: .*)$", count)

        assert fetch(1) == "200 Hello, TLS."
        newCA = trustme.CA()
        nextCert, nextKey, nextSerial = writeLeaf(newCA, tmp_path, name="next")
        replaceAtomically(key, nextKey.read_bytes())
        replaceAtomically(cert, nextCert.read_bytes())
        os.kill(server.process.pid, signal.SIGHUP)
        waitFor(
            lambda: servedSerial(port, newCA.cert_pem.bytes()) == nextSerial or None
        )
        assert fetch(2).startswith("failed: ")
        newCA.cert_pem.write_to_path(str(caFile))
        os.kill(client.process.pid, signal.SIGHUP)
        client.waitFor(r"Client TLS files loaded", 2)
        assert fetch(3) == "200 Hello, TLS."
