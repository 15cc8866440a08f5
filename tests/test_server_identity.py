"""
Tests for the client's check of the server's name: every client path refuses
a certificate that is not valid for the name asked for, however its names
are malformed, and says why.

Twisted's own check (since 26.4) fails open when C{service_identity} finds
the certificate's names unusable rather than mismatched; these tests cover
exactly those certificates, with real handshakes, and assert whether
application data flowed.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from service_identity import VerificationError
from twisted.internet.endpoints import (
    TCP4ServerEndpoint,
    clientFromString,
    wrapServerTLS,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.logger import LogEvent, formatEvent

from txtlsreload import (
    ReloadingClientContextFactory,
    ReloadingClientCredentials,
    ReloadingPolicyForHTTPS,
    ServerIdentityError,
)

from .peers import Outcome, connectOnce, writeCA
from .reactors import runInReactor
from .tlshelpers import handshake

# --- certificates with names trustme will not write ---------------------------


def issue(
    ca: trustme.CA,
    names: list[x509.GeneralName] | None,
    commonName: str = "server",
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """
    A leaf from C{ca} with exactly C{names} as subjectAltNames (none at all
    when L{None}), whatever C{service_identity} thinks of them.
    """
    caKey = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    caCert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)]))
        .issuer_name(caCert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    certificate = builder.sign(caKey, hashes.SHA256())  # type: ignore[arg-type]
    return key, certificate


def serverFor(
    ca: trustme.CA, names: list[x509.GeneralName] | None, commonName: str = "server"
) -> CertificateOptions:
    """
    Plain Twisted server options serving a leaf with C{names}.
    """
    key, certificate = issue(ca, names, commonName)
    return CertificateOptions(privateKey=key, certificate=certificate)


def dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(name) for name in names]


def ip(*addresses: str) -> list[x509.GeneralName]:
    return [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]


# --- every client path we ship ----------------------------------------------------


def viaFactory(hostname: str, caFile: Path) -> object:
    return ReloadingClientContextFactory(hostname, str(caFile))


def viaCredentials(hostname: str, caFile: Path) -> object:
    return ReloadingClientCredentials(str(caFile)).creatorFor(hostname)


def viaPolicy(hostname: str, caFile: Path) -> object:
    # An agent hands its policy the URL's host as IDNA bytes.
    netloc = hostname.encode("idna") if not hostname.isascii() else hostname.encode()
    return ReloadingPolicyForHTTPS(str(caFile)).creatorForNetloc(netloc, 443)


def viaEndpoint(hostname: str, caFile: Path) -> object:
    from twisted.internet import reactor

    escaped = hostname.replace(":", "\\:")
    endpoint = clientFromString(
        reactor,
        f"tlsreload:host=127.0.0.1:port=443:hostname={escaped}"
        f":caCerts={caFile}:sighup=no",
    )
    return endpoint.contextFactory  # type: ignore[attr-defined]


CLIENT_PATHS: dict[str, Callable[[str, Path], object]] = {
    "ReloadingClientContextFactory": viaFactory,
    "ReloadingClientCredentials": viaCredentials,
    "ReloadingPolicyForHTTPS": viaPolicy,
    "tlsreload: endpoint": viaEndpoint,
}


@pytest.fixture(params=sorted(CLIENT_PATHS))
def clientFor(request: pytest.FixtureRequest) -> Callable[[str, Path], object]:
    """
    Each of the ways a program makes client TLS options with txtlsreload.
    """
    return CLIENT_PATHS[request.param]


REFUSED = [
    pytest.param(None, "bank.example", "it has no subjectAltName", id="no SAN"),
    pytest.param(
        dns("*"), "bank.example", "a subjectAltName no client may accept", id="*"
    ),
    pytest.param(
        dns("*.com"), "bank.com", "a subjectAltName no client may accept", id="*.com"
    ),
    pytest.param(
        dns("*.*.example.com"),
        "a.b.example.com",
        "a subjectAltName no client may accept",
        id="*.*.example.com",
    ),
    pytest.param(
        dns("10.0.0.1"),
        "10.0.0.1",
        "a subjectAltName no client may accept",
        id="IP as DNS name",
    ),
    pytest.param(
        dns("bank.example", "*"),
        "bank.example",
        "a subjectAltName no client may accept",
        id="good name beside a malformed one",
    ),
    pytest.param(
        [x509.RFC822Name("ops@bank.example")],
        "bank.example",
        "its names are none (no DNS name or IP address)",
        id="e-mail address only",
    ),
    pytest.param(
        dns("other.example"), "bank.example", "its names are other.example", id="wrong"
    ),
    pytest.param(
        ip("127.0.0.2"), "127.0.0.1", "its names are 127.0.0.2", id="other IP"
    ),
    pytest.param(
        dns("localhost"), "127.0.0.1", "its names are localhost", id="IP not in DNS"
    ),
    pytest.param(
        dns("*.example.com"),
        "a.b.example.com",
        "its names are *.example.com",
        id="wildcard two labels deep",
    ),
    pytest.param(
        dns("*.example.com"),
        "example.com",
        "its names are *.example.com",
        id="wildcard for the bare domain",
    ),
]


class TestRefused:
    """
    A certificate from a trusted CA that is not valid for the name asked for
    ends the connection before any application data, on every client path.
    """

    @pytest.mark.parametrize(("names", "hostname", "why"), REFUSED)
    def test_refused(
        self,
        ca: trustme.CA,
        caFile: Path,
        clientFor: Callable[[str, Path], object],
        names: list[x509.GeneralName] | None,
        hostname: str,
        why: str,
    ) -> None:
        """
        The handshake fails, no data flows, and the error names the host,
        the certificate and the reason.
        """
        result = handshake(serverFor(ca, names), clientFor(hostname, caFile))
        assert not result.succeeded
        assert result.roundTrip(b"ping") == b""
        assert result.clientApp.received == b""
        assert result.clientApp.lostReason is not None
        error = result.clientApp.lostReason.value
        assert isinstance(error, ServerIdentityError)
        assert isinstance(error, VerificationError)
        assert str(error).startswith("the server's certificate CN=server is not valid")
        assert f"not valid for {hostname}: " in str(error)
        assert why in str(error)

    def test_commonNameIsNotAName(
        self, ca: trustme.CA, caFile: Path, clientFor: Callable[[str, Path], object]
    ) -> None:
        """
        A certificate whose only mention of the host is its common name is
        refused: the common name is not a name in modern TLS.
        """
        server = serverFor(ca, None, commonName="bank.example")
        result = handshake(server, clientFor("bank.example", caFile))
        assert result.roundTrip(b"ping") == b""
        assert "CN=bank.example is not valid for bank.example" in result.failureText()
        assert "the common name is not checked" in result.failureText()

    def test_controlCharactersEscaped(self, ca: trustme.CA, caFile: Path) -> None:
        """
        What the server's certificate says reaches the error, and its repr
        (what error reporters show), escaped, so a hostile subject cannot
        forge log lines or drive a terminal.
        """
        server = serverFor(ca, dns("x.example"), commonName="evil\n\x1b[31mred")
        result = handshake(server, viaFactory("bank.example", caFile))
        text = result.failureText()
        assert "\n" not in text and "\x1b" not in text
        assert "evil\\n\\x1b[31mred" in text
        assert result.clientApp.lostReason is not None
        shown = repr(result.clientApp.lostReason.value)
        assert shown == f"ServerIdentityError({text!r})"
        assert "\n" not in shown and "\x1b" not in shown

    def test_manyNamesShortened(self, ca: trustme.CA, caFile: Path) -> None:
        """
        A certificate with hundreds of names gets a short error: five names
        and a count.
        """
        names = [f"host{n}.example" for n in range(300)]
        result = handshake(
            serverFor(ca, dns(*names)), viaFactory("bank.example", caFile)
        )
        text = result.failureText()
        assert "host0.example, host1.example" in text
        assert "and 295 more" in text
        assert "host299.example" not in text

    def test_stillRefusedAfterReload(
        self, tmp_path: Path, ca: trustme.CA, caFile: Path
    ) -> None:
        """
        Options rebuilt by a reload (a new CA bundle) check names the same
        way: a certificate without subjectAltName from the new CA is refused,
        one with the right name accepted.
        """
        credentials = ReloadingClientCredentials(str(caFile))
        creator = credentials.creatorFor("bank.example")
        newCA = trustme.CA()
        writeCA(newCA, caFile)
        assert credentials.reload().changed
        refused = handshake(serverFor(newCA, None), creator)
        assert refused.roundTrip(b"ping") == b""
        assert "has no subjectAltName" in refused.failureText()
        accepted = handshake(serverFor(newCA, dns("bank.example")), creator)
        assert accepted.roundTrip(b"ping") == b"ping"

    def test_untrustedStillRefusedFirst(self, ca: trustme.CA, caFile: Path) -> None:
        """
        A certificate for the right name from a CA that is not trusted is
        refused for its chain, as before.
        """
        server = serverFor(trustme.CA(), dns("bank.example"))
        result = handshake(server, viaFactory("bank.example", caFile))
        assert result.roundTrip(b"ping") == b""
        assert "certificate verify failed" in result.failureText()


ACCEPTED = [
    pytest.param(dns("bank.example"), "bank.example", id="exact"),
    pytest.param(ip("127.0.0.1"), "127.0.0.1", id="IP SAN"),
    pytest.param(ip("::1"), "[::1]", id="IPv6 SAN, bracketed"),
    pytest.param(dns("*.example.com"), "a.example.com", id="wildcard one label"),
    pytest.param(dns("bank.example"), "bank.example.", id="trailing dot"),
    pytest.param(dns("bank.example"), "BANK.Example", id="upper-case hostname"),
    pytest.param(dns("BANK.EXAMPLE"), "bank.example", id="upper-case SAN"),
    pytest.param(dns("xn--bcher-kva.example"), "bücher.example", id="IDNA"),
    pytest.param(dns("xn--bcher-kva.example"), "xn--bcher-kva.example", id="A-label"),
]


class TestAccepted:
    """
    A certificate valid for the name asked for is accepted on every client
    path, however the name is written.
    """

    @pytest.mark.parametrize(("names", "hostname"), ACCEPTED)
    def test_accepted(
        self,
        ca: trustme.CA,
        caFile: Path,
        clientFor: Callable[[str, Path], object],
        names: list[x509.GeneralName],
        hostname: str,
    ) -> None:
        """
        The handshake completes and data flows both ways.
        """
        result = handshake(serverFor(ca, names), clientFor(hostname, caFile))
        assert result.succeeded, result.failureText()
        assert result.roundTrip(b"ping") == b"ping"

    @pytest.mark.parametrize(
        ("hostname", "sent"),
        [
            ("bank.example.", b"bank.example"),
            ("BANK.Example", b"bank.example"),
            ("bücher.example", b"xn--bcher-kva.example"),
        ],
    )
    def test_serverNameSentNormalized(
        self, ca: trustme.CA, caFile: Path, hostname: str, sent: bytes
    ) -> None:
        """
        SNI carries the normalized name (lower case, A-labels, no trailing
        dot), as RFC 6066 asks.
        """
        names = dns("bank.example", "xn--bcher-kva.example")
        result = handshake(serverFor(ca, names), viaFactory(hostname, caFile))
        assert result.succeeded, result.failureText()
        assert result.serverNameSeenByServer == sent


class TestOverLoopback:
    """
    The example from the report, end to end: a C{tlsreload:} client endpoint
    against a real listening server with a certificate without
    subjectAltName.
    """

    def test_noSubjectAltNameRefusedOverTCP(
        self, ca: trustme.CA, caFile: Path, logEvents: list[LogEvent]
    ) -> None:
        """
        The connection fails with the reason and the server's response never
        reaches the client.
        """
        server = serverFor(ca, None, commonName="bank.example")

        class Greeter(Protocol):
            def connectionMade(self) -> None:
                assert self.transport is not None
                self.transport.write(b"HTTP/1.0 200 OK\r\n\r\nsecret")

        def scenario(reactor: Any) -> Generator[Any, Any, Outcome]:
            endpoint = wrapServerTLS(
                server, TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1"), reactor
            )
            port = yield endpoint.listen(Factory.forProtocol(Greeter))
            client = clientFromString(
                reactor,
                f"tlsreload:host=127.0.0.1:port={port.getHost().port}"
                f":hostname=bank.example:caCerts={caFile}:sighup=no",
            )
            outcome: Outcome = yield connectOnce(client)
            yield port.stopListening()
            return outcome

        outcome: Outcome = runInReactor(scenario)
        assert outcome.response == b""
        assert "has no subjectAltName" in outcome.error
        assert "not valid for bank.example" in outcome.error
        # Twisted's callback, which would log and let it through, never ran.
        assert not [e for e in logEvents if "while verifying" in (formatEvent(e) or "")]


class TestHostnames:
    """
    What a client accepts as the name to verify.
    """

    @pytest.mark.parametrize(
        ("hostname", "normalized"),
        [
            ("Bank.Example.", "bank.example"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("[::1]", "::1"),
            ("0:0::1", "::1"),
            ("127.0.0.1", "127.0.0.1"),
        ],
    )
    def test_normalized(self, caFile: Path, hostname: str, normalized: str) -> None:
        """
        The creator's C{hostname} is the form that is checked and sent.
        """
        assert viaFactory(hostname, caFile).hostname == normalized  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        "hostname",
        ["", "a b", "-bad.example", "*.example.com", "a..b", "x" * 64 + ".a"],
    )
    def test_refused(self, caFile: Path, hostname: str) -> None:
        """
        What is neither a DNS name nor an IP address is refused when the
        creator is made, not at connection time.
        """
        with pytest.raises(ValueError, match=r"hostname|DNS name"):
            ReloadingClientContextFactory(hostname, str(caFile))


@pytest.fixture
def caFile(tmp_path: Path, ca: trustme.CA) -> Path:
    """
    The test's CA as a bundle file.
    """
    return writeCA(ca, tmp_path / "ca.pem")
