"""
Serve a site over TLS whose /healthz page reports refused reloads, in a
program that starts no log observer (so nothing would print them).

Usage: python health_site.py CERTIFICATE KEY PORT
"""

import sys

from twisted.internet import endpoints, reactor
from twisted.web import resource, server

from txtlsreload import ReloadingContextFactory, reloadOnSIGHUP


class Health(resource.Resource):
    """
    200 while the last load or reload was good, 503 after a refused one
    (the previous certificate is still being served); the body says why.
    """

    isLeaf = True

    def __init__(self, factory):
        super().__init__()
        self.factory = factory
        self.refused = 0
        factory.addReloadCallbacks(onFailure=self.reloadRefused)

    def reloadRefused(self, result):
        self.refused += 1  # or: page someone, bump a metric

    def render_GET(self, request):
        result = self.factory.lastResult
        request.setResponseCode(200 if result.succeeded else 503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        notAfter = self.factory.certificate.notAfter.isoformat()
        return (
            f"{result}\n"
            f"refused reloads: {self.refused}\n"
            f"served certificate expires: {notAfter}\n"
        ).encode()


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"Hello, TLS.\n"


certificate, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
contextFactory = ReloadingContextFactory(certificate, key)
reloadOnSIGHUP()

root = resource.Resource()
root.putChild(b"", Hello())
root.putChild(b"healthz", Health(contextFactory))
endpoint = endpoints.SSL4ServerEndpoint(reactor, port, contextFactory)
endpoint.listen(server.Site(root))
reactor.run()
