"""
Connect to a server over mutual TLS with files that reload, send a request
and print the answer.

Usage: python client_connect.py HOST PORT SERVERNAME CA_BUNDLE CLIENT_PEM
"""

import sys

from twisted.internet import endpoints, protocol
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.logger import globalLogBeginner, textFileLogObserver

from txtlsreload import ReloadingClientContextFactory, reloadOnSIGHUP


class Ask(protocol.Protocol):
    """
    Send one HTTP/1.0 request; fire C{answer} with everything received.
    """

    def __init__(self):
        self.answer = Deferred()
        self.received = b""

    def connectionMade(self):
        self.transport.write(b"GET / HTTP/1.0\r\n\r\n")

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.answer.callback(self.received)


async def main(reactor, host, port, serverName, caBundle, clientPem):
    # Without a log observer, a refused reload would go unseen.
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(sys.stderr)], redirectStandardIO=False
    )  # print() still prints
    creator = ReloadingClientContextFactory(
        serverName,  # the name the server's certificate must be valid for
        caCertsFile=caBundle,  # None: the platform's trust store
        clientCertificateFile=clientPem,
        clientKeyFile=None,  # None: the key is in clientCertificateFile
    )
    reloadOnSIGHUP()  # kill -HUP reloads the CA bundle and client certificate
    endpoint = endpoints.wrapClientTLS(
        creator, endpoints.HostnameEndpoint(reactor, host, int(port))
    )
    ask = await endpoints.connectProtocol(endpoint, Ask())
    print((await ask.answer).decode())


react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
