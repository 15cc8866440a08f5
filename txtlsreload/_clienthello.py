# -*- test-case-name: tests.test_clienthello -*-
"""
The server name a client asks for, read from its raw ClientHello before
OpenSSL sees it.

Why read it ourselves: OpenSSL looks a resumed session up before it parses
the server name and runs the servername callback, keyed by the session-id
context the connection has at that moment.  To key that lookup by the
name's own context (see L{_sessions}), the connection must be switched to it
while the ClientHello is still in our hands.

The reader faces the network: it never raises, it costs time in proportion
to the bytes fed (state is kept between feeds; nothing is parsed twice), and
it buffers at most L{ClientHelloReader.maxBuffered} bytes.  Whatever it
cannot make sense of ends the reading with no name; OpenSSL then parses the
same bytes with its own rules, and the servername callback refuses a
connection whose name it reads differently (see
L{SessionPolicy.agrees <txtlsreload._sessions.SessionPolicy.agrees>}).
"""

from __future__ import annotations

__all__ = ["ClientHelloReader", "serverNameIn"]

_HANDSHAKE_RECORD = 22
_CLIENT_HELLO = 1
_SERVER_NAME = 0
_HOST_NAME = 0
_RECORD_HEADER = 5
# OpenSSL refuses records with more than 2^14 bytes of plaintext (plus
# 256 of slack for compressed ones): no ClientHello comes in bigger ones.
_MAX_RECORD = 2**14 + 256
# OpenSSL's own limit for a ClientHello message (CLIENT_HELLO_MAX_LENGTH).
_MAX_HELLO = 131396


class ClientHelloReader:
    """
    Reads the server name (SNI) from a ClientHello fed in pieces of any
    size, across TLS records, as a TLS server receives it.

    This is what C{sessions=True} uses to choose a connection's context
    before OpenSSL reads the ClientHello; proxies that route by name may use
    it too.  It never raises, costs time in proportion to the bytes fed, and
    buffers at most L{maxBuffered} bytes.

    @ivar done: Reading is over: the ClientHello was complete, or the bytes
        were not a ClientHello this reader understands, or too many.
    @ivar serverName: The first C{host_name} of the C{server_name}
        extension, as sent (bytes, not decoded), or L{None}.
    """

    __slots__ = ("_buffer", "_fed", "_hello", "done", "serverName")

    #: The most bytes a reader takes, record headers included: a
    #: ClientHello as big as OpenSSL accepts, in full records.  Beyond that
    #: it is done, with no name.
    maxBuffered = _MAX_HELLO + 4 + _RECORD_HEADER * (_MAX_HELLO // 2**14 + 2)

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._hello = bytearray()
        self._fed = 0
        self.done = False
        self.serverName: bytes | None = None

    def feed(self, data: bytes) -> bool:
        """
        Take the next bytes the client sent.

        @return: L{done}.
        """
        if self.done:
            return True
        self._fed += len(data)
        if self._fed > self.maxBuffered:
            return self._finish(None)
        self._buffer += data
        buffer = self._buffer
        hello = self._hello
        while len(buffer) >= _RECORD_HEADER:
            length = int.from_bytes(buffer[3:5], "big")
            if buffer[0] != _HANDSHAKE_RECORD or length > _MAX_RECORD:
                return self._finish(None)
            if len(buffer) < _RECORD_HEADER + length:
                return False
            hello += buffer[_RECORD_HEADER : _RECORD_HEADER + length]
            del buffer[: _RECORD_HEADER + length]
            if len(hello) >= 4:
                if hello[0] != _CLIENT_HELLO:
                    return self._finish(None)
                needed = int.from_bytes(hello[1:4], "big")
                if needed > _MAX_HELLO:
                    return self._finish(None)
                if len(hello) >= 4 + needed:
                    return self._finish(serverNameIn(bytes(hello[4 : 4 + needed])))
        return False

    def _finish(self, serverName: bytes | None) -> bool:
        self.done = True
        self.serverName = serverName
        # What was read is of no more use; free it now, not with the
        # connection.
        self._buffer = bytearray()
        self._hello = bytearray()
        return True


def serverNameIn(body: bytes) -> bytes | None:
    """
    The server name in a ClientHello message body (after its 4-byte
    handshake header), or L{None} if it names none or is malformed.
    """
    try:
        # legacy_version (2) and random (32), then the session id.
        at = 34
        at += 1 + body[at]
        at += 2 + int.from_bytes(body[at : at + 2], "big")  # cipher suites
        at += 1 + body[at]  # compression methods
        if at + 2 > len(body):
            return None
        end = at + 2 + int.from_bytes(body[at : at + 2], "big")
        if end > len(body):
            return None
        at += 2
        while at + 4 <= end:
            kind = int.from_bytes(body[at : at + 2], "big")
            length = int.from_bytes(body[at + 2 : at + 4], "big")
            at += 4
            if at + length > end:
                return None
            if kind == _SERVER_NAME:
                return _hostName(body[at : at + length])
            at += length
    except IndexError:
        pass
    return None


def _hostName(extension: bytes) -> bytes | None:
    if len(extension) < 5:
        return None
    listLength = int.from_bytes(extension[0:2], "big")
    if listLength + 2 != len(extension) or extension[2] != _HOST_NAME:
        return None
    nameLength = int.from_bytes(extension[3:5], "big")
    # OpenSSL accepts exactly one name, filling the list, and so do we.
    if nameLength == 0 or 5 + nameLength != len(extension):
        return None
    return extension[5:]
