"""
Tests for C{python -m txtlsreload check}, run as a real subprocess, as
operators and deploy hooks run it.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from txtlsreload import CertificateInfo

from .processes import ServerProcess, python, waitFor
from .tlshelpers import writeLeaf

ROOT = Path(__file__).parent.parent
DEPLOY_HOOK = ROOT / "docs" / "examples" / "certbot-deploy-hook.sh"


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    paths = [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def _check(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "txtlsreload", "check", *arguments],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=60,
    )


def _info(certPath: Path) -> CertificateInfo:
    return CertificateInfo.fromCertificate(
        x509.load_pem_x509_certificate(certPath.read_bytes())
    )


def _inDays(days: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)


class TestGood:
    """
    Good files exit 0 with one line describing the certificate.
    """

    def test_certAndKey(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        C{--cert}/C{--key} prints the path, subject, SANs, serial, notAfter
        and days left, and exits 0.
        """
        cert, key, _ = writeLeaf(ca, tmp_path, notAfter=_inDays(40.5))
        info = _info(cert)
        done = _check("--cert", str(cert), "--key", str(key))
        assert done.returncode == 0, done
        assert done.stdout == (
            f"ok: {cert}: {info.subject} (DNS:localhost, IP:127.0.0.1, IP:::1),"
            f" serial {info.serialHex}, notAfter {info.notAfter.isoformat()},"
            " 40 day(s) left\n"
        )

    @pytest.mark.parametrize(
        "template",
        [
            "tlsreload:8443:privateKey={key}:certKey={cert}:clientCA={ca}",
            "tlsreload:host=localhost:port=443:caCerts={ca}:certKey={cert}"
            ":privateKey={key}",
        ],
        ids=["server", "client"],
    )
    def test_description(self, tmp_path: Path, ca: trustme.CA, template: str) -> None:
        """
        A server or client C{tlsreload:} description is checked with every
        file it names, and reported like C{--cert}.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        caFile = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(caFile))
        done = _check(template.format(cert=cert, key=key, ca=caFile))
        assert done.returncode == 0, done
        assert done.stdout.startswith(f"ok: {cert}: ")
        assert f"serial {_info(cert).serialHex}" in done.stdout

    def test_json(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        C{--json} prints one object with the status and the certificate.
        """
        cert, key, _ = writeLeaf(ca, tmp_path, notAfter=_inDays(10.5))
        info = _info(cert)
        done = _check("--json", "--cert", str(cert), "--key", str(key))
        assert done.returncode == 0
        report = json.loads(done.stdout)
        assert report["status"] == "ok"
        assert report["path"] == str(cert)
        assert report["certificate"]["serial"] == info.serialHex
        assert report["certificate"]["fingerprintSHA256"] == info.fingerprintSHA256
        assert report["certificate"]["daysLeft"] == 10

    def test_clientWithoutCertificate(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A client description with only a CA bundle is good: the line names
        the bundle, says there is no client certificate and counts the CAs.
        """
        caFile = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(caFile))
        done = _check(f"tlsreload:host=localhost:port=443:caCerts={caFile}")
        assert done.returncode == 0, done
        assert done.stdout == (
            f"ok: {caFile}: no client certificate; trusting 1 CA certificate(s)"
            f" from {caFile}\n"
        )

    def test_escapedColonInPath(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A colon escaped with a backslash in a description's path is part of
        the path, as in Twisted's descriptions.
        """
        directory = tmp_path / "a:b"
        directory.mkdir()
        cert, key, _ = writeLeaf(ca, directory)
        escaped = {path: str(path).replace(":", "\\:") for path in (cert, key)}
        done = _check(
            f"tlsreload:8443:certKey={escaped[cert]}:privateKey={escaped[key]}"
        )
        assert done.returncode == 0, done
        assert done.stdout.startswith(f"ok: {cert}: ")


class TestWarnDays:
    """
    C{--warn-days N} exits 2 for a good certificate expiring within N days.
    """

    @pytest.mark.parametrize(
        ("daysLeft", "warnDays", "status", "word"),
        [(5.5, "7", 2, "expiring"), (8.5, "7", 0, "ok"), (0.5, "1", 2, "expiring")],
    )
    def test_threshold(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        daysLeft: float,
        warnDays: str,
        status: int,
        word: str,
    ) -> None:
        """
        The exit status is 2 only when fewer than N days are left, and the
        line says so.
        """
        cert, key, _ = writeLeaf(ca, tmp_path, notAfter=_inDays(daysLeft))
        done = _check("--warn-days", warnDays, "--cert", str(cert), "--key", str(key))
        assert done.returncode == status, done
        assert done.stdout.startswith(f"{word}: {cert}: ")


def _mismatchedKey(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    _, otherKey, _ = writeLeaf(ca, tmp_path, name="other")
    key.write_bytes(otherKey.read_bytes())
    return f"{key}: private key does not match the certificate in {cert}", []


def _truncatedKey(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    key.write_bytes(key.read_bytes()[:60])
    return f"{key}: truncated PEM data", []


def _missingCert(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    cert.unlink()
    return f"{cert}: file not found", []


def _emptyCert(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    cert.write_bytes(b"")
    return f"{cert}: file is empty", []


def _derCert(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    cert.write_bytes(leaf.public_bytes(Encoding.DER))
    return f"{cert}: no PEM data found: looks like DER", []


def _keyFirst(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    cert.write_bytes(key.read_bytes())
    return f"{cert}: holds a private key but no certificate", []


def _expired(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    writeLeaf(ca, tmp_path, notAfter=_inDays(-1))
    return f"{cert}: certificate expired on ", []


def _directory(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    key.unlink()
    key.mkdir()
    return f"{key}: is a directory, not a file", []


def _encryptedKey(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    from cryptography.hazmat.primitives import serialization

    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    key.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return f"{key}: private key is encrypted and no passphrase was given", []


def _keyInChain(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(key.read_bytes())
    return f"{chain}: PEM block 1 is a private key, which does not belong with chain", [
        "--chain",
        str(chain),
    ]


def _emptyClientCA(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    bundle = tmp_path / "clients.pem"
    bundle.write_bytes(b"")
    return f"{bundle}: file is empty", ["--client-ca", str(bundle)]


def _wrongPassphrase(
    ca: trustme.CA, tmp_path: Path, cert: Path, key: Path
) -> tuple[str, list[str]]:
    _encryptedKey(ca, tmp_path, cert, key)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("not the secret\n")
    return f"{key}: private key could not be decrypted: wrong passphrase?", [
        "--passphrase-file",
        str(passphrase),
    ]


_BREAKAGES: dict[
    str, Callable[[trustme.CA, Path, Path, Path], tuple[str, list[str]]]
] = {
    "mismatched key": _mismatchedKey,
    "truncated key": _truncatedKey,
    "missing certificate": _missingCert,
    "empty certificate": _emptyCert,
    "DER certificate": _derCert,
    "key instead of certificate": _keyFirst,
    "expired": _expired,
    "directory": _directory,
    "encrypted key": _encryptedKey,
    "key in chain file": _keyInChain,
    "empty client CA bundle": _emptyClientCA,
    "wrong passphrase": _wrongPassphrase,
}


class TestRefused:
    """
    Files a reload would refuse exit 1 with the reason a reload logs.
    """

    @pytest.mark.parametrize("breakage", list(_BREAKAGES))
    def test_badFiles(self, tmp_path: Path, ca: trustme.CA, breakage: str) -> None:
        """
        Each kind of bad file is refused naming the file and the reason, in
        one line, and no key material is printed.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        keyLines = [
            line for line in key.read_text().splitlines() if "-----" not in line
        ]
        expected, options = _BREAKAGES[breakage](ca, tmp_path, cert, key)
        done = _check("--cert", str(cert), "--key", str(key), *options)
        assert done.returncode == 1, done
        assert done.stdout.startswith(f"refused: {expected}"), done.stdout
        assert done.stdout.count("\n") == 1
        assert not any(line in done.stdout + done.stderr for line in keyLines)

    def test_badDescription(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        An unknown key in a description is refused with the parser's
        message, and C{--json} reports it too.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        done = _check("--json", f"tlsreload:8443:certKey={cert}:privatekey={key}")
        assert done.returncode == 1
        report = json.loads(done.stdout)
        assert report["status"] == "refused"
        assert "unknown key 'privatekey'" in report["reason"]

    def test_nothingToCheck(self) -> None:
        """
        Neither a description nor C{--cert} is a usage error with status 1,
        never 2 (which means "expiring").
        """
        done = _check()
        assert done.returncode == 1
        assert "give a tlsreload: description or --cert" in done.stdout

    @pytest.mark.parametrize(
        ("description", "options", "reason"),
        [
            ("tls:8443", [], "not a tlsreload: description: 'tls:8443'"),
            (
                "tlsreload:8443:certKey=server.crt",
                ["--cert", "server.crt"],
                "give a description or file options, not both",
            ),
        ],
        ids=["other endpoint", "description and options"],
    )
    def test_descriptionMisused(
        self, description: str, options: list[str], reason: str
    ) -> None:
        """
        Another endpoint's description, or a description together with file
        options, is refused with status 1 saying which mistake it is.
        """
        done = _check(description, *options)
        assert done.returncode == 1
        assert done.stdout == f"refused: {reason}\n"

    def test_usageError(self) -> None:
        """
        A malformed option is a usage error with status 1, never 2 (which
        means "expiring"), and argparse's message on standard error.
        """
        done = _check("--warn-days", "soon")
        assert done.returncode == 1
        assert "argument --warn-days: invalid float value: 'soon'" in done.stderr
        assert done.stderr.startswith("usage: ")


class TestDeployHook:
    """
    The certbot deploy hook in the docs checks the renewed files and sends
    SIGHUP only if they are good.
    """

    @pytest.mark.parametrize("good", [True, False])
    def test_hook(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        good: bool,
        servers: Callable[..., ServerProcess],
    ) -> None:
        """
        Good renewed files make the hook signal the server and exit 0; bad
        ones make it exit 1 with the reason and leave the server alone.
        """
        lineage = tmp_path / "live" / "example.org"
        lineage.mkdir(parents=True)
        cert, key, _ = writeLeaf(ca, lineage)
        cert.rename(lineage / "fullchain.pem")
        key.rename(lineage / "privkey.pem")
        if not good:
            (lineage / "privkey.pem").write_bytes(b"not a key\n")
        hupped = tmp_path / "hupped"
        server = servers(
            python(
                "-c",
                "import pathlib, signal, sys, time\n"
                "signal.signal(signal.SIGHUP, lambda *a: pathlib.Path(sys.argv[1])"
                ".write_text('HUP'))\n"
                "pathlib.Path(sys.argv[2]).write_text('up')\n"
                "time.sleep(60)\n",
                str(hupped),
                str(tmp_path / "up"),
            )
        )
        try:
            waitFor(lambda: (tmp_path / "up").exists() or None)
            pidFile = tmp_path / "server.pid"
            pidFile.write_text(f"{server.pid}\n")
            done = subprocess.run(
                ["sh", str(DEPLOY_HOOK)],
                capture_output=True,
                text=True,
                timeout=60,
                env={
                    **_environment(),
                    "RENEWED_LINEAGE": str(lineage),
                    "TXTLSRELOAD_PYTHON": sys.executable,
                    "TXTLSRELOAD_PIDFILE": str(pidFile),
                },
            )
            if good:
                assert done.returncode == 0, done
                assert done.stdout.startswith(f"ok: {lineage}/fullchain.pem: ")
                waitFor(lambda: hupped.exists() or None)
            else:
                assert done.returncode == 1, done
                assert f"refused: {lineage}/privkey.pem: " in done.stdout
                assert server.process.poll() is None
                assert not hupped.exists()
        finally:
            server.stop()
