"""
Serve a Twisted Web site over TLS; SIGHUP reloads its certificate.

Usage: python hello_site.py CERTIFICATE KEY PORT
"""

import sys

from twisted.internet import endpoints, reactor
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.web import resource, server

from txtlsreload import ReloadingContextFactory, reloadOnSIGHUP


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"Hello, TLS.\n"


certificate, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])  # see reloads

contextFactory = ReloadingContextFactory(certificate, key)  # fails fast on bad files
reloadOnSIGHUP()  # kill -HUP <pid> reloads; other SIGHUP handlers still run

endpoint = endpoints.SSL4ServerEndpoint(reactor, port, contextFactory)
endpoint.listen(server.Site(Hello()))
reactor.run()
