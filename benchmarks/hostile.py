"""
How long one reload of a hostile or very large file blocks the reactor.

    python benchmarks/hostile.py                 # every case, a Markdown table
    python benchmarks/hostile.py --json          # the same as JSON
    python benchmarks/hostile.py --case NAME     # one case (JSON), as run.py does

For each case a server (L{txtlsreload.ReloadingContextFactory}) starts on
good files, the case's files are written over them, and two reloads are
timed: the first (new bytes: read, parse, check, maybe build) and a retry
of the same bytes (what a watcher does every few seconds while the files
stay as they are).  A reload runs in the reactor thread, so its wall time
is the time every connection of the process waits.

Each case runs in its own child process with a time limit, so that the
same script can measure an older version of the library (put it first on
C{PYTHONPATH}) where some cases take minutes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import txtlsreload

__all__ = ["main"]

_NOW = datetime.datetime.now(datetime.timezone.utc)
_MiB = 1024 * 1024


def _certificate(
    publicKey: Any, signer: ec.EllipticCurvePrivateKey, name: str, ca: bool = False
) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(hours=1))
        .not_valid_after(_NOW + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    return builder.sign(signer, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM
    )


def _keyPEM(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _slowRSAKey(bits: int) -> rsa.RSAPrivateKey:
    """
    An RSA key of C{bits} bits whose values agree with each other (so that a
    loader goes on to sign with it, the expensive part) but whose factors
    are not prime: a real 32768-bit key takes far too long to generate.
    """
    import secrets

    e = 65537
    half = bits // 2
    while True:
        p = secrets.randbits(half) | (3 << (half - 2)) | 1
        q = secrets.randbits(half) | (3 << (half - 2)) | 1
        lcm = (p - 1) * (q - 1) // math.gcd(p - 1, q - 1)
        if math.gcd(p, q) == 1 and math.gcd(e, lcm) == 1:
            break
    d = pow(e, -1, lcm)
    return rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    ).private_key(unsafe_skip_rsa_key_validation=True)


def _caBundle(count: int) -> bytes:
    """
    C{count} distinct self-signed CA certificates (one key for all of them:
    only parsing them is measured).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    return b"".join(
        _certificate(key.public_key(), key, f"CA {number}", ca=True)
        for number in range(count)
    )


def _bundleOfSize(size: int) -> bytes:
    one = len(_caBundle(1))
    return _caBundle(size // one)


def _encryptedKey(key: Any, arguments: list[str]) -> bytes | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    return subprocess.run(
        [openssl, "pkcs8", "-topk8", *arguments, "-passout", "pass:secret"],
        input=_keyPEM(key),
        stdout=subprocess.PIPE,
        check=True,
    ).stdout


# name -> (what it is, function of (directory, good files) giving the files
# to write: {"cert" | "key" | "ca": bytes}, and the passphrase if any).
_Case = Callable[[], dict[str, bytes]]


def _leafCase(certificate: bytes, key: bytes) -> dict[str, bytes]:
    return {"cert": certificate, "key": key}


def _withGoodLeaf(**files: bytes) -> dict[str, bytes]:
    signer = ec.generate_private_key(ec.SECP256R1())
    return {
        "cert": _certificate(signer.public_key(), signer, "localhost"),
        "key": _keyPEM(signer),
        **files,
    }


def _manyNames(count: int) -> dict[str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    names = [x509.DNSName(f"host{number}.example.com") for number in range(count)]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(hours=1))
        .not_valid_after(_NOW + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _leafCase(certificate.public_bytes(serialization.Encoding.PEM), _keyPEM(key))


def _hugeRSA(bits: int = 32768) -> dict[str, bytes]:
    signer = ec.generate_private_key(ec.SECP256R1())
    key = _slowRSAKey(bits)
    return _leafCase(_certificate(key.public_key(), signer, "localhost"), _keyPEM(key))


def _hugeRSAKeyOnly() -> dict[str, bytes]:
    files = _withGoodLeaf()
    files["key"] = _keyPEM(_slowRSAKey(32768))
    return files


def _pbkdf2(iterations: int) -> dict[str, bytes]:
    files = _withGoodLeaf()
    key = serialization.load_pem_private_key(files["key"], None)
    encrypted = _encryptedKey(key, ["-v2", "aes-256-cbc", "-iter", str(iterations)])
    if encrypted is None:
        raise RuntimeError("needs the openssl command")
    files["key"] = encrypted
    return files


def _badAtTheEnd(size: int) -> dict[str, bytes]:
    bundle = _bundleOfSize(size - 32 * 1024)
    # The last certificate's signature cut short: everything before it
    # parses, so the whole bundle is read before the refusal.
    last = bundle.rfind(b"-----BEGIN CERTIFICATE-----")
    return _withGoodLeaf(
        ca=bundle[:last]
        + b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    )


CASES: dict[str, tuple[str, _Case]] = {
    "begin-lines-64k": (
        "64 KiB of BEGIN lines without END",
        lambda: _withGoodLeaf(cert=b"-----BEGIN A-----\n" * (64 * 1024 // 18)),
    ),
    "begin-lines-1m": (
        "1 MiB of BEGIN lines without END",
        lambda: _withGoodLeaf(cert=b"-----BEGIN A-----\n" * (_MiB // 18)),
    ),
    "certificate-no-end-1m": (
        "1 MiB certificate block without END",
        lambda: _withGoodLeaf(
            cert=b"-----BEGIN CERTIFICATE-----\n" + b"QUFB" * (_MiB // 4 - 8)
        ),
    ),
    "empty-blocks-1m": (
        "1 MiB of empty blocks of an unknown label",
        lambda: _withGoodLeaf(
            ca=b"-----BEGIN A-----\n-----END A-----\n" * (_MiB // 34)
        ),
    ),
    "many-names": (
        "leaf with 33,000 subjectAltNames, 1 MiB (accepted)",
        lambda: _manyNames(33_000),
    ),
    "rsa-32768-certificate": (
        "certificate with an RSA-32768 key",
        _hugeRSA,
    ),
    "rsa-8192-not-prime": (
        "RSA-8192 key whose factors are not prime",
        lambda: _hugeRSA(8192),
    ),
    "rsa-32768-key": (
        "RSA-32768 key, ECDSA certificate",
        _hugeRSAKeyOnly,
    ),
    "pbkdf2-5m": (
        "key encrypted with 5,000,000 PBKDF2 iterations",
        lambda: _pbkdf2(5_000_000),
    ),
    "pbkdf2-limit": (
        "key encrypted with 100,000 PBKDF2 iterations (accepted)",
        lambda: _pbkdf2(100_000),
    ),
    "ca-bundle-1k": (
        "client-CA bundle of 1,000 CAs (accepted)",
        lambda: _withGoodLeaf(ca=_caBundle(1000)),
    ),
    "ca-bundle-2k": (
        "client-CA bundle of 2,000 CAs, near 1 MiB (accepted)",
        lambda: _withGoodLeaf(ca=_caBundle(2000)),
    ),
    "ca-bundle-5k": (
        "client-CA bundle of 5,000 CAs, 2.5 MiB (over the size limit)",
        lambda: _withGoodLeaf(ca=_caBundle(5000)),
    ),
    "ca-bundle-1m-bad-last": (
        "1 MiB client-CA bundle, last certificate broken",
        lambda: _badAtTheEnd(_MiB),
    ),
}


def runCase(name: str) -> dict[str, Any]:
    """
    Start a server on good files, write the case's files over them, and
    time a reload and its retry.
    """
    files = CASES[name][1]()
    with tempfile.TemporaryDirectory(prefix="txtlsreload-hostile-") as directory:
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost")
        paths = {
            part: Path(directory) / f"{part}.pem" for part in ("cert", "key", "ca")
        }
        paths["cert"].write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        paths["key"].write_bytes(leaf.private_key_pem.bytes())
        paths["ca"].write_bytes(ca.cert_pem.bytes())
        passphrase = b"secret" if b"ENCRYPTED" in files.get("key", b"") else None
        factory = txtlsreload.ReloadingContextFactory(
            str(paths["cert"]),
            str(paths["key"]),
            clientCAFile=str(paths["ca"]),
            passphrase=passphrase,
        )
        for part, data in files.items():
            paths[part].write_bytes(data)
        timings = []
        results = []
        for _ in range(2):
            before = time.perf_counter()
            result = factory.reload()
            timings.append(time.perf_counter() - before)
            results.append(result)
    first = results[0]
    return {
        "case": name,
        "what": CASES[name][0],
        "bytes": max(len(data) for data in files.values()),
        "firstms": timings[0] * 1000,
        "retryms": timings[1] * 1000,
        "accepted": first.succeeded,
        "outcome": "accepted" if first.succeeded else str(first.error.reason)[:60],
    }


def runAll(timeout: float, names: list[str], repeat: int = 1) -> list[dict[str, Any]]:
    """
    Run each case C{repeat} times, each in a child process, and keep the
    fastest figures (on a shared machine, the slower runs measure the
    neighbours); stop any run that takes longer than C{timeout} seconds.
    """
    entries = []
    for name in names:
        print(f"hostile: {name}", file=sys.stderr, flush=True)
        try:
            runs = []
            for _ in range(repeat):
                child = subprocess.run(
                    [sys.executable, __file__, "--case", name],
                    stdout=subprocess.PIPE,
                    timeout=timeout,
                    check=True,
                )
                runs.append(json.loads(child.stdout))
            best = dict(runs[0])
            best["firstms"] = min(run["firstms"] for run in runs)
            best["retryms"] = min(run["retryms"] for run in runs)
            entries.append(best)
        except subprocess.TimeoutExpired:
            entries.append(
                {
                    "case": name,
                    "what": CASES[name][0],
                    "timedOut": timeout,
                }
            )
    return entries


def table(entries: list[dict[str, Any]]) -> str:
    """
    The results as a Markdown table.
    """
    lines = [
        "| Case | Size | First reload | Retry | Outcome |",
        "|---|---:|---:|---:|---|",
    ]
    for entry in entries:
        if "timedOut" in entry:
            lines.append(
                f"| {entry['what']} | | > {entry['timedOut']:.0f} s (stopped) | | |"
            )
            continue
        lines.append(
            f"| {entry['what']} | {entry['bytes'] / 1024:.0f} KiB"
            f" | {entry['firstms']:.1f} ms | {entry['retryms']:.1f} ms"
            f" | {entry['outcome']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=list(CASES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per case; the fastest is kept"
    )
    options = parser.parse_args(argv)
    if options.case is not None:
        json.dump(runCase(options.case), sys.stdout)
        return
    entries = runAll(options.timeout, options.only.split(","), options.repeat)
    if options.json:
        json.dump(entries, sys.stdout)
    else:
        print(table(entries))


if __name__ == "__main__":
    main()
