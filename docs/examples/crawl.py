"""
Fetch many URLs on many hosts, as a crawler does, through one Agent whose
TLS trust and client certificate reload from files while it runs.

Usage: python crawl.py CA_BUNDLE CLIENT_PEM URL...
"""

import sys

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.task import react
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.web.client import Agent, HTTPConnectionPool, readBody

from txtlsreload import ReloadingPolicyForHTTPS, watchFiles


async def fetch(agent, url):
    try:
        response = await agent.request(b"GET", url.encode("ascii"))
        body = await readBody(response)
    except Exception as e:  # one host's failure does not stop the crawl
        return f"{url} failed: {e!r}"
    return f"{url} {response.code} {len(body)} bytes"


async def main(reactor, caBundle, clientPem, *urls):
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(sys.stderr)], redirectStandardIO=False
    )  # print() still prints
    # One policy for every host: the files are read once per reload, and a
    # cache keeps one connection creator per host (cacheSize= hosts).
    policy = ReloadingPolicyForHTTPS(caBundle, clientPem, cacheSize=256)
    watcher = watchFiles(policy, 30)  # new files are used by new connections
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, contextFactory=policy, pool=pool)
    limit = DeferredSemaphore(8)  # at most 8 requests at a time
    results = await gatherResults(
        [
            limit.run(lambda url=url: Deferred.fromCoroutine(fetch(agent, url)))
            for url in urls
        ]
    )
    watcher.stop()
    await pool.closeCachedConnections()
    print("\n".join(results))


react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))
