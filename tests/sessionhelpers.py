"""
In-memory TLS connections whose client is CPython's C{ssl} (which says
whether a session was resumed, publicly) and whose server is our connection
creator behind Twisted's own L{TLSMemoryBIOProtocol}, closed cleanly both
ways as real clients and Twisted do.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

__all__ = ["VERSIONS", "Resumption", "SessionClient"]

VERSIONS = {"TLS1.2": ssl.TLSVersion.TLSv1_2, "TLS1.3": ssl.TLSVersion.TLSv1_3}


class _Echo(Protocol):
    lost = "open"

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # type: ignore[assignment]
        self.lost = str(reason.value)

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


@dataclass
class Resumption:
    """
    One connection's outcome.

    @ivar error: Why the handshake failed (client or server side), if it did.
    @ivar reused: Whether the client's offered session was resumed.
    @ivar serial: The serial of the certificate the client holds for the
        server (a resumed session keeps the one it was made with).
    @ivar session: The session to offer next time.
    """

    error: str | None
    reused: bool
    serial: int | None
    session: ssl.SSLSession | None


class SessionClient:
    """
    A CPython C{ssl} client of one TLS version that trusts C{ca}, optionally
    with a client certificate, and connects in memory.
    """

    def __init__(
        self,
        ca: trustme.CA,
        version: ssl.TLSVersion,
        clientCertificate: Path | None = None,
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(context)
        context.minimum_version = context.maximum_version = version
        if clientCertificate is not None:
            context.load_cert_chain(clientCertificate)
        self.context = context
        self.session: ssl.SSLSession | None = None

    def connect(
        self,
        server: IOpenSSLServerConnectionCreator,
        serverName: str = "a.example",
        offer: ssl.SSLSession | bool | None = True,
    ) -> Resumption:
        """
        Handshake with C{server}, exchange a line, close both ways cleanly.

        @param offer: The session to offer; C{True} (the default) offers the
            last one this client got (TLS 1.3 tickets are single-use, so real
            clients offer their newest), C{False} none.
        """
        session = self.session if offer is True else (offer or None)
        clock = Clock()
        factory = TLSMemoryBIOFactory(
            server, False, Factory.forProtocol(_Echo), clock=clock
        )
        protocol = factory.buildProtocol(None)
        assert isinstance(protocol, TLSMemoryBIOProtocol)
        transport = StringTransport()
        protocol.makeConnection(transport)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = self.context.wrap_bio(
            incoming, outgoing, server_hostname=serverName, session=session
        )

        def pump() -> None:
            for _ in range(10):
                sent = outgoing.read()
                if sent:
                    protocol.dataReceived(sent)
                # Twisted gathers small TLS writes until the next reactor turn.
                clock.advance(0)
                received = transport.value()
                transport.clear()
                if received:
                    incoming.write(received)
                if not sent and not received:
                    return

        error = None
        try:
            for _ in range(10):
                try:
                    client.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pump()
            client.write(b"ping\n")
            pump()
            # Reading also takes in TLS 1.3 tickets, sent after the handshake.
            if client.read(100) != b"ping\n":
                error = "no echo: " + _lost(protocol)
            try:
                client.unwrap()
            except ssl.SSLWantReadError:
                pump()
                client.unwrap()
        except (ssl.SSLError, OSError) as e:
            error = f"{e}; server: {_lost(protocol)}"
        der = client.getpeercert(binary_form=True) if error is None else None
        result = Resumption(
            error=error,
            reused=error is None and client.session_reused,
            serial=None
            if der is None
            else x509.load_der_x509_certificate(der).serial_number,
            session=client.session if error is None else None,
        )
        if result.session is not None:
            self.session = result.session
        return result


def _lost(protocol: TLSMemoryBIOProtocol) -> str:
    echo = protocol.wrappedProtocol
    assert isinstance(echo, _Echo)
    return echo.lost
