# -*- test-case-name: tests.test_factory,tests.test_store,tests.test_one_name -*-
"""
A server certificate from files named explicitly: the one a
L{ReloadingContextFactory <txtlsreload.ReloadingContextFactory>} serves, and
a L{ReloadingCertificateStore <txtlsreload.ReloadingCertificateStore>}'s
default certificate.

It is the source beside L{DirectoryReader
<txtlsreload._directory.DirectoryReader>}: both turn files into
L{Candidate}s.  This one reads a certificate, key, chain, client CAs and
passphrase file named by the program, reloads them through the shared
L{Reloader} (so they are checked, refused and reported exactly alike
wherever they are used) and hands each new certificate, as a one-candidate
L{Selection}, to whoever installs it: the factory builds and swaps its one
context, the store chooses its names again with it as the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from twisted.logger import Logger

from ._errors import CredentialError, escapeControls
from ._loading import (
    CertificateInfo,
    CredentialFiles,
    Credentials,
    FileContents,
    parseCredentialFiles,
    readCredentialFiles,
)
from ._reloader import Reloader, warnIfInvalid
from ._selection import Candidate, Selection
from ._serving import ClientAuth

__all__ = [
    "ExplicitCertificate",
    "ExplicitRead",
    "LoadedCertificate",
    "ReloadResult",
    "contextRefused",
]


@dataclass(frozen=True)
class ReloadResult:
    """
    The outcome of one reload.

    @ivar succeeded: C{True} if the files were good (changed or not).
    @ivar changed: C{True} if new credentials were installed.
    @ivar certificate: The certificate being served after this reload: the new
        one on success, the unchanged old one otherwise.
    @ivar error: Why the reload was refused, if it was.
    @ivar initial: C{True} for the load at construction, which is not a
        reload: C{str()} then says "loaded", not "reloaded".
    """

    succeeded: bool
    changed: bool
    certificate: CertificateInfo
    error: CredentialError | None = None
    initial: bool = False

    def __str__(self) -> str:
        served = (
            f"serial {self.certificate.serialHex}, "
            f"notAfter {self.certificate.notAfter.isoformat()}"
        )
        if self.error is not None:
            return f"reload failed: {self.error}; still serving {served}"
        if self.initial:
            return f"loaded: serving {self.certificate.subject} ({served})"
        if self.changed:
            return f"reloaded: now serving {self.certificate.subject} ({served})"
        return f"unchanged: still serving {served}"


@dataclass(frozen=True, eq=False)
class LoadedCertificate:
    """
    The files in use, what they held when read, and the settings they were
    read with.

    @ivar selection: The credentials as the one candidate of a selection,
        what contexts are built from; the same object for as long as the
        files' bytes are, so that contexts built from it are kept.
    """

    files: CredentialFiles
    clientAuth: ClientAuth | None
    credentials: Credentials
    selection: Selection


@dataclass(frozen=True)
class ExplicitRead:
    """
    One reading of the files, with the settings asked for.
    """

    contents: FileContents
    clientAuth: ClientAuth | None

    @property
    def digest(self) -> bytes:
        return self.contents.digest


def contextRefused(path: str, error: Exception) -> CredentialError:
    """
    Blame C{path} for a context that could not be built from checked files.
    """
    return CredentialError(
        path, f"could not build a TLS context: {type(error).__name__}: {error}"
    )


class ExplicitCertificate:
    """
    A certificate from named files, loaded at construction and reloaded on
    demand by the shared L{Reloader}; the server side's L{ReloadSide
    <txtlsreload._reloader.ReloadSide>}.

    @ivar reloader: Holds what is in use (C{reloader.current}) and the
        history of results.
    """

    _log = Logger()

    def __init__(
        self,
        files: CredentialFiles,
        clientAuth: ClientAuth | None,
        passphrase: bytes | None,
        now: Callable[[], datetime],
        install: Callable[[LoadedCertificate, LoadedCertificate | None], None],
        owner: object | None,
    ) -> None:
        """
        Load the files.

        @param install: Puts a newly loaded certificate in use (see
            L{Reloader}).
        @param owner: Whose reloads these are, reported process-wide;
            L{None} for a store's default, reported as part of the store's.

        @raise CredentialError: If the files are unusable.
        """
        self._passphrase = passphrase
        self._now = now
        self._path = files.certificateFile
        self.reloader: Reloader[LoadedCertificate, ExplicitRead, ReloadResult] = (
            Reloader(self, lambda: self._read(files, clientAuth), install, owner)
        )

    @property
    def current(self) -> LoadedCertificate:
        """
        What is in use.
        """
        return self.reloader.current

    def reload(
        self,
        quietIfRepeated: bool,
        files: CredentialFiles | None = None,
        clientAuth: ClientAuth | None = None,
    ) -> ReloadResult:
        """
        Read the files again and install them if they changed and are good.
        Never raises.

        @param files: Other files to read instead (with other client CAs);
            by default those in use, with the settings in use.
        @param clientAuth: With C{files}, the client-certificate setting.
        """
        if files is None:
            files, clientAuth = self.current.files, self.current.clientAuth
        return self.reloader.reload(
            lambda: self._read(files, clientAuth), quietIfRepeated
        )

    def _read(
        self, files: CredentialFiles, clientAuth: ClientAuth | None
    ) -> ExplicitRead:
        return ExplicitRead(readCredentialFiles(files, self._passphrase), clientAuth)

    # The ReloadSide.

    def unchanged(self, read: ExplicitRead, current: LoadedCertificate) -> bool:
        return (
            read.digest == current.credentials.digest
            and read.clientAuth == current.clientAuth
        )

    def prepare(
        self, read: ExplicitRead, current: LoadedCertificate | None
    ) -> LoadedCertificate:
        files = read.contents.files
        credentials = parseCredentialFiles(read.contents, self._passphrase)
        warnIfInvalid(
            self._log,
            "Installing {path} although {problem}: the certificate"
            " being served is no longer valid either",
            files.certificateFile,
            credentials.info,
            None if current is None else current.credentials.info,
            self._now(),
        )
        candidate = Candidate.of(credentials, files.certificateFile)
        return LoadedCertificate(
            files, read.clientAuth, credentials, Selection((candidate,))
        )

    def blame(self, error: Exception) -> CredentialError:
        return contextRefused(self._path, error)

    def result(
        self, state: LoadedCertificate, changed: bool, initial: bool = False
    ) -> ReloadResult:
        return ReloadResult(
            succeeded=True,
            changed=changed,
            certificate=state.credentials.info,
            initial=initial,
        )

    def refusal(
        self, error: CredentialError, current: LoadedCertificate
    ) -> ReloadResult:
        return ReloadResult(
            succeeded=False,
            changed=False,
            certificate=current.credentials.info,
            error=error,
        )

    def logInstalled(self, state: LoadedCertificate) -> None:
        info = state.credentials.info
        self._log.info(
            "TLS certificate loaded from {path}: {subject}, serial {serial},"
            " notAfter {notAfter}, {chainLength} chain certificate(s),"
            " {clientCACount} client CA(s)",
            path=escapeControls(state.files.certificateFile),
            subject=info.subject,
            serial=info.serialHex,
            notAfter=info.notAfter.isoformat(),
            fingerprint=info.fingerprintSHA256,
            subjectAltNames=list(info.subjectAltNames),
            chainLength=len(state.credentials.chain),
            clientCACount=len(state.credentials.clientCAs),
        )

    def logUsableAgain(self, state: LoadedCertificate) -> None:
        self._log.info(
            "TLS files usable again: {path} is what is being served (serial {serial})",
            path=escapeControls(state.files.certificateFile),
            serial=state.credentials.info.serialHex,
        )

    def logRefused(self, error: CredentialError, current: LoadedCertificate) -> None:
        info = current.credentials.info
        self._log.error(
            "TLS reload refused: {path}: {error}; still serving serial {serial}"
            " (notAfter {notAfter})",
            path=escapeControls(error.path),
            error=escapeControls(error.reason),
            serial=info.serialHex,
            notAfter=info.notAfter.isoformat(),
        )
