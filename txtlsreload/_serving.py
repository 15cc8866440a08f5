# -*- test-case-name: tests.test_factory,tests.test_store -*-
"""
What every handshake goes through, for one certificate or ten thousand.

Every connection is created from one long-lived I{dispatch} context that
holds no certificate.  Its servername callback, which OpenSSL runs on every
handshake (with or without SNI), asks the current L{Serving} which context the
name gets, switches the connection to it and sets the client-certificate
verify mode on the connection, since C{set_context} does not carry that over.
A reload prepares a whole new L{Serving} off to the side and installs it with
one attribute assignment.

The single-certificate L{ReloadingContextFactory
<txtlsreload.ReloadingContextFactory>} and the many-name
L{ReloadingCertificateStore <txtlsreload.ReloadingCertificateStore>} build
their contexts the same way: a candidate certificate goes into a
L{Selection <txtlsreload._selection.Selection>} (one candidate per key
type), which the L{ContextBuilder} in force (client CAs, C{clientAuth},
sessions) turns into a context.  They differ only in the L{Serving} they
install: the factory builds its one context at reload and installs a
L{OneContext}, so that a handshake reads one attribute; a store installs a
L{TableServing}: a name table whose contexts are built on first use and
kept in a bounded L{ContextCache}.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from OpenSSL.crypto import X509
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger

from ._loading import (
    Credentials,
    certificatesWithOpenSSLIn,
    optionalAbsolutePath,
    readFile,
)
from ._selection import NameTable, Selection
from ._sessions import SessionMismatch, SessionPolicy

__all__ = [
    "VERIFY_MODES",
    "ClientAuth",
    "ClientCABundle",
    "ContextBuilder",
    "ContextCache",
    "Dispatcher",
    "OneContext",
    "Serving",
    "TableServing",
    "buildContext",
    "sessionEntry",
]

#: Whether a server requires client certificates (C{"required"}) or asks for
#: them but serves clients without one (C{"optional"}); an untrusted
#: certificate is refused either way.
ClientAuth = Literal["required", "optional"]

VERIFY_MODES: dict[ClientAuth | None, int] = {
    None: SSL.VERIFY_NONE,
    "optional": SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE,
    "required": SSL.VERIFY_PEER
    | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    | SSL.VERIFY_CLIENT_ONCE,
}


class Serving(Protocol):
    """
    Everything a handshake needs, swapped as one object.
    """

    @property
    def verifyMode(self) -> int:
        """
        The client-certificate verify mode every connection gets.
        """

    def contextFor(self, serverName: bytes | None) -> SSL.Context | None:
        """
        The context a handshake naming C{serverName} switches to, or L{None}
        to leave it on the certificate-less dispatch context, which fails the
        handshake with C{handshake_failure}.  Must be cheap: no I/O, no
        parsing.
        """


def buildContext(
    credentials: tuple[Credentials, ...],
    clientCAs: Sequence[X509],
    clientAuth: ClientAuth | None,
) -> SSL.Context:
    """
    Build the context handshakes switch to, through L{CertificateOptions} so
    that Twisted's TLS defaults apply.

    @param credentials: One set, or several with different key types (RSA
        and ECDSA for one name): OpenSSL then picks, per client, the key the
        client supports.
    @param clientCAs: The client CAs, as pyOpenSSL objects converted once
        when they were read.
    """
    caCerts = list(clientCAs) if clientCAs else None
    common: dict[str, object] = {
        "verify": caCerts is not None,
        "caCerts": caCerts,
        "requireCertificate": clientAuth == "required",
    }
    if len(credentials) == 1:
        (only,) = credentials
        options = CertificateOptions(
            # CertificateOptions' annotations say pyOpenSSL objects, but the
            # context takes cryptography ones without deprecation warnings.
            privateKey=only.privateKey,  # type: ignore[arg-type]
            certificate=only.leaf,  # type: ignore[arg-type]
            extraCertChain=list(only.chain),  # type: ignore[arg-type]
            **common,  # type: ignore[arg-type]
        )
        return options.getContext()
    context = CertificateOptions(**common).getContext()  # type: ignore[arg-type]
    for each in credentials:
        _useWithOwnChain(context, each)
    return context


def _useWithOwnChain(context: SSL.Context, credentials: Credentials) -> None:
    """
    Add a certificate and key to C{context} with a chain of its own.

    C{add_extra_chain_cert} is context-wide (every client would get both key
    types' intermediates); only C{use_certificate_chain_file} keeps a chain
    per key, and pyOpenSSL offers no in-memory form of it, so the PEM goes
    through an anonymous in-memory file: no disk is touched.
    """
    pem = b"".join(
        c.public_bytes(Encoding.PEM) for c in (credentials.leaf, *credentials.chain)
    )
    fd = os.memfd_create("txtlsreload-chain", os.MFD_CLOEXEC)
    try:
        os.write(fd, pem)
        context.use_certificate_chain_file(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    context.use_privatekey(credentials.privateKey)
    context.check_privatekey()


@dataclass(frozen=True, eq=False)
class ContextBuilder:
    """
    The one way a selection becomes a context, for a single-certificate
    factory and for every name of a store: L{buildContext} with the client
    CAs and settings in force, keyed for sessions when they are on.

    A new builder (and with it new contexts) is made whenever the client
    CAs, C{clientAuth} or the session generation change, since a context
    that was used cannot be changed.

    @ivar sessionEntry: What a selection's sessions are keyed by: sessions
        resume only among handshakes whose selections give the same entry.
    """

    clientCAs: Sequence[X509]
    clientAuth: ClientAuth | None
    sessions: SessionPolicy | None
    sessionEntry: Callable[[Selection], str]

    @property
    def verifyMode(self) -> int:
        """
        The client-certificate verify mode every connection gets.
        """
        return VERIFY_MODES[self.clientAuth]

    def __call__(self, selection: object) -> SSL.Context:
        """
        Build the context for C{selection}.
        """
        assert isinstance(selection, Selection)
        context = buildContext(selection.credentials, self.clientCAs, self.clientAuth)
        if self.sessions is not None:
            self.sessions.prepare(context, self.sessionEntry(selection))
        return context


class ContextCache:
    """
    Contexts built on first use, the least recently used dropped beyond
    C{size}.

    A built context costs about 20-30 KiB and half a millisecond; parsed
    credentials cost about 3 KiB.  So a store of many names keeps every name
    parsed (bad files are refused at reload, never at a handshake) but only
    the contexts of names in recent use.

    Keys are the selection objects of a name table, which are reused across
    reloads for names whose certificates did not change, so their contexts
    survive a reload of other names.

    A context that cannot be built is logged once and remembered as
    L{None}: its name's handshakes then fail with an ordinary alert, without
    building and logging again each time.
    """

    _log = Logger()

    def __init__(self, build: Callable[[object], SSL.Context], size: int) -> None:
        if size < 1:
            raise ValueError(f"the context cache needs room for 1 or more, not {size}")
        self._build = build
        self.size = size
        self._contexts: OrderedDict[object, SSL.Context | None] = OrderedDict()
        self.builds = 0

    def __len__(self) -> int:
        return len(self._contexts)

    def get(self, key: object) -> SSL.Context | None:
        """
        The context for C{key}, built now if it is not cached; L{None} if it
        cannot be built.
        """
        contexts = self._contexts
        if key in contexts:
            contexts.move_to_end(key)
            return contexts[key]
        try:
            context: SSL.Context | None = self._build(key)
        except Exception:  # pragma: no cover
            # Defence in depth: keys OpenSSL refuses are refused when read.
            self._log.failure("Could not build the TLS context for {key!r}", key=key)
            context = None
        self.builds += 1
        contexts[key] = context
        if len(contexts) > self.size:
            contexts.popitem(last=False)
        return context


class Dispatcher:
    """
    The dispatch context and its servername callback.

    @ivar context: The context every connection is created from; it holds no
        certificate and sets the protocol-version policy, which
        C{set_context} does not change.
    @ivar serving: What handshakes switch to; replace it to reload.
    """

    _log = Logger()

    def __init__(self, serving: Serving, sessions: SessionPolicy | None = None) -> None:
        """
        @param sessions: Resume sessions with these settings; L{None} (the
            default) keeps Twisted's: no session cache, no tickets.
        """
        self.serving = serving
        self.sessions = sessions
        self.context = CertificateOptions().getContext()
        # Without sessions, the shorter callback: it runs at every
        # handshake, in CPU caches the handshake's crypto has just filled,
        # where every bytecode costs.
        self.context.set_tlsext_servername_callback(
            self._switch if sessions is not None else self._switchPlain
        )
        if sessions is not None:
            sessions.prepareDispatch(self.context)

    def connection(self) -> SSL.Connection:
        """
        A server connection for one accepted client.
        """
        if self.sessions is None:
            return SSL.Connection(self.context, None)
        return self.sessions.connection(self.context, self._contextFor)

    def _contextFor(self, serverName: bytes | None) -> SSL.Context | None:
        return self.serving.contextFor(serverName)

    def _switch(self, connection: SSL.Connection) -> None:
        """
        The servername callback: runs on every handshake and must never
        raise, since that would abort the handshake with a traceback on
        stderr.  A name that gets no context stays on the dispatch context,
        which has no certificate: the handshake fails with an ordinary alert.

        The one exception: with sessions, a name that OpenSSL reads
        differently from how L{PeekConnection
        <txtlsreload._sessions.PeekConnection>} read it may have resumed a
        session of another certificate, so the handshake is aborted.
        """
        mismatch = False
        try:
            serving = self.serving
            context = serving.contextFor(connection.get_servername())
            sessions = self.sessions
            if sessions is not None and not sessions.agrees(connection, context):
                mismatch = True
            elif context is not None:
                connection.set_context(context)
                # Connections start with the dispatch context's VERIFY_NONE.
                if serving.verifyMode != SSL.VERIFY_NONE:
                    connection.set_verify(serving.verifyMode)
        except Exception:
            self._log.failure(
                "Could not switch a TLS connection to the current context"
            )
        if mismatch:
            raise SessionMismatch("server name read differently")

    def _switchPlain(self, connection: SSL.Connection) -> None:
        """
        L{_switch} without sessions.
        """
        try:
            serving = self.serving
            context = serving.contextFor(connection.get_servername())
            if context is not None:
                connection.set_context(context)
                # Connections start with the dispatch context's VERIFY_NONE
                # (0).
                if serving.verifyMode:
                    connection.set_verify(serving.verifyMode)
        except Exception:
            self._log.failure(
                "Could not switch a TLS connection to the current context"
            )


@dataclass(frozen=True, eq=False)
class OneContext:
    """
    A L{Serving} with one prebuilt context for every handshake, whatever
    name it asks for: a single-certificate factory's, so that its
    handshakes read one attribute where a store's look a name up.

    @ivar selection: What the context was built from.
    """

    context: SSL.Context
    verifyMode: int
    selection: Selection

    @classmethod
    def build(cls, selection: Selection, builder: ContextBuilder) -> OneContext:
        """
        Build the context for C{selection} now, so that what OpenSSL
        refuses is a refused reload rather than a failed handshake.
        """
        return cls(builder(selection), builder.verifyMode, selection)

    def contextFor(self, serverName: bytes | None) -> SSL.Context | None:
        return self.context


@dataclass(frozen=True, eq=False)
class TableServing:
    """
    A L{Serving} for many names: a store's name table, and the contexts
    built for it on first use.

    @ivar known: Contexts by the exact bytes a client sent for a name of
        the table, filled on each name's first handshake after this was
        published, when the cache has room for every name.  The servername
        callback runs right after the handshake's crypto has filled the CPU
        caches, where the lookup's few dozen bytecodes (normalizing the
        name, moving it to the end of the cache's order) cost about 3
        microseconds, 1-2% of a handshake; one dict lookup costs a tenth of
        that.  Only names of the table are kept, never what clients make
        up, so it is no larger than the table; a name's context stays in
        the cache for as long as it is here, since every name fits.
    """

    table: NameTable
    verifyMode: int
    contexts: ContextCache
    known: dict[bytes, SSL.Context] = field(default_factory=dict)

    def contextFor(self, serverName: bytes | None) -> SSL.Context | None:
        if serverName is not None:
            context = self.known.get(serverName)
            if context is not None:
                return context
        selection = self.table.lookup(serverName)
        if selection is None:
            return None
        context = self.contexts.get(selection)
        if (
            context is not None
            and serverName is not None
            and self.table.exact.get(serverName.decode("latin-1")) is selection
            and len(self.table.exact) <= self.contexts.size
        ):
            self.known[serverName] = context
        return context


def sessionEntry(selection: Selection) -> str:
    """
    What a name's sessions are keyed by: the file and names of each
    certificate it gets.  A renewal rewrites the same file for the same
    names, so sessions survive it; names served by other certificates never
    share sessions.  (The names tell apart several certificates in one
    file.)
    """
    return "\n".join(f"{c.source}\0{','.join(c.names)}" for c in selection.candidates)


class ClientCABundle:
    """
    A client-CA bundle file, read again on every reload and parsed only
    when its bytes changed.

    @ivar path: The file, made absolute; L{None} when client certificates
        are not asked for.
    @ivar certificates: The CAs it held when last read successfully.
    """

    def __init__(self, path: str | None) -> None:
        self.path = optionalAbsolutePath(path)
        self.certificates: tuple[X509, ...] = ()
        self._digest: bytes | None = None

    def changed(self) -> bool:
        """
        Read the file; C{True} if its CAs changed.

        @raise CredentialError: If it cannot be used; the CAs it held before
            are kept.
        """
        if self.path is None:
            return False
        data = readFile(self.path)
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return False
        _, converted = certificatesWithOpenSSLIn(self.path, data, "CA certificate")
        self.certificates = tuple(converted)
        self._digest = digest
        return True
