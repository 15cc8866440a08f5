"""
A TLS server for the session end-to-end tests: it answers one line with the
same line and closes the connection cleanly (with close_notify, which keeps
the session resumable).

Usage: sessions_server.py DESCRIPTION PORTFILE RELOADFILE

It listens on the C{tlsreload:} DESCRIPTION, writes the port to PORTFILE
once it listens, and appends a line to RELOADFILE after every reload that
installed something (so that a test knows a SIGHUP took effect).
"""

import os
import sys

# Twisted finds endpoint plugins in twisted/plugins directories on sys.path;
# an editable install leaves the working tree's off it.  Appended, so that an
# installed copy still comes first.
sys.path.append(os.path.join(os.path.dirname(__file__), "..", ".."))

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import globalLogBeginner, textFileLogObserver


class LineOnce(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)
        if data.endswith(b"\n"):
            self.transport.loseConnection()


def main() -> None:
    description, portFile, reloadFile = sys.argv[1:4]
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    endpoint = serverFromString(reactor, description)

    def reloaded(result: object) -> None:
        with open(reloadFile, "a") as f:
            f.write(f"{result}\n")

    endpoint.contextFactory.addReloadCallbacks(reloaded)
    endpoint.listen(Factory.forProtocol(LineOnce)).addCallback(
        lambda port: ready(portFile, port.getHost().port)
    )
    reactor.run()


def ready(portFile: str, port: int) -> None:
    with open(portFile + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(portFile + ".tmp", portFile)


main()
