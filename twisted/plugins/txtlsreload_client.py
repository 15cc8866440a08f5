# -*- test-case-name: tests.test_client_endpoint -*-
"""
The C{tlsreload:} client endpoint for L{clientFromString
<twisted.internet.endpoints.clientFromString>}.

Kept tiny: C{twistd --help} imports every plugin module, so the parser's
real work (and OpenSSL) is imported only when a description is parsed.
"""

from __future__ import annotations

from twisted.internet.interfaces import (
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

__all__ = ["tlsreloadClientParser"]


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class _ReloadingTLSClientParser:
    """
    Parses C{tlsreload:host=...:port=...} client descriptions; see
    L{txtlsreload._clientendpoint}.
    """

    prefix = "tlsreload"

    def parseStreamClient(
        self, reactor: object, *args: object, **kwargs: object
    ) -> IStreamClientEndpoint:
        from txtlsreload._clientendpoint import parseClientEndpoint

        return parseClientEndpoint(reactor, *args, **kwargs)


tlsreloadClientParser = _ReloadingTLSClientParser()
