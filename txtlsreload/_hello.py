# -*- test-case-name: tests.test_hello -*-
# Twisted's web, application and usage modules are not annotated; calling
# them is fine, so only that strict check is relaxed, for this module alone.
# mypy: disallow-untyped-calls=False
"""
C{twistd tlshello}: an HTTPS hello server whose certificate rotates on SIGHUP.

It is the shortest way to see txtlsreload work: C{twistd -n tlshello} on a
fresh machine makes a development certificate, serves
U{https://localhost:8443/}, and tells you how to rotate the certificate.  With
C{--cert}/C{--key} or C{--listen tlsreload:...} it serves real files.

Everything it does goes through the C{tlsreload:} endpoint, so it behaves
exactly as C{twistd web --listen tlsreload:...} would.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorTCP,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from ._devcert import (
    DEVELOPMENT_DIRECTORY,
    DevelopmentCertificate,
    ensureDevelopmentCertificate,
)
from ._endpoint import ReloadingServerEndpoint
from ._errors import CredentialError, shortened
from ._operations import ensureOperations
from ._status import adminResource
from ._store import ReloadingCertificateStore

__all__ = [
    "DEFAULT_PORT",
    "HelloResource",
    "Options",
    "makeService",
]

_log = Logger(namespace="tlshello")

DEFAULT_PORT = 8443

_HELLO = b"Hello, TLS.\n"

# What loading says of a key file without a key (see _loading): given
# --cert alone, the certificate file is taken for a combined one, and the
# user most likely forgot --key.
_NO_PRIVATE_KEY = ("holds a certificate but no private key", "no private key found")


class HelloResource(Resource):
    """
    C{GET /} says hello in plain text; every other path is not found.
    """

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        if request.postpath != [b""]:
            return notFound().render(request)  # type: ignore[no-any-return]
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return _HELLO


class Options(usage.Options):
    """
    Command line of C{twistd tlshello}.
    """

    synopsis = "[--listen DESCRIPTION ...] [--port N] [--cert FILE --key FILE]"
    longdesc = (
        "An HTTPS server that answers GET / with 'Hello, TLS.' and rotates its"
        " certificate without dropping connections: replace the files and send"
        " SIGHUP.  With no options it serves https://localhost:8443/ with a"
        " self-signed development certificate kept in ./tlshello-dev/."
    )
    optParameters = [
        [
            "port",
            None,
            None,
            f"Port of the HTTPS listener that --cert/--key or the development"
            f" certificate serve. [default: {DEFAULT_PORT}]",
            usage.portCoerce,
        ],
        [
            "cert",
            None,
            None,
            "PEM certificate file (leaf first, then its chain); listens on all"
            " addresses. [default: a development certificate, on localhost only]",
        ],
        ["key", None, None, "PEM private key file. [default: the --cert file]"],
        [
            "ca",
            None,
            None,
            "PEM bundle of CAs; clients must present a certificate from one.",
        ],
        [
            "certificates",
            None,
            None,
            "Directory of certificates, each served for the names clients ask"
            " for (SNI); --cert/--key then give the default certificate."
            " Listens on all addresses.",
        ],
        [
            "admin",
            None,
            None,
            "Also serve /metrics (Prometheus) and /status (JSON) over plain HTTP"
            " on this endpoint description, e.g. tcp:9100:interface=127.0.0.1."
            " For operators only: never the public port. [default: off]",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        Also listen on this endpoint description, usually
        tlsreload:PORT:privateKey=FILE:certKey=FILE (repeatable).
        """
        self["listen"].append(description)

    def usesShortcuts(self) -> bool:
        """
        Whether C{--port}, C{--cert}, C{--key} or C{--ca} ask for a listener,
        or nothing at all was asked for (which means the development one).
        """
        shortcuts = [
            self["port"],
            self["cert"],
            self["key"],
            self["ca"],
            self["certificates"],
        ]
        return any(value is not None for value in shortcuts) or not self["listen"]


def _hasIPv6() -> bool:
    """
    Whether this host can listen on IPv6 loopback: not every container can.
    """
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _tlsreloadDescription(
    port: int,
    interface: str,
    certificateFile: str | None,
    privateKeyFile: str | None,
    clientCAFile: str | None,
    certificates: str | None = None,
) -> str:
    parts = [f"tlsreload:port={port}", f"interface={quoteStringArgument(interface)}"]
    if certificates is not None:
        parts.append(
            f"certificates={quoteStringArgument(os.path.abspath(certificates))}"
        )
    if privateKeyFile is not None and certificateFile is not None:
        parts.append(
            f"privateKey={quoteStringArgument(os.path.abspath(privateKeyFile))}"
        )
        parts.append(f"certKey={quoteStringArgument(os.path.abspath(certificateFile))}")
    if clientCAFile is not None:
        parts.append(f"clientCA={quoteStringArgument(os.path.abspath(clientCAFile))}")
    return ":".join(parts)


@dataclass(frozen=True)
class _ListenPlan:
    """
    What the command line asks tlshello to listen on.

    @ivar descriptions: Endpoint descriptions, from C{--listen}.
    @ivar shortcut: The C{tlsreload:} description that C{--port}, C{--cert},
        C{--key} and C{--ca} (or their absence) stand for, if any.
    @ivar alsoOn: More addresses for the C{shortcut} listener, served from
        the same certificate (and so reloaded and logged once).
    @ivar development: The development certificate, if one is served.
    """

    descriptions: list[str]
    shortcut: str | None = None
    alsoOn: list[str] = field(default_factory=list)
    development: DevelopmentCertificate | None = None


def _planListeners(
    options: Options,
    developmentCertificate: Callable[[], DevelopmentCertificate],
    hasIPv6: Callable[[], bool] = _hasIPv6,
) -> _ListenPlan:
    """
    Turn the command line into endpoint descriptions.

    @param developmentCertificate: Makes or finds the development
        certificate; called only if it is needed.
    """
    descriptions = list(options["listen"])
    if not options.usesShortcuts():
        return _ListenPlan(descriptions)
    port = DEFAULT_PORT if options["port"] is None else options["port"]
    certificateFile = options["cert"] or options["key"]
    if certificateFile is not None or options["certificates"] is not None:
        # "::" also takes IPv4 connections where the system maps them (Linux
        # does by default).
        shortcut = _tlsreloadDescription(
            port,
            "::" if hasIPv6() else "",
            certificateFile,
            options["key"] or certificateFile,
            options["ca"],
            options["certificates"],
        )
        return _ListenPlan(descriptions, shortcut)
    # A self-signed development certificate has no business on a network:
    # loopback only, both families, so that https://localhost/ works whichever
    # address the client tries first.
    development = developmentCertificate()
    shortcut = _tlsreloadDescription(
        port,
        "127.0.0.1",
        development.certificateFile,
        development.privateKeyFile,
        options["ca"],
    )
    # Port 0 picks a free port per socket, so a second socket would differ.
    alsoOn = ["::1"] if port != 0 and hasIPv6() else []
    return _ListenPlan(descriptions, shortcut, alsoOn, development)


@implementer(IStreamServerEndpoint)
class _AnnouncingEndpoint:
    """
    Log where a listener can be reached once it listens.
    """

    def __init__(
        self, endpoint: IStreamServerEndpoint, description: str, admin: bool = False
    ) -> None:
        self._endpoint = endpoint
        self._description = description
        self._admin = admin
        #: The port number it listens on, once it does (told port 0, the
        #: kernel chose it).
        self.boundPort: int | None = None

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        listening = self._endpoint.listen(protocolFactory)
        listening.addCallback(self._announce)
        return listening

    def _announce(self, port: IListeningPort) -> IListeningPort:
        host = port.getHost()
        self.boundPort = getattr(host, "port", None)
        if self._admin:
            url = _url(host, tls=False)
            _log.info(
                "Admin listener (operators only) on {address}: {url}metrics"
                " and {url}status",
                address=_address(host),
                url=url,
                description=self._description,
            )
            return port
        _log.info(
            "Listening on {address}: {url}",
            address=_address(host),
            url=_url(host, self._isTLS()),
            description=self._description,
        )
        return port

    def _isTLS(self) -> bool:
        prefix = self._description.split(":", 1)[0].lower()
        return isinstance(self._endpoint, ReloadingServerEndpoint) or prefix in (
            "ssl",
            "tls",
        )


def _address(host: object) -> str:
    if isinstance(host, address.IPv6Address):
        return f"[{host.host}]:{host.port}"
    if isinstance(host, address.IPv4Address):
        return f"{host.host}:{host.port}"
    return str(host)


def _url(host: object, tls: bool) -> str:
    if not isinstance(host, address.IPv4Address | address.IPv6Address):
        return str(host)
    scheme = "https" if tls else "http"
    name = host.host
    if name in ("", "0.0.0.0", "::", "127.0.0.1", "::1"):  # noqa: S104
        name = "localhost"
    elif isinstance(host, address.IPv6Address):
        name = f"[{name}]"
    return f"{scheme}://{name}:{host.port}/"


class _HelloService(service.MultiService):
    """
    The listeners, and a start-up message with what an operator needs: where
    the certificate is and how to rotate it.
    """

    def __init__(self, development: DevelopmentCertificate | None) -> None:
        super().__init__()
        self._development = development
        self.rotatable: list[ReloadingServerEndpoint] = []
        self._announcing: dict[IStreamServerEndpoint, _AnnouncingEndpoint] = {}

    def addListener(
        self,
        endpoint: IStreamServerEndpoint,
        factory: IProtocolFactory,
        description: str,
        admin: bool = False,
    ) -> None:
        """
        Listen on C{endpoint} when the service starts.

        @param admin: This is the operators' plain-HTTP listener.
        """
        if isinstance(endpoint, ReloadingServerEndpoint):
            self.rotatable.append(endpoint)
        announcing = _AnnouncingEndpoint(endpoint, description, admin)
        self._announcing[endpoint] = announcing
        listener = StreamServerEndpointService(announcing, factory)
        # As strports.service does for twistd web: a port that cannot be
        # bound stops the start-up, instead of being logged and skipped.
        listener._raiseSynchronously = True
        listener.setServiceParent(self)

    def privilegedStartService(self) -> None:
        # twistd listens here, before dropping privileges; twist and programs
        # go straight to startService.
        with _listenErrorsEndStartup():
            super().privilegedStartService()

    def startService(self) -> None:
        with _listenErrorsEndStartup():
            super().startService()
        # Once per process, whether or not a tlsreload: listener did it:
        # expiry warnings, and READY=1 under systemd once the reactor runs.
        from twisted.internet import reactor

        ensureOperations(reactor)
        # Logged here rather than when the service is made: twistd forks into
        # the background in between, and the process id must be the final one.
        development = self._development
        if development is not None:
            self._announceDevelopment(development)
        served: set[str] = set()
        clientCAs: set[str] = set()
        for endpoint in self.rotatable:
            if not endpoint.sighup:
                continue
            factory = endpoint.contextFactory
            clientCAFile = factory.clientCAFile
            if isinstance(factory, ReloadingCertificateStore):
                # Thousands of files: name the directory, not each of them.
                _log.info(
                    "To rotate certificates, change the files under {directory}"
                    " and run: kill -HUP {pid}",
                    directory=factory.directory,
                    pid=os.getpid(),
                )
                continue
            for path in factory.watchedPaths():
                (clientCAs if path == clientCAFile else served).add(path)
        if not served:
            return
        # The certificate and key are what a rotation replaces; a client CA
        # bundle changes on its own schedule, so it is mentioned apart, not
        # listed first as if it were part of every rotation.
        also = ""
        if clientCAs:
            bundles = " and ".join(sorted(clientCAs))
            if len(clientCAs) == 1:
                also = f" (and the client CA bundle {bundles}, if it changes)"
            else:
                also = f" (and the client CA bundles {bundles}, if they change)"
        _log.info(
            "To rotate the certificate, replace {files}{also} and run: kill -HUP {pid}",
            files=" and ".join(sorted(served)),
            also=also,
            pid=os.getpid(),
        )

    def _portOf(self, endpoint: ReloadingServerEndpoint) -> int:
        """
        The port C{endpoint} listens on: the one the kernel chose, if it
        was told port 0.
        """
        announcing = self._announcing.get(endpoint)
        bound = None if announcing is None else announcing.boundPort
        return endpoint.port if bound is None else bound

    def _announceDevelopment(self, development: DevelopmentCertificate) -> None:
        """
        Say where the development certificate is and how to try it.
        """
        # The development listener is added last; every listener of it shares
        # one factory.
        shortcut = self.rotatable[-1] if self.rotatable else None
        clientCAFile = (
            None if shortcut is None else shortcut.contextFactory.clientCAFile
        )
        # With --ca, the server refuses a client without a certificate, so a
        # bare curl would only show "certificate required".
        clientOptions = clientNote = ""
        if clientCAFile is not None:
            clientOptions = " --cert client.pem --key client.key"
            clientNote = (
                f" (client.pem and client.key: a client certificate issued by"
                f" a CA in {clientCAFile}, and its key)"
            )
        _log.info(
            "Serving a self-signed development certificate, valid until"
            " {notAfter}: {certificateFile} (key: {privateKeyFile}). Try:"
            " curl --cacert {certificateFile}{clientOptions}"
            " https://localhost:{port}/{clientNote}",
            notAfter=development.notAfter.isoformat(),
            certificateFile=development.certificateFile,
            privateKeyFile=development.privateKeyFile,
            port=DEFAULT_PORT if shortcut is None else self._portOf(shortcut),
            clientOptions=clientOptions,
            clientNote=clientNote,
        )


class _StartupFailed(SystemExit, Exception):
    """
    Ends C{twistd tlshello} with a one-line message and exit status 1, once
    twistd has started the service.

    A L{SystemExit}, so that the interpreter prints the message alone
    instead of a traceback; and an L{Exception}, so that twistd running as a
    daemon still catches it and hands its message to the parent process,
    which reports it to the user's terminal.

    That hand-over sends C{"1 " + traceback.format_exception_only(...)}, cut
    to 100 bytes, and the parent shows its repr.  Named C{tlshello} in
    C{builtins}, the exception's line reads C{tlshello: <message>}, as the
    interpreter prints it without a daemon, instead of starting with this
    private class's dotted name and losing the end of the reason.
    """

    def __init__(self, message: str) -> None:
        # The interpreter prints SystemExit's code; twistd prints the class
        # name, then str(): give each the prefix once.
        super().__init__(f"tlshello: {message}")
        self._message = message

    def __str__(self) -> str:
        return self._message


_StartupFailed.__module__ = "builtins"
_StartupFailed.__qualname__ = _StartupFailed.__name__ = "tlshello"


def _cannotListen(interface: str, port: int, error: BaseException) -> str:
    where = f"[{interface}]" if ":" in interface else interface
    reason = getattr(error, "strerror", None) or str(error)
    return f"cannot listen on {where}:{port}: {reason}"


@contextmanager
def _listenErrorsEndStartup() -> Iterator[None]:
    """
    Turn a listener that cannot listen (port in use, no permission, no such
    address) into a one-line message naming the address and the reason, as
    for bad files.
    """
    try:
        yield
    except CannotListenError as e:
        interface = e.interface or "0.0.0.0"  # noqa: S104
        raise _StartupFailed(_cannotListen(interface, e.port, e.socketError)) from None


def _checkedListeners(top: _HelloService) -> _HelloService:
    """
    End the program if one of the C{tlsreload:} listeners of C{top} cannot
    listen, else return C{top}.
    """
    for endpoint in top.rotatable:
        _checkCanListen(endpoint)
    return top


def _checkCanListen(endpoint: ReloadingServerEndpoint) -> None:
    """
    End the program, with the plain message, if C{endpoint}'s address cannot
    be bound now.

    twistd forks into the background before it listens, and reports a
    failure there only as the repr of the exception's first 98 bytes; a port
    already in use is the likeliest mistake, so it is caught here, before
    the fork, where the message reaches the terminal as it is.  (The port is
    bound and released at once; listening later can still fail, and then
    goes through L{_listenErrorsEndStartup}.)
    """
    if endpoint.port == 0:
        return
    interface = endpoint.interface or "0.0.0.0"  # noqa: S104
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As Twisted's listening ports do, so that only a listener (not a
        # connection still in TIME_WAIT) makes the port unavailable.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((interface, endpoint.port))
        except OSError as e:
            raise SystemExit(
                "tlshello: " + _cannotListen(interface, endpoint.port, e)
            ) from None


def makeService(
    options: Options,
    *,
    reactor: IReactorTCP | None = None,
    hasIPv6: Callable[[], bool] = _hasIPv6,
) -> service.IService:
    """
    Build the hello server from its command line.

    A description or file that cannot be used ends the program with a message
    saying which and why, not with a traceback: this runs only under
    C{twistd} and C{twist}, before anything is listening.

    @param options: The parsed command line.
    @param reactor: What to listen with; the global reactor (what twistd and
        twist run) by default.  A program or test that runs the service on
        another reactor passes it here.
    @param hasIPv6: Says whether this host can listen on IPv6 loopback; by
        default, a bind to C{::1} is tried.  Without IPv6 the development
        certificate is served on IPv4 loopback only.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = IReactorTCP(globalReactor)

    try:
        plan = _planListeners(
            options,
            lambda: ensureDevelopmentCertificate(DEVELOPMENT_DIRECTORY),
            hasIPv6,
        )
    except (OSError, CredentialError) as e:
        raise SystemExit(
            f"tlshello: cannot use the development certificate: {e}"
        ) from None
    site = Site(HelloResource())
    top = _HelloService(plan.development)
    for description in plan.descriptions:
        endpoint = _parseListener(
            reactor, description, f"--listen {shortened(description)}: "
        )
        top.addListener(endpoint, site, description)
    if plan.shortcut is None:
        _addAdmin(top, reactor, options)
        return _checkedListeners(top)
    # The user never saw this description (only the files in it are theirs),
    # so its errors are shown without it.
    shortcut = _parseListener(
        reactor,
        plan.shortcut,
        "",
        keyHint=options["cert"] is not None and options["key"] is None,
    )
    top.addListener(shortcut, site, plan.shortcut)
    _addAdmin(top, reactor, options)
    # Always true, as the shortcut is a tlsreload: description; the check
    # tells the type checker so.
    if isinstance(shortcut, ReloadingServerEndpoint):
        for interface in plan.alsoOn:
            top.addListener(
                ReloadingServerEndpoint(
                    reactor,
                    shortcut.contextFactory,
                    shortcut.port,
                    interface,
                    shortcut.backlog,
                    sighup=shortcut.sighup,
                ),
                site,
                f"{plan.shortcut} (also on {interface})",
            )
    return _checkedListeners(top)


def _addAdmin(top: _HelloService, reactor: object, options: Options) -> None:
    """
    Add the C{--admin} listener, if asked for.
    """
    description = options["admin"]
    if description is None:
        return
    endpoint = _parseListener(
        reactor, description, f"--admin {shortened(description)}: "
    )
    top.addListener(endpoint, Site(adminResource()), description, admin=True)


def _parseListener(
    reactor: object, description: str, context: str, keyHint: bool = False
) -> IStreamServerEndpoint:
    """
    The endpoint for C{description}, or the end of the program with a
    message (starting with C{context}) saying why there is none.

    @param keyHint: Whether a key file without a key is the certificate
        given with C{--cert} and no C{--key}, so that the message should say
        how to give the key.
    """
    try:
        return serverFromString(reactor, description)  # type: ignore[no-any-return]
    except (ValueError, CredentialError) as e:
        hint = ""
        if keyHint and isinstance(e, CredentialError) and e.reason in _NO_PRIVATE_KEY:
            hint = " (give the key with --key)"
        raise SystemExit(f"tlshello: {context}{e}{hint}") from None
