"""
Tests for L{txtlsreload.ClientHelloReader}: the server name read from real
ClientHellos (pyOpenSSL on the OpenSSL cryptography bundles, CPython C{ssl}
on the system's), however they are split, and hostile input that must
neither raise nor make it buffer without bound.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from txtlsreload import ClientHelloReader


def pyOpenSSLHello(serverName: bytes | None, version: int) -> bytes:
    """
    The first flight of a pyOpenSSL client: one record holding its
    ClientHello.
    """
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(version)
    context.set_max_proto_version(version)
    connection = SSL.Connection(context)
    connection.set_connect_state()
    if serverName is not None:
        connection.set_tlsext_host_name(serverName)
    with pytest.raises(SSL.WantReadError):
        connection.do_handshake()
    return connection.bio_read(65536)


def cpythonHello(serverName: bytes | None, version: int) -> bytes:
    """
    The first flight of a CPython C{ssl} client.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.minimum_version = context.maximum_version = {
        SSL.TLS1_2_VERSION: ssl.TLSVersion.TLSv1_2,
        SSL.TLS1_3_VERSION: ssl.TLSVersion.TLSv1_3,
    }[version]
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(
        incoming,
        outgoing,
        server_hostname=None if serverName is None else serverName.decode(),
    )
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


CLIENTS: dict[str, Callable[[bytes | None, int], bytes]] = {
    "pyOpenSSL": pyOpenSSLHello,
    "CPython": cpythonHello,
}
VERSIONS = {"TLS1.2": SSL.TLS1_2_VERSION, "TLS1.3": SSL.TLS1_3_VERSION}


def records(message: bytes, size: int) -> bytes:
    """
    A handshake message split into handshake records of C{size} bytes.
    """
    out = b""
    for at in range(0, len(message), size):
        chunk = message[at : at + size]
        out += b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
    return out


def helloMessage(extensions: list[tuple[int, bytes]], sessionId: bytes = b"") -> bytes:
    """
    A ClientHello handshake message (header included) with C{extensions}.
    """
    body = (
        b"\x03\x03"
        + b"\x01" * 32
        + bytes([len(sessionId)])
        + sessionId
        + b"\x00\x02\x13\x01"
        + b"\x01\x00"
    )
    block = b"".join(
        kind.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
        for kind, data in extensions
    )
    body += len(block).to_bytes(2, "big") + block
    return b"\x01" + len(body).to_bytes(3, "big") + body


def sni(*names: bytes, nameType: int = 0) -> tuple[int, bytes]:
    """
    A server_name extension listing C{names}.
    """
    entries = b"".join(bytes([nameType]) + len(n).to_bytes(2, "big") + n for n in names)
    return 0, len(entries).to_bytes(2, "big") + entries


def readAll(data: bytes, piece: int | None = None) -> ClientHelloReader:
    """
    Feed C{data} to a new reader, in pieces of C{piece} bytes (all at once
    by default).
    """
    reader = ClientHelloReader()
    piece = piece or max(len(data), 1)
    for at in range(0, len(data), piece):
        reader.feed(data[at : at + piece])
    return reader


class TestRealClients:
    """
    ClientHellos sent by real TLS clients.
    """

    @pytest.mark.parametrize("client", CLIENTS)
    @pytest.mark.parametrize("version", VERSIONS)
    @pytest.mark.parametrize("serverName", [b"a.example", b"xn--bcher-kva.example"])
    def test_name(self, client: str, version: str, serverName: bytes) -> None:
        """
        The name a client sends is read as sent, from one write.
        """
        reader = readAll(CLIENTS[client](serverName, VERSIONS[version]))
        assert (reader.done, reader.serverName) == (True, serverName)

    @pytest.mark.parametrize("client", CLIENTS)
    @pytest.mark.parametrize("version", VERSIONS)
    def test_noName(self, client: str, version: str) -> None:
        """
        A ClientHello without SNI is complete with no name.
        """
        reader = readAll(CLIENTS[client](None, VERSIONS[version]))
        assert (reader.done, reader.serverName) == (True, None)

    @pytest.mark.parametrize("client", CLIENTS)
    def test_byteByByte(self, client: str) -> None:
        """
        Fed one byte at a time, the reader is done exactly at the last byte.
        """
        hello = CLIENTS[client](b"a.example", SSL.TLS1_3_VERSION)
        reader = ClientHelloReader()
        finished = [reader.feed(hello[at : at + 1]) for at in range(len(hello))]
        assert finished == [False] * (len(hello) - 1) + [True]
        assert reader.serverName == b"a.example"

    @pytest.mark.parametrize("size", [1, 4, 50, 300])
    def test_acrossRecords(self, size: int) -> None:
        """
        A ClientHello split over several handshake records is reassembled.
        """
        hello = pyOpenSSLHello(b"a.example", SSL.TLS1_3_VERSION)
        split = records(hello[5:], size)
        assert readAll(split).serverName == b"a.example"
        assert readAll(split, 3).serverName == b"a.example"

    def test_afterDone(self) -> None:
        """
        Bytes fed after the ClientHello change nothing.
        """
        reader = readAll(pyOpenSSLHello(b"a.example", SSL.TLS1_2_VERSION))
        assert reader.feed(b"\x17\x03\x03\x00\x05hello") is True
        assert reader.serverName == b"a.example"


class TestHostile:
    """
    Input no real client sends.
    """

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http"),
            pytest.param(b"\x15\x03\x03\x00\x02\x02\x28", id="alert record"),
            pytest.param(
                b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", id="not a ClientHello"
            ),
            pytest.param(b"\x16\x03\x01\xff\xff", id="record too long"),
            pytest.param(b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", id="hello too long"),
            pytest.param(b"\x80\x2e\x01\x03\x01", id="SSLv2 hello"),
        ],
    )
    def test_refusedEarly(self, data: bytes) -> None:
        """
        What cannot be a ClientHello ends the reading with no name at once,
        before the lengths it claims arrive.
        """
        reader = readAll(data)
        assert (reader.done, reader.serverName) == (True, None)

    @pytest.mark.parametrize(
        "extension",
        [
            pytest.param(sni(b"a.example", b"b.example"), id="two names"),
            pytest.param(sni(b""), id="empty name"),
            pytest.param(sni(b"a.example", nameType=1), id="other name type"),
            pytest.param((0, b""), id="empty extension"),
            pytest.param((0, b"\x00\x10\x00\x00\x03abc"), id="list too long"),
            pytest.param((0, b"\x00\x06\x00\x00\x09abc"), id="name too long"),
        ],
    )
    def test_malformedServerName(self, extension: tuple[int, bytes]) -> None:
        """
        A server_name extension OpenSSL would refuse gives no name (so that
        the reader never names what OpenSSL would not).
        """
        reader = readAll(records(helloMessage([extension]), 2**14))
        assert (reader.done, reader.serverName) == (True, None)

    @pytest.mark.parametrize("cut", [1, 10, 20, 40, 60])
    def test_truncatedBody(self, cut: int) -> None:
        """
        A ClientHello whose length covers the bytes but whose fields run past
        its end, or that ends before its extensions (a cut of 20), gives no
        name.
        """
        message = helloMessage([sni(b"a.example")])
        body = message[4:-cut]
        shortened = b"\x01" + len(body).to_bytes(3, "big") + body
        reader = readAll(records(shortened, 2**14))
        assert (reader.done, reader.serverName) == (True, None)

    def test_truncatedStream(self) -> None:
        """
        A ClientHello that stops arriving leaves the reader waiting, holding
        no more than was sent.
        """
        hello = pyOpenSSLHello(b"a.example", SSL.TLS1_3_VERSION)
        reader = readAll(hello[:-1])
        assert (reader.done, reader.serverName) == (False, None)

    def test_manyExtensions(self) -> None:
        """
        The name is found after thousands of other extensions.
        """
        extensions = [(0xFF00 + (i % 200), b"") for i in range(10_000)]
        message = helloMessage([*extensions, sni(b"a.example")])
        assert readAll(records(message, 2**14)).serverName == b"a.example"

    def test_endless(self) -> None:
        """
        A peer that keeps sending 1-byte records of a huge claimed
        ClientHello is cut off at maxBuffered bytes, with no name.
        """
        reader = ClientHelloReader()
        reader.feed(b"\x16\x03\x01\x00\x04\x01\x01\xff\xff")
        piece = b"\x16\x03\x01\x00\x01\x00" * 1000
        fed = 9
        while not reader.feed(piece):
            fed += len(piece)
            assert fed <= ClientHelloReader.maxBuffered
        assert reader.serverName is None

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
    def test_anyBytes(self, data: bytes, piece: int) -> None:
        """
        Any bytes, split anywhere, never raise, and give what they give fed
        at once.
        """
        whole = readAll(data)
        split = readAll(data, piece)
        assert (split.done, split.serverName) == (whole.done, whole.serverName)

    @settings(max_examples=200, deadline=None)
    @given(
        name=st.binary(min_size=1, max_size=255),
        before=st.lists(
            st.tuples(
                st.integers(min_value=1, max_value=0xFFFF),
                st.binary(max_size=40),
            ),
            max_size=20,
        ),
        sessionId=st.binary(max_size=32),
        size=st.integers(min_value=1, max_value=2**14),
        piece=st.integers(min_value=1, max_value=500),
    )
    def test_wellFormed(
        self,
        name: bytes,
        before: list[tuple[int, bytes]],
        sessionId: bytes,
        size: int,
        piece: int,
    ) -> None:
        """
        Any well-formed ClientHello gives its name, whatever extensions come
        first and however it is split into records and writes.
        """
        message = helloMessage([*before, sni(name)], sessionId)
        reader = readAll(records(message, size), piece)
        assert (reader.done, reader.serverName) == (True, name)

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def test_mutated(self, data: st.DataObject) -> None:
        """
        A real ClientHello with bytes overwritten never makes the reader
        raise, and it never names something that is not in the bytes.
        """
        hello = bytearray(pyOpenSSLHello(b"a.example", SSL.TLS1_3_VERSION))
        for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
            at = data.draw(st.integers(min_value=0, max_value=len(hello) - 1))
            hello[at] = data.draw(st.integers(min_value=0, max_value=255))
        reader = readAll(bytes(hello), data.draw(st.integers(1, 300)))
        assert reader.serverName is None or reader.serverName in hello
