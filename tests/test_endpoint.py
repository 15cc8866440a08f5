"""
Tests for the C{tlsreload:} endpoint description: parsing, errors, what
listening does, and the plugin that makes Twisted find it.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from twisted.application.service import IServiceMaker
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.plugin import IPlugin, getPlugins
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient
from zope.interface.verify import verifyObject

from twisted.plugins.txtlsreload_plugins import tlsreloadEndpointParser
from txtlsreload import (
    CredentialError,
    ReloadingContextFactory,
    ReloadingServerEndpoint,
)

from .processes import waitFor
from .reactors import ThreadedMemoryReactor, sighupReloader
from .tlshelpers import (
    assertNoKeyMaterial,
    clientOptions,
    everythingReported,
    handshake,
    replaceAtomically,
    writeLeaf,
)

ROOT = Path(__file__).parent.parent

# Listening installs the real process-wide SIGHUP handler; take it down
# around every test so that it never outlives the test's reactor.
pytestmark = pytest.mark.usefixtures("noProcessWideSIGHUP")


def _quote(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


@pytest.fixture
def files(tmp_path: Path, ca: trustme.CA) -> tuple[Path, Path, int]:
    """
    A certificate and key issued by C{ca}, and the certificate's serial.
    """
    return writeLeaf(ca, tmp_path)


@pytest.fixture
def reactor() -> MemoryReactorClock:
    """
    A reactor that records what is listened on, with a clock.
    """
    return MemoryReactorClock()


class _NoTimersReactor(MemoryReactorClock):
    """
    A memory reactor that counts how many of its ports stopped listening, and
    whose clock refuses to schedule anything, so that no file watcher can
    start on it.
    """

    stopped = 0

    def listenTCP(self, *args: Any, **kwargs: Any) -> Any:
        port = super().listenTCP(*args, **kwargs)
        reactor = self

        class Stoppable:
            def __getattr__(self, name: str) -> Any:
                return getattr(port, name)

            def stopListening(self) -> None:
                reactor.stopped += 1

        return Stoppable()

    def callLater(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no timers on this reactor")


def _parse(reactor: MemoryReactorClock, description: str) -> ReloadingServerEndpoint:
    endpoint = serverFromString(reactor, description)
    assert isinstance(endpoint, ReloadingServerEndpoint)
    return endpoint


def _listen(endpoint: ReloadingServerEndpoint) -> IListeningPort:
    """
    Listen on C{endpoint} (on a memory reactor, at once) and return the port.
    """
    ports: list[IListeningPort] = []
    endpoint.listen(Factory.forProtocol(Protocol)).addCallback(ports.append)
    assert len(ports) == 1
    return ports[0]


def _basic(files: tuple[Path, Path, int]) -> str:
    cert, key, _ = files
    return f"privateKey={_quote(key)}:certKey={_quote(cert)}"


class TestPlugin:
    """
    Twisted finds the C{tlsreload} parser and the C{tlshello} service maker.
    """

    def test_parserPluginProvidesInterfaces(self) -> None:
        """
        The plugin Twisted finds for the C{tlsreload} prefix provides
        L{IPlugin} and L{IStreamServerEndpointStringParser}.
        """
        found = [
            p
            for p in getPlugins(IStreamServerEndpointStringParser)
            if p.prefix == "tlsreload"
        ]
        assert len(found) == 1
        assert verifyObject(IPlugin, found[0])
        assert verifyObject(IStreamServerEndpointStringParser, found[0])

    def test_parserProvidesInterface(self) -> None:
        """
        The parser the plugin delegates to provides
        L{IStreamServerEndpointStringParser} itself.
        """
        assert verifyObject(IStreamServerEndpointStringParser, tlsreloadEndpointParser)

    def test_serviceMakerFound(self) -> None:
        """
        Twisted finds an L{IServiceMaker} named C{tlshello}.
        """
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "tlshello"]
        assert len(makers) == 1
        assert verifyObject(IServiceMaker, makers[0])

    def test_pluginModuleIsLight(self, tmp_path: Path) -> None:
        """
        Importing the plugin module (as C{twistd --help} does) imports neither
        txtlsreload nor OpenSSL.
        """
        code = (
            "import sys, twisted.plugins.txtlsreload_plugins;"
            "print(sorted(m for m in sys.modules"
            " if m.split('.')[0] in ('txtlsreload', 'OpenSSL', 'cryptography')))"
        )
        output = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert output.strip() == "[]"


class TestParsing:
    """
    Good descriptions become the endpoint they describe.
    """

    def test_defaults(
        self, reactor: MemoryReactorClock, files: tuple[Path, Path, int]
    ) -> None:
        """
        Only a port and files: every IPv4 address, backlog 50, SIGHUP on,
        no watching, as with C{ssl:}.
        """
        endpoint = _parse(reactor, f"tlsreload:8443:{_basic(files)}")
        assert verifyObject(IStreamServerEndpoint, endpoint)
        assert (endpoint.port, endpoint.interface, endpoint.backlog) == (8443, "", 50)
        assert (endpoint.sighup, endpoint.watch, endpoint.interval) == (True, 0, 0)
        assert endpoint.contextFactory.certificate.serialNumber == files[2]
        assert endpoint.contextFactory.clientAuth is None

    @pytest.mark.parametrize(
        "port", ["tlsreload:8443:{files}", "tlsreload:port=8443:{files}"]
    )
    def test_portPositionalOrNamed(
        self, reactor: MemoryReactorClock, files: tuple[Path, Path, int], port: str
    ) -> None:
        """
        The port may be given first without a name, or as C{port=}.
        """
        endpoint = _parse(reactor, port.format(files=_basic(files)))
        assert endpoint.port == 8443

    def test_certKeyDefaultsToPrivateKey(
        self, reactor: MemoryReactorClock, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        Without C{certKey}, the C{privateKey} file holds the certificate too.
        """
        cert, key, serial = writeLeaf(ca, tmp_path)
        combined = tmp_path / "combined.pem"
        combined.write_bytes(key.read_bytes() + cert.read_bytes())
        endpoint = _parse(reactor, f"tlsreload:0:privateKey={_quote(combined)}")
        assert endpoint.contextFactory.certificate.serialNumber == serial
        assert endpoint.contextFactory.watchedPaths() == [str(combined)]

    def test_everyOption(
        self,
        reactor: MemoryReactorClock,
        tmp_path: Path,
        ca: trustme.CA,
        files: tuple[Path, Path, int],
    ) -> None:
        """
        Every key reaches the factory or the endpoint.
        """
        cert, key, _ = files
        chain = tmp_path / "chain.pem"
        chain.write_bytes(ca.cert_pem.bytes())
        clientCA = tmp_path / "clients.pem"
        clientCA.write_bytes(trustme.CA().cert_pem.bytes())
        encrypted = tmp_path / "encrypted.key"
        encrypted.write_bytes(
            serialization.load_pem_private_key(key.read_bytes(), None).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"sesame"),
            )
        )
        passphrase = tmp_path / "passphrase"
        passphrase.write_bytes(b"sesame\n")
        endpoint = _parse(
            reactor,
            f"tlsreload:port=0:privateKey={_quote(encrypted)}:certKey={_quote(cert)}"
            f":extraCertChain={_quote(chain)}:clientCA={_quote(clientCA)}"
            f":clientAuth=optional:passphraseFile={_quote(passphrase)}"
            ":interface=127.0.0.1:backlog=7:sighup=no:watch=2.5:interval=3600",
        )
        factory = endpoint.contextFactory
        assert factory.files.privateKeyFile == str(encrypted)
        assert factory.files.certificateFile == str(cert)
        assert factory.files.extraChainFile == str(chain)
        assert factory.files.clientCAFile == str(clientCA)
        assert factory.files.passphraseFile == str(passphrase)
        assert factory.clientAuth == "optional"
        assert (endpoint.interface, endpoint.backlog) == ("127.0.0.1", 7)
        assert (endpoint.sighup, endpoint.watch, endpoint.interval) == (
            False,
            2.5,
            3600,
        )

    def test_clientCAAloneRequiresClientCertificates(
        self, reactor: MemoryReactorClock, files: tuple[Path, Path, int]
    ) -> None:
        """
        C{clientCA} without C{clientAuth} requires a client certificate.
        """
        cert, _, _ = files
        endpoint = _parse(
            reactor, f"tlsreload:0:{_basic(files)}:clientCA={_quote(cert)}"
        )
        assert endpoint.contextFactory.clientAuth == "required"

    @pytest.mark.parametrize(
        "value", ["yes", "no", "YES", "No", "true", "false", "on", "off", "1", "0"]
    )
    def test_yesNo(
        self, reactor: MemoryReactorClock, files: tuple[Path, Path, int], value: str
    ) -> None:
        """
        C{sighup} takes yes/no and the usual spellings of true and false.
        """
        endpoint = _parse(reactor, f"tlsreload:0:{_basic(files)}:sighup={value}")
        assert endpoint.sighup is (value.lower() in ("yes", "true", "on", "1"))

    @pytest.mark.parametrize("interface", ["\\:\\:1", "[\\:\\:1]"])
    def test_escapedIPv6Interface(
        self,
        reactor: MemoryReactorClock,
        files: tuple[Path, Path, int],
        interface: str,
    ) -> None:
        """
        An IPv6 interface with escaped colons, bare or in brackets as in
        URLs, listens on IPv6.
        """
        endpoint = _parse(
            reactor, f"tlsreload:8443:{_basic(files)}:interface={interface}"
        )
        assert endpoint.interface == "::1"
        port = _listen(endpoint)
        assert reactor.tcpServers[0][0] == 8443
        assert reactor.tcpServers[0][3] == "::1"
        assert port.getHost().type == "TCP"
        assert port.getHost().host == "::1"  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        ("keys", "watch", "interval"),
        [
            ("watch=0.1", 0.1, 0),
            ("interval=0.1", 0, 0.1),
            ("watch=0:interval=0", 0, 0),
            ("watch=0.25:interval=1e3", 0.25, 1000),
        ],
    )
    def test_shortestPeriods(
        self,
        reactor: MemoryReactorClock,
        files: tuple[Path, Path, int],
        keys: str,
        watch: float,
        interval: float,
    ) -> None:
        """
        C{watch} and C{interval} take 0 (off) and anything from 0.1 seconds.
        """
        endpoint = _parse(reactor, f"tlsreload:0:{_basic(files)}:{keys}")
        assert (endpoint.watch, endpoint.interval) == (watch, interval)

    def test_escapedColonInPath(
        self, reactor: MemoryReactorClock, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        File names with escaped colons are read from the right place.
        """
        directory = tmp_path / "a:b"
        directory.mkdir()
        cert, key, serial = writeLeaf(ca, directory)
        endpoint = _parse(
            reactor,
            f"tlsreload:0:privateKey={_quote(key)}:certKey={_quote(cert)}",
        )
        assert endpoint.contextFactory.certificate.serialNumber == serial

    def test_relativePathsResolvedAtParseTime(
        self,
        reactor: MemoryReactorClock,
        tmp_path: Path,
        ca: trustme.CA,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """
        Relative file names are made absolute when parsed, so reloads read
        the same files after the process changes directory.
        """
        writeLeaf(ca, tmp_path)
        monkeypatch.chdir(tmp_path)
        endpoint = _parse(
            reactor, "tlsreload:0:privateKey=server.key:certKey=server.crt"
        )
        monkeypatch.chdir("/")
        assert endpoint.contextFactory.watchedPaths() == [
            str(tmp_path / "server.crt"),
            str(tmp_path / "server.key"),
        ]
        _, _, newSerial = writeLeaf(ca, tmp_path)
        assert endpoint.contextFactory.reload().succeeded
        assert endpoint.contextFactory.certificate.serialNumber == newSerial

    def test_bytesDescription(
        self, reactor: MemoryReactorClock, files: tuple[Path, Path, int]
    ) -> None:
        """
        A description given as bytes works as the same text would.
        """
        endpoint = serverFromString(reactor, f"tlsreload:8443:{_basic(files)}".encode())
        assert isinstance(endpoint, ReloadingServerEndpoint)
        assert endpoint.contextFactory.certificate.serialNumber == files[2]


_UNESCAPED = (
    "empty value between two colons; colons inside a value (as in an IPv6"
    " address) must be escaped as \\:, as in interface=\\:\\:1"
)

# Each bad description (after "tlsreload:") and what its error must say.
_BAD = [
    ("{files}", "no port given"),
    ("https:{files}", "port must be a number from 0 to 65535, not 'https'"),
    ("65536:{files}", "port must be a number from 0 to 65535, not '65536'"),
    ("-1:{files}", "port must be a number from 0 to 65535, not '-1'"),
    ("port=:{files}", "port must be a number from 0 to 65535, not ''"),
    ("8443:port=8443:{files}", "port given twice"),
    ("8443:key.pem:{files}", "unexpected value 'key.pem'"),
    ("8443", "privateKey=<file> is required"),
    ("8443:certKey=cert.pem", "privateKey=<file> is required"),
    ("8443:privateKey=", "privateKey is empty"),
    ("8443:{files}:certKey=", "certKey is empty"),
    ("8443:{files}:privatekey=x.pem", "unknown key 'privatekey'"),
    ("8443:{files}:tls=yes", "unknown key 'tls'; known keys: port, privateKey"),
    ("8443:{files}:clientAuth=bogus", "clientAuth must be required or optional"),
    ("8443:{files}:clientAuth=optional", "clientAuth=optional needs clientCA="),
    ("8443:{files}:sighup=maybe", "sighup must be yes or no, not 'maybe'"),
    ("8443:{files}:watch=-1", "watch must be 0 (off) or at least 0.1 seconds"),
    ("8443:{files}:watch=soon", "watch must be 0 (off) or at least 0.1 seconds"),
    ("8443:{files}:watch=inf", "watch must be 0 (off) or at least 0.1 seconds"),
    (
        "8443:{files}:watch=0.0001",
        "watch must be 0 (off) or at least 0.1 seconds, not '0.0001'",
    ),
    ("8443:{files}:interval=-5", "interval must be 0 (off) or at least 0.1"),
    (
        "8443:{files}:interval=0.0999",
        "interval must be 0 (off) or at least 0.1 seconds, not '0.0999'",
    ),
    # Unescaped colons, as in an IPv6 address, leave empty values behind.
    ("8443:{files}:interface=::1", _UNESCAPED),
    ("8443:{files}:interface=::", _UNESCAPED),
    ("8443:{files}:interface=fe80::1", _UNESCAPED),
    ("8443:{files}:interface=[::1]", _UNESCAPED),
    ("8443::{files}", "empty value: two colons in a row, or a colon at the end"),
    ("8443:{files}:watch=1:", "empty value: two colons in a row, or a colon at"),
    (
        "8443:{files}:interface=0:0:0:0:0:0:0:1",
        "unexpected value '0' after interface=; colons inside a value",
    ),
    ("8443:{files}:backlog=0", "backlog must be a positive whole number"),
    ("8443:{files}:backlog=lots", "backlog must be a positive whole number"),
    ("8443:{files}:sslmethod=TLSv1_2_METHOD", "sslmethod is not supported"),
    ("8443:{files}:dhParameters=dh.pem", "dhParameters is not supported"),
]


class TestBadDescriptions:
    """
    A wrong description is refused when parsed, saying what is wrong.
    """

    @pytest.mark.parametrize(("description", "message"), _BAD)
    def test_refused(
        self,
        reactor: MemoryReactorClock,
        files: tuple[Path, Path, int],
        description: str,
        message: str,
    ) -> None:
        """
        The description is refused with a L{ValueError} that names the
        endpoint type and the problem.
        """
        with pytest.raises(ValueError) as raised:
            serverFromString(
                reactor, "tlsreload:" + description.format(files=_basic(files))
            )
        assert str(raised.value).startswith("tlsreload: ")
        assert message in str(raised.value)


class TestBadFiles:
    """
    Files that cannot serve are refused when parsed, naming the file.
    """

    @pytest.mark.parametrize(
        ("damage", "reason"),
        [
            ("missing", "file not found"),
            ("empty", "file is empty"),
            ("garbage", "no PEM data found"),
            ("otherKey", "private key does not match the certificate"),
            ("directory", "is a directory"),
        ],
    )
    def test_refused(
        self,
        reactor: MemoryReactorClock,
        tmp_path: Path,
        ca: trustme.CA,
        damage: str,
        reason: str,
    ) -> None:
        """
        A L{CredentialError} names the key file and the reason, and carries
        no key material.
        """
        cert, key, _ = writeLeaf(ca, tmp_path)
        original = key.read_bytes()
        if damage == "missing":
            key.unlink()
        elif damage == "empty":
            key.write_bytes(b"")
        elif damage == "garbage":
            key.write_bytes(b"not a key at all\n")
        elif damage == "otherKey":
            _, otherKey, _ = writeLeaf(ca, tmp_path, name="other")
            replaceAtomically(key, otherKey.read_bytes())
        elif damage == "directory":
            key.unlink()
            key.mkdir()
        with pytest.raises(CredentialError) as raised:
            serverFromString(
                reactor,
                f"tlsreload:0:privateKey={_quote(key)}:certKey={_quote(cert)}",
            )
        assert raised.value.path == str(key)
        assert reason in str(raised.value)
        assert "PRIVATE KEY" not in str(raised.value)
        refused = [key] if key.is_file() else []
        assertNoKeyMaterial(everythingReported(raised.value), original, *refused)

    def test_tracebackStartsAtParser(
        self, reactor: MemoryReactorClock, tmp_path: Path
    ) -> None:
        """
        The error's traceback does not reach into file loading: under twistd
        the traceback is printed, and the message is what matters.
        """
        with pytest.raises(CredentialError) as raised:
            serverFromString(reactor, f"tlsreload:0:privateKey={tmp_path}/none.pem")
        frames = [entry.path for entry in raised.traceback]
        assert not any(str(path).endswith("_loading.py") for path in frames)


class TestConstructor:
    """
    A L{ReloadingServerEndpoint} built in Python, without a description.
    """

    def test_factoryUsableDirectly(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        An endpoint can be built around an existing factory, and serves it.
        """
        cert, key, serial = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        endpoint = ReloadingServerEndpoint(
            MemoryReactorClock(), factory, 0, sighup=False
        )
        assert endpoint.contextFactory is factory
        result = handshake(endpoint.contextFactory, clientOptions(ca))
        assert result.serverCertificate is not None
        assert result.serverCertificate.serial_number == serial

    @pytest.mark.parametrize("key", ["watch", "interval"])
    @pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, 0.0001, 0.09])
    def test_badSecondsRefused(
        self, files: tuple[Path, Path, int], key: str, value: float
    ) -> None:
        """
        A negative, infinite or NaN C{watch} or C{interval}, or one shorter
        than 0.1 seconds, is refused when the endpoint is built, naming the
        argument and the value, rather than when it listens.
        """
        cert, keyFile, _ = files
        factory = ReloadingContextFactory(str(cert), str(keyFile))
        with pytest.raises(ValueError) as raised:
            ReloadingServerEndpoint(
                MemoryReactorClock(),
                factory,
                0,
                **{key: value},  # type: ignore[arg-type]
            )
        assert str(raised.value) == (
            f"tlsreload: {key} must be 0 (off) or at least 0.1 seconds, not {value!r}"
        )

    @pytest.mark.parametrize("value", [0, 0.1, 2.5])
    def test_goodSecondsAccepted(
        self, files: tuple[Path, Path, int], value: float
    ) -> None:
        """
        0 (off) and any period from 0.1 seconds are kept as given.
        """
        cert, keyFile, _ = files
        factory = ReloadingContextFactory(str(cert), str(keyFile))
        endpoint = ReloadingServerEndpoint(
            MemoryReactorClock(), factory, 0, watch=value, interval=value
        )
        assert (endpoint.watch, endpoint.interval) == (value, value)


class TestListening:
    """
    Listening serves TLS from the factory and starts the reload triggers.
    """

    def test_listensWithTLS(
        self,
        reactor: MemoryReactorClock,
        ca: trustme.CA,
        files: tuple[Path, Path, int],
    ) -> None:
        """
        The listening factory completes a real TLS handshake presenting the
        described certificate, with and without SNI.
        """
        endpoint = _parse(
            reactor, f"tlsreload:8443:{_basic(files)}:interface=127.0.0.1:backlog=9"
        )
        _listen(endpoint)
        [(port, tlsFactory, backlog, interface)] = reactor.tcpServers
        assert (port, backlog, interface) == (8443, 9, "127.0.0.1")
        assert isinstance(tlsFactory, TLSMemoryBIOFactory)
        for client in (clientOptions(ca), clientOptions(ca, hostname=None)):
            assert _servedSerial(tlsFactory, client, reactor) == files[2]

    def test_sighupInstalledOnListen(
        self,
        files: tuple[Path, Path, int],
        ca: trustme.CA,
        tmp_path: Path,
    ) -> None:
        """
        With C{sighup} on (the default), listening, not parsing, installs the
        process-wide SIGHUP handler, which a real SIGHUP then runs on this
        reactor to reload the endpoint's files, warning about nothing.
        """
        reactor = ThreadedMemoryReactor()
        endpoint = _parse(reactor, f"tlsreload:0:{_basic(files)}")
        assert sighupReloader() is None
        with capturedLogs() as events:
            _listen(endpoint)
        reloader = sighupReloader()
        assert reloader is not None
        assert not [e for e in events if e["log_level"] == LogLevel.warn]

        cert, key, _ = files
        nextCert, nextKey, nextSerial = writeLeaf(ca, tmp_path, name="next")
        replaceAtomically(key, nextKey.read_bytes())
        replaceAtomically(cert, nextCert.read_bytes())
        os.kill(os.getpid(), signal.SIGHUP)
        waitFor(lambda: reloader.reloads or None, timeout=5)

        assert endpoint.contextFactory.certificate.serialNumber == nextSerial

    def test_sighupWithoutThreadsWarns(
        self, reactor: MemoryReactorClock, files: tuple[Path, Path, int]
    ) -> None:
        """
        With a reactor that cannot be called from threads, listening still
        installs the SIGHUP handler and warns that its reloads will be
        scheduled on the global reactor.
        """
        endpoint = _parse(reactor, f"tlsreload:0:{_basic(files)}")
        with capturedLogs() as events:
            _listen(endpoint)
        assert sighupReloader() is not None
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        assert len(warnings) == 1
        assert "scheduled on the global reactor" in warnings[0]
        assert endpoint.contextFactory.files.certificateFile in warnings[0]

    def test_sighupNo(
        self, reactor: MemoryReactorClock, files: tuple[Path, Path, int]
    ) -> None:
        """
        With C{sighup=no}, listening leaves SIGHUP alone.
        """
        before = signal.getsignal(signal.SIGHUP)
        endpoint = _parse(reactor, f"tlsreload:0:{_basic(files)}:sighup=no")
        _listen(endpoint)
        assert signal.getsignal(signal.SIGHUP) == before

    def test_listenOffMainThread(self, files: tuple[Path, Path, int]) -> None:
        """
        Listening from a thread other than the main one, where no signal
        handler can be installed, still listens and logs a warning saying how
        to silence it.
        """
        endpoint = serverFromString(
            ThreadedMemoryReactor(), f"tlsreload:0:{_basic(files)}"
        )
        assert isinstance(endpoint, ReloadingServerEndpoint)
        ports: list[IListeningPort] = []
        with capturedLogs() as events:
            thread = threading.Thread(
                target=lambda: endpoint.listen(
                    Factory.forProtocol(Protocol)
                ).addCallback(ports.append)
            )
            thread.start()
            thread.join()
        assert len(ports) == 1
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        assert len(warnings) == 1
        assert "sighup=no" in warnings[0]

    def test_watchReloadsChangedFiles(
        self,
        reactor: MemoryReactorClock,
        ca: trustme.CA,
        tmp_path: Path,
        files: tuple[Path, Path, int],
    ) -> None:
        """
        With C{watch}, the files are looked at every so many seconds while
        listening, and a change is served; stopping the port stops that.
        """
        cert, key, serial = files
        endpoint = _parse(reactor, f"tlsreload:0:{_basic(files)}:watch=2")
        port = _listen(endpoint)
        assert verifyObject(IListeningPort, port)
        # What is returned stands for the real port, tied to the watcher.
        assert port.getHost() == IPv4Address("TCP", "0.0.0.0", 0)  # noqa: S104
        port.startListening()

        nextCert, nextKey, nextSerial = writeLeaf(ca, tmp_path, name="next")
        replaceAtomically(key, nextKey.read_bytes())
        replaceAtomically(cert, nextCert.read_bytes())
        [(_, tlsFactory, _, _)] = reactor.tcpServers
        reactor.advance(1.9)
        assert _servedSerial(tlsFactory, clientOptions(ca), reactor) == serial
        reactor.advance(0.1)
        reactor.advance(1)
        assert _servedSerial(tlsFactory, clientOptions(ca), reactor) == nextSerial

        port.stopListening()
        assert reactor.getDelayedCalls() == []
        writeLeaf(ca, tmp_path, name="last")
        replaceAtomically(key, (tmp_path / "last.key").read_bytes())
        replaceAtomically(cert, (tmp_path / "last.crt").read_bytes())
        reactor.advance(10)
        assert _servedSerial(tlsFactory, clientOptions(ca), reactor) == nextSerial

    def test_intervalReloadsOnATimer(
        self,
        reactor: MemoryReactorClock,
        files: tuple[Path, Path, int],
    ) -> None:
        """
        With C{interval} alone, a reload runs every so many seconds, and
        nothing else is watched.
        """
        endpoint = _parse(reactor, f"tlsreload:0:{_basic(files)}:interval=30")
        port = _listen(endpoint)
        reloads: list[object] = []
        original = endpoint.contextFactory.reload

        def counting(quietIfRepeated: bool = False) -> object:
            reloads.append(1)
            return original(quietIfRepeated)

        endpoint.contextFactory.reload = counting  # type: ignore[method-assign,assignment]
        reactor.advance(30)
        reactor.advance(30)
        assert len(reloads) == 2
        port.stopListening()
        assert reactor.getDelayedCalls() == []

    def test_watcherFailureStopsListening(self, files: tuple[Path, Path, int]) -> None:
        """
        If the file watcher cannot start, the port stops listening and the
        listen fails with the watcher's error: no server is left running
        without the reloads it was asked for.
        """
        reactor = _NoTimersReactor()
        cert, key, _ = files
        endpoint = ReloadingServerEndpoint(
            reactor,
            ReloadingContextFactory(str(cert), str(key)),
            0,
            sighup=False,
            watch=2,
        )
        failures: list[Failure] = []
        endpoint.listen(Factory.forProtocol(Protocol)).addErrback(failures.append)
        [failure] = failures
        assert failure.check(RuntimeError)
        assert "no timers on this reactor" in str(failure.value)
        assert reactor.stopped == 1

    def test_noWatchNoTimers(
        self, reactor: MemoryReactorClock, files: tuple[Path, Path, int]
    ) -> None:
        """
        Without C{watch} or C{interval}, listening schedules nothing.
        """
        endpoint = _parse(reactor, f"tlsreload:0:{_basic(files)}")
        _listen(endpoint)
        assert reactor.getDelayedCalls() == []


def _servedSerial(
    tlsFactory: TLSMemoryBIOFactory, client: object, clock: MemoryReactorClock
) -> int | None:
    """
    Connect C{client} to the server side built by C{tlsFactory} in memory and
    return the serial of the certificate it presented.
    """
    clientFactory = TLSMemoryBIOFactory(
        client, True, Factory.forProtocol(Protocol), clock=clock
    )
    clientProtocol, _, pump = connectedServerAndClient(
        lambda: tlsFactory.buildProtocol(None),
        lambda: clientFactory.buildProtocol(None),
        clock=clock,
    )
    pump.flush()
    peer = clientProtocol.getPeerCertificate()
    return None if peer is None else peer.to_cryptography().serial_number
