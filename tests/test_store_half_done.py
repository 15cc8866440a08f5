"""
Tests for L{txtlsreload.ReloadingCertificateStore} when a rotation is only
half done in Twisted's C{tls:} layout (certificate and key in separate
files, written one after the other), and for certificates OpenSSL will not
serve although every other check passes: the names keep their last good
certificate and the reload says which file and why.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import trustme
from twisted.logger import LogEvent, formatEvent

from txtlsreload import CredentialError, ReloadingCertificateStore

from .test_store import _clock, _issue, _serial, _served, _writeLoose
from .tlshelpers import writeRSAPSSLeaf


def _store(directory: Path, **kwargs: object) -> ReloadingCertificateStore:
    # A minute from now: the openssl command's certificates start now.
    clock = _clock()
    clock.advance(max(0, time.time() + 60 - clock.seconds()))
    return ReloadingCertificateStore(
        str(directory),
        reactor=clock,
        processWide=False,
        **kwargs,  # type: ignore[arg-type]
    )


def _sites(tmp_path: Path, ca: trustme.CA) -> tuple[Path, dict[str, int]]:
    """
    A directory with a.example and b.example, each a certificate file and a
    key file; their serials.
    """
    directory = tmp_path / "sites"
    serials = {}
    for name in ("a.example", "b.example"):
        leaf = _issue(ca, name)
        _writeLoose(directory, name, leaf)
        serials[name] = _serial(leaf)
    return directory, serials


def _refusals(store: ReloadingCertificateStore) -> list[tuple[str, str]]:
    return [(Path(e.path).name, e.reason) for e in store.lastResult.refused]


class TestHalfDoneRotation:
    """
    A certificate and its key are written one after the other; a reload in
    between serves neither half, and the one after both serves the pair.
    """

    def test_certificateBeforeKey(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A new certificate written before its key: the reload is refused
        naming the certificate file, the name keeps its last good
        certificate, and once the key is written the new one is served.
        """
        directory, serials = _sites(tmp_path, ca)
        store = _store(directory)
        renewed = _issue(ca, "a.example")
        (directory / "a.example.pem").write_bytes(renewed.cert_chain_pems[0].bytes())
        result = store.reload()
        assert not result.succeeded
        assert _refusals(store) == [
            (
                "a.example.pem",
                "no private key in the directory matches this certificate (is its"
                " key still to be written?)",
            )
        ]
        assert _served(store, ca, "a.example") == serials["a.example"]
        assert _served(store, ca, "b.example") == serials["b.example"]

        (directory / "a.example.key.pem").write_bytes(renewed.private_key_pem.bytes())
        result = store.reload()
        assert result.succeeded
        assert result.replaced == ("a.example",)
        assert _served(store, ca, "a.example") == _serial(renewed)

    def test_keyBeforeCertificate(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A new key written before its certificate takes the old certificate's
        key away: refused naming the key file, the old certificate still
        served, then the pair once the certificate follows.
        """
        directory, serials = _sites(tmp_path, ca)
        store = _store(directory)
        renewed = _issue(ca, "a.example")
        (directory / "a.example.key.pem").write_bytes(renewed.private_key_pem.bytes())
        assert not store.reload().succeeded
        [(file, reason)] = _refusals(store)
        assert file == "a.example.key.pem"
        assert reason.startswith("it held the private key of the certificate in ")
        assert reason.endswith(
            "a.example.pem, which is still there (is the certificate still to be"
            " written?)"
        )
        assert _served(store, ca, "a.example") == serials["a.example"]

        (directory / "a.example.pem").write_bytes(renewed.cert_chain_pems[0].bytes())
        assert store.reload().succeeded
        assert _served(store, ca, "a.example") == _serial(renewed)

    def test_mismatchedPairRefused(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A new certificate and a new key that do not belong together: both
        files are refused and the name keeps its last good certificate.
        """
        directory, serials = _sites(tmp_path, ca)
        store = _store(directory)
        (directory / "a.example.pem").write_bytes(
            _issue(ca, "a.example").cert_chain_pems[0].bytes()
        )
        (directory / "a.example.key.pem").write_bytes(
            _issue(ca, "a.example").private_key_pem.bytes()
        )
        assert not store.reload().succeeded
        assert sorted(file for file, _ in _refusals(store)) == [
            "a.example.key.pem",
            "a.example.pem",
        ]
        assert _served(store, ca, "a.example") == serials["a.example"]

    def test_keyDeletedBeforeCertificate(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Deleting a site's key while its certificate stays is refused (the
        site keeps being served); deleting the certificate too removes it.
        """
        directory, serials = _sites(tmp_path, ca)
        store = _store(directory)
        (directory / "a.example.key.pem").unlink()
        assert not store.reload().succeeded
        assert [file for file, _ in _refusals(store)] == ["a.example.key.pem"]
        assert _served(store, ca, "a.example") == serials["a.example"]

        (directory / "a.example.pem").unlink()
        result = store.reload()
        assert result.succeeded
        assert result.removed == ("a.example",)
        assert "a.example" not in store.names

    def test_refusalLoggedOnceWhileRetried(
        self, tmp_path: Path, ca: trustme.CA, logEvents: list[LogEvent]
    ) -> None:
        """
        Retries of the same half-done rotation (a watcher's) log it once.
        """
        directory, _ = _sites(tmp_path, ca)
        store = _store(directory)
        (directory / "a.example.pem").write_bytes(
            _issue(ca, "a.example").cert_chain_pems[0].bytes()
        )
        store.reload()
        store.reload(quietIfRepeated=True)
        store.reload(quietIfRepeated=True)
        refused = [
            formatEvent(event)
            for event in logEvents
            if "TLS reload refused" in formatEvent(event)
        ]
        assert len(refused) == 1, refused
        assert "a.example.pem: no private key" in refused[0]

    def test_keylessCertificateAtStartIgnored(
        self, tmp_path: Path, ca: trustme.CA, logEvents: list[LogEvent]
    ) -> None:
        """
        At start-up a site's certificate without a key is left out, as
        Twisted's C{tls:} does, with a warning naming its file; the other
        names are served.
        """
        directory, serials = _sites(tmp_path, ca)
        stray = directory / "stray.pem"
        stray.write_bytes(_issue(ca, "stray.example").cert_chain_pems[0].bytes())
        store = _store(directory)
        assert sorted(store.names) == ["a.example", "b.example"]
        assert store.lastResult.refused == ()
        assert _served(store, ca, "a.example") == serials["a.example"]
        warnings = [
            formatEvent(event)
            for event in logEvents
            if event["log_level"].name == "warn"
        ]
        assert warnings == [
            f"TLS certificate in {stray} not served: no private key in"
            f" {directory} matches it"
        ]

    def test_intermediateWithoutKeyAccepted(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A CA certificate has no key in the directory and needs none: adding
        an intermediate is not refused.
        """
        directory, _ = _sites(tmp_path, ca)
        store = _store(directory)
        intermediate = ca.create_child_ca()
        (directory / "intermediate.pem").write_bytes(intermediate.cert_pem.bytes())
        assert store.reload().succeeded


class TestOpenSSLRefuses:
    """
    A certificate for an RSA-PSS key passes every check, and cryptography
    reads the key as RSA, but OpenSSL will not serve it: the store refuses
    it when reading, since its context would only be built at a handshake.
    """

    REASON = (
        "an RSA-PSS key (id-RSASSA-PSS): OpenSSL does not serve TLS with one;"
        " issue the certificate for a plain RSA or an ECDSA key"
    )

    @pytest.mark.parametrize("layout", ["tls", "kubernetes"])
    def test_refusedOnReload(self, tmp_path: Path, ca: trustme.CA, layout: str) -> None:
        """
        Added on reload, in the C{tls:} layout or as a Kubernetes pair: the
        file is refused by name and every name keeps being served.
        """
        directory, serials = _sites(tmp_path, ca)
        store = _store(directory)
        staging = tmp_path / "staging"
        staging.mkdir()
        certPath, keyPath, _ = writeRSAPSSLeaf(ca, staging)
        if layout == "tls":
            shutil.copy(certPath, directory / "pss.pem")
            shutil.copy(keyPath, directory / "pss.key.pem")
            refusedFile = "pss.pem"
        else:
            (directory / "pss").mkdir()
            shutil.copy(certPath, directory / "pss" / "tls.crt")
            shutil.copy(keyPath, directory / "pss" / "tls.key")
            refusedFile = "tls.crt"
        assert not store.reload().succeeded
        assert _refusals(store) == [(refusedFile, self.REASON)]
        assert "localhost" not in store.names
        assert _served(store, ca, "a.example") == serials["a.example"]

    def test_defaultRefusedAtStart(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        As the default certificate, the store does not start, naming the
        file.
        """
        directory, _ = _sites(tmp_path, ca)
        certPath, keyPath, _ = writeRSAPSSLeaf(ca, tmp_path)
        with pytest.raises(CredentialError) as raised:
            _store(
                directory, certificateFile=str(certPath), privateKeyFile=str(keyPath)
            )
        assert (raised.value.path, raised.value.reason) == (str(certPath), self.REASON)

    def test_defaultRefusedOnReload(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        As a new default certificate on reload: refused by name, and the old
        default keeps being served to clients without SNI.
        """
        directory, _ = _sites(tmp_path, ca)
        default = _issue(ca, "default.example")
        certPath, keyPath = tmp_path / "default.pem", tmp_path / "default.key"
        certPath.write_bytes(default.cert_chain_pems[0].bytes())
        keyPath.write_bytes(default.private_key_pem.bytes())
        store = _store(
            directory, certificateFile=str(certPath), privateKeyFile=str(keyPath)
        )
        pssCert, pssKey, _ = writeRSAPSSLeaf(ca, tmp_path, name="pss")
        shutil.copy(pssCert, certPath)
        shutil.copy(pssKey, keyPath)
        assert not store.reload().succeeded
        assert _refusals(store) == [("default.pem", self.REASON)]
        assert _served(store, ca, None) == _serial(default)
