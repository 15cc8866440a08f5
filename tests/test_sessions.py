"""
Tests for C{sessions=True}: resumed across rotations, never across
certificates or listeners, flushed when trust changes, and off by default.
Clients are CPython C{ssl} in memory against the real Twisted TLS stack (see
L{tests.sessionhelpers}).
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
import trustme
from OpenSSL import SSL
from twisted.internet.task import Clock
from twisted.logger import LogEvent

from txtlsreload import (
    ReloadingCertificateStore,
    ReloadingContextFactory,
)

from .peers import writeCA
from .sessionhelpers import VERSIONS, SessionClient
from .tlshelpers import serialOf, writeLeaf


def factory(
    ca: trustme.CA, directory: Path, **options: object
) -> ReloadingContextFactory:
    """
    A factory serving a fresh a.example certificate from C{directory}.
    """
    certificate, key, _ = writeLeaf(ca, directory, identities=("a.example",))
    return ReloadingContextFactory(
        str(certificate),
        str(key),
        processWide=False,
        **options,  # type: ignore[arg-type]
    )


def rotate(ca: trustme.CA, directory: Path, server: ReloadingContextFactory) -> int:
    """
    Write a new a.example certificate and key and reload them.
    """
    _, _, serial = writeLeaf(ca, directory, identities=("a.example",))
    assert server.reload().changed
    return serial


def clientFiles(tmp_path: Path) -> tuple[trustme.CA, trustme.CA, Path, Path]:
    """
    Two client CAs, a client certificate from each, and a bundle of both.
    """
    first, second = trustme.CA(), trustme.CA()
    paths = []
    for name, issuer in (("client1.pem", first), ("client2.pem", second)):
        path = tmp_path / name
        issuer.issue_cert(
            "client.example"
        ).private_key_and_cert_chain_pem.write_to_path(str(path))
        paths.append(path)
    writeCA(first, tmp_path / "clients.pem", second)
    return first, second, paths[0], paths[1]


@pytest.mark.parametrize("version", VERSIONS)
class TestFactory:
    """
    Sessions on L{ReloadingContextFactory}.
    """

    def test_offByDefault(self, version: str, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Without C{sessions}, an offered session is never resumed.
        """
        server = factory(ca, tmp_path)
        client = SessionClient(ca, VERSIONS[version])
        assert client.connect(server).error is None
        second = client.connect(server)
        assert (second.error, second.reused) == (None, False)

    def test_resumedAcrossRotation(
        self, version: str, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A session made before a rotation is resumed after it (keeping the
        certificate it was made with), while new clients get the new one.
        """
        server = factory(ca, tmp_path, sessions=True)
        client = SessionClient(ca, VERSIONS[version])
        first = client.connect(server)
        assert (first.error, first.reused) == (None, False)
        newSerial = rotate(ca, tmp_path, server)
        resumed = client.connect(server)
        assert (resumed.error, resumed.reused) == (None, True)
        assert resumed.serial == first.serial
        fresh = SessionClient(ca, VERSIONS[version]).connect(server)
        assert (fresh.reused, fresh.serial) == (False, newSerial)
        # And again: the ticket a resumed TLS 1.3 session got resumes too.
        assert client.connect(server).reused

    def test_flushSessions(self, version: str, ca: trustme.CA, tmp_path: Path) -> None:
        """
        After flushSessions() an earlier session gets a full handshake, and
        the session that gives is resumable again.
        """
        server = factory(ca, tmp_path, sessions=True)
        client = SessionClient(ca, VERSIONS[version])
        client.connect(server)
        server.flushSessions()
        assert client.connect(server).reused is False
        assert client.connect(server).reused is True

    def test_flushWithoutSessions(
        self, version: str, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        flushSessions() without sessions changes nothing being served.
        """
        server = factory(ca, tmp_path)
        before = server.certificate
        server.flushSessions()
        assert server.certificate == before
        assert SessionClient(ca, VERSIONS[version]).connect(server).error is None

    def test_otherListener(self, version: str, ca: trustme.CA, tmp_path: Path) -> None:
        """
        A session is not resumed by another factory serving the same files.
        """
        one = factory(ca, tmp_path, sessions=True)
        other = ReloadingContextFactory(
            str(one.files.certificateFile),
            one.files.privateKeyFile,
            processWide=False,
            sessions=True,
        )
        client = SessionClient(ca, VERSIONS[version])
        client.connect(one)
        session = client.session
        assert client.connect(other, offer=session).reused is False
        assert client.connect(one, offer=session).reused is True

    @pytest.mark.parametrize("change", ["CA bundle", "clientAuth"])
    def test_trustChangeFlushes(
        self, version: str, change: str, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        After the client-CA bundle or clientAuth changes, a session made
        before is not resumed: the client certificate is checked again, and
        refused if its CA is no longer trusted.
        """
        first, second, client1, client2 = clientFiles(tmp_path)
        server = factory(
            ca,
            tmp_path,
            sessions=True,
            clientCAFile=str(tmp_path / "clients.pem"),
            clientAuth="optional",
        )
        trusted = SessionClient(ca, VERSIONS[version], client2)
        dropped = SessionClient(ca, VERSIONS[version], client1)
        assert trusted.connect(server).error is None
        assert dropped.connect(server).error is None
        assert trusted.connect(server).reused and dropped.connect(server).reused
        if change == "CA bundle":
            writeCA(second, tmp_path / "clients.pem")
            assert server.reload().changed
        else:
            assert server.changeClientAuthentication(
                str(tmp_path / "clients.pem"), "required"
            ).changed
        again = trusted.connect(server)
        assert (again.error, again.reused) == (None, False)
        assert trusted.connect(server).reused
        refused = dropped.connect(server)
        if change == "CA bundle":
            assert refused.error is not None and "unknown ca" in refused.error
        else:
            assert (refused.error, refused.reused) == (None, False)

    def test_timeout(self, version: str, ca: trustme.CA, tmp_path: Path) -> None:
        """
        The session timeout is the ticket lifetime TLS 1.3 clients are told
        (TLS 1.2 clients get a session ID and no lifetime).
        """
        server = factory(ca, tmp_path, sessions=True, sessionTimeout=300)
        result = SessionClient(ca, VERSIONS[version]).connect(server)
        assert result.session is not None
        expected = 300 if version == "TLS1.3" else 0
        assert result.session.ticket_lifetime_hint == expected

    @pytest.mark.parametrize("timeout", [0, -1, 1.5, True])
    def test_badTimeout(
        self, version: str, timeout: object, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A session timeout that is not a positive whole number of seconds is
        refused with the value in the message.
        """
        with pytest.raises(ValueError, match=f"not {timeout!r}"):
            factory(ca, tmp_path, sessions=True, sessionTimeout=timeout)


def store(
    ca: trustme.CA, tmp_path: Path, **options: object
) -> tuple[ReloadingCertificateStore, Path]:
    """
    A store of a.example, b.example and a multi-name c.example/d.example,
    each certificate in its own directory.
    """
    root = tmp_path / "certs"
    for name, identities in (
        ("a", ("a.example",)),
        ("b", ("b.example",)),
        ("c", ("c.example", "d.example")),
    ):
        (root / name).mkdir(parents=True)
        writeNamed(ca, root / name, identities)
    return (
        # Not registered for SIGHUP: Twisted's log buffer keeps the store
        # alive after the test, and a later test's SIGHUP would start a
        # stepped reload on this test clock, which never advances.
        ReloadingCertificateStore(
            str(root),
            reactor=_clock(),
            processWide=False,
            **options,  # type: ignore[arg-type]
        ),
        root,
    )


def writeNamed(
    ca: trustme.CA,
    directory: Path,
    identities: tuple[str, ...],
    notAfter: datetime.datetime | None = None,
) -> int:
    """
    Write a certificate for C{identities} as C{NAME.pem} and C{NAME.key.pem}
    (the C{tls:} layout) in C{directory}; return its serial.
    """
    leaf = ca.issue_cert(*identities, not_after=notAfter)
    (directory / f"{directory.name}.key.pem").write_bytes(leaf.private_key_pem.bytes())
    (directory / f"{directory.name}.pem").write_bytes(leaf.cert_chain_pems[0].bytes())
    return serialOf(directory / f"{directory.name}.pem")


def _clock() -> Clock:
    clock = Clock()
    # The store reads the time from its reactor: make it now, not 1970.
    clock.advance(time.time())
    return clock


@pytest.mark.parametrize("version", VERSIONS)
class TestStore:
    """
    Sessions on L{ReloadingCertificateStore}.
    """

    def test_notAcrossNames(self, version: str, ca: trustme.CA, tmp_path: Path) -> None:
        """
        A session made for one name is not resumed under a name served by
        another certificate, which gets its own certificate.
        """
        server, _ = store(ca, tmp_path, sessions=True)
        client = SessionClient(ca, VERSIONS[version])
        client.connect(server, "a.example")
        session = client.session
        other = client.connect(server, "b.example", offer=session)
        assert (other.error, other.reused) == (None, False)
        assert other.serial == server.certificateFor("b.example").serialNumber  # type: ignore[union-attr]

    def test_resumedAcrossRotation(
        self, version: str, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A name's session survives the rotation of its certificate file.
        """
        server, root = store(ca, tmp_path, sessions=True)
        client = SessionClient(ca, VERSIONS[version])
        first = client.connect(server, "a.example")
        serial = writeNamed(ca, root / "a", ("a.example",))
        assert server.reload().replaced == ("a.example",)
        resumed = client.connect(server, "a.example")
        assert (resumed.reused, resumed.serial) == (True, first.serial)
        fresh = SessionClient(ca, VERSIONS[version]).connect(server, "a.example")
        assert fresh.serial == serial

    def test_sameCertificate(
        self, version: str, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        Names served by one certificate share sessions: the client gets the
        certificate it would have got anyway.
        """
        server, _ = store(ca, tmp_path, sessions=True)
        client = SessionClient(ca, VERSIONS[version])
        client.connect(server, "c.example")
        assert client.connect(server, "d.example").reused

    def test_flushSessions(self, version: str, ca: trustme.CA, tmp_path: Path) -> None:
        """
        flushSessions() ends resumption for every name.
        """
        server, _ = store(ca, tmp_path, sessions=True)
        clients = {}
        for name in ("a.example", "b.example"):
            clients[name] = SessionClient(ca, VERSIONS[version])
            clients[name].connect(server, name)
        server.flushSessions()
        for name, client in clients.items():
            assert client.connect(server, name).reused is False
            assert client.connect(server, name).reused is True

    def test_clientCAChangeFlushes(
        self, version: str, ca: trustme.CA, tmp_path: Path
    ) -> None:
        """
        A rewritten client-CA bundle ends resumption: a client whose CA was
        dropped is refused at its next connection.
        """
        first, second, client1, _ = clientFiles(tmp_path)
        server, _ = store(
            ca,
            tmp_path,
            sessions=True,
            clientCAFile=str(tmp_path / "clients.pem"),
        )
        dropped = SessionClient(ca, VERSIONS[version], client1)
        dropped.connect(server, "a.example")
        assert dropped.connect(server, "a.example").reused
        writeCA(second, tmp_path / "clients.pem")
        assert server.reload().changed
        refused = dropped.connect(server, "a.example")
        assert refused.error is not None and "unknown ca" in refused.error

    def test_offByDefault(self, version: str, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Without C{sessions}, the store resumes nothing.
        """
        server, _ = store(ca, tmp_path)
        client = SessionClient(ca, VERSIONS[version])
        client.connect(server, "a.example")
        assert client.connect(server, "a.example").reused is False

    def test_nameReadDifferently(
        self,
        version: str,
        ca: trustme.CA,
        tmp_path: Path,
        logEvents: list[LogEvent],
    ) -> None:
        """
        If the certificate a name gets changes between the ClientHello being
        read and OpenSSL handling it, the handshake is refused rather than
        resumed under the other certificate's session.
        """
        server, root = store(ca, tmp_path, sessions=True)
        client = SessionClient(ca, VERSIONS[version])
        client.connect(server, "a.example")
        connection = server.serverConnectionForTLS(None)  # type: ignore[arg-type]
        connection.set_accept_state()
        hello = _clientHello(client, "a.example")
        connection.bio_write(hello)
        # Another file now serves a.example.
        (root / "z").mkdir()
        # trustme's certificates end in 3000; the latest notAfter wins.
        later = datetime.datetime(3000, 6, 1, tzinfo=datetime.timezone.utc)
        writeNamed(ca, root / "z", ("a.example", "z.example"), later)
        assert server.reload().replaced == ("a.example",)
        with pytest.raises(SSL.Error) as refused:
            connection.do_handshake()
        assert not isinstance(refused.value, SSL.WantReadError)
        assert any(
            "Refused a TLS handshake" in e.get("log_format", "") for e in logEvents
        )


def _clientHello(client: SessionClient, serverName: str) -> bytes:
    import ssl

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.context.wrap_bio(
        incoming, outgoing, server_hostname=serverName, session=client.session
    )
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


class TestConnections:
    """
    The connections a factory with sessions hands to Twisted.
    """

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http"),
            pytest.param(b"\x16\x03\x01\xff\xff" + b"\x00" * 100, id="huge record"),
            pytest.param(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\xff", id="bad hello"),
        ],
    )
    def test_hostileBytes(self, data: bytes, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Bytes that are no ClientHello are taken without an exception, and
        OpenSSL then fails the handshake with an ordinary TLS error.
        """
        server = factory(ca, tmp_path, sessions=True)
        connection = server.serverConnectionForTLS(None)  # type: ignore[arg-type]
        connection.set_accept_state()
        assert connection.bio_write(data) == len(data)
        with pytest.raises(SSL.Error) as refused:
            connection.do_handshake()
        assert not isinstance(refused.value, SSL.WantReadError)

    @pytest.mark.parametrize("sessions", [False, True])
    def test_plainWhenOff(self, sessions: bool, ca: trustme.CA, tmp_path: Path) -> None:
        """
        Without sessions, Twisted gets a plain pyOpenSSL connection (no
        ClientHello reading); with them, a subclass of it.
        """
        server = factory(ca, tmp_path, sessions=sessions)
        connection = server.serverConnectionForTLS(None)  # type: ignore[arg-type]
        assert isinstance(connection, SSL.Connection)
        assert (type(connection) is SSL.Connection) is not sessions
