"""
Tests for L{txtlsreload.StatusResource}: the JSON document it renders for
server factories and client credentials, and what it never contains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from txtlsreload import (
    ReloadingClientCredentials,
    ReloadingContextFactory,
    StatusResource,
    adminResource,
)

from .tlshelpers import RecordingReloadable, writeLeaf


def _render(resource: StatusResource) -> tuple[DummyRequest, str]:
    request = DummyRequest([b""])
    body = resource.render(request)
    assert isinstance(body, bytes)
    return request, body.decode("utf-8")


def _status(resource: StatusResource) -> list[dict[str, Any]]:
    _, body = _render(resource)
    entries: list[dict[str, Any]] = json.loads(body)["reloadables"]
    return entries


class TestServerFactory:
    """
    A server factory's entry: files, what is served, the last reload.
    """

    def test_served(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        The entry lists the files and the served certificate's subject,
        SANs, serial, fingerprint, validity and seconds left by the clock,
        and the client CAs as trusted; the response is JSON.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        caFile = tmp_path / "clients.pem"
        ca.cert_pem.write_to_path(str(caFile))
        factory = ReloadingContextFactory(str(cert), str(key), clientCAFile=str(caFile))
        info = factory.certificate
        clock = Clock()
        clock.advance(info.notAfter.timestamp() - 3600)
        request, body = _render(StatusResource([factory], clock))
        assert request.responseHeaders.getRawHeaders(b"content-type") == [
            b"application/json"
        ]
        [entry] = json.loads(body)["reloadables"]
        assert entry["kind"] == "server"
        assert entry["files"]["certificateFile"] == str(cert)
        assert entry["files"]["privateKeyFile"] == str(key)
        assert entry["files"]["clientCAFile"] == str(caFile)
        assert entry["served"] == {
            "role": "server",
            "path": str(cert),
            "subject": info.subject,
            "subjectAltNames": list(info.subjectAltNames),
            "serial": info.serialHex,
            "fingerprintSHA256": info.fingerprintSHA256,
            "notBefore": info.notBefore.isoformat(),
            "notAfter": info.notAfter.isoformat(),
            "secondsLeft": 3600,
        }
        assert [t["role"] for t in entry["trusted"]] == ["client_ca"]
        assert entry["lastReload"] is None
        assert (entry["failing"], entry["refusalsInARow"]) == (False, 0)

    def test_refusalsInARow(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Refused reloads show their trigger, result and error and are counted
        in a row; a good reload resets the count and clears the error.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        resource = StatusResource([factory], Clock())
        goodKey = key.read_bytes()
        key.unlink()
        factory.reload()
        factory.reload()
        [refused] = _status(resource)
        assert refused["lastReload"]["trigger"] == "call"
        assert refused["lastReload"]["result"] == "refused"
        assert refused["lastReload"]["error"] == f"{key}: file not found"
        assert refused["error"] == f"{key}: file not found"
        assert (refused["failing"], refused["refusalsInARow"]) == (True, 2)

        key.write_bytes(goodKey)
        factory.reload()
        [recovered] = _status(resource)
        assert recovered["lastReload"]["result"] == "unchanged"
        assert recovered["lastReload"]["error"] is None
        assert (recovered["failing"], recovered["refusalsInARow"]) == (False, 0)

    @pytest.mark.parametrize("combined", [False, True])
    def test_noKeyMaterial(
        self, tmp_path: Path, ca: trustme.CA, combined: bool
    ) -> None:
        """
        No line of the private key's base64 appears in the document, with a
        separate key file or a combined one, before and after a refusal.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        certPem, keyPem = cert.read_text(), key.read_text()
        keyLines = [line for line in keyPem.splitlines() if "-----" not in line]
        # A damaged key: its remaining lines must not leak through the error.
        damaged = keyPem.replace(keyLines[1], keyLines[1][::-1])
        if combined:
            cert.write_text(certPem + keyPem)
            factory = ReloadingContextFactory(str(cert))
        else:
            factory = ReloadingContextFactory(str(cert), str(key))
        resource = StatusResource([factory], Clock())
        _, first = _render(resource)
        if combined:
            cert.write_text(certPem + damaged)
        else:
            key.write_text(damaged)
        factory.reload()
        _, second = _render(resource)
        assert json.loads(second)["reloadables"][0]["failing"] is True
        for body in (first, second):
            for line in keyLines:
                assert line not in body
                assert line[::-1] not in body


class TestClientCredentials:
    """
    Client credentials' entry.
    """

    def test_client(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Client credentials show their client certificate as served and each
        trusted CA.
        """
        cert, key, _ = writeLeaf(ca, tmp_path, identities=("client@example.org",))
        caFile = tmp_path / "roots.pem"
        ca.cert_pem.write_to_path(str(caFile))
        credentials = ReloadingClientCredentials(str(caFile), str(cert), str(key))
        [entry] = _status(StatusResource([credentials], Clock()))
        assert entry["kind"] == "client"
        assert entry["files"]["caCertsFile"] == str(caFile)
        assert entry["served"]["serial"] == credentials.clientCertificate.serialHex  # type: ignore[union-attr]
        assert [(t["role"], t["path"]) for t in entry["trusted"]] == [
            ("trust", str(caFile))
        ]


class TestOtherReloadables:
    """
    Reloadables of kinds the status page does not know.
    """

    def test_leftOut(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A reloadable that is not one of the library's own gets no entry;
        the others beside it still do.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        other = RecordingReloadable(tmp_path / "other.pem")
        entries = _status(StatusResource([other, factory], Clock()))
        assert [entry["path"] for entry in entries] == [str(cert)]


class TestAdminResource:
    """
    The admin tree mounts C{/status} and C{/metrics}.
    """

    @pytest.mark.parametrize("child", [b"status", b"metrics"])
    def test_children(self, child: bytes) -> None:
        """
        Both children exist.
        """
        root = adminResource()
        assert child in root.listNames()
