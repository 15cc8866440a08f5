# -*- test-case-name: tests.test_endpoint,tests.test_hello,tests.test_installed -*-
"""
txtlsreload's Twisted plugins: the C{tlsreload:} server endpoint and the
C{twistd tlshello} server.

C{twistd --help} and every C{serverFromString} of an unknown prefix import
every plugin module, so this one imports nothing of txtlsreload (which pulls
in OpenSSL and cryptography): the work happens in modules imported when a
plugin is actually used.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import ServiceMaker
from twisted.internet.interfaces import (
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

__all__ = ["tlshelloServiceMaker", "tlsreloadEndpointParser"]


@implementer(IPlugin, IStreamServerEndpointStringParser)
class _TLSReloadEndpointParser:
    """
    Hands C{tlsreload:} descriptions to L{txtlsreload._endpoint}.
    """

    prefix = "tlsreload"

    def parseStreamServer(
        self, reactor: Any, *args: object, **kwargs: object
    ) -> IStreamServerEndpoint:
        from txtlsreload._endpoint import TLSReloadParser

        return TLSReloadParser().parseStreamServer(reactor, *args, **kwargs)


tlsreloadEndpointParser = _TLSReloadEndpointParser()

# ServiceMaker imports txtlsreload._hello only when tlshello is run.  (It is
# not annotated, hence the ignore.)
tlshelloServiceMaker = ServiceMaker(  # type: ignore[no-untyped-call]
    "txtlsreload hello server",
    "txtlsreload._hello",
    "An HTTPS hello server whose certificate rotates on SIGHUP (txtlsreload)",
    "tlshello",
)
