"""
What the public objects show of themselves: reprs (in tracebacks and logs)
name the files and the certificate, never key material; and the legacy
context-factory path serves what the connection creator serves.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from txtlsreload import (
    ReloadingClientContextFactory,
    ReloadingClientCredentials,
    ReloadingClientEndpoint,
    ReloadingContextFactory,
    ReloadingPolicyForHTTPS,
    ReloadingServerEndpoint,
)

from .tlshelpers import clientOptions, servedSerial, writeLeaf


def _files(tmp_path: Path, ca: trustme.CA) -> tuple[str, str, str, bytes]:
    cert, key, _ = writeLeaf(ca, tmp_path)
    caFile = tmp_path / "ca.pem"
    caFile.write_bytes(ca.cert_pem.bytes())
    return str(cert), str(key), str(caFile), key.read_bytes()


_OBJECTS: dict[str, Callable[[str, str, str], object]] = {
    "server factory": lambda cert, key, caFile: ReloadingContextFactory(cert, key),
    "server endpoint": lambda cert, key, caFile: ReloadingServerEndpoint(
        MemoryReactorClock(), ReloadingContextFactory(cert, key), 8443
    ),
    "client credentials": lambda cert, key, caFile: ReloadingClientCredentials(
        caFile, cert, key
    ),
    "client factory": lambda cert, key, caFile: ReloadingClientContextFactory(
        "localhost", caFile, cert, key
    ),
    "client endpoint": lambda cert, key, caFile: ReloadingClientEndpoint(
        MemoryReactorClock(),
        "localhost",
        443,
        ReloadingClientContextFactory("localhost", caFile, cert, key),
    ),
    "agent policy": lambda cert, key, caFile: ReloadingPolicyForHTTPS(
        caFile, cert, key
    ),
}


class TestReprs:
    """
    Every public object says what it serves or trusts in its repr.
    """

    @pytest.mark.parametrize("kind", list(_OBJECTS))
    def test_reprNamesFilesNotKeys(
        self, tmp_path: Path, ca: trustme.CA, kind: str
    ) -> None:
        """
        The repr names the object, a file it reads, and holds no line of
        the private key.
        """
        cert, key, caFile, keyPem = _files(tmp_path, ca)
        text = repr(_OBJECTS[kind](cert, key, caFile))
        assert text.startswith("<Reloading")
        assert cert in text or caFile in text or "localhost" in text
        for line in keyPem.splitlines()[1:-1]:
            assert line.decode() not in text


@implementer(IOpenSSLServerConnectionCreator)
class _ThroughGetContext:
    """
    A server that makes its connections the old way: from the context
    C{getContext()} returns.
    """

    def __init__(self, factory: ReloadingContextFactory) -> None:
        self._factory = factory

    def serverConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        return SSL.Connection(self._factory.getContext(), None)


class TestGetContext:
    """
    Code that still asks for a context gets the rotating certificate too.
    """

    def test_contextConnectionsRotate(self, tmp_path: Path, ca: trustme.CA) -> None:
        """
        Connections made from C{getContext()} get the current certificate,
        before and after a reload.
        """
        cert, key, serial = writeLeaf(ca, tmp_path)
        factory = ReloadingContextFactory(str(cert), str(key))
        legacy = _ThroughGetContext(factory)
        assert servedSerial(legacy, clientOptions(ca)) == serial
        _, _, newSerial = writeLeaf(ca, tmp_path)
        assert factory.reload().changed
        assert servedSerial(legacy, clientOptions(ca)) == newSerial
