# -*- test-case-name: tests.test_client_endpoint -*-
"""
The C{tlsreload:} client endpoint description::

    tlsreload:host=HOST:port=PORT[:hostname=NAME][:caCerts=bundle.pem]
        [:certKey=client.pem][:privateKey=client.key][:passphraseFile=FILE]
        [:timeout=SECONDS][:bindAddress=ADDR][:sighup=yes|no]
        [:watch=SECONDS][:interval=SECONDS]

It is Twisted's C{tls:} client endpoint (a L{HostnameEndpoint} wrapped in
TLS) with files that reload, and C{hostname} separate from C{host}, so that a
client can connect to an address and verify a name.  The plugin module in
C{twisted/plugins} only forwards to L{parseClientEndpoint}, so that
C{twistd --help}, which imports every plugin, does not import OpenSSL for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IReactorFromThreads,
    IReactorTime,
    IStreamClientEndpoint,
)
from zope.interface import implementer

from ._client import ReloadingClientContextFactory
from ._descriptions import (
    address,
    path,
    period,
    portNumber,
    problem,
    refuseEmptyPositional,
    seconds,
    text,
    yesNo,
)
from ._errors import quoted
from ._registry import IReloadable
from ._sighup import ensureProcessWideSIGHUP, joinProcessWideSIGHUP
from ._watching import FileWatcher, watcherForEndpoint

__all__ = ["ReloadingClientEndpoint", "parseClientEndpoint"]

# Every key the description accepts, in the order the documentation gives.
_KEYS = (
    "host",
    "port",
    "hostname",
    "caCerts",
    "certKey",
    "privateKey",
    "passphraseFile",
    "timeout",
    "bindAddress",
    "sighup",
    "watch",
    "interval",
)
_POSITIONAL = ("host", "port")


@implementer(IStreamClientEndpoint)
class ReloadingClientEndpoint:
    """
    A TLS client endpoint using a L{ReloadingClientContextFactory}, which also
    sets up the triggers that make it reload.

    This is what a C{tlsreload:} client description becomes.  The triggers
    start with the first L{connect}, as a server endpoint's start when it
    listens: parsing a description has no side effects beyond reading files.

    @ivar contextFactory: What every connection's TLS comes from; its
        C{credentials} take reload callbacks.
    @ivar sighup: Whether the first connection installs the process-wide
        SIGHUP handler.
    @ivar watch: Seconds between checks of the files for changes; 0 for none.
    @ivar interval: Seconds between unconditional reloads; 0 for none.
    @ivar watcher: The file watcher, once started; call its C{stop} to stop
        watching (an endpoint has no "stop" of its own).
    """

    # The seam through which connecting installs the SIGHUP handler; tests
    # replace it to keep the test process's signal handling untouched.
    _ensureSIGHUP: Callable[[IReactorFromThreads | None, IReloadable], None] = (
        staticmethod(ensureProcessWideSIGHUP)
    )

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        contextFactory: ReloadingClientContextFactory,
        *,
        timeout: float = 30,
        bindAddress: str | None = None,
        sighup: bool = True,
        watch: float = 0.0,
        interval: float = 0.0,
    ) -> None:
        """
        @param reactor: Provides L{IReactorTCP}, L{IReactorTime} and, for
            SIGHUP, L{IReactorFromThreads}, as every real reactor does.
            SIGHUP reloads are scheduled with that reactor's
            C{callFromThread}; with a reactor that lacks it (a test double
            such as L{MemoryReactor <twisted.internet.testing.MemoryReactor>})
            the first connection logs a warning and they are scheduled on the
            global reactor instead.  A warning, not a refusal, because SIGHUP
            is on by default and such a reactor is otherwise perfectly usable.
        @param host: The name or address to connect to.
        @param port: The TCP port to connect to.
        @param contextFactory: The TLS client options; they name the host the
            server's certificate must be valid for.
        @param timeout: Seconds to wait for each connection attempt.
        @param bindAddress: A local address to connect from.
        @param sighup: Whether the first connection makes SIGHUP reload the
            files of C{contextFactory}.
        @param watch: Seconds between checks of the files for changes; 0 for
            none.
        @param interval: Seconds between unconditional reloads; 0 for none.

        @raise ValueError: If C{watch} or C{interval} is neither 0 nor a
            number of seconds from 0.1 up: faster timers would only burn
            CPU.
        """
        self._reactor = reactor
        self.contextFactory = contextFactory
        self.sighup = sighup
        self.watch = period("watch", watch)
        self.interval = period("interval", interval)
        self.watcher: FileWatcher | None = None
        self._triggersStarted = False
        self._tlsEndpoint = wrapClientTLS(
            contextFactory,
            HostnameEndpoint(
                reactor,
                host,
                port,
                timeout,
                None if bindAddress is None else (bindAddress, 0),
            ),
            # Writes are batched on this clock: it must be the reactor that
            # runs the connection, not the global one.
            IReactorTime(reactor, None),
        )

    def __repr__(self) -> str:
        # getattr: see ReloadingContextFactory.__repr__.
        return f"<ReloadingClientEndpoint {getattr(self, 'contextFactory', None)!r}>"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Connect with TLS from L{contextFactory}, starting the reload triggers
        on the first call.

        See L{IStreamClientEndpoint.connect}.
        """
        if not self._triggersStarted:
            try:
                self._startTriggers()
            except Exception:
                # A client whose reload triggers could not start must not
                # connect as if they had; the next attempt tries again.
                return fail()
            self._triggersStarted = True
        return self._tlsEndpoint.connect(protocolFactory)

    def _startTriggers(self) -> None:
        if self.sighup:
            joinProcessWideSIGHUP(
                self._reactor,
                self.contextFactory.credentials,
                "connect",
                self._ensureSIGHUP,
            )
        if self.watch or self.interval:
            watcher = watcherForEndpoint(
                self.contextFactory, self._reactor, self.watch, self.interval
            )
            watcher.start()
            self.watcher = watcher


def parseClientEndpoint(
    reactor: Any, *args: object, **kwargs: object
) -> ReloadingClientEndpoint:
    """
    Build the endpoint a C{tlsreload:} client description asks for, loading
    the files now so that a bad file fails at startup, not at the first
    connection.

    C{host} and C{port} may also be given positionally
    (C{tlsreload:example.com:443}), as with Twisted's C{tls:}.

    @param reactor: The reactor from L{clientFromString
        <twisted.internet.endpoints.clientFromString>}.
    @param args: Positional values: host, then port.
    @param kwargs: Keyed values; see the module docstring.

    @raise ValueError: For an unknown key, a missing host or port, or a value
        that is not what its key needs; the message says which.
    @raise txtlsreload.CredentialError: For an unusable file; the message
        names the file and the reason.
    """
    options = _collect(args, kwargs)
    host = address(_required(options, "host"))
    port = portNumber(_required(options, "port"), lowest=1)
    hostname = options.get("hostname", host)
    timeout = seconds("timeout", options.get("timeout", "30"))
    sighup = yesNo("sighup", options.get("sighup", "yes"))
    watch = period("watch", options.get("watch", "0"))
    interval = period("interval", options.get("interval", "0"))
    bindAddress = options.get("bindAddress")
    if bindAddress is not None:
        bindAddress = address(bindAddress)
    caCerts = path("caCerts", options.get("caCerts"))
    certKey = path("certKey", options.get("certKey"))
    privateKey = path("privateKey", options.get("privateKey"))
    passphraseFile = path("passphraseFile", options.get("passphraseFile"))
    for needsCertificate in ("privateKey", "passphraseFile"):
        if needsCertificate in options and certKey is None:
            raise problem(
                f"{needsCertificate}= needs certKey=<file>: the client certificate"
            )

    try:
        creator = ReloadingClientContextFactory(
            hostname,
            caCertsFile=caCerts,
            clientCertificateFile=certKey,
            clientKeyFile=privateKey,
            passphraseFile=passphraseFile,
        )
    except ValueError as e:
        raise problem(f"hostname: {e}") from None
    return ReloadingClientEndpoint(
        reactor,
        host,
        port,
        creator,
        timeout=timeout,
        bindAddress=bindAddress,
        sighup=sighup,
        watch=watch,
        interval=interval,
    )


def _collect(args: tuple[object, ...], kwargs: dict[str, object]) -> dict[str, str]:
    """
    Put positional and keyed values in one dictionary of text, refusing
    unknown keys, extra positional values and keys given twice.
    """
    # Before the other checks: an unescaped colon in an address makes
    # positional values that those would misreport as stray or repeated.
    refuseEmptyPositional(
        [text(value) for value in args], kwargs, ["host", "bindAddress"], keyless=2
    )
    unknown = sorted(set(kwargs) - set(_KEYS))
    if unknown:
        raise problem(
            f"unknown key(s) {', '.join(map(quoted, unknown))}; known keys:"
            f" {', '.join(_KEYS)} (keys are case-sensitive)"
        )
    if len(args) > len(_POSITIONAL):
        raise problem(
            f"unexpected value {quoted(text(args[len(_POSITIONAL)]))}: only host and"
            " port may be given without a key="
        )
    options = {key: text(value) for key, value in kwargs.items()}
    for key, value in zip(_POSITIONAL, args, strict=False):
        if key in options:
            raise problem(f"{key} given twice, with and without {key}=")
        options[key] = text(value)
    return options


def _required(options: dict[str, str], key: str) -> str:
    value = options.get(key, "")
    if not value:
        raise problem(f"{key} is required, as in tlsreload:host=example.com:port=443")
    return value
