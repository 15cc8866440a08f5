"""
Fetch URLs with treq, trusting the CAs in a file that SIGHUP reloads.

Usage: python treq_client.py CA_FILE
Reads one URL per line on standard input; prints the status and body of each.
"""

import sys

import treq
from twisted.internet import reactor, stdio
from twisted.internet.defer import ensureDeferred
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.protocols.basic import LineReceiver
from twisted.web.client import Agent

from txtlsreload import ReloadingPolicyForHTTPS, reloadOnSIGHUP

# See reloads on standard error; standard output stays the responses.
globalLogBeginner.beginLoggingTo(
    [textFileLogObserver(sys.stderr)], redirectStandardIO=False
)
policy = ReloadingPolicyForHTTPS(caCertsFile=sys.argv[1])  # fails fast on bad files
reloadOnSIGHUP()  # kill -HUP <pid> reloads the CA file (and a client certificate)
client = treq.client.HTTPClient(Agent(reactor, contextFactory=policy))


async def fetch(url):
    try:
        response = await client.get(url)
        body = await response.text()
        print(response.code, body.strip(), flush=True)
    except Exception as e:
        print("failed:", e, flush=True)


class URLs(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        ensureDeferred(fetch(line.decode().strip()))

    def connectionLost(self, reason):
        if reactor.running:
            reactor.stop()


stdio.StandardIO(URLs())
reactor.run()
