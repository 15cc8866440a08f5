"""
A TLS echo server for the SIGHUP end-to-end tests.

Usage: sighup_server.py CERT KEY PORTFILE MARKERFILE {listenSSL,endpoint,wrap}

Before installing txtlsreload's handler it installs a SIGHUP handler of its
own that appends a line to MARKERFILE, so the test can prove it is still
called.  It writes the listening port to PORTFILE once it listens.
"""

import signal
import sys

from twisted.internet import endpoints, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import globalLogBeginner, textFileLogObserver

from txtlsreload import ReloadingContextFactory, reloadOnSIGHUP


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def main() -> None:
    certificate, key, portFile, markerFile, how = sys.argv[1:6]
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])

    def previousHandler(signum, frame):
        with open(markerFile, "a") as marker:
            marker.write("previous handler called\n")

    signal.signal(signal.SIGHUP, previousHandler)
    contextFactory = ReloadingContextFactory(certificate, key)
    reloadOnSIGHUP()
    factory = Factory.forProtocol(Echo)

    if how == "listenSSL":
        port = reactor.listenSSL(0, factory, contextFactory, interface="127.0.0.1")
        listening = port.getHost().port
        ready(portFile, listening)
    else:
        if how == "endpoint":
            endpoint = endpoints.SSL4ServerEndpoint(
                reactor, 0, contextFactory, interface="127.0.0.1"
            )
        else:
            endpoint = endpoints.wrapServerTLS(
                contextFactory,
                endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"),
            )
        endpoint.listen(factory).addCallback(
            lambda port: ready(portFile, port.getHost().port)
        )
    reactor.run()


def ready(portFile: str, port: int) -> None:
    with open(portFile + ".tmp", "w") as f:
        f.write(str(port))
    import os

    os.replace(portFile + ".tmp", portFile)


main()
