"""
Certificates for the benchmarks, made fresh at every run.

A root CA signs a chain of intermediates, the last of which issues several
leaves with the same names: the "sets" a server rotates between.  Every set is
written in the layouts the two servers under test read:

 - C{fullchain.pem} (leaf then intermediates) and C{key.pem}, what
   C{ReloadingContextFactory} and the C{tlsreload:} endpoint take;
 - C{leaf.pem}, C{chain.pem} and C{key.pem}, what Twisted's own C{ssl:}
   endpoint takes (C{certKey}, C{extraCertChain}, C{privateKey});
 - C{combined.pem} (full chain then key), one file that can be replaced with
   a single atomic rename, which is what the rotation benchmarks swap in.

We build the chain with C{cryptography} rather than trustme because the
reload benchmark needs RSA 4096 leaves and long chains, which trustme does not
make.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateSet", "KeyType", "makeCertificateSets"]

KeyType = Literal["ecdsa-p256", "rsa2048", "rsa4096"]

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertificateSet:
    """
    One leaf, its chain and key, written to disk in every layout we need.

    @ivar directory: Where the files are.
    @ivar caFile: The root CA certificate, for clients to trust.
    @ivar fullchainFile: Leaf followed by the intermediates.
    @ivar leafFile: The leaf alone.
    @ivar chainFile: The intermediates alone.
    @ivar keyFile: The leaf's private key (PKCS#8, unencrypted).
    @ivar combinedFile: Full chain followed by the key, in one file.
    @ivar leafDER: The leaf in DER, to recognise it in a handshake.
    @ivar serial: The leaf's serial number.
    """

    directory: Path
    caFile: Path
    fullchainFile: Path
    leafFile: Path
    chainFile: Path
    keyFile: Path
    combinedFile: Path
    leafDER: bytes
    serial: int


def _newKey(keyType: KeyType) -> _PrivateKey:
    if keyType == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    bits = {"rsa2048": 2048, "rsa4096": 4096}[keyType]
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(commonName: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "txtlsreload benchmarks"),
            x509.NameAttribute(NameOID.COMMON_NAME, commonName),
        ]
    )


def _issue(
    subjectName: str,
    subjectKey: _PrivateKey,
    issuerName: x509.Name | None,
    issuerKey: _PrivateKey | None,
    isCA: bool,
) -> x509.Certificate:
    """
    Issue one certificate; self-signed when no issuer is given.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = _name(subjectName)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuerName or subject)
        .public_key(subjectKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=isCA, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subjectKey.public_key()),
            critical=False,
        )
    )
    if isCA:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    signer = issuerKey or subjectKey
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def makeCertificateSets(
    directory: Path,
    keyType: KeyType,
    count: int = 2,
    intermediates: int = 1,
) -> list[CertificateSet]:
    """
    Make a CA with C{intermediates} intermediates and C{count} leaves for
    C{localhost} and C{127.0.0.1}, each leaf with its own C{keyType} key.

    @param directory: An existing directory; each set goes into a
        subdirectory of it.
    @return: The sets, in the order they were made.
    """
    caKey = ec.generate_private_key(ec.SECP256R1())
    caCert = _issue("benchmark root CA", caKey, None, None, isCA=True)
    caFile = directory / "ca.pem"
    caFile.write_bytes(_pem(caCert))

    issuerCert, issuerKey = caCert, caKey
    chain: list[x509.Certificate] = []
    for level in range(intermediates):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(
            f"benchmark intermediate {level + 1}",
            key,
            issuerCert.subject,
            issuerKey,
            isCA=True,
        )
        chain.insert(0, cert)
        issuerCert, issuerKey = cert, key

    chainPEM = b"".join(_pem(c) for c in chain)
    sets = []
    for index in range(count):
        leafKey = _newKey(keyType)
        leaf = _issue("localhost", leafKey, issuerCert.subject, issuerKey, isCA=False)
        keyPEM = leafKey.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        setDirectory = directory / f"{keyType}-{index}"
        setDirectory.mkdir()
        files = {
            "leaf.pem": _pem(leaf),
            "chain.pem": chainPEM,
            "fullchain.pem": _pem(leaf) + chainPEM,
            "key.pem": keyPEM,
            "combined.pem": _pem(leaf) + chainPEM + keyPEM,
        }
        for name, data in files.items():
            path = setDirectory / name
            path.write_bytes(data)
            path.chmod(0o600)
        sets.append(
            CertificateSet(
                directory=setDirectory,
                caFile=caFile,
                fullchainFile=setDirectory / "fullchain.pem",
                leafFile=setDirectory / "leaf.pem",
                chainFile=setDirectory / "chain.pem",
                keyFile=setDirectory / "key.pem",
                combinedFile=setDirectory / "combined.pem",
                leafDER=leaf.public_bytes(serialization.Encoding.DER),
                serial=leaf.serial_number,
            )
        )
    return sets
