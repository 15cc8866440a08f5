# -*- test-case-name: tests.test_metrics,tests.test_status,tests.test_expiry -*-
"""
What every reloadable of the process serves or trusts, described once for
metrics, the status page, expiry warnings and systemd's C{STATUS=}.

Only public attributes of the reloadables are read, so the views stay the
same however a factory keeps its state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from ._activity import ReloadRecord, recordOf
from ._client import ReloadingClientCredentials
from ._errors import CredentialError
from ._factory import ReloadingContextFactory
from ._loading import CertificateInfo
from ._registry import IReloadable, registered
from ._store import ReloadingCertificateStore

__all__ = ["Certificate", "Entry", "Reloadables", "Role", "inventory"]

Role = Literal["server", "client", "client_ca", "trust"]

Reloadables = Iterable[IReloadable] | Callable[[], list[IReloadable]] | None


@dataclass(frozen=True)
class Certificate:
    """
    One certificate being served (C{server}), presented (C{client}), or
    trusted to issue client (C{client_ca}) or server (C{trust}) certificates.

    @ivar path: The file it was read from.
    """

    role: Role
    path: str
    info: CertificateInfo


@dataclass(frozen=True)
class Entry:
    """
    One reloadable, as operators see it.

    @ivar kind: C{"server"} for a server factory, C{"client"} for client
        credentials.
    @ivar path: The file that names it: the certificate, else the CA bundle.
    @ivar files: Every file it reads, by what it is.
    @ivar leaf: The certificate it serves or presents, if any.
    @ivar certificates: The leaf, then every trusted CA.
    @ivar error: Why the latest reload was refused, if it was.
    @ivar record: What its reloads did.
    """

    reloadable: object
    kind: Literal["server", "client"]
    path: str
    files: dict[str, str | None]
    leaf: Certificate | None
    certificates: tuple[Certificate, ...]
    error: CredentialError | None
    record: ReloadRecord | None


def inventory(reloadables: Reloadables = None) -> list[Entry]:
    """
    Describe C{reloadables}: a fixed collection, a function returning one,
    or by default every reloadable alive in the process.

    Reloadables of kinds not known here are left out.
    """
    if reloadables is None:
        found: Iterable[object] = registered()
    elif callable(reloadables):
        found = reloadables()
    else:
        found = reloadables
    entries = []
    for reloadable in found:
        entry = _describe(reloadable)
        if entry is not None:
            entries.append(entry)
    # A stable order keeps status documents and STATUS= lines comparable.
    entries.sort(key=lambda e: (e.kind, e.path))
    return entries


def _describe(reloadable: object) -> Entry | None:
    if isinstance(reloadable, ReloadingContextFactory):
        files = reloadable.files
        leaf = Certificate("server", files.certificateFile, reloadable.certificate)
        cas = tuple(
            Certificate("client_ca", files.clientCAFile or "", info)
            for info in reloadable.clientCAs
        )
        return Entry(
            reloadable=reloadable,
            kind="server",
            path=files.certificateFile,
            files=asdict(files),
            leaf=leaf,
            certificates=(leaf, *cas),
            error=reloadable.lastResult.error,
            record=recordOf(reloadable),
        )
    if isinstance(reloadable, ReloadingCertificateStore):
        return _describeStore(reloadable)
    if isinstance(reloadable, ReloadingClientCredentials):
        clientFiles = reloadable.clientFiles
        named: dict[str, str | None] = {"caCertsFile": reloadable.caCertsFile}
        clientLeaf = None
        if clientFiles is not None:
            named.update(asdict(clientFiles))
            if reloadable.clientCertificate is not None:
                clientLeaf = Certificate(
                    "client", clientFiles.certificateFile, reloadable.clientCertificate
                )
        trust = tuple(
            Certificate("trust", reloadable.caCertsFile or "", info)
            for info in reloadable.trustedCertificates or ()
        )
        path = (
            clientFiles.certificateFile
            if clientFiles is not None
            else reloadable.caCertsFile or "<platform trust store>"
        )
        return Entry(
            reloadable=reloadable,
            kind="client",
            path=path,
            files=named,
            leaf=clientLeaf,
            certificates=(*(() if clientLeaf is None else (clientLeaf,)), *trust),
            error=reloadable.lastResult.error,
            record=recordOf(reloadable),
        )
    return None


def _describeStore(store: ReloadingCertificateStore) -> Entry:
    """
    A certificate store: its default certificate as the leaf, and every
    distinct certificate it serves (each once, however many names it
    covers), all under the store's directory.
    """
    directory = store.directory
    default = store.certificate
    served: dict[str, CertificateInfo] = {}
    if default is not None:
        served[default.fingerprintSHA256] = default
    for info in store.names.values():
        served.setdefault(info.fingerprintSHA256, info)
    certificates = [Certificate("server", directory, info) for info in served.values()]
    leaf = certificates[0] if default is not None else None
    return Entry(
        reloadable=store,
        kind="server",
        path=directory,
        files={"certificates": directory, "clientCAFile": store.clientCAFile},
        leaf=leaf,
        certificates=tuple(certificates),
        error=store.lastResult.error,
        record=recordOf(store),
    )
