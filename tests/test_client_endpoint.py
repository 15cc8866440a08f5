"""
Tests for the C{tlsreload:} client endpoint description and its plugin.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import trustme
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import (
    IHostResolution,
    IResolutionReceiver,
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, SynchronousResolver
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.plugin import getPlugins
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from twisted.plugins.txtlsreload_client import tlsreloadClientParser
from txtlsreload import (
    ClientReloadResult,
    CredentialError,
    ReloadingClientContextFactory,
    ReloadingClientEndpoint,
)

from .peers import (
    Outcome,
    Peer,
    connectOnce,
    writeCA,
    writeClient,
)
from .processes import waitFor
from .reactors import (
    ThreadedMemoryReactor,
    runInReactor,
    sighupReloader,
)
from .tlshelpers import writeLeaf

ROOT = Path(__file__).parent.parent

# What clientFromString calls for a tlsreload: description.
parseClientEndpoint: Any = tlsreloadClientParser.parseStreamClient


def connectWith(peer: Peer, description: str) -> Outcome:
    """
    Start C{peer}, connect to it with the endpoint C{description} (C{{port}}
    is filled in) from a reactor of the test's own, and report the outcome.
    """

    def scenario(reactor: Any) -> Generator[Any, Any, Outcome]:
        port = yield peer.listen(reactor)
        endpoint = clientFromString(reactor, description.format(port=port))
        outcome: Outcome = yield connectOnce(endpoint)
        return outcome

    result: Outcome = runInReactor(scenario)
    return result


class _RecordingResolver(SynchronousResolver):
    """
    Resolves every name as a memory reactor does, remembering the names it
    was asked for.
    """

    def __init__(self) -> None:
        self.names: list[str] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        *args: Any,
        **kwargs: Any,
    ) -> IHostResolution:
        self.names.append(hostName)
        return super().resolveHostName(resolutionReceiver, hostName, *args, **kwargs)


class TestPlugin:
    """
    Twisted finds the parser, and loading the plugin stays cheap.
    """

    def test_found(self) -> None:
        """
        The plugin system offers a C{tlsreload} client parser.
        """
        parsers = [
            p
            for p in getPlugins(IStreamClientEndpointStringParserWithReactor)
            if p.prefix == "tlsreload"
        ]
        assert len(parsers) == 1
        assert verifyObject(IStreamClientEndpointStringParserWithReactor, parsers[0])

    def test_importIsLight(self) -> None:
        """
        Importing the plugin module (as C{twistd --help} does) imports
        neither OpenSSL nor txtlsreload.
        """
        code = (
            "import sys, twisted.plugins.txtlsreload_client;"
            "print(sorted(m for m in sys.modules"
            " if m.split('.')[0] in ('OpenSSL', 'txtlsreload', 'cryptography')))"
        )
        completed = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            timeout=20,
            check=True,
        )
        assert completed.stdout.strip() == b"[]"


class TestConnecting:
    """
    Descriptions make endpoints that connect and verify as asked, over
    loopback.
    """

    @pytest.mark.parametrize(
        "description",
        [
            "tlsreload:host=127.0.0.1:port={port}:hostname=example.com:caCerts={ca}",
            "tlsreload:127.0.0.1:{port}:hostname=example.com:caCerts={ca}",
            "tlsreload:[127.0.0.1]:{port}:hostname=example.com:caCerts={ca}",
        ],
    )
    def test_hostnameVerifiedNotHost(
        self,
        startPeer: Callable[..., Peer],
        ca: trustme.CA,
        caFile: Path,
        description: str,
    ) -> None:
        """
        C{hostname} is the name verified, while C{host} is where to connect.
        """
        peer = startPeer("txtlsreload", ca, ("example.com",))
        outcome = connectWith(
            peer, description.replace("{ca}", str(caFile)) + ":sighup=no"
        )
        assert outcome.succeeded, outcome.error

    def test_hostVerifiedByDefault(
        self, startPeer: Callable[..., Peer], ca: trustme.CA, caFile: Path
    ) -> None:
        """
        Without C{hostname}, C{host} is verified: an IP address against the
        certificate's IP addresses, which a DNS-only certificate lacks.
        """
        peer = startPeer("txtlsreload", ca, ("example.com",))
        outcome = connectWith(
            peer, f"tlsreload:127.0.0.1:{{port}}:caCerts={caFile}:sighup=no"
        )
        assert not outcome.succeeded
        assert "is not valid for 127.0.0.1: its names are example.com" in outcome.error

    @pytest.mark.parametrize("separateKey", [False, True])
    def test_clientCertificate(
        self,
        startPeer: Callable[..., Peer],
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
        separateKey: bool,
    ) -> None:
        """
        C{certKey} (with the key in it or in C{privateKey}) is presented to
        the server.
        """
        peer = startPeer("txtlsreload", ca, ("localhost",), clientCA=ca)
        if separateKey:
            cert, key, serial = writeLeaf(ca, tmp_path, name="client")
            files = f"certKey={cert}:privateKey={key}"
        else:
            serial = writeClient(ca, tmp_path / "client.pem")
            files = f"certKey={tmp_path / 'client.pem'}"
        outcome = connectWith(
            peer,
            f"tlsreload:host=localhost:port={{port}}:caCerts={caFile}:{files}"
            ":sighup=no",
        )
        assert outcome.succeeded, outcome.error
        assert outcome.clientSerialSeenByServer == serial

    @pytest.mark.parametrize(
        ("host", "bindAddress", "expected"),
        [
            ("127.0.0.1", "127.0.0.2", ("127.0.0.1", "127.0.0.2")),
            (r"\:\:1", r"\:\:1", ("::1", "::1")),
            (r"[\:\:1]", r"[\:\:1]", ("::1", "::1")),
        ],
    )
    def test_timeoutAndBindAddress(
        self, caFile: Path, host: str, bindAddress: str, expected: tuple[str, str]
    ) -> None:
        """
        C{host}, C{timeout} and C{bindAddress} reach the TCP connection
        attempt; IPv6 addresses have their colons escaped, and may be in
        brackets as in URLs, which are removed.
        """
        reactor = MemoryReactorClock()
        resolver = _RecordingResolver()
        reactor.installNameResolver(resolver)
        endpoint = clientFromString(
            reactor,
            f"tlsreload:host={host}:port=8443:caCerts={caFile}"
            f":timeout=7.5:bindAddress={bindAddress}:sighup=no",
        )
        endpoint.connect(Factory.forProtocol(Protocol))
        reactor.advance(1)
        _, port, _, timeout, bound = reactor.tcpClients[0]
        assert (resolver.names, port, timeout, bound) == (
            [expected[0]],
            8443,
            7.5,
            (expected[1], 0),
        )

    def test_relativePathsMadeAbsolute(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        caFile: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """
        File names are resolved when parsed, so reloads after a change of
        directory read the same files.
        """
        writeClient(ca, tmp_path / "client.pem")
        monkeypatch.chdir(tmp_path)
        endpoint = parseClientEndpoint(
            MemoryReactorClock(),
            "localhost",
            "443",
            caCerts="ca.pem",
            certKey="client.pem",
        )
        assert endpoint.contextFactory.watchedPaths() == [
            str(caFile),
            str(tmp_path / "client.pem"),
        ]

    def test_isClientEndpoint(self, caFile: Path) -> None:
        """
        The result is a client endpoint exposing its reloading creator.
        """
        endpoint = parseClientEndpoint(
            MemoryReactorClock(), host="localhost", port="443", caCerts=str(caFile)
        )
        assert verifyObject(IStreamClientEndpoint, endpoint)
        assert isinstance(endpoint, ReloadingClientEndpoint)
        assert endpoint.contextFactory.hostname == "localhost"
        assert endpoint.contextFactory.credentials.trustedCAs == 1


class TestBadDescriptions:
    """
    Mistakes in a description fail at parse time with a message saying what
    is wrong.
    """

    @pytest.mark.parametrize(
        ("args", "kwargs", "message"),
        [
            ((), {"host": "h", "port": "1", "ca": "x"}, "unknown key(s) 'ca'"),
            ((), {"port": "443"}, "host is required"),
            (("h",), {}, "port is required"),
            (("h", "x"), {}, "port must be a number from 1 to 65535, not 'x'"),
            (("h", "0"), {}, "port must be"),
            (("h", "70000"), {}, "port must be"),
            (("h", "443", "extra"), {}, "unexpected value 'extra'"),
            (("h", "443"), {"host": "h"}, "host given twice"),
            (("h", "443"), {"timeout": "0"}, "timeout must be a number of seconds"),
            (("h", "443"), {"timeout": "soon"}, "timeout must be"),
            (("h", "443"), {"watch": "-1"}, "watch must be 0 (off) or at least 0.1"),
            (("h", "443"), {"interval": "nan"}, "interval must be"),
            (
                ("h", "443"),
                {"watch": "0.0001"},
                "watch must be 0 (off) or at least 0.1 seconds, not '0.0001'",
            ),
            (
                ("h", "443"),
                {"interval": "0.05"},
                "interval must be 0 (off) or at least 0.1 seconds, not '0.05'",
            ),
            (("h", "443"), {"sighup": "maybe"}, "sighup must be yes or no"),
            (("h", "443"), {"privateKey": "k.pem"}, "privateKey= needs certKey"),
            (("h", "443"), {"passphraseFile": "p"}, "passphraseFile= needs certKey"),
            (("h", "443"), {"caCerts": ""}, "caCerts is empty"),
            (("h", "443"), {"hostname": "a b"}, "hostname:"),
        ],
    )
    def test_refused(
        self, args: tuple[str, ...], kwargs: dict[str, str], message: str
    ) -> None:
        """
        Unknown keys, missing or malformed values raise L{ValueError} naming
        the key and the problem.
        """
        with pytest.raises(ValueError) as raised:
            parseClientEndpoint(MemoryReactorClock(), *args, **kwargs)
        assert str(raised.value).startswith("tlsreload: ")
        assert message in str(raised.value)

    @pytest.mark.parametrize(
        ("description", "key"),
        [
            ("tlsreload:host=::1:port=443", "host"),
            ("tlsreload:::1:443", "host"),
            ("tlsreload:host=fe80::1:port=443", "host"),
            ("tlsreload:localhost:443:bindAddress=::1", "bindAddress"),
            ("tlsreload:host=localhost:port=443:bindAddress=[::1]", "bindAddress"),
        ],
    )
    def test_unescapedColons(self, description: str, key: str) -> None:
        """
        Unescaped colons in an address are reported as such, with the
        escaped spelling for the key concerned, not as a stray value or a
        key given twice.
        """
        with pytest.raises(ValueError) as raised:
            clientFromString(MemoryReactorClock(), description)
        assert str(raised.value) == (
            "tlsreload: empty value between two colons; colons inside a value"
            f" (as in an IPv6 address) must be escaped as \\:, as in {key}=\\:\\:1"
        )

    def test_missingFile(self, tmp_path: Path) -> None:
        """
        A CA bundle that does not exist fails at parse time, naming it.
        """
        missing = tmp_path / "nope.pem"
        with pytest.raises(CredentialError) as raised:
            clientFromString(
                MemoryReactorClock(), f"tlsreload:localhost:443:caCerts={missing}"
            )
        assert raised.value.path == str(missing)
        assert raised.value.reason == "file not found"


class TestConstructor:
    """
    A L{ReloadingClientEndpoint} built in Python checks its arguments.
    """

    @pytest.mark.parametrize("key", ["watch", "interval"])
    @pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, 0.0001, 0.09])
    def test_badSecondsRefused(self, caFile: Path, key: str, value: float) -> None:
        """
        A negative, infinite or NaN C{watch} or C{interval}, or one shorter
        than 0.1 seconds, is refused when the endpoint is built, naming the
        argument and the value, rather than at the first connection.
        """
        creator = ReloadingClientContextFactory("localhost", str(caFile))
        with pytest.raises(ValueError) as raised:
            ReloadingClientEndpoint(
                MemoryReactorClock(), "localhost", 443, creator, **{key: value}
            )
        assert str(raised.value) == (
            f"tlsreload: {key} must be 0 (off) or at least 0.1 seconds, not {value!r}"
        )

    @pytest.mark.parametrize("value", [0, 0.1, 2.5])
    def test_goodSecondsAccepted(self, caFile: Path, value: float) -> None:
        """
        0 (off) and any period from 0.1 seconds are kept as given.
        """
        creator = ReloadingClientContextFactory("localhost", str(caFile))
        endpoint = ReloadingClientEndpoint(
            MemoryReactorClock(),
            "localhost",
            443,
            creator,
            watch=value,
            interval=value,
        )
        assert (endpoint.watch, endpoint.interval) == (value, value)


class TestTriggers:
    """
    The endpoint starts SIGHUP reloading and file watching when it first
    connects.
    """

    @pytest.mark.usefixtures("noProcessWideSIGHUP")
    @pytest.mark.parametrize(("sighup", "installs"), [("yes", True), ("no", False)])
    def test_sighupOnFirstConnect(
        self, caFile: Path, sighup: str, installs: bool
    ) -> None:
        """
        The first connection installs the process-wide SIGHUP handler (unless
        C{sighup=no}); parsing alone does not.
        """
        reactor = ThreadedMemoryReactor()
        endpoint = parseClientEndpoint(
            reactor, "localhost", "443", caCerts=str(caFile), sighup=sighup
        )
        assert sighupReloader() is None
        endpoint.connect(Factory.forProtocol(Protocol))
        reloader = sighupReloader()
        endpoint.connect(Factory.forProtocol(Protocol))
        assert (reloader is not None) is installs
        assert sighupReloader() is reloader

    @pytest.mark.usefixtures("noProcessWideSIGHUP")
    @pytest.mark.parametrize("threaded", [True, False])
    def test_sighupReactor(self, caFile: Path, threaded: bool) -> None:
        """
        A real SIGHUP reloads on the endpoint's reactor; a reactor that
        cannot be called from threads is replaced by the global one, with a
        warning saying so.
        """
        reactor = ThreadedMemoryReactor() if threaded else MemoryReactorClock()
        endpoint = parseClientEndpoint(reactor, "localhost", "443", caCerts=str(caFile))
        with capturedLogs() as events:
            endpoint.connect(Factory.forProtocol(Protocol))
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        reloader = sighupReloader()
        assert reloader is not None
        if threaded:
            assert warnings == []
            # This reactor runs what the handler hands it at once.
            os.kill(os.getpid(), signal.SIGHUP)
            waitFor(lambda: reloader.reloads or None, timeout=5)
        else:
            assert len(warnings) == 1
            assert "scheduled on the global reactor" in warnings[0]
            assert str(caFile) in warnings[0]

    @pytest.mark.usefixtures("noProcessWideSIGHUP")
    def test_realSIGHUPThroughEndpoint(
        self,
        startPeer: Callable[..., Peer],
        ca: trustme.CA,
        caFile: Path,
    ) -> None:
        """
        Through the endpoint's own process-wide handler, a real SIGHUP makes
        a server from a newly trusted CA acceptable.
        """
        newCA = trustme.CA()
        peer = startPeer("txtlsreload", newCA, ("localhost",))

        def scenario(reactor: Any) -> Generator[Any, Any, tuple[Outcome, Outcome]]:
            port = yield peer.listen(reactor)
            endpoint = clientFromString(
                reactor, f"tlsreload:localhost:{port}:caCerts={caFile}"
            )
            before = yield connectOnce(endpoint)
            assert signal.getsignal(signal.SIGHUP) not in (
                signal.SIG_DFL,
                signal.SIG_IGN,
            )
            writeCA(ca, caFile, newCA)
            reloaded: Deferred[ClientReloadResult] = Deferred()
            endpoint.contextFactory.credentials.addReloadCallbacks(
                onSuccess=reloaded.callback
            )
            os.kill(os.getpid(), signal.SIGHUP)
            yield reloaded
            after = yield connectOnce(endpoint)
            return before, after

        before, after = runInReactor(scenario)
        assert "certificate verify failed" in before.error
        assert after.succeeded, after.error

    @pytest.mark.parametrize("keys", ["watch=2", "interval=2", "watch=2:interval=60"])
    def test_watchReloadsChangedFiles(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path, keys: str
    ) -> None:
        """
        With C{watch} or C{interval}, a rotated client certificate is picked
        up by the next poll, without any signal.
        """
        clientFile = tmp_path / "client.pem"
        writeClient(ca, clientFile)
        reactor = MemoryReactorClock()
        endpoint = clientFromString(
            reactor,
            f"tlsreload:localhost:443:caCerts={caFile}:certKey={clientFile}"
            f":sighup=no:{keys}",
        )
        endpoint.connect(Factory.forProtocol(Protocol))
        assert endpoint.watcher is not None
        try:
            serial = writeClient(ca, clientFile)
            reactor.advance(2.5)
            seen = endpoint.contextFactory.credentials.clientCertificate
            assert seen is not None and seen.serialNumber == serial
        finally:
            endpoint.watcher.stop()

    def test_noWatchByDefault(self, caFile: Path) -> None:
        """
        Without C{watch} or C{interval} no watcher runs.
        """
        endpoint = parseClientEndpoint(
            MemoryReactorClock(), "localhost", "443", caCerts=str(caFile), sighup="no"
        )
        endpoint.connect(Factory.forProtocol(Protocol))
        assert endpoint.watcher is None


class _NoTimersReactor(MemoryReactorClock):
    """
    A memory reactor whose clock refuses to schedule anything, so that no
    file watcher can start on it.
    """

    def callLater(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no timers on this reactor")


class TestTriggersThatCannotStart:
    """
    A client endpoint whose reload triggers cannot start does not connect.
    """

    def test_connectFailsAndTriesAgain(self, caFile: Path) -> None:
        """
        If the file watcher cannot start, the connection attempt fails
        without connecting, and the next attempt tries to start it again.
        """
        reactor = _NoTimersReactor()
        endpoint = parseClientEndpoint(
            reactor, "localhost", "443", caCerts=str(caFile), sighup="no", watch="2"
        )
        for _ in range(2):
            failures: list[Failure] = []
            endpoint.connect(Factory.forProtocol(Protocol)).addErrback(failures.append)
            [failure] = failures
            assert failure.check(RuntimeError)
            assert "no timers on this reactor" in str(failure.value)
        assert reactor.tcpClients == []
