"""
An ASGI application for Daphne over TLS that rotates its certificate, and
lets operators see the reloads that Daphne's log hides.

Run:
    daphne -e tlsreload:8443:privateKey=key.pem:certKey=cert.pem \\
        daphne_asgi:application
"""

import os
import sys

from twisted.internet import endpoints, reactor
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.web.server import Site

from txtlsreload import adminResource


async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello from Daphne.\n"})


# Daphne discards Twisted's log below -v 2 (and at -v 2 shows all of it as
# debug lines).  An observer added to the publisher itself outlives that:
# txtlsreload's lines, at info and above, go to standard error.
def _txtlsreloadOnly(event):
    if event.get("log_namespace", "").startswith("txtlsreload"):
        return PredicateResult.maybe
    return PredicateResult.no


globalLogPublisher.addObserver(
    FilteringLogObserver(
        textFileLogObserver(sys.stderr),
        [_txtlsreloadOnly, LogLevelFilterPredicate(LogLevel.info)],
    )
)

# /metrics and /status on a plain-HTTP port only operators can reach.  (The
# tlsreload: endpoint itself starts expiry warnings and, under systemd, the
# notifications.)
admin = os.environ.get("ADMIN_ENDPOINT", "tcp:9100:interface=127.0.0.1")
listening = endpoints.serverFromString(reactor, admin).listen(Site(adminResource()))
listening.addCallback(
    lambda port: print(
        f"admin on port {port.getHost().port}", file=sys.stderr, flush=True
    )
)
