# -*- test-case-name: tests.test_hostile_files -*-
"""
What a credential file may cost to load.

Reloads run in the reactor thread, so a file that is slow to load stalls
every connection of the process, and a watcher retries a refused file for
as long as it stays on disk.  The expensive things a file can ask for are
an RSA key of tens of thousands of bits (every operation with it takes
seconds) and an encrypted key whose key derivation is set to run millions
of times.  Both are refused here, from numbers read before the expensive
work starts, with a message saying the figure and the limit.

The limits sit at or above what real tools write: CAs issue RSA keys of up
to 4096 bits (8192 at most); OpenSSL 3 and cryptography encrypt keys with
2,048 PBKDF2 iterations, PKCS#12 tools with 2,048 to 10,000, and
C{openssl pkcs8 -scrypt} with N=16384, r=8, p=1.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)

from ._errors import CredentialError

__all__ = [
    "MAX_KDF_ITERATIONS",
    "MAX_RSA_BITS",
    "MAX_SCRYPT_COST",
    "MAX_SERVABLE_RSA_BITS",
    "MIN_EC_BITS",
    "MIN_RSA_BITS",
    "checkKeyDerivation",
    "keySizeProblem",
]

# A reload signs once with the key it is to serve (the proof that the key
# works), and so does every handshake: about 1 ms with RSA 2048, 5 ms with
# 4096, 50 ms with 8192, about 0.4 s with 16384 and several seconds with
# 32768 bits.  Keys that are not really RSA keys (factors that are not
# prime) cost OpenSSL four times as much, as it falls back from CRT.
MAX_SERVABLE_RSA_BITS = 8192
# Public keys in chains and CA bundles are only ever used to verify, which is
# cheap (the public exponent is small) up to OpenSSL's own limit.
MAX_RSA_BITS = 16384
# OpenSSL's default security level refuses smaller keys when a context is
# built ("ee key too small"); saying so up front names the real problem.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 224
# About 25 ms with HMAC-SHA256 and 50 ms with HMAC-SHA512 per decryption on
# a 2-core machine: under the 100 ms a reload may block the reactor.
MAX_KDF_ITERATIONS = 100_000
# N * r * p for scrypt: OpenSSL's default (16384 * 8 * 1), about 50 ms and
# 16 MiB of memory.
MAX_SCRYPT_COST = 16384 * 8

_OID_PBES2 = bytes.fromhex("2a864886f70d01050d")
_OID_PBKDF2 = bytes.fromhex("2a864886f70d01050c")
_OID_SCRYPT = bytes.fromhex("2b06010401da47040b")
# PKCS#5 v1 (pbeWithMD5AndDES-CBC and friends) and PKCS#12 PBE schemes:
# their parameters are a salt and an iteration count.
_OID_PBES1_PREFIX = bytes.fromhex("2a864886f70d0105")
_OID_PKCS12_PBE_PREFIX = bytes.fromhex("2a864886f70d010c01")

_SEQUENCE = 0x30
_INTEGER = 0x02
_OID = 0x06


def keySizeProblem(
    key: CertificatePublicKeyTypes | PrivateKeyTypes, servable: bool
) -> str | None:
    """
    Say why C{key} is too large to use cheaply, or (when it is to serve TLS,
    C{servable}: a leaf certificate's key, or a private key) too small for
    OpenSSL to accept or too large to sign with on every handshake; L{None}
    if neither.
    """
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey | dsa.DSAPublicKey):
        bits = key.key_size
        kind = "RSA" if not isinstance(key, dsa.DSAPublicKey) else "DSA"
        if servable and bits > MAX_SERVABLE_RSA_BITS:
            return (
                f"{kind} key of {bits} bits is too large to serve (at most"
                f" {MAX_SERVABLE_RSA_BITS} bits: every handshake signs with it)"
            )
        if bits > MAX_RSA_BITS:
            return (
                f"{kind} key of {bits} bits is too large"
                f" (at most {MAX_RSA_BITS} bits are accepted)"
            )
        if servable and bits < MIN_RSA_BITS:
            return (
                f"{kind} key of {bits} bits is too small"
                f" (at least {MIN_RSA_BITS} bits are needed)"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if servable and key.curve.key_size < MIN_EC_BITS:
            return (
                f"elliptic-curve key on {key.curve.name} ({key.curve.key_size} bits)"
                f" is too small (at least {MIN_EC_BITS} bits are needed)"
            )
    return None


def checkKeyDerivation(path: str, block: bytes) -> None:
    """
    Refuse an C{ENCRYPTED PRIVATE KEY} PEM block whose key derivation would
    take too long, before anything decrypts it.

    Only the PKCS#8 C{EncryptedPrivateKeyInfo} header is read: the algorithm
    identifiers and their iteration counts or scrypt costs.  Schemes not
    listed here are left to cryptography, which refuses what it does not
    know.

    @raise CredentialError: If the limits are exceeded or the header cannot
        be read.
    """
    try:
        body = b"".join(line for line in block.splitlines()[1:-1] if b":" not in line)
        der = base64.b64decode(body)
        encryptedInfo = _sequence(der)
        algorithm = _sequence(_elements(encryptedInfo)[0])
        oid, *parameters = _elements(algorithm)
        scheme = _content(oid, _OID)
        if scheme == _OID_PBES2:
            kdf = _sequence(_elements(_sequence(parameters[0]))[0])
            kdfOid, *kdfParameters = _elements(kdf)
            kdfScheme = _content(kdfOid, _OID)
            values = _elements(_sequence(kdfParameters[0]))
            if kdfScheme == _OID_PBKDF2:
                _checkIterations(path, _integer(values[1]))
            elif kdfScheme == _OID_SCRYPT:
                n, r, p = (_integer(value) for value in values[1:4])
                if min(n, r, p) < 1 or n * r * p > MAX_SCRYPT_COST:
                    raise CredentialError(
                        path,
                        f"private key is encrypted with scrypt N={n}, r={r}, p={p};"
                        f" N*r*p above {MAX_SCRYPT_COST} is refused, as it would"
                        " block the server while decrypting",
                    )
        elif scheme.startswith((_OID_PBES1_PREFIX, _OID_PKCS12_PBE_PREFIX)):
            _checkIterations(path, _integer(_elements(_sequence(parameters[0]))[1]))
    except (ValueError, IndexError, binascii.Error):
        raise CredentialError(
            path, "encrypted private key could not be parsed (corrupt or truncated?)"
        ) from None


def _checkIterations(path: str, iterations: int) -> None:
    if iterations < 1 or iterations > MAX_KDF_ITERATIONS:
        raise CredentialError(
            path,
            f"private key is encrypted with {iterations} key-derivation iterations;"
            f" more than {MAX_KDF_ITERATIONS} are refused, as they would block"
            " the server while decrypting (re-encrypt it with"
            " 'openssl pkcs8 -topk8 -iter 2048')",
        )


def _tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """
    Read one DER tag-length-value at C{offset}.

    @return: The tag, the value and the offset after it.
    @raise ValueError: If it runs past the end of C{data}.
    """
    if offset + 2 > len(data):
        raise ValueError("truncated")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise ValueError("truncated")
    return tag, data[offset:end], end


def _sequence(data: bytes) -> bytes:
    return _content(data, _SEQUENCE)


def _content(data: bytes, tag: int) -> bytes:
    found, value, _ = _tlv(data, 0)
    if found != tag:
        raise ValueError("unexpected tag")
    return value


def _elements(data: bytes) -> list[bytes]:
    """
    Split the contents of a SEQUENCE into its encoded elements.
    """
    elements = []
    offset = 0
    while offset < len(data):
        _, _, end = _tlv(data, offset)
        elements.append(data[offset:end])
        offset = end
    return elements


def _integer(data: bytes) -> int:
    return int.from_bytes(_content(data, _INTEGER), "big", signed=True)
