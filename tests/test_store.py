"""
Tests for L{txtlsreload.ReloadingCertificateStore}: many certificates on one
port, chosen by the client's server name, found in several layouts, chosen by
validity, and reloaded by what changed.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txtlsreload import (
    CredentialError,
    IReloadable,
    ReloadingCertificateStore,
    StoreReloadResult,
    notifySystemd,
    reloadOnSIGHUP,
)

from .reactors import CallsFromThreads
from .tlshelpers import clientOptions, handshake, pemOf, selfSigned

# Real time (clients check validity against it), held still by a Clock.
_NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
_DAY = datetime.timedelta(days=1)


def _clock() -> Clock:
    clock = Clock()
    clock.advance(_NOW.timestamp())
    return clock


def _issue(
    ca: trustme.CA,
    *names: str,
    keyType: trustme.KeyType = trustme.KeyType.ECDSA,
    notBefore: datetime.datetime = _NOW - 10 * _DAY,
    notAfter: datetime.datetime = _NOW + 90 * _DAY,
) -> trustme.LeafCert:
    return ca.issue_cert(
        *names, not_before=notBefore, not_after=notAfter, key_type=keyType
    )


def _serial(leaf: trustme.LeafCert) -> int:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number


def _writeLoose(directory: Path, name: str, leaf: trustme.LeafCert) -> Path:
    """
    Twisted's C{tls:} layout: certificate and key in separate C{.pem} files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.key.pem").write_bytes(leaf.private_key_pem.bytes())
    path = directory / f"{name}.pem"
    path.write_bytes(leaf.cert_chain_pems[0].bytes())
    return path


def _writeCertbot(directory: Path, name: str, leaf: trustme.LeafCert) -> Path:
    """
    certbot's layout: C{live/NAME/*.pem} symlinks into C{archive/NAME/},
    repointed at each renewal.
    """
    archive = directory / "archive" / name
    live = directory / "live" / name
    archive.mkdir(parents=True, exist_ok=True)
    live.mkdir(parents=True, exist_ok=True)
    version = len(list(archive.glob("fullchain*.pem"))) + 1
    (archive / f"fullchain{version}.pem").write_bytes(
        b"".join(p.bytes() for p in leaf.cert_chain_pems)
    )
    (archive / f"privkey{version}.pem").write_bytes(leaf.private_key_pem.bytes())
    for kind in ("fullchain", "privkey"):
        link = live / f"{kind}.pem"
        temporary = live / f".{kind}.tmp"
        temporary.symlink_to(f"../../archive/{name}/{kind}{version}.pem")
        os.replace(temporary, link)
    return archive / f"fullchain{version}.pem"


def _writeKubernetes(directory: Path, name: str, leaf: trustme.LeafCert) -> Path:
    """
    A Kubernetes TLS Secret volume: C{tls.crt} and C{tls.key} reached through
    the C{..data} symlink, swapped to a new timestamped directory.
    """
    volume = directory / name
    volume.mkdir(parents=True, exist_ok=True)
    version = len(list(volume.glob("..2030_*"))) + 1
    payload = volume / f"..2030_06_01_00_00_0{version}"
    payload.mkdir()
    (payload / "tls.crt").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    (payload / "tls.key").write_bytes(leaf.private_key_pem.bytes())
    temporary = volume / "..data_tmp"
    temporary.symlink_to(payload.name)
    os.replace(temporary, volume / "..data")
    for file in ("tls.crt", "tls.key"):
        if not (volume / file).is_symlink():
            (volume / file).symlink_to(f"..data/{file}")
    return payload / "tls.crt"


_LAYOUTS: dict[str, Callable[[Path, str, trustme.LeafCert], Path]] = {
    "tls": _writeLoose,
    "certbot": _writeCertbot,
    "kubernetes": _writeKubernetes,
}


def _served(store: object, ca: trustme.CA, name: str | None) -> int | None:
    """
    The serial a client asking for C{name} gets, or L{None} if its handshake
    fails.
    """
    client = clientOptions(ca, hostname=name)
    result = handshake(store, client)  # type: ignore[arg-type]
    if not result.succeeded or result.serverCertificate is None:
        return None
    return result.serverCertificate.serial_number


@implementer(IOpenSSLClientConnectionCreator)
class _RSAOnlyClient:
    """
    A TLS 1.2 client that offers only ECDHE-RSA cipher suites, as old
    clients without ECDSA support do.
    """

    def __init__(self, ca: trustme.CA, name: str) -> None:
        self._name = name
        self._context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        self._context.set_max_proto_version(SSL.TLS1_2_VERSION)
        self._context.set_cipher_list(b"ECDHE-RSA-AES128-GCM-SHA256")
        store = self._context.get_cert_store()
        assert store is not None
        from OpenSSL.crypto import X509

        store.add_cert(
            X509.from_cryptography(x509.load_pem_x509_certificate(ca.cert_pem.bytes()))
        )
        self._context.set_verify(SSL.VERIFY_PEER)

    def clientConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_tlsext_host_name(self._name.encode("ascii"))
        return connection


class TestInterfaces:
    """
    The store is what Twisted's TLS APIs ask for.
    """

    def test_providesInterfaces(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        It provides the connection-creator, context-factory and reloadable
        interfaces, checked by zope.interface.
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert verifyObject(IOpenSSLServerConnectionCreator, store)
        assert verifyObject(IOpenSSLContextFactory, store)
        assert verifyObject(IReloadable, store)


class TestSelection:
    """
    Each client gets the certificate for the name it asks for.
    """

    @pytest.mark.parametrize("layout", sorted(_LAYOUTS))
    def test_eachNameItsCertificate(
        self, tmp_path: Path, ca: trustme.CA, layout: str
    ) -> None:
        """
        In every layout, each name gets its own certificate.
        """
        write = _LAYOUTS[layout]
        a, b = _issue(ca, "a.example"), _issue(ca, "b.example")
        write(tmp_path, "a", a)
        write(tmp_path, "b", b)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert _served(store, ca, "a.example") == _serial(a)
        assert _served(store, ca, "b.example") == _serial(b)
        assert sorted(store.names) == ["a.example", "b.example"]

    def test_onlyHostNamesServed(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A certificate's DNS names and IP addresses are served; an e-mail
        address in its subjectAltName is not a name to serve.
        """
        leaf = _issue(ca, "a.example", "127.0.0.1", "ops@example.org")
        _writeLoose(tmp_path, "a", leaf)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert sorted(store.names) == ["127.0.0.1", "a.example"]
        assert _served(store, ca, "a.example") == _serial(leaf)

    def test_allLayoutsAtOnce(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        One directory may mix the three layouts; a Kubernetes volume's
        timestamped directory is not counted a second time.
        """
        leaves = {layout: _issue(ca, f"{layout}.example") for layout in _LAYOUTS}
        for layout, leaf in leaves.items():
            _LAYOUTS[layout](tmp_path / layout, layout, leaf)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        for layout, leaf in leaves.items():
            assert _served(store, ca, f"{layout}.example") == _serial(leaf)
        assert len(store.names) == 3

    def test_unknownSingleLabelNameGetsDefault(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A name of one label (no dot, so no wildcard can match it) that is
        not served gets the default certificate.
        """
        leaf = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a", leaf)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert store.certificateFor("intranet").serialNumber == _serial(leaf)  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        "asked", ["A.Example", "a.example.", "a.EXAMPLE."], ids=["case", "dot", "both"]
    )
    def test_caseAndTrailingDot(
        self, tmp_path: Path, ca: trustme.CA, asked: str
    ) -> None:
        """
        Names are compared without case and without a trailing dot.
        """
        a = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a", a)
        _writeLoose(tmp_path, "z", _issue(ca, "z.example"))
        store = ReloadingCertificateStore(
            str(tmp_path), reactor=_clock(), unknownNames="refuse"
        )
        assert store.certificateFor(asked) is not None
        assert store.certificateFor(asked).serialNumber == _serial(a)  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        "asked",
        ["a..example", "x" * 70 + ".example", "", "bücher.example", " "],
        ids=["empty label", "long label", "empty", "unicode", "space"],
    )
    def test_oddNamesGetTheDefault(
        self, tmp_path: Path, ca: trustme.CA, asked: str
    ) -> None:
        """
        C{certificateFor} a name no certificate has, even one that is not a
        host name at all, says the default certificate rather than raise.
        """
        default = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a", default)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert store.certificateFor(asked).serialNumber == _serial(default)  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("asked", "wildcard"),
        [("x.w.example", True), ("w.example", False), ("y.x.w.example", False)],
    )
    def test_wildcardOneLabelDeep(
        self, tmp_path: Path, ca: trustme.CA, asked: str, wildcard: bool
    ) -> None:
        """
        A wildcard certificate serves names one label below it, no deeper,
        and not the name itself.
        """
        star = _issue(ca, "*.w.example")
        _writeLoose(tmp_path, "star", star)
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(
            str(tmp_path), reactor=_clock(), unknownNames="refuse"
        )
        assert _served(store, ca, asked) == (_serial(star) if wildcard else None)

    def test_exactBeatsWildcard(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        An exact name wins over a wildcard covering it.
        """
        _writeLoose(tmp_path, "star", _issue(ca, "*.w.example"))
        exact = _issue(ca, "x.w.example")
        _writeLoose(tmp_path, "x", exact)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert _served(store, ca, "x.w.example") == _serial(exact)


class TestDefault:
    """
    Clients without SNI or naming an unknown host get the default, or are
    refused.
    """

    @pytest.mark.parametrize("asked", [None, "unknown.example"])
    def test_explicitDefault(
        self, tmp_path: Path, ca: trustme.CA, asked: str | None
    ) -> None:
        """
        With a default certificate given, it is what such clients get.
        """
        _writeLoose(tmp_path / "d", "a", _issue(ca, "a.example"))
        default = _issue(ca, "unknown.example", "localhost")
        certificate = tmp_path / "default.crt"
        key = tmp_path / "default.key"
        certificate.write_bytes(default.cert_chain_pems[0].bytes())
        key.write_bytes(default.private_key_pem.bytes())
        store = ReloadingCertificateStore(
            str(tmp_path / "d"), str(certificate), str(key), reactor=_clock()
        )
        assert store.certificateFor(asked or "nothing.example").serialNumber == _serial(
            default
        )  # type: ignore[union-attr]
        assert _served(store, ca, asked) == _serial(default)

    def test_firstNameIsDefault(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Without a default certificate, the name that sorts first gives it,
        exact names before wildcards.
        """
        b = _issue(ca, "b.example")
        a = _issue(ca, "a.example")
        _writeLoose(tmp_path, "star", _issue(ca, "*.a.example"))
        _writeLoose(tmp_path, "b", b)
        _writeLoose(tmp_path, "a", a)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert _served(store, ca, None) == _serial(a)

    @pytest.mark.parametrize("asked", [None, "unknown.example"])
    def test_refuseUnknown(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        asked: str | None,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """
        With unknownNames="refuse" those handshakes fail with an alert, and
        nothing is printed to stderr (no traceback per refused handshake).
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(
            str(tmp_path), reactor=_clock(), unknownNames="refuse"
        )
        result = handshake(store, clientOptions(ca, hostname=asked))
        assert not result.succeeded
        assert "alert" in result.failureText()
        assert capsys.readouterr().err == ""
        assert _served(store, ca, "a.example") is not None

    def test_unknownNamesOpenNoFile(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Handshakes for unknown names open no file (counted by an audit hook).
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        clients = [clientOptions(ca, hostname=f"n{i}.example") for i in range(20)]
        opened: list[object] = []
        counting = [True]

        def hook(event: str, args: tuple[object, ...]) -> None:
            if counting[0] and event == "open":
                opened.append(args[0])

        sys.addaudithook(hook)
        try:
            for client in clients:
                handshake(store, client)
        finally:
            counting[0] = False
        assert opened == []


class TestValidity:
    """
    Among several certificates for a name, validity periods decide.
    """

    def test_latestNotAfterWins(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Of two valid certificates, the one that expires later is served.
        """
        later = _issue(ca, "a.example", notAfter=_NOW + 60 * _DAY)
        _writeLoose(tmp_path, "late", later)
        _writeLoose(
            tmp_path, "early", _issue(ca, "a.example", notAfter=_NOW + 30 * _DAY)
        )
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert _served(store, ca, "a.example") == _serial(later)

    def test_futureHeldBackThenServedWithoutReload(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A certificate whose notBefore is in the future is not served until
        then, and is served from then on without any reload.
        """
        clock = _clock()
        current = _issue(ca, "a.example", notAfter=_NOW + 30 * _DAY)
        future = _issue(
            ca, "a.example", notBefore=_NOW + _DAY, notAfter=_NOW + 90 * _DAY
        )
        _writeLoose(tmp_path, "current", current)
        _writeLoose(tmp_path, "future", future)
        store = ReloadingCertificateStore(str(tmp_path), reactor=clock)
        assert store.certificateFor("a.example").serialNumber == _serial(current)  # type: ignore[union-attr]
        clock.advance(_DAY.total_seconds() + 1)
        assert store.certificateFor("a.example").serialNumber == _serial(future)  # type: ignore[union-attr]

    def test_futureRemovedBeforeValidNeverServed(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A held-back certificate deleted before its notBefore is never
        served, though it would have won: once both moments have passed,
        the other held-back certificate is served.
        """
        clock = _clock()
        current = _issue(ca, "a.example", notAfter=_NOW + 30 * _DAY)
        sooner = _issue(
            ca, "a.example", notBefore=_NOW + _DAY, notAfter=_NOW + 90 * _DAY
        )
        deleted = _issue(
            ca, "a.example", notBefore=_NOW + 2 * _DAY, notAfter=_NOW + 99 * _DAY
        )
        _writeLoose(tmp_path, "current", current)
        _writeLoose(tmp_path, "sooner", sooner)
        path = _writeLoose(tmp_path, "deleted", deleted)
        store = ReloadingCertificateStore(str(tmp_path), reactor=clock)
        path.unlink()
        (tmp_path / "deleted.key.pem").unlink()
        store.reload()
        clock.advance((3 * _DAY).total_seconds())
        assert store.certificateFor("a.example").serialNumber == _serial(sooner)  # type: ignore[union-attr]

    def test_otherCertificateKeepsServingWhenOneRemoved(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        Of two certificates for a name, removing the one served leaves the
        other serving it.
        """
        later = _issue(ca, "a.example", notAfter=_NOW + 60 * _DAY)
        earlier = _issue(ca, "a.example", notAfter=_NOW + 30 * _DAY)
        path = _writeLoose(tmp_path, "late", later)
        _writeLoose(tmp_path, "early", earlier)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        path.unlink()
        (tmp_path / "late.key.pem").unlink()
        result = store.reload()
        assert result.replaced == ("a.example",)
        assert _served(store, ca, "a.example") == _serial(earlier)

    def test_expiredOnlyWhenNothingValid(
        self, tmp_path: Path, ca: trustme.CA, logEvents: list[LogEvent]
    ) -> None:
        """
        An expired certificate is served only while nothing valid exists,
        with a warning naming it.
        """
        expired = _issue(
            ca, "a.example", notBefore=_NOW - 90 * _DAY, notAfter=_NOW - _DAY
        )
        path = _writeLoose(tmp_path, "old", expired)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert store.certificateFor("a.example").serialNumber == _serial(expired)  # type: ignore[union-attr]
        assert any(
            e.get("source") == str(path) and "expired" in e["log_format"]
            for e in logEvents
        )
        fresh = _issue(ca, "a.example")
        _writeLoose(tmp_path, "new", fresh)
        store.reload()
        assert store.certificateFor("a.example").serialNumber == _serial(fresh)  # type: ignore[union-attr]

    def test_expiryWithoutReload(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        When the served certificate expires, a later-starting valid one for
        the same name takes over at that moment, with no reload.
        """
        clock = _clock()
        ending = _issue(ca, "a.example", notAfter=_NOW + _DAY)
        # Valid too, but expiring earlier than `ending`'s successor would:
        # it is chosen only once `ending` is gone.
        other = _issue(ca, "a.example", notAfter=_NOW + _DAY / 2)
        successor = _issue(
            ca, "a.example", notBefore=_NOW + _DAY / 2, notAfter=_NOW + 40 * _DAY
        )
        for name, leaf in [("e", ending), ("o", other), ("s", successor)]:
            _writeLoose(tmp_path, name, leaf)
        store = ReloadingCertificateStore(str(tmp_path), reactor=clock)
        assert store.certificateFor("a.example").serialNumber == _serial(ending)  # type: ignore[union-attr]
        clock.advance((_DAY / 2).total_seconds() + 1)
        assert store.certificateFor("a.example").serialNumber == _serial(successor)  # type: ignore[union-attr]


class TestKeyTypes:
    """
    RSA and ECDSA certificates for one name are served together.
    """

    @pytest.mark.parametrize("rsaOnly", [True, False], ids=["rsa-client", "any-client"])
    def test_eachClientGetsWhatItSupports(
        self, tmp_path: Path, ca: trustme.CA, rsaOnly: bool
    ) -> None:
        """
        A client offering only RSA cipher suites gets the RSA certificate;
        other clients get the ECDSA one.
        """
        rsa = _issue(ca, "a.example", keyType=trustme.KeyType.RSA)
        ecdsa = _issue(ca, "a.example", keyType=trustme.KeyType.ECDSA)
        _writeLoose(tmp_path, "rsa", rsa)
        _writeLoose(tmp_path, "ecdsa", ecdsa)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        client = (
            _RSAOnlyClient(ca, "a.example")
            if rsaOnly
            else clientOptions(ca, "a.example")
        )
        result = handshake(store, client)
        assert result.succeeded, result.failureText()
        assert result.serverCertificate is not None
        expected = rsa if rsaOnly else ecdsa
        assert result.serverCertificate.serial_number == _serial(expected)


class TestReload:
    """
    A reload parses only what changed, and reports it.
    """

    @pytest.mark.parametrize("layout", sorted(_LAYOUTS))
    def test_replaced(self, tmp_path: Path, ca: trustme.CA, layout: str) -> None:
        """
        A renewed certificate is served after a reload, for a known name;
        only its file is parsed again.
        """
        write = _LAYOUTS[layout]
        write(tmp_path, "a", _issue(ca, "a.example"))
        b = _issue(ca, "b.example")
        write(tmp_path, "b", b)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        renewed = _issue(ca, "a.example")
        write(tmp_path, "a", renewed)
        result = store.reload()
        assert result.succeeded and result.changed
        assert result.replaced == ("a.example",)
        assert result.parsed == (1 if layout != "tls" else 2)
        assert _served(store, ca, "a.example") == _serial(renewed)
        assert _served(store, ca, "b.example") == _serial(b)

    def test_unchangedParsesNothing(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A reload with nothing changed parses nothing and changes nothing.
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        result = store.reload()
        assert (result.succeeded, result.changed, result.parsed) == (True, False, 0)

    @pytest.mark.parametrize("layout", sorted(_LAYOUTS))
    def test_addedAndRemoved(self, tmp_path: Path, ca: trustme.CA, layout: str) -> None:
        """
        New names start being served and names whose files were removed
        stop, in every layout.
        """
        write = _LAYOUTS[layout]
        write(tmp_path / "a", "a", _issue(ca, "a.example"))
        write(tmp_path / "b", "b", _issue(ca, "b.example"))
        store = ReloadingCertificateStore(
            str(tmp_path), reactor=_clock(), unknownNames="refuse"
        )
        shutil.rmtree(tmp_path / "b")
        c = _issue(ca, "c.example")
        write(tmp_path / "c", "c", c)
        result = store.reload()
        assert (result.added, result.removed) == (("c.example",), ("b.example",))
        assert _served(store, ca, "b.example") is None
        assert _served(store, ca, "c.example") == _serial(c)

    def test_badFileRefusesOnlyItself(
        self, tmp_path: Path, ca: trustme.CA, logEvents: list[LogEvent]
    ) -> None:
        """
        A damaged file is refused with a message naming it; its names keep
        their last good certificate and other changes still apply.
        """
        a = _issue(ca, "a.example")
        path = _writeLoose(tmp_path, "a", a)
        _writeLoose(tmp_path, "b", _issue(ca, "b.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        failures: list[StoreReloadResult] = []
        store.addReloadCallbacks(onFailure=failures.append)
        path.write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated\n")
        renewed = _issue(ca, "b.example")
        _writeLoose(tmp_path, "b", renewed)
        result = store.reload()
        assert not result.succeeded
        assert result.error is not None and result.error.path == str(path)
        assert result.replaced == ("b.example",)
        assert _served(store, ca, "a.example") == _serial(a)
        assert _served(store, ca, "b.example") == _serial(renewed)
        assert failures == [result]
        errors = [e for e in logEvents if e.get("path") == str(path)]
        assert len(errors) == 1
        assert b"PRIVATE" not in str(errors[0]).encode()

    def test_badFileAtStartRefused(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        At start-up a bad file stops the store with the file and the reason.
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        (tmp_path / "bad.pem").write_bytes(b"not a certificate")
        with pytest.raises(CredentialError) as raised:
            ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert raised.value.path == str(tmp_path / "bad.pem")

    def test_keyOpenSSLRefusesIsRefused(self, tmp_path: Path) -> None:
        """
        An RSA key too short for OpenSSL's security level is refused when
        the file is read, naming it, not at the name's first handshake.
        """
        key = rsa.generate_private_key(65537, 1024)  # noqa: S505 (the point)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(_NOW - _DAY)
            .not_valid_after(_NOW + _DAY)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName("weak.example")]), False
            )
            .sign(key, hashes.SHA256())
        )
        path = tmp_path / "weak.pem"
        path.write_bytes(
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            + certificate.public_bytes(Encoding.PEM)
        )
        with pytest.raises(CredentialError, match="RSA key of 1024 bits") as raised:
            ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert raised.value.path == str(path)

    def test_emptyDirectoryRefused(self, tmp_path: Path) -> None:
        """
        A directory with nothing to serve, and no default, is refused.
        """
        with pytest.raises(CredentialError, match="no certificate"):
            ReloadingCertificateStore(str(tmp_path), reactor=_clock())

    def test_renewedKnownNameWithoutUnknownOne(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A Kubernetes ..data swap is picked up by a reload, although no
        client asked for an unknown name (Twisted's tls: would keep the old
        certificate).
        """
        _writeKubernetes(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        renewed = _issue(ca, "a.example")
        _writeKubernetes(tmp_path, "a", renewed)
        store.reload()
        assert _served(store, ca, "a.example") == _serial(renewed)


class TestClientsAndProtocols:
    """
    Client-certificate settings and ALPN apply to every name.
    """

    @pytest.mark.parametrize("name", ["a.example", "b.example"])
    def test_clientCertificateRequiredForEveryName(
        self, tmp_path: Path, ca: trustme.CA, name: str
    ) -> None:
        """
        With a client CA, every name refuses clients without a certificate
        and accepts those with one.
        """
        _writeLoose(tmp_path / "d", "a", _issue(ca, "a.example"))
        _writeLoose(tmp_path / "d", "b", _issue(ca, "b.example"))
        clientCA = trustme.CA()
        bundle = tmp_path / "clients.pem"
        bundle.write_bytes(clientCA.cert_pem.bytes())
        store = ReloadingCertificateStore(
            str(tmp_path / "d"), clientCAFile=str(bundle), reactor=_clock()
        )
        anonymous = handshake(
            store, clientOptions(ca, hostname=name, maximumVersion=SSL.TLS1_2_VERSION)
        )
        assert not anonymous.succeeded
        withCertificate = handshake(
            store,
            clientOptions(ca, hostname=name, clientCert=clientCA.issue_cert("client")),
        )
        assert withCertificate.succeeded, withCertificate.failureText()
        assert withCertificate.clientCertificateSeenByServer is not None

    def test_alpnAfterSwitch(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        HTTP/2 is negotiated over ALPN after the switch to a name's context.
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        result = handshake(
            store,
            clientOptions(ca, hostname="a.example", protocols=[b"h2", b"http/1.1"]),
            serverProtocols=[b"h2", b"http/1.1"],
        )
        assert result.negotiatedProtocol == b"h2"

    def test_smallCacheStillServesEveryName(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        With room for one built context, names taking turns are each served
        their own certificate.
        """
        leaves = {n: _issue(ca, f"{n}.example") for n in "abc"}
        for n, leaf in leaves.items():
            _writeLoose(tmp_path, n, leaf)
        store = ReloadingCertificateStore(str(tmp_path), cacheSize=1, reactor=_clock())
        for n in "abcab":
            assert _served(store, ca, f"{n}.example") == _serial(leaves[n])


class TestChains:
    """
    Loose certificates are chained by issuer.
    """

    def test_intermediateFromAnotherFile(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A leaf issued by an intermediate kept in another file is sent with
        that intermediate, so a client trusting only the root accepts it;
        a renewed intermediate is sent after a reload.
        """
        intermediate = ca.create_child_ca()
        leaf = _issue(intermediate, "a.example")
        (tmp_path / "intermediate.pem").write_bytes(intermediate.cert_pem.bytes())
        _writeLoose(tmp_path, "a", leaf)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert _served(store, ca, "a.example") == _serial(leaf)

        (tmp_path / "intermediate.pem").write_bytes(ca.cert_pem.bytes())
        store.reload()
        assert _served(store, ca, "a.example") is None


class TestSteppedReload:
    """
    A reload spread over reactor iterations does what a reload does.
    """

    @pytest.mark.parametrize("others", [0, 450], ids=["alone", "among 450 entries"])
    def test_resultAfterReactorSteps(
        self, tmp_path: Path, ca: trustme.CA, others: int
    ) -> None:
        """
        The stepped reload finishes in later reactor iterations (a directory
        of hundreds of entries is listed a few hundred at a time) and fires
        with the result; the renewed certificate is served from then on.
        """
        clock = _clock()
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        for number in range(others):
            (tmp_path / f"access-{number}.log").write_bytes(b"")
        store = ReloadingCertificateStore(str(tmp_path), reactor=clock)
        renewed = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a", renewed)
        # A new entry: the directory is listed again.
        (tmp_path / "access-new.log").write_bytes(b"")
        results: list[StoreReloadResult] = []
        store.reloadInSteps().addCallback(results.append)
        assert results == []
        for _ in range(10):
            clock.advance(0)
        assert [r.replaced for r in results] == [("a.example",)]
        assert _served(store, ca, "a.example") == _serial(renewed)

    def test_reloadDuringSteppedOne(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A reload called while a stepped one runs finishes that one first;
        both report, and nothing is counted twice.
        """
        clock = _clock()
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=clock)
        _writeLoose(tmp_path, "b", _issue(ca, "b.example"))
        stepped: list[StoreReloadResult] = []
        store.reloadInSteps().addCallback(stepped.append)
        now = store.reload()
        for _ in range(10):
            clock.advance(0)
        assert [r.added for r in stepped] == [("b.example",)]
        assert (now.added, now.changed) == ((), False)
        assert sorted(store.names) == ["a.example", "b.example"]


class TestSIGHUP:
    """
    SIGHUP reloads a store in reactor steps, and systemd hears of the end.
    """

    def test_systemdReadyAfterSteppedReload(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        After SIGHUP, systemd gets C{RELOADING=1} at once but C{READY=1}
        only when the store's stepped reload has finished.
        """
        clock = _clock()
        _writeLoose(tmp_path / "d", "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path / "d"), reactor=clock)
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(str(tmp_path / "notify"))
        receiver.settimeout(5)
        notifier = notifySystemd({"NOTIFY_SOCKET": str(tmp_path / "notify")}, [store])
        assert notifier is not None
        queue = CallsFromThreads()
        reloader = reloadOnSIGHUP([store], reactor=queue)  # type: ignore[arg-type]
        try:
            assert b"READY=1" in receiver.recv(65536)
            renewed = _issue(ca, "a.example")
            _writeLoose(tmp_path / "d", "a", renewed)
            os.kill(os.getpid(), signal.SIGHUP)
            queue.runUntil(lambda: reloader.reloads == 1)
            assert b"RELOADING=1" in receiver.recv(65536)
            receiver.settimeout(0.05)
            with pytest.raises(TimeoutError):
                receiver.recv(65536)
            assert store.certificateFor("a.example").serialNumber != _serial(renewed)  # type: ignore[union-attr]
            for _ in range(10):
                clock.advance(0)
            receiver.settimeout(5)
            assert b"READY=1" in receiver.recv(65536)
            assert store.certificateFor("a.example").serialNumber == _serial(renewed)  # type: ignore[union-attr]
        finally:
            reloader.uninstall()
            notifier.stopFollowing()
            receiver.close()


class TestSettingsAndReports:
    """
    The default certificate, client CAs, options, results and queued reloads.
    """

    def test_defaultAndClientCAsReload(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A renewed default certificate and a new client-CA bundle are picked
        up by a reload; a broken bundle is refused, naming it, and the old
        CAs stay trusted.
        """
        _writeLoose(tmp_path / "d", "a", _issue(ca, "a.example"))
        default = tmp_path / "default.pem"
        default.write_bytes(_pem(_issue(ca, "default.example")))
        clients, others = trustme.CA(), trustme.CA()
        bundle = tmp_path / "clients.pem"
        bundle.write_bytes(clients.cert_pem.bytes())
        store = ReloadingCertificateStore(
            str(tmp_path / "d"),
            str(default),
            clientCAFile=str(bundle),
            clientAuth="optional",
            reactor=_clock(),
        )
        assert store.clientCAFile == str(bundle)
        assert str(default) in store.watchedPaths()
        renewed = _issue(ca, "default.example")
        default.write_bytes(_pem(renewed))
        bundle.write_bytes(others.cert_pem.bytes())
        result = store.reload()
        assert result.changed and result.succeeded, str(result)
        assert store.certificate is not None
        assert store.certificate.serialNumber == _serial(renewed)
        client = clientOptions(
            ca, hostname="a.example", clientCert=others.issue_cert("client")
        )
        assert handshake(store, client).succeeded

        bundle.write_bytes(b"not a bundle")
        refused = store.reload()
        assert refused.error is not None and refused.error.path == str(bundle)
        assert "refused" in str(refused)
        assert store.lastResult is refused
        assert handshake(store, client).succeeded

    def test_brokenDefaultKeepsServing(
        self, tmp_path: Path, ca: trustme.CA, logEvents: list[LogEvent]
    ) -> None:
        """
        A default certificate file turned bad is refused, naming it, and
        logged once; clients without SNI still get the previous default and
        the other names are still served.
        """
        a = _issue(ca, "a.example")
        _writeLoose(tmp_path / "d", "a", a)
        default = tmp_path / "default.pem"
        first = _issue(ca, "default.example")
        default.write_bytes(_pem(first))
        store = ReloadingCertificateStore(
            str(tmp_path / "d"), str(default), reactor=_clock()
        )
        default.write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated\n")
        result = store.reload()
        assert not result.succeeded
        assert result.error is not None and result.error.path == str(default)
        assert _served(store, ca, None) == _serial(first)
        assert _served(store, ca, "a.example") == _serial(a)
        refusals = [e for e in logEvents if e["log_level"].name == "error"]
        assert len(refusals) == 1 and str(default) in formatEvent(refusals[0])

    def test_directoryGoneKeepsServing(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A directory that can no longer be listed is a refusal naming it;
        every name keeps its certificate.
        """
        a = _issue(ca, "a.example")
        _writeLoose(tmp_path / "d", "a", a)
        store = ReloadingCertificateStore(str(tmp_path / "d"), reactor=_clock())
        (tmp_path / "d").rename(tmp_path / "elsewhere")
        result = store.reload()
        assert not result.succeeded and not result.changed
        assert result.error is not None
        assert result.error.path == str(tmp_path / "d")
        assert result.error.reason.startswith("cannot list the directory: ")
        assert _served(store, ca, "a.example") == _serial(a)

    def test_watchedPaths(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Without client CAs, the watched paths are the directory, the files
        found in it and the default certificate's, each once.
        """
        _writeLoose(tmp_path / "d", "a", _issue(ca, "a.example"))
        default = tmp_path / "default.pem"
        default.write_bytes(_pem(_issue(ca, "default.example")))
        store = ReloadingCertificateStore(
            str(tmp_path / "d"), str(default), reactor=_clock()
        )
        directory = tmp_path / "d"
        expected = [directory, directory / "a.pem", directory / "a.key.pem", default]
        assert sorted(store.watchedPaths()) == sorted(str(path) for path in expected)

    def test_noRoomForContextsRefused(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A context cache with room for nothing is refused at construction.
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        with pytest.raises(ValueError, match="room for 1 or more, not 0"):
            ReloadingCertificateStore(str(tmp_path), cacheSize=0, reactor=_clock())

    @pytest.mark.parametrize(
        "options",
        [{"unknownNames": "maybe"}, {"privateKeyFile": "key.pem"}],
        ids=["unknownNames", "key-without-certificate"],
    )
    def test_contradictionsRefused(
        self, tmp_path: Path, options: dict[str, str]
    ) -> None:
        """
        Options that make no sense are refused before anything is read.
        """
        with pytest.raises(ValueError):
            ReloadingCertificateStore(str(tmp_path), reactor=_clock(), **options)  # type: ignore[arg-type]

    def test_unchangedResultAndContext(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        An unchanged reload says so; the store also hands out a context for
        code that asks for one, and names its directory in its repr.
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert str(store.reload()).startswith("unchanged: 1 names")
        assert isinstance(store.getContext(), SSL.Context)
        assert str(tmp_path) in repr(store)

    def test_steppedReloadsQueue(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Stepped reloads asked for while one runs are served by one more run
        after it, which sees their changes.
        """
        clock = _clock()
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=clock)
        first: list[StoreReloadResult] = []
        later: list[StoreReloadResult] = []
        store.reloadInSteps().addCallback(first.append)
        _writeLoose(tmp_path, "b", _issue(ca, "b.example"))
        store.reloadInSteps().addCallback(later.append)
        store.reloadInSteps().addCallback(later.append)
        for _ in range(20):
            clock.advance(0)
        assert len(first) == 1 and len(later) == 2
        assert later[0] is later[1]
        assert "b.example" in first[0].added + later[0].added

    def test_certbotRootSkipsArchive(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Pointed at /etc/letsencrypt, only live/ is read: old keys and
        requests under archive/, keys/ and csr/ are left alone.
        """
        leaf = _issue(ca, "a.example")
        _writeCertbot(tmp_path, "a", leaf)
        (tmp_path / "keys").mkdir()
        (tmp_path / "keys" / "0000_key-certbot.pem").write_bytes(b"junk")
        (tmp_path / "csr").mkdir()
        (tmp_path / "csr" / "0000_csr-certbot.pem").write_bytes(b"junk")
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert _served(store, ca, "a.example") == _serial(leaf)


def _pem(leaf: trustme.LeafCert) -> bytes:
    return leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes()


class TestFilesOnDisk:
    """
    What the store makes of unchanged rewrites, broken pairs, loops and
    junk.
    """

    @pytest.mark.parametrize("layout", sorted(_LAYOUTS))
    def test_sameBytesRewrittenParsesNothing(
        self, tmp_path: Path, ca: trustme.CA, layout: str
    ) -> None:
        """
        Files rewritten with the same bytes are read and hashed, not parsed,
        and change nothing.
        """
        leaf = _issue(ca, "a.example")
        written = _LAYOUTS[layout](tmp_path, "a", leaf)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        written.write_bytes(written.read_bytes())
        os.utime(written, ns=(1, 1))
        result = store.reload()
        assert (result.changed, result.parsed, result.succeeded) == (False, 0, True)

    @pytest.mark.parametrize("layout", ["certbot", "kubernetes"])
    @pytest.mark.parametrize("badKey", ["junk", "another certificate's"])
    def test_badKeyInPairKeepsLastGood(
        self, tmp_path: Path, ca: trustme.CA, layout: str, badKey: str
    ) -> None:
        """
        In a pair layout, a key file that turns to junk, or to a valid key
        that is not the certificate's, is refused on reload, naming the key
        file as the pair names it; the name keeps its certificate.
        """
        leaf = _issue(ca, "a.example")
        _LAYOUTS[layout](tmp_path, "a", leaf)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        keyFile = (
            tmp_path / "live" / "a" / "privkey.pem"
            if layout == "certbot"
            else tmp_path / "a" / "tls.key"
        )
        keyFile.resolve().write_bytes(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n"
            if badKey == "junk"
            else _issue(ca, "b.example").private_key_pem.bytes()
        )
        result = store.reload()
        assert not result.succeeded
        assert result.error is not None and result.error.path == str(keyFile)
        assert _served(store, ca, "a.example") == _serial(leaf)

    def test_amongHundredsOfOtherFiles(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A directory of hundreds of other entries (read a few hundred at a
        time) serves the one pair in it and ignores the rest.
        """
        leaf = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a", leaf)
        for number in range(450):
            (tmp_path / f"access-{number}.log").write_bytes(b"")
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert list(store.names) == ["a.example"]
        assert _served(store, ca, "a.example") == _serial(leaf)

    def test_selfSignedServed(self, tmp_path: Path) -> None:
        """
        A self-signed certificate is served alone, without a chain, to a
        client that trusts it.
        """
        certificate, key = selfSigned(
            "self", "self.example", _NOW - _DAY, _NOW + _DAY, isCA=True
        )
        path = tmp_path / "self.pem"
        certPEM, keyPEM = pemOf(certificate, key)
        path.write_bytes(keyPEM + certPEM)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        client = clientOptions(path, hostname="self.example")
        result = handshake(store, client)
        assert result.succeeded, result.failureText()
        assert result.serverCertificate == certificate

    def test_ecParametersBesideKey(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A key file that starts with the curve's parameters, as
        C{openssl ecparam -genkey} writes it, serves its certificate.
        """
        leaf = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a", leaf)
        keyFile = tmp_path / "a.key.pem"
        keyFile.write_bytes(
            b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
            b"-----END EC PARAMETERS-----\n" + keyFile.read_bytes()
        )
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert _served(store, ca, "a.example") == _serial(leaf)

    def test_symlinkLoopEnteredOnce(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A symlink back up the tree does not make the walk loop or find
        anything twice.
        """
        _writeLoose(tmp_path / "d", "a", _issue(ca, "a.example"))
        (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
        store = ReloadingCertificateStore(str(tmp_path / "d"), reactor=_clock())
        assert list(store.names) == ["a.example"]

    def test_junkCertificateRefused(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A well-framed PEM block that is not a certificate is refused at
        start-up, naming the file.
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        junk = tmp_path / "junk.pem"
        junk.write_bytes(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        with pytest.raises(CredentialError, match="not a valid certificate") as raised:
            ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert raised.value.path == str(junk)


def _reissued(ca: trustme.CA, leaf: trustme.LeafCert) -> bytes:
    """
    The certificate of C{leaf} issued again by C{ca}, for the same key (as
    C{certbot --reuse-key} renews), with a new serial; PEM.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    old = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    caCertificate = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    caKey = load_pem_private_key(ca.private_key_pem.bytes(), None)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(caCertificate.subject)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc + _DAY)
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(caKey, hashes.SHA256()).public_bytes(  # type: ignore[arg-type]
        Encoding.PEM
    )


class TestDirectoryOverTime:
    """
    What a directory does between reloads: kept listings, keys shared by
    renewals, sites added a half at a time.
    """

    def test_keptListingSeesNewFile(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A directory untouched for a while is not listed again on reload, and
        a file added to it later is still found (adding it changes the
        directory).
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        old = _NOW.timestamp() - 3600
        os.utime(tmp_path, (old, old))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        assert store.reload().parsed == 0
        assert store.reload().parsed == 0
        added = _issue(ca, "b.example")
        _writeLoose(tmp_path, "b", added)
        result = store.reload()
        assert result.added == ("b.example",)
        assert _served(store, ca, "b.example") == _serial(added)

    def test_renewalWithSameKeyInAnotherFile(
        self, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        A renewal for the same key written to a new file is served (the
        later notAfter wins), and keeps being served once the old
        certificate's file is deleted.
        """
        leaf = _issue(ca, "a.example")
        _writeLoose(tmp_path, "a", leaf)
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        renewed = _reissued(ca, leaf)
        (tmp_path / "a-renewed.pem").write_bytes(renewed)
        assert store.reload().succeeded
        serial = x509.load_pem_x509_certificate(renewed).serial_number
        assert _served(store, ca, "a.example") == serial
        (tmp_path / "a.pem").unlink()
        assert store.reload().succeeded
        assert _served(store, ca, "a.example") == serial

    def test_newSiteCertificateBeforeKey(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        A new site's certificate written before its key is refused, and not
        served; once the key is there, the site is.
        """
        _writeLoose(tmp_path, "a", _issue(ca, "a.example"))
        store = ReloadingCertificateStore(str(tmp_path), reactor=_clock())
        site = _issue(ca, "b.example")
        (tmp_path / "b.pem").write_bytes(site.cert_chain_pems[0].bytes())
        result = store.reload()
        assert not result.succeeded
        assert result.error is not None
        assert result.error.path == str(tmp_path / "b.pem")
        assert "b.example" not in store.names
        (tmp_path / "b.key.pem").write_bytes(site.private_key_pem.bytes())
        result = store.reload()
        assert result.succeeded and result.added == ("b.example",)
        assert _served(store, ca, "b.example") == _serial(site)
