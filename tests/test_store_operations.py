"""
Tests that a L{ReloadingCertificateStore} shows up in the operators' views:
expiry warnings, the status page and the certificate metrics cover every
certificate it serves, not only the default one.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.task import Clock
from twisted.logger import LogEvent, LogLevel, formatEvent
from twisted.web.test.requesthelper import DummyRequest

from txtlsreload import (
    MetricsCollector,
    ReloadingCertificateStore,
    StatusResource,
    warnBeforeExpiry,
)

from .tlshelpers import writeLeaf


def _writeShortLived(ca: trustme.CA, path: Path, name: str, daysLeft: int) -> int:
    """
    Write to C{path} a certificate and key for C{name} from C{ca}, valid for
    90 days of which C{daysLeft} are left; return its serial number.
    """
    caKey = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    caCert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    notAfter = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        days=daysLeft
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(caCert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(notAfter - datetime.timedelta(days=90))
        .not_valid_after(notAfter)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), True)
        .sign(caKey, hashes.SHA256())  # type: ignore[arg-type]
    )
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate.serial_number


@pytest.fixture
def store(tmp_path: Path, ca: trustme.CA) -> tuple[ReloadingCertificateStore, int, int]:
    """
    A store serving a long-lived certificate for a.example and one for
    b.example with two days left; with their serial numbers.
    """
    directory = tmp_path / "certificates"
    directory.mkdir()
    cert, key, longSerial = writeLeaf(ca, tmp_path, identities=("a.example",))
    (directory / "a.pem").write_bytes(cert.read_bytes() + key.read_bytes())
    shortSerial = _writeShortLived(ca, directory / "b.pem", "b.example", 2)
    return ReloadingCertificateStore(str(directory)), longSerial, shortSerial


def _hex(serial: int) -> str:
    text = f"{serial:X}"
    return text.zfill(len(text) + len(text) % 2)


def _clockNow() -> Clock:
    clock = Clock()
    clock.advance(datetime.datetime.now(datetime.timezone.utc).timestamp())
    return clock


class TestStoreInViews:
    """
    Every certificate of a store is seen by the operating views.
    """

    def test_expiryWarningForAnyServedName(
        self,
        store: tuple[ReloadingCertificateStore, int, int],
        logEvents: list[LogEvent],
    ) -> None:
        """
        A certificate of the store close to its end gets the expiry warning,
        although it is not the default certificate; the long-lived one
        gets none.
        """
        reloadingStore, longSerial, shortSerial = store
        warnings = warnBeforeExpiry(_clockNow(), [reloadingStore])
        try:
            lines = [
                formatEvent(e) or ""
                for e in logEvents
                if e.get("log_level") == LogLevel.warn and "expires on" in str(e)
            ]
        finally:
            warnings.stop()
        assert len(lines) == 1
        assert _hex(shortSerial) in lines[0]
        assert _hex(longSerial) not in lines[0]

    def test_statusListsEveryCertificate(
        self, store: tuple[ReloadingCertificateStore, int, int]
    ) -> None:
        """
        The status page has one entry for the store, naming its directory,
        with both certificates in it.
        """
        reloadingStore, longSerial, shortSerial = store
        request = DummyRequest([b""])
        body = StatusResource([reloadingStore], _clockNow()).render(request)
        assert isinstance(body, bytes)
        [entry] = json.loads(body)["reloadables"]
        assert entry["path"] == reloadingStore.directory
        text = json.dumps(entry)
        assert _hex(longSerial) in text
        assert _hex(shortSerial) in text

    def test_metricsSeriesPerCertificate(
        self, store: tuple[ReloadingCertificateStore, int, int]
    ) -> None:
        """
        The notAfter metric has a series for each certificate the store
        serves, labelled with the names it is served for.
        """
        reloadingStore, longSerial, shortSerial = store
        registry = CollectorRegistry()
        registry.register(MetricsCollector([reloadingStore]))
        lines = [
            line
            for line in generate_latest(registry).decode().splitlines()
            if line.startswith("txtlsreload_certificate_not_after_timestamp_seconds{")
        ]
        serials: list[Any] = sorted(
            line.split('serial="')[1].split('"')[0] for line in lines
        )
        assert serials == sorted([_hex(longSerial), _hex(shortSerial)])
        names = sorted(line.split('server_names="')[1].split('"')[0] for line in lines)
        assert names == ["DNS:a.example", "DNS:b.example"]
