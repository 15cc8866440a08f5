# -*- test-case-name: tests.test_sessions -*-
"""
Session resumption that survives certificate rotation, never crosses
certificates or listeners, and is flushed when trust changes (opt-in).

Where sessions live: OpenSSL keeps the session cache on the context a
connection was I{created} with, the long-lived dispatch context, not on the
per-name context the connection is switched to; so a rotation, which only
replaces per-name contexts, leaves the cache alone.

Why the connection is switched before OpenSSL reads the ClientHello:
OpenSSL looks an offered session up (TLS 1.2 session ID, TLS 1.3 stateful
ticket) before it parses the server name and runs the servername callback,
and only resumes a session whose session-id context equals the
connection's at that moment.  Left on the dispatch context, every session
would match every name: a session made for C{a.example} would resume under
C{b.example}, and in TLS 1.3 with C{a.example}'s client certificate, never
checked against C{b.example}'s CAs.  So L{PeekConnection} reads the server
name from the raw ClientHello (L{_clienthello}) and calls C{set_context}
before OpenSSL sees it; the lookup then uses that name's session-id context.

What a session-id context is made of, so that a rotation keeps it and
nothing else does: a random nonce per listener (a session never resumes on
another listener, which has its own cache anyway), the files serving the
name (names served by one certificate file share sessions: they get the same
certificate), and a generation counter that L{SessionPolicy.flush} bumps on
every trust change and on C{flushSessions()}.  Sessions of an older
generation stay in the cache until they time out, but can no longer match.

Why no stateless tickets: pyOpenSSL offers no way to set or rotate ticket
keys, and never-rotated keys would let one stolen key decrypt every
session's traffic for the life of the process.  TLS 1.3 still resumes
through stateful tickets (C{OP_NO_TICKET} makes OpenSSL send tickets that
are only keys into the server's cache).

Why OpenSSL 3.0.14 or newer: older ones grow the cache without bound with
TLS 1.3 and C{OP_NO_TICKET} (CVE-2024-2511), and their timeout-ordered
session list could be corrupted by duplicated sessions (the crash behind
Twisted #9764, fixed in 3.0.9).
"""

from __future__ import annotations

import hashlib
import os
import re
import weakref
from collections.abc import Callable

from OpenSSL import SSL
from twisted.logger import Logger

from ._clienthello import ClientHelloReader

__all__ = [
    "DEFAULT_SESSION_TIMEOUT",
    "PeekConnection",
    "SessionMismatch",
    "SessionPolicy",
    "checkSessionTimeout",
]

#: How long a session stays resumable, in seconds: OpenSSL's own default.
DEFAULT_SESSION_TIMEOUT = 7200

# The oldest release of each OpenSSL 3 series with the CVE-2024-2511 fix.
_FIXED = {(3, 0): 14, (3, 1): 6, (3, 2): 2, (3, 3): 1}

_log = Logger()


def checkSessionTimeout(timeout: int) -> int:
    """
    Check a session timeout.

    @raise ValueError: Unless it is a whole number of seconds, 1 or more.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(
            f"sessionTimeout must be a whole number of seconds, 1 or more,"
            f" not {timeout!r}"
        )
    return timeout


def _opensslHasSessionFixes(version: str) -> bool:
    match = re.match(r"OpenSSL (\d+)\.(\d+)\.(\d+)", version)
    if match is None:
        return False
    major, minor, patch = (int(part) for part in match.groups())
    if major != 3:
        return major > 3
    return patch >= _FIXED.get((major, minor), 0)


class SessionMismatch(Exception):
    """
    OpenSSL read another server name from a ClientHello than
    L{PeekConnection} did, so the session it may have resumed was looked up
    for another name: the handshake must not go on.
    """


class PeekConnection(SSL.Connection):
    """
    A server connection that switches to its name's context before OpenSSL
    reads the ClientHello.

    Twisted feeds received bytes through C{bio_write} before it calls
    C{do_handshake}, so switching there is in time.  The bytes are passed on
    at once (OpenSSL waits for the whole ClientHello anyway); only a copy is
    read, and only until the ClientHello is complete.

    @ivar peekedContext: The context chosen from the ClientHello, L{None}
        before it was complete (or if the name gets none).
    """

    def __init__(
        self,
        dispatch: SSL.Context,
        choose: Callable[[bytes | None], SSL.Context | None],
    ) -> None:
        super().__init__(dispatch, None)
        self._choose: Callable[[bytes | None], SSL.Context | None] | None = choose
        self._reader: ClientHelloReader | None = ClientHelloReader()
        self.peekedContext: SSL.Context | None = None

    def bio_write(self, buf: bytes) -> int:  # type: ignore[override]
        reader = self._reader
        if reader is not None and reader.feed(bytes(buf)):
            choose = self._choose
            self._reader = self._choose = None
            assert choose is not None
            try:
                context = choose(reader.serverName)
                if context is not None:
                    self.set_context(context)
                    self.peekedContext = context
            except Exception:
                # Raising here would break Twisted's dataReceived.  Left on
                # the dispatch context, the servername callback tries again
                # and, failing too, the handshake fails with an alert.
                _log.failure("Could not choose a TLS context from the ClientHello")
        return super().bio_write(buf)


class SessionPolicy:
    """
    The session settings of one listener (one factory or store): the
    session timeout, the listener's nonce and the generation that flushing
    bumps.

    @ivar timeout: Seconds a session stays resumable.
    @ivar generation: Bumped by L{flush}; part of every session-id context.
    """

    def __init__(self, timeout: int = DEFAULT_SESSION_TIMEOUT) -> None:
        """
        @raise ValueError: If C{timeout} is not 1 or more seconds.
        @raise RuntimeError: If the OpenSSL that pyOpenSSL runs on is older
            than 3.0.14 (or a 3.1-3.3 release without the same fixes).
        """
        version = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode("ascii", "replace")
        if not _opensslHasSessionFixes(version):
            raise RuntimeError(
                f"TLS sessions need OpenSSL 3.0.14 or newer (cryptography 43 or"
                f" newer bundles it); pyOpenSSL runs on {version}"
            )
        self.timeout = checkSessionTimeout(timeout)
        self.generation = 0
        self._nonce = os.urandom(16)
        self._ids: weakref.WeakKeyDictionary[SSL.Context, bytes] = (
            weakref.WeakKeyDictionary()
        )

    def sessionIdContext(self, entry: str) -> bytes:
        """
        The session-id context of the contexts that serve C{entry} in the
        current generation: OpenSSL takes at most 32 bytes.
        """
        digest = hashlib.sha256(
            b"%s\0%d\0%s" % (self._nonce, self.generation, entry.encode("utf-8"))
        )
        return digest.hexdigest()[:32].encode("ascii")

    def prepareDispatch(self, context: SSL.Context) -> None:
        """
        Give the dispatch context the session cache, before its first use.

        Its own session-id context matches no session: a connection that is
        not switched before the ClientHello (one made from L{getContext} by
        code that ignores L{serverConnectionForTLS}) never resumes.
        """
        context.set_options(SSL.OP_NO_TICKET)
        context.set_session_id(self.sessionIdContext("\0dispatch"))
        context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        context.set_timeout(self.timeout)

    def prepare(self, context: SSL.Context, entry: str) -> SSL.Context:
        """
        Key a freshly built per-name context's sessions to C{entry} (the
        files serving it) in the current generation, before its first use.

        C{CertificateOptions} gave it a random session-id context and no
        cache; TLS 1.2 resumes only if the context switched to also has the
        server cache mode on.
        """
        sessionId = self.sessionIdContext(entry)
        context.set_session_id(sessionId)
        context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        context.set_timeout(self.timeout)
        self._ids[context] = sessionId
        return context

    def flush(self) -> None:
        """
        Make every cached session unresumable; contexts prepared before must
        be built again.
        """
        self.generation += 1

    def connection(
        self,
        dispatch: SSL.Context,
        choose: Callable[[bytes | None], SSL.Context | None],
    ) -> PeekConnection:
        """
        A server connection switched to C{choose(serverName)} before OpenSSL
        reads the ClientHello.
        """
        return PeekConnection(dispatch, choose)

    def agrees(self, connection: SSL.Connection, context: SSL.Context | None) -> bool:
        """
        Whether the context the servername callback chose for the name
        OpenSSL read keys sessions as the one chosen from the peeked name
        did.  Compared by session-id context, not identity: a TLS 1.2
        resumption shows the callback the session's name, which may be
        another name served by the same files.
        """
        if not isinstance(connection, PeekConnection):
            return True
        ids = self._ids
        peeked = connection.peekedContext
        peekedId = None if peeked is None else ids.get(peeked)
        chosenId = None if context is None else ids.get(context)
        if peekedId == chosenId:
            return True
        _log.warn(
            "Refused a TLS handshake: OpenSSL read the server name"
            " {serverName!r} from its ClientHello, which names another"
            " certificate than the one the ClientHello was first read for",
            serverName=connection.get_servername(),
        )
        return False
