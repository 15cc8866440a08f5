"""
Nothing secret, and nothing raw from outside, in what txtlsreload reports:
the refused key and its passphrase appear in no error, result, log line or
traceback local; control characters from certificates, file names and
descriptions are escaped; long description values are cut short; and every
half-made object can still be shown.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, formatEvent

from txtlsreload import (
    CredentialError,
    FileWatcher,
    ReloadingClientContextFactory,
    ReloadingClientCredentials,
    ReloadingClientEndpoint,
    ReloadingContextFactory,
    ReloadingPolicyForHTTPS,
    ReloadingServerEndpoint,
)

from .tlshelpers import (
    assertNoKeyMaterial,
    assertNoRawControls,
    clientOptions,
    everythingReported,
    handshake,
    pemOf,
    selfSigned,
    writeLeaf,
)

ROOT = Path(__file__).parent.parent

_TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _quote(path: Path) -> str:
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


@dataclass
class _Files:
    """
    A server or client certificate, its encrypted key and the passphrase
    file that decrypts it.
    """

    ca: trustme.CA
    certificate: Path
    key: Path
    passphraseFile: Path
    caFile: Path

    def refusedMaterial(self) -> tuple[list[Path], tuple[bytes, ...]]:
        """
        What is on disk now, which no report may contain: the key file and
        the passphrase.
        """
        return [self.key], (self.passphraseFile.read_bytes().strip(),)


def _passphrase() -> bytes:
    return f"passphrase-{secrets.token_hex(12)}".encode()


def _encrypted(keyPem: bytes, passphrase: bytes) -> bytes:
    key = serialization.load_pem_private_key(keyPem, None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def _goodFiles(ca: trustme.CA, directory: Path) -> _Files:
    """
    A certificate with an encrypted key and the right passphrase file.
    """
    certificate, key, _ = writeLeaf(ca, directory)
    passphrase = _passphrase()
    key.write_bytes(_encrypted(key.read_bytes(), passphrase))
    passphraseFile = directory / "passphrase.txt"
    passphraseFile.write_bytes(passphrase + b"\n")
    caFile = directory / "ca.pem"
    caFile.write_bytes(ca.cert_pem.bytes())
    return _Files(ca, certificate, key, passphraseFile, caFile)


def _mismatchedKey(files: _Files) -> str:
    """
    A valid key, but not the certificate's (the passphrase is harmless).
    """
    files.key.write_bytes(files.ca.issue_cert("other.example").private_key_pem.bytes())
    return "does not match the certificate"


def _wrongPassphrase(files: _Files) -> str:
    """
    A new encrypted key, and a passphrase that does not decrypt it.
    """
    fresh = files.ca.issue_cert("localhost").private_key_pem.bytes()
    files.key.write_bytes(_encrypted(fresh, _passphrase()))
    files.passphraseFile.write_bytes(_passphrase() + b"\n")
    return "wrong passphrase"


def _corruptKey(files: _Files) -> str:
    """
    A key block whose base64 lines are random, so that each is distinctive.
    """
    body = base64.b64encode(os.urandom(480)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    files.key.write_text(
        "-----BEGIN PRIVATE KEY-----\n"
        + "\n".join(lines)
        + "\n-----END PRIVATE KEY-----\n"
    )
    return "could not be parsed"


_REFUSALS = [
    pytest.param(_mismatchedKey, id="mismatched key"),
    pytest.param(_wrongPassphrase, id="wrong passphrase"),
    pytest.param(_corruptKey, id="corrupt key"),
]


def _serverAtStartup(files: _Files) -> list[object]:
    with pytest.raises(CredentialError) as raised:
        ReloadingContextFactory(
            str(files.certificate),
            str(files.key),
            passphraseFile=str(files.passphraseFile),
        )
    return [raised.value]


def _clientAtStartup(files: _Files) -> list[object]:
    with pytest.raises(CredentialError) as raised:
        ReloadingClientCredentials(
            str(files.caFile),
            str(files.certificate),
            str(files.key),
            passphraseFile=str(files.passphraseFile),
        )
    return [raised.value]


def _endpointAtStartup(files: _Files) -> list[object]:
    with pytest.raises(CredentialError) as raised:
        serverFromString(
            MemoryReactorClock(),
            f"tlsreload:0:privateKey={_quote(files.key)}"
            f":certKey={_quote(files.certificate)}"
            f":passphraseFile={_quote(files.passphraseFile)}",
        )
    return [raised.value]


class TestRefusedKeyNeverShown:
    """
    The refused key's lines and the passphrase appear nowhere: not in the
    error (C{str} or C{repr}), not in the result, not in any log event.
    """

    @pytest.mark.parametrize("refuse", _REFUSALS)
    @pytest.mark.parametrize(
        "start",
        [
            pytest.param(_serverAtStartup, id="server"),
            pytest.param(_clientAtStartup, id="client"),
            pytest.param(_endpointAtStartup, id="tlsreload endpoint"),
        ],
    )
    def test_atStartup(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        logEvents: list[LogEvent],
        refuse: Callable[[_Files], str],
        start: Callable[[_Files], list[object]],
    ) -> None:
        """
        Construction refuses the files for the expected reason, and the
        error and the log carry none of the refused key material.
        """
        files = _goodFiles(ca, tmp_path)
        reason = refuse(files)

        reports = start(files)

        assert reason in str(reports[0])
        keyFiles, passphrases = files.refusedMaterial()
        assertNoKeyMaterial(
            everythingReported(*reports, events=logEvents),
            *keyFiles,
            passphrases=passphrases,
        )

    @pytest.mark.parametrize("refuse", _REFUSALS)
    def test_serverReload(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        logEvents: list[LogEvent],
        refuse: Callable[[_Files], str],
    ) -> None:
        """
        A refused server reload keeps serving the old certificate, and its
        result, error, failure callback and log carry none of the refused
        key material.
        """
        files = _goodFiles(ca, tmp_path)
        factory = ReloadingContextFactory(
            str(files.certificate),
            str(files.key),
            passphraseFile=str(files.passphraseFile),
        )
        told: list[object] = []
        factory.addReloadCallbacks(onFailure=told.append)
        served = factory.certificate.serialNumber
        reason = refuse(files)

        result = factory.reload()

        assert result.error is not None and reason in result.error.reason
        assert told == [result]
        after = handshake(factory, clientOptions(ca))
        assert after.serverCertificate is not None
        assert after.serverCertificate.serial_number == served
        keyFiles, passphrases = files.refusedMaterial()
        assertNoKeyMaterial(
            everythingReported(result, result.error, events=logEvents),
            *keyFiles,
            passphrases=passphrases,
        )

    @pytest.mark.parametrize("refuse", _REFUSALS)
    def test_clientReload(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        logEvents: list[LogEvent],
        refuse: Callable[[_Files], str],
    ) -> None:
        """
        A refused client reload reports and logs none of the refused key
        material.
        """
        files = _goodFiles(ca, tmp_path)
        credentials = ReloadingClientCredentials(
            str(files.caFile),
            str(files.certificate),
            str(files.key),
            passphraseFile=str(files.passphraseFile),
        )
        reason = refuse(files)

        result = credentials.reload()

        assert result.error is not None and reason in result.error.reason
        keyFiles, passphrases = files.refusedMaterial()
        assertNoKeyMaterial(
            everythingReported(result, result.error, credentials, events=logEvents),
            *keyFiles,
            passphrases=passphrases,
        )

    @pytest.mark.parametrize("refuse", _REFUSALS)
    def test_tlshelloStartup(
        self, tmp_path: Path, ca: trustme.CA, refuse: Callable[[_Files], str]
    ) -> None:
        """
        C{twistd tlshello} refusing its files at start-up prints the reason
        and none of the refused key material.
        """
        files = _goodFiles(ca, tmp_path)
        reason = refuse(files)
        description = (
            f"tlsreload:0:interface=127.0.0.1:privateKey={_quote(files.key)}"
            f":certKey={_quote(files.certificate)}"
            f":passphraseFile={_quote(files.passphraseFile)}"
        )

        result = subprocess.run(
            [*_TWISTD, "-n", "--pidfile=", "tlshello", "--listen", description],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        )

        assert result.returncode == 1
        assert reason in result.stdout
        keyFiles, passphrases = files.refusedMaterial()
        assertNoKeyMaterial(result.stdout, *keyFiles, passphrases=passphrases)

    @pytest.mark.parametrize(
        "start",
        [
            pytest.param(_serverAtStartup, id="server"),
            pytest.param(_clientAtStartup, id="client"),
        ],
    )
    def test_tracebackLocals(
        self, tmp_path: Path, ca: trustme.CA, start: Callable[[_Files], list[object]]
    ) -> None:
        """
        No frame of a start-up error's traceback holds the refused key in a
        local variable, as error reporters (Sentry, C{pytest -l}) would
        record it.
        """
        files = _goodFiles(ca, tmp_path)
        _corruptKey(files)

        [error] = start(files)

        assert isinstance(error, BaseException)
        shown = [
            f"{name}={value!r}"
            for frame in _libraryFrames(error.__traceback__)
            for name, value in frame.items()
        ]
        assert shown, "the traceback has no frame of the library"
        keyFiles, passphrases = files.refusedMaterial()
        assertNoKeyMaterial("\n".join(shown), *keyFiles, passphrases=passphrases)


def _libraryFrames(traceback: TracebackType | None) -> list[dict[str, object]]:
    """
    The local variables of each frame of C{traceback} outside the tests.
    """
    frames = []
    while traceback is not None:
        frame = traceback.tb_frame
        if not frame.f_code.co_filename.startswith(str(Path(__file__).parent)):
            frames.append(dict(frame.f_locals))
        traceback = traceback.tb_next
    return frames


_HOSTILE = "evil\n\x1b[31mred\u202eright\x07\x9b"


def _selfSigned(commonName: str, dnsName: str) -> tuple[bytes, bytes]:
    """
    A self-signed certificate (PEM) with this subject CN and DNS name, and
    its key (PEM).
    """
    return pemOf(*selfSigned(commonName, dnsName))


def _formatted(events: Sequence[LogEvent]) -> list[str]:
    return [formatEvent(event) for event in events]


class TestControlCharactersEscaped:
    """
    Control and text-direction characters taken from a certificate or a
    file name reach log lines, errors and results escaped.
    """

    def test_subjectAndNames(self, tmp_path: Path, logEvents: list[LogEvent]) -> None:
        """
        A subject and a DNS name with a newline, a terminal escape and a
        bidi override are logged, reported and refused in escaped form.
        """
        certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        certPem, keyPem = _selfSigned(_HOSTILE, "a\n\x1b[31m\x7f.example")
        certificate.write_bytes(certPem)
        key.write_bytes(keyPem)
        factory = ReloadingContextFactory(str(certificate), str(key))
        names = factory.certificate.subjectAltNames
        certPem, keyPem = _selfSigned(_HOSTILE, "b.example")
        certificate.write_bytes(certPem)
        key.write_bytes(keyPem)
        reloaded = factory.reload()
        key.write_bytes(_selfSigned("other", "c.example")[1])
        refused = factory.reload()

        escaped = "evil\\n\\x1b[31mred\\u202eright\\x07\\x9b"
        assert escaped in factory.certificate.subject
        assert escaped in str(reloaded)
        assert refused.error is not None and escaped in str(refused.error)
        assert any(escaped in line for line in _formatted(logEvents))
        assert names == ("DNS:a\\n\\x1b[31m\\x7f.example",)
        assertNoRawControls(
            factory.certificate.subject,
            *names,
            str(reloaded),
            repr(reloaded),
            str(refused),
            repr(refused),
            str(refused.error),
            *_formatted(logEvents),
        )

    def test_clientSubject(self, tmp_path: Path, logEvents: list[LogEvent]) -> None:
        """
        A client certificate's hostile subject is logged escaped.
        """
        certificate, key = tmp_path / "client.pem", tmp_path / "client.key"
        certPem, keyPem = _selfSigned(_HOSTILE, "client.example")
        certificate.write_bytes(certPem)
        key.write_bytes(keyPem)

        credentials = ReloadingClientCredentials(
            str(certificate), str(certificate), str(key)
        )

        assert credentials.clientCertificate is not None
        assert "\\x1b[31m" in credentials.clientCertificate.subject
        assert any("\\x1b[31m" in line for line in _formatted(logEvents))
        assertNoRawControls(
            credentials.clientCertificate.subject, *_formatted(logEvents)
        )

    def test_fileName(
        self, tmp_path: Path, ca: trustme.CA, logEvents: list[LogEvent]
    ) -> None:
        """
        A key file whose name holds a newline and a terminal escape is named
        escaped in the start-up error, the refused reload's result and the
        log line.
        """
        certificate, goodKey, _ = writeLeaf(ca, tmp_path)
        key = tmp_path / "key\n\x1b[2J\u202e.pem"
        escaped = "key\\n\\x1b[2J\\u202e.pem"
        with pytest.raises(CredentialError) as raised:
            ReloadingContextFactory(str(certificate), str(key))
        key.write_bytes(goodKey.read_bytes())
        factory = ReloadingContextFactory(str(certificate), str(key))
        key.write_bytes(b"")

        result = factory.reload()

        assert escaped in str(raised.value)
        assert escaped in str(result)
        assert any(escaped in line for line in _formatted(logEvents))
        assertNoRawControls(
            str(raised.value),
            repr(raised.value),
            str(result),
            repr(result),
            repr(factory),
            *_formatted(logEvents),
        )


# Long enough to bury a message; Twisted tokenizes descriptions one
# character at a time, so a megabyte would cost a second per case.
_LONG = 100_000


class TestLongValuesCut:
    """
    A huge value in an endpoint description is cut short in the error,
    which still says how long it was.
    """

    @pytest.mark.parametrize(
        "parse, description",
        [
            (serverFromString, "tlsreload:0:privateKey=k.pem:backlog={long}"),
            (serverFromString, "tlsreload:0:privateKey=k.pem:clientAuth={long}"),
            (serverFromString, "tlsreload:0:privateKey=k.pem:sighup={long}"),
            (serverFromString, "tlsreload:0:privateKey=k.pem:watch={long}"),
            (serverFromString, "tlsreload:{long}:privateKey=k.pem"),
            (serverFromString, "tlsreload:0:{long}:privateKey=k.pem"),
            (serverFromString, "tlsreload:0:privateKey=k.pem:{long}=1"),
            (clientFromString, "tlsreload:host=h:port={long}"),
            (clientFromString, "tlsreload:host=h:port=1:timeout={long}"),
            (clientFromString, "tlsreload:h:1:{long}"),
            (clientFromString, "tlsreload:host=h:port=1:{long}=1"),
            (clientFromString, "tlsreload:host={long}:port=1"),
        ],
    )
    def test_cut(self, parse: Callable[..., object], description: str) -> None:
        """
        The message is a few hundred characters at most, not a megabyte,
        and gives the value's length.
        """
        with pytest.raises(ValueError) as raised:
            parse(MemoryReactorClock(), description.format(long="9x" * (_LONG // 2)))

        message = str(raised.value)
        assert len(message) < 500, message[:600]
        assert f"({_LONG} characters)" in message

    @pytest.mark.parametrize(
        "parse, description",
        [
            (serverFromString, "tlsreload:0:privateKey=k.pem:backlog=\x1b[2J\n"),
            (serverFromString, "tlsreload:0:privateKey=k.pem:\u202eevil=1"),
            (clientFromString, "tlsreload:host=h:port=1:timeout=\x1b[2J"),
        ],
    )
    def test_controlsEscaped(
        self, parse: Callable[..., object], description: str
    ) -> None:
        """
        Control characters in a description value are escaped in the error.
        """
        with pytest.raises(ValueError) as raised:
            parse(MemoryReactorClock(), description)

        assertNoRawControls(str(raised.value))


def _halfMade(
    cls: type,
    make: Callable[[Path, trustme.CA], object],
    tmp_path: Path,
    ca: trustme.CA,
) -> object:
    """
    The object C{make} failed to construct, as an error reporter finds it in
    the constructor's frame.
    """
    with pytest.raises((CredentialError, ValueError)) as raised:
        make(tmp_path, ca)
    traceback = raised.value.__traceback__
    while traceback is not None:
        candidate = traceback.tb_frame.f_locals.get("self")
        if type(candidate) is cls:
            return candidate
        traceback = traceback.tb_next
    raise AssertionError(f"no half-made {cls.__name__} in the traceback")


def _factory(tmp_path: Path, ca: trustme.CA) -> ReloadingContextFactory:
    certificate, key, _ = writeLeaf(ca, tmp_path)
    return ReloadingContextFactory(str(certificate), str(key))


def _creator(tmp_path: Path, ca: trustme.CA) -> ReloadingClientContextFactory:
    caFile = tmp_path / "ca.pem"
    caFile.write_bytes(ca.cert_pem.bytes())
    return ReloadingClientContextFactory("localhost", str(caFile))


_HALF_MADE = [
    pytest.param(
        ReloadingContextFactory,
        lambda p, ca: ReloadingContextFactory(str(p / "none.pem")),
        id="ReloadingContextFactory",
    ),
    pytest.param(
        ReloadingClientCredentials,
        lambda p, ca: ReloadingClientCredentials(str(p / "none.pem")),
        id="ReloadingClientCredentials",
    ),
    pytest.param(
        ReloadingClientContextFactory,
        lambda p, ca: ReloadingClientContextFactory(""),
        id="ReloadingClientContextFactory",
    ),
    pytest.param(
        ReloadingPolicyForHTTPS,
        lambda p, ca: ReloadingPolicyForHTTPS(cacheSize=0),
        id="ReloadingPolicyForHTTPS",
    ),
    pytest.param(
        FileWatcher,
        lambda p, ca: FileWatcher(_factory(p, ca), 0, MemoryReactorClock()),
        id="FileWatcher",
    ),
    pytest.param(
        ReloadingServerEndpoint,
        lambda p, ca: ReloadingServerEndpoint(
            MemoryReactorClock(), _factory(p, ca), 0, watch=-1
        ),
        id="ReloadingServerEndpoint",
    ),
    pytest.param(
        ReloadingClientEndpoint,
        lambda p, ca: ReloadingClientEndpoint(
            MemoryReactorClock(), "localhost", 443, _creator(p, ca), watch=-1
        ),
        id="ReloadingClientEndpoint",
    ),
]


class TestHalfMadeRepr:
    """
    Every public class with its own C{repr} can be shown after its
    constructor raised, as error reporters show the frame's C{self}.
    """

    @pytest.mark.parametrize("cls, make", _HALF_MADE)
    def test_repr(
        self,
        tmp_path: Path,
        ca: trustme.CA,
        cls: type,
        make: Callable[[Path, trustme.CA], object],
    ) -> None:
        """
        C{repr} of the half-made object names its class and raises nothing.
        """
        halfMade = _halfMade(cls, make, tmp_path, ca)

        assert repr(halfMade).startswith(f"<{cls.__name__}")
