# -*- test-case-name: tests.test_endpoint -*-
# Twisted's endpoint and failure modules are not annotated; calling them is
# fine, so only that strict check is relaxed, for this module alone.
# mypy: disallow-untyped-calls=False
"""
The C{tlsreload:} server endpoint: Twisted's C{ssl:} endpoint, reloading.

Changing C{ssl:} to C{tlsreload:} in an endpoint description is all a program
needs to get hitless certificate rotation, wherever Twisted takes a
description: L{serverFromString <twisted.internet.endpoints.serverFromString>},
C{twistd web --listen}, C{twist web --listen}.  So the keys and defaults are
those of C{ssl:} where the two overlap.

Everything that can be checked is checked when the description is parsed,
files included: a server with a bad description must refuse to start, not
start and fail its first handshake.  Triggers that act on the running process
(the SIGHUP handler, file watching) are set up when the endpoint starts
listening.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import (
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
    wrapServerTLS,
)
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    IReactorFromThreads,
    IReactorTCP,
    IReactorTime,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from ._descriptions import (
    PREFIX,
    address,
    path,
    period,
    portNumber,
    problem,
    refuseEmptyPositional,
    text,
    yesNo,
)
from ._errors import CredentialError, quoted
from ._factory import ClientAuth, ReloadingContextFactory
from ._operations import ensureOperations
from ._registry import IReloadable
from ._sighup import ensureProcessWideSIGHUP, joinProcessWideSIGHUP
from ._watching import FileWatcher, watcherForEndpoint

__all__ = ["ReloadingServerEndpoint", "TLSReloadParser"]

# What each key means, for the "unknown key" message and the docs' sake.
_KEYS = {
    "port": "TCP port to listen on (may also be given first, without port=)",
    "privateKey": "PEM file with the private key (required)",
    "certKey": "PEM file with the certificate (default: privateKey)",
    "extraCertChain": "PEM file with intermediate certificates",
    "interface": "address to listen on (default: all IPv4 addresses)",
    "backlog": "listen queue length (default: 50)",
    "clientCA": "PEM bundle of CAs that issue client certificates",
    "clientAuth": "required or optional (default: required with clientCA)",
    "passphraseFile": "file whose first line decrypts the private key",
    "sighup": "yes or no: reload on SIGHUP (default: yes)",
    "watch": "seconds (0.1 or more) between checks of the files for changes"
    " (default: 0, off)",
    "interval": "seconds (0.1 or more) between unconditional reloads (default: 0, off)",
}

# Keys of Twisted's ssl: endpoint that we refuse with a reason rather than
# with "unknown key", since people will bring them along when switching.
_UNSUPPORTED = {
    "sslmethod": (
        "protocol versions are Twisted's defaults (TLS 1.2 or newer); remove it"
    ),
    "dhParameters": (
        "finite-field Diffie-Hellman is not supported; ECDHE key exchange"
        " is always available, so remove it"
    ),
}


def _backlog(value: str) -> int:
    try:
        backlog = int(value)
    except ValueError:
        backlog = 0
    if backlog < 1:
        raise problem(f"backlog must be a positive whole number, not {quoted(value)}")
    return backlog


def _clientAuth(value: str | None, clientCA: str | None) -> ClientAuth | None:
    if value is None:
        return None
    if value not in ("required", "optional"):
        raise problem(f"clientAuth must be required or optional, not {quoted(value)}")
    if clientCA is None:
        raise problem(
            f"clientAuth={value} needs clientCA=<file>: the CAs whose client"
            " certificates to accept"
        )
    return value  # type: ignore[return-value]


@implementer(IStreamServerEndpoint)
class ReloadingServerEndpoint:
    """
    A TLS server endpoint serving a L{ReloadingContextFactory}, which also
    sets up the triggers that make the factory reload.

    This is what a C{tlsreload:} description becomes; programs may also build
    one directly.

    @ivar contextFactory: What every accepted connection's TLS comes from;
        add reload callbacks to it to hear about rotations.
    @ivar port: The TCP port to listen on (0 for any free one).
    @ivar interface: The address to listen on; an IPv6 address listens on
        IPv6, anything else on IPv4.  Empty for every IPv4 address.
    @ivar backlog: The listen queue length.
    @ivar sighup: Whether listening hands L{contextFactory} to the
        process-wide SIGHUP handler (installing it if need be), which reloads
        the factories of every endpoint that asked for it.
    @ivar watch: Seconds between checks of the files for changes; 0 for none.
    @ivar interval: Seconds between unconditional reloads; 0 for none.
    """

    # The seam through which listening installs the SIGHUP handler; tests
    # replace it to keep the test process's signal handling untouched.
    _ensureSIGHUP: Callable[[IReactorFromThreads | None, IReloadable], None] = (
        staticmethod(ensureProcessWideSIGHUP)
    )

    def __init__(
        self,
        reactor: IReactorTCP,
        contextFactory: ReloadingContextFactory,
        port: int,
        interface: str = "",
        backlog: int = 50,
        *,
        sighup: bool = True,
        watch: float = 0.0,
        interval: float = 0.0,
    ) -> None:
        """
        @param reactor: Provides L{IReactorTCP} and L{IReactorTime}, and
            L{IReactorFromThreads} for SIGHUP, as every real reactor does.
            SIGHUP reloads are scheduled with that reactor's
            C{callFromThread}; with a reactor that lacks it (a test double
            such as L{MemoryReactor <twisted.internet.testing.MemoryReactor>})
            listening logs a warning and they are scheduled on the global
            reactor instead.  A warning, not a refusal, because SIGHUP is on
            by default and such a reactor is otherwise perfectly usable.
        @param contextFactory: Where every connection's TLS comes from.
        @param port: The TCP port to listen on (0 for any free one).
        @param interface: The address to listen on; empty for every IPv4
            address.  (A description may give an IPv6 address in brackets,
            as in URLs; the parser removes them.)
        @param backlog: The listen queue length.
        @param sighup: Whether listening makes SIGHUP reload
            C{contextFactory}.
        @param watch: Seconds between checks of the files for changes; 0 for
            none.
        @param interval: Seconds between unconditional reloads; 0 for none.

        @raise ValueError: If C{watch} or C{interval} is neither 0 nor a
            number of seconds from 0.1 up: faster timers would only burn
            CPU.
        """
        self._reactor = reactor
        self.contextFactory = contextFactory
        self.port = port
        self.interface = interface
        self.backlog = backlog
        self.sighup = sighup
        self.watch = period("watch", watch)
        self.interval = period("interval", interval)
        transport: IStreamServerEndpoint
        if isIPv6Address(interface):
            transport = TCP6ServerEndpoint(reactor, port, backlog, interface)
        else:
            transport = TCP4ServerEndpoint(reactor, port, backlog, interface)
        self._tlsEndpoint = wrapServerTLS(
            contextFactory, transport, IReactorTime(reactor, None)
        )

    def __repr__(self) -> str:
        # getattr: see ReloadingContextFactory.__repr__.
        return (
            f"<ReloadingServerEndpoint port={getattr(self, 'port', None)} "
            f"interface={getattr(self, 'interface', None)!r}"
            f" {getattr(self, 'contextFactory', None)!r}>"
        )

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen with TLS from L{contextFactory}, and start the reload triggers
        this endpoint was configured with.

        See L{IStreamServerEndpoint.listen}.
        """
        if self.sighup:
            joinProcessWideSIGHUP(
                self._reactor, self.contextFactory, "listen", self._ensureSIGHUP
            )
        listening = self._tlsEndpoint.listen(protocolFactory)
        listening.addCallback(self._startOperations)
        if self.watch or self.interval:
            listening.addCallback(self._startWatching)
        return listening

    def _startOperations(self, port: IListeningPort) -> IListeningPort:
        ensureOperations(self._reactor)
        return port

    def _startWatching(self, port: IListeningPort) -> IListeningPort | Deferred[Any]:
        """
        Start a file watcher for the factory, tied to C{port}: stopping the
        port stops the watcher.
        """
        try:
            watcher = watcherForEndpoint(
                self.contextFactory,
                IReactorTime(self._reactor, None),
                self.watch,
                self.interval,
            )
            watcher.start()
        except Exception:
            # An endpoint whose reload triggers could not start must not be
            # left serving: stop listening, then report why.
            failure = Failure()
            stopping = maybeDeferred(port.stopListening)
            return stopping.addBoth(lambda _: failure)
        return _WatchedPort(port, watcher)


@implementer(IListeningPort)
class _WatchedPort:
    """
    A listening port that stops its file watcher when it stops listening.
    """

    def __init__(self, port: IListeningPort, watcher: FileWatcher) -> None:
        self._port = port
        self.watcher = watcher

    def __getattr__(self, name: str) -> Any:
        # Ports have more than IListeningPort (.factory, .port, .socket...);
        # keep them reachable for code that looks.
        return getattr(self._port, name)

    def startListening(self) -> None:
        self._port.startListening()

    def stopListening(self) -> Deferred[None] | None:
        self.watcher.stop()
        return self._port.stopListening()

    def getHost(self) -> IAddress:
        return self._port.getHost()


@implementer(IStreamServerEndpointStringParser)
class TLSReloadParser:
    """
    Parse C{tlsreload:} endpoint descriptions.

    The C{twisted/plugins} module of this package registers an instance with
    Twisted's plugin system; the logic lives here so that the plugin module
    can stay light.
    """

    prefix = PREFIX

    def parseStreamServer(
        self, reactor: Any, *args: object, **kwargs: object
    ) -> ReloadingServerEndpoint:
        """
        Build a L{ReloadingServerEndpoint} from a description's values,
        loading the files now.

        @raise ValueError: If the description is wrong: an unknown key, a
            missing or malformed value.  The message says which.
        @raise txtlsreload.CredentialError: If a file cannot be used; the
            message names the file and the reason.
        """
        try:
            return self._parse(
                reactor,
                [text(a) for a in args],
                {key: text(value) for key, value in kwargs.items()},
            )
        except (ValueError, CredentialError) as e:
            # Under twistd this reaches the user as a traceback; what is wrong
            # is all in the message, and our frames would only push it further
            # up the screen.
            raise e.with_traceback(None) from None

    def _parse(
        self, reactor: Any, positional: list[str], options: dict[str, str]
    ) -> ReloadingServerEndpoint:
        for key in options:
            if key in _UNSUPPORTED:
                raise problem(f"{key} is not supported: {_UNSUPPORTED[key]}")
            if key not in _KEYS:
                raise problem(
                    f"unknown key {quoted(key)}; known keys: {', '.join(_KEYS)}"
                    " (keys are case-sensitive)"
                )

        refuseEmptyPositional(positional, options, ["interface"])
        if len(positional) > 1:
            raise problem(
                f"unexpected value {quoted(positional[1])}: only the port may be"
                " given without a key=; did you mean privateKey=...?"
            )
        if positional and "port" in options:
            raise problem("port given twice, with and without port=")
        portText = positional[0] if positional else options.get("port")
        if portText is None:
            raise problem("no port given, as in tlsreload:8443:privateKey=...")
        port = portNumber(portText, lowest=0)

        if "privateKey" not in options:
            raise problem(
                "privateKey=<file> is required: the PEM file with the private key"
            )
        privateKey = path("privateKey", options["privateKey"])
        assert privateKey is not None
        certKey = path("certKey", options.get("certKey")) or privateKey
        extraCertChain = path("extraCertChain", options.get("extraCertChain"))
        clientCA = path("clientCA", options.get("clientCA"))
        passphraseFile = path("passphraseFile", options.get("passphraseFile"))
        clientAuth = _clientAuth(options.get("clientAuth"), clientCA)
        backlog = _backlog(options.get("backlog", "50"))
        sighup = yesNo("sighup", options.get("sighup", "yes"))
        watch = period("watch", options.get("watch", "0"))
        interval = period("interval", options.get("interval", "0"))
        factory = ReloadingContextFactory(
            certificateFile=certKey,
            privateKeyFile=privateKey,
            extraChainFile=extraCertChain,
            clientCAFile=clientCA,
            clientAuth=clientAuth,
            passphraseFile=passphraseFile,
        )
        return ReloadingServerEndpoint(
            reactor,
            factory,
            port,
            address(options.get("interface", "")),
            backlog,
            sighup=sighup,
            watch=watch,
            interval=interval,
        )
