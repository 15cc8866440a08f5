"""
Property-based tests: whatever is done to good credential files (bits
flipped, cut short, blocks doubled or dropped, the DER inside a block
changed), loading them raises L{CredentialError} naming one of the files,
or succeeds; a reload never raises; and a refused reload changes nothing a
handshake sees.
"""

from __future__ import annotations

import base64
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from txtlsreload import (
    CredentialError,
    ReloadingClientCredentials,
    ReloadingContextFactory,
)

from .tlshelpers import clientOptions, handshake, serialOf

# Deterministic in CI and cheap: a fixed sequence of examples, no example
# database on disk, no per-example deadline (handshakes vary on a busy box).
_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\n(.*?)-----END \1-----\n", re.DOTALL)


@dataclass(frozen=True)
class _Material:
    """
    Good files, as bytes: a CA, a leaf with its chain, and the leaf's key.
    """

    ca: trustme.CA
    files: dict[str, bytes]


@pytest.fixture(scope="module")
def material() -> _Material:
    """
    One CA with an intermediate, and an RSA leaf (RSA keys have the most
    parts to break), made once for every example of this module.
    """
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("localhost", key_type=trustme.KeyType.RSA)
    return _Material(
        ca=ca,
        files={
            "cert": b"".join(blob.bytes() for blob in leaf.cert_chain_pems),
            "key": leaf.private_key_pem.bytes(),
            "ca": ca.cert_pem.bytes() + intermediate.cert_pem.bytes(),
        },
    )


@st.composite
def _mutations(draw: st.DrawFn) -> tuple[str, str, tuple[int, ...], bytes]:
    """
    Which file to change, how, where (as numbers reduced modulo the size
    when applied) and any bytes to insert.
    """
    target = draw(st.sampled_from(["cert", "key", "ca"]))
    how = draw(
        st.sampled_from(
            [
                "flip",
                "truncate",
                "duplicate",
                "remove",
                "der-flip",
                "der-truncate",
                "der-insert",
                "der-value",
                "der-value",
                "der-value",
            ]
        )
    )
    where = tuple(draw(st.integers(0, 2**16)) for _ in range(3))
    inserted = draw(st.binary(min_size=1, max_size=8))
    return target, how, where, inserted


def _primitives(
    der: bytes, offset: int = 0, end: int | None = None
) -> list[tuple[int, int]]:
    """
    Where the contents of every primitive DER value in C{der} start, and
    how long they are (empty ones left out).
    """
    end = len(der) if end is None else end
    found = []
    while offset + 2 <= end:
        tag, length = der[offset], der[offset + 1]
        start = offset + 2
        if length & 0x80:
            size = length & 0x7F
            length = int.from_bytes(der[start : start + size], "big")
            start += size
        if start + length > end:
            break
        if tag & 0x20:
            found.extend(_primitives(der, start, start + length))
        elif length:
            found.append((start, length))
        offset = start + length
    return found


def _mutate(data: bytes, how: str, where: tuple[int, ...], inserted: bytes) -> bytes:
    blocks = list(_BLOCK.finditer(data))
    if how == "flip":
        position = where[0] % len(data)
        return (
            data[:position]
            + bytes([data[position] ^ (1 << where[1] % 8)])
            + data[position + 1 :]
        )
    if how == "truncate":
        return data[: where[0] % len(data)]
    block = blocks[where[0] % len(blocks)]
    if how == "duplicate":
        return data[: block.end()] + block.group(0) + data[block.end() :]
    if how == "remove":
        return data[: block.start()] + data[block.end() :]
    der = base64.b64decode(block.group(2))
    position = where[1] % len(der)
    if how == "der-flip":
        der = (
            der[:position]
            + bytes([der[position] ^ (where[2] % 255 + 1)])
            + der[position + 1 :]
        )
    elif how == "der-value":
        # Keep the structure and change a value inside it (a version, an
        # OID, a string, a length of a point): what the parser sees is then
        # well-formed DER, so the checks after parsing are what is tested.
        start, length = _primitives(der)[where[1] % len(_primitives(der))]
        position = start + where[2] % length
        der = der[:position] + inserted[:1] + der[position + 1 :]
    elif how == "der-truncate":
        der = der[:position]
    else:
        der = der[:position] + inserted + der[position:]
    body = base64.encodebytes(der)
    label = block.group(1)
    rewrapped = (
        b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"
    )
    return data[: block.start()] + rewrapped + data[block.end() :]


def _write(directory: Path, files: dict[str, bytes]) -> dict[str, Path]:
    paths = {}
    for name, data in files.items():
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


def _assertNamesOneOf(error: CredentialError, paths: dict[str, Path]) -> None:
    assert error.path in {str(path) for path in paths.values()}, error
    assert error.reason, error


class TestMutatedFiles:
    """
    The load and reload contract holds for any damage to good files.
    """

    @_SETTINGS
    @given(mutation=_mutations())
    def test_server(
        self, material: _Material, mutation: tuple[str, str, tuple[int, ...], bytes]
    ) -> None:
        """
        Server construction on damaged files raises only CredentialError,
        naming one of the files; a reload onto them never raises and, if
        refused, handshakes still get the certificate served before.
        """
        target, how, where, inserted = mutation
        damaged = dict(material.files)
        damaged[target] = _mutate(damaged[target], how, where, inserted)
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            paths = _write(directory, material.files)
            factory = ReloadingContextFactory(
                str(paths["cert"]),
                str(paths["key"]),
                clientCAFile=str(paths["ca"]),
                clientAuth="optional",
            )
            served = serialOf(paths["cert"])

            (directory / "fresh").mkdir()
            freshPaths = _write(directory / "fresh", damaged)
            try:
                ReloadingContextFactory(
                    str(freshPaths["cert"]),
                    str(freshPaths["key"]),
                    clientCAFile=str(freshPaths["ca"]),
                    clientAuth="optional",
                )
            except CredentialError as e:
                _assertNamesOneOf(e, freshPaths)

            _write(directory, damaged)
            result = factory.reload()
            if result.error is not None:
                _assertNamesOneOf(result.error, paths)
                assert factory.certificate.serialNumber == served
                seen = handshake(factory, clientOptions(material.ca))
                assert seen.succeeded, seen.failureText()
                assert seen.serverCertificate is not None
                assert seen.serverCertificate.serial_number == served

    @_SETTINGS
    @given(mutation=_mutations())
    def test_client(
        self, material: _Material, mutation: tuple[str, str, tuple[int, ...], bytes]
    ) -> None:
        """
        Client construction on damaged files raises only CredentialError,
        naming one of the files; a reload onto them never raises and, if
        refused, the client still trusts what it trusted, proven by a
        handshake.
        """
        target, how, where, inserted = mutation
        damaged = dict(material.files)
        damaged[target] = _mutate(damaged[target], how, where, inserted)
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            paths = _write(directory, material.files)
            server = ReloadingContextFactory(str(paths["cert"]), str(paths["key"]))
            credentials = ReloadingClientCredentials(
                str(paths["ca"]), str(paths["cert"]), str(paths["key"])
            )
            (directory / "fresh").mkdir()
            freshPaths = _write(directory / "fresh", damaged)
            try:
                ReloadingClientCredentials(
                    str(freshPaths["ca"]),
                    str(freshPaths["cert"]),
                    str(freshPaths["key"]),
                )
            except CredentialError as e:
                _assertNamesOneOf(e, freshPaths)

            _write(directory, damaged)
            result = credentials.reload()
            if result.error is not None:
                _assertNamesOneOf(result.error, paths)
                assert credentials.trustedCAs == 2
                seen = handshake(server, credentials.creatorFor("localhost"))
                assert seen.succeeded, seen.failureText()
                assert seen.roundTrip(b"ping") == b"ping"
