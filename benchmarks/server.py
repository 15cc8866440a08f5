"""
A TLS server process for the benchmarks.

Run by C{benchmarks/run.py}, one process per server under test, so that the
server's CPU time can be read from its own accounting and the clients run in
other processes.  It listens on 127.0.0.1 only, on a port the kernel picks,
and prints one JSON line when ready::

    {"port": 40123, "control": 40124, "pid": 4242, "how": "..."}

The server under test is either any endpoint description given with
C{--endpoint} (Twisted's C{ssl:}, or C{tlsreload:} once that plugin exists),
or, with C{--library}, a L{txtlsreload.ReloadingContextFactory} built
directly, reloaded on SIGHUP and optionally by a file watcher.

Behind it runs either an echo protocol that counts finished handshakes
(C{--app echo}) or a tiny C{twisted.web} site (C{--app web}).

The control port speaks lines: C{stats} answers a JSON object with the
process's CPU time (C{getrusage(RUSAGE_SELF)}, user plus system), the number
of finished handshakes, the number of warnings and errors logged and, for a
C{tlsreload} server, when its latest reloads installed new credentials;
C{quit} stops the server.  The server also stops by itself after
C{--lifetime} seconds, so a crashed benchmark leaves nothing running.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IHandshakeListener, IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.protocols.basic import LineReceiver
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

reactor: Any = _reactor


class _Counters:
    handshakes = 0
    problemsLogged = 0
    # When (system-wide monotonic clock) each reload installed new
    # credentials, so the runner can tell the server's part of a reload's
    # latency from the client's.
    installedAt: list[float] = []


def _recordInstalled(result: object) -> None:
    _Counters.installedAt.append(time.monotonic())


def _watchReloads(contextFactory: object) -> None:
    add = getattr(contextFactory, "addReloadCallbacks", None)
    if add is not None:
        add(onSuccess=_recordInstalled)


@implementer(IHandshakeListener)
class _CountingEcho(Protocol):
    """
    Echoes what it gets and counts finished handshakes; the load clients send
    one byte after their handshake and wait for it, so the server has surely
    finished its side before the client closes.
    """

    def handshakeCompleted(self) -> None:
        _Counters.handshakes += 1

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


class _Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"hello\n"


class _QuietSite(Site):
    """
    A site that keeps no access log: writing one line per request would be
    most of the work in a benchmark made of tiny requests.
    """

    def log(self, request: Request) -> None:
        pass


class _Control(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        command = line.strip().decode("ascii", "replace")
        if command == "stats":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            answer = {
                "cpu": usage.ru_utime + usage.ru_stime,
                "handshakes": _Counters.handshakes,
                "problemsLogged": _Counters.problemsLogged,
                "maxRSSKiB": usage.ru_maxrss,
                "installedAt": _Counters.installedAt[-100:],
            }
            self.sendLine(json.dumps(answer).encode("ascii"))
        elif command == "quit":
            self.sendLine(b"{}")
            reactor.callLater(0, reactor.stop)
        else:
            self.sendLine(json.dumps({"error": f"unknown {command!r}"}).encode())


def _countProblems(event: dict[str, Any]) -> None:
    if event.get("log_level", LogLevel.info) >= LogLevel.warn:
        _Counters.problemsLogged += 1


def _libraryServer(
    certificateFile: str, keyFile: str, chainFile: str | None, watch: float | None
) -> tuple[Any, str]:
    """
    Build the C{tlsreload} side straight from the library: what the
    C{tlsreload:} endpoint does, for when its plugin cannot be found.
    """
    import txtlsreload

    factory = txtlsreload.ReloadingContextFactory(
        certificateFile, keyFile, extraChainFile=chainFile
    )
    _watchReloads(factory)
    txtlsreload.reloadOnSIGHUP()
    how = "ReloadingContextFactory + SSL4ServerEndpoint + reloadOnSIGHUP"
    if watch is not None:
        from txtlsreload._watching import FileWatcher

        watcher = FileWatcher(factory, watch, reactor)
        watcher.start()
        how += f" + FileWatcher(pollInterval={watch})"
    endpoint = SSL4ServerEndpoint(reactor, 0, factory, interface="127.0.0.1")
    return endpoint, how


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--endpoint", help="a server endpoint description")
    what.add_argument(
        "--library",
        nargs=2,
        metavar=("CERTFILE", "KEYFILE"),
        help="serve these files with ReloadingContextFactory",
    )
    parser.add_argument("--chain", help="with --library: intermediates file")
    parser.add_argument(
        "--watch",
        type=float,
        default=None,
        metavar="POLLINTERVAL",
        help="with --library: also reload when the files change",
    )
    parser.add_argument("--app", choices=["echo", "web"], default="echo")
    parser.add_argument("--lifetime", type=float, default=900.0)
    options = parser.parse_args(argv)

    globalLogBeginner.beginLoggingTo(
        [
            _countProblems,
            FilteringLogObserver(
                textFileLogObserver(sys.stderr),
                [LogLevelFilterPredicate(LogLevel.warn)],
            ),
        ],
        redirectStandardIO=False,
    )

    if options.endpoint:
        from _processes import findProjectPlugins
        from twisted.internet.endpoints import serverFromString

        findProjectPlugins()
        endpoint = serverFromString(reactor, options.endpoint)
        # tlsreload: endpoints say what serves their TLS; ssl: ones do not.
        _watchReloads(getattr(endpoint, "contextFactory", None))
        # Name the endpoint without its file paths.
        prefix = options.endpoint.split(":", 1)[0]
        how = f"serverFromString({prefix}:...)"
        watching = re.search(r":watch=([0-9.]+)", options.endpoint)
        if watching:
            how = f"serverFromString({prefix}:...:watch={watching.group(1)})"
    else:
        endpoint, how = _libraryServer(*options.library, options.chain, options.watch)

    app: Factory
    if options.app == "echo":
        app = Factory.forProtocol(_CountingEcho)
    else:
        app = _QuietSite(_Hello())

    def ready(ports: list[IListeningPort]) -> None:
        served, control = ports
        line = {
            "port": served.getHost().port,  # type: ignore[attr-defined]
            "control": control.getHost().port,  # type: ignore[attr-defined]
            "pid": os.getpid(),
            "how": how,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def failed(reason: Any) -> None:
        sys.stderr.write(f"server could not start: {reason.getTraceback()}\n")
        reactor.stop()

    from twisted.internet.defer import gatherResults

    controlEndpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    started = gatherResults(
        [
            endpoint.listen(app),
            controlEndpoint.listen(Factory.forProtocol(_Control)),
        ],
        consumeErrors=True,
    )
    started.addCallbacks(ready, failed)
    reactor.callLater(options.lifetime, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    main()
