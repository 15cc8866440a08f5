# -*- test-case-name: tests.test_factory,tests.test_store,tests.test_client -*-
"""
The constructor options that several public classes take, checked in one
place, so that the single-certificate factory, the store and the client
credentials refuse the same contradictions with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._loading import checkPassphrase
from ._serving import ClientAuth
from ._sessions import SessionPolicy

__all__ = ["ServerOptions", "checkPassphrases", "effectiveClientAuth"]


def effectiveClientAuth(
    clientCAFile: str | None, clientAuth: ClientAuth | None
) -> ClientAuth | None:
    """
    Check client-authentication settings and fill in the default.

    @raise ValueError: If they contradict each other.
    """
    if clientAuth is not None and clientAuth not in ("required", "optional"):
        raise ValueError(
            f"clientAuth must be 'required' or 'optional', not {clientAuth!r}"
        )
    if clientAuth is not None and clientCAFile is None:
        raise ValueError("clientAuth needs clientCAFile: the CAs to trust")
    if clientCAFile is not None and clientAuth is None:
        return "required"
    return clientAuth


def checkPassphrases(
    passphrase: bytes | None, passphraseFile: str | None
) -> bytes | None:
    """
    Check that a key's passphrase is given at most one way, and as bytes.

    @return: The in-memory passphrase, if any.
    @raise ValueError: If both were given.
    @raise TypeError: If C{passphrase} is not bytes.
    """
    if passphrase is not None and passphraseFile is not None:
        raise ValueError("give passphrase or passphraseFile, not both")
    return checkPassphrase(passphrase)


@dataclass(frozen=True)
class ServerOptions:
    """
    What a server's options come to once checked: the same for a
    L{ReloadingContextFactory <txtlsreload.ReloadingContextFactory>} and a
    L{ReloadingCertificateStore <txtlsreload.ReloadingCertificateStore>}.

    @ivar clientAuth: Whether client certificates are asked for, with the
        default filled in.
    @ivar passphrase: Decrypts the (default) certificate's key.
    @ivar sessions: The session settings, if sessions are on.
    """

    clientAuth: ClientAuth | None
    passphrase: bytes | None
    sessions: SessionPolicy | None

    @classmethod
    def check(
        cls,
        clientCAFile: str | None,
        clientAuth: ClientAuth | None,
        passphrase: bytes | None,
        passphraseFile: str | None,
        sessions: bool,
        sessionTimeout: int,
    ) -> ServerOptions:
        """
        Check the options a server constructor was given.

        @raise ValueError: If they contradict each other, or the session
            timeout is not 1 or more seconds.
        @raise TypeError: If C{passphrase} is not bytes.
        @raise RuntimeError: With C{sessions}, if pyOpenSSL runs on an
            OpenSSL older than 3.0.14.
        """
        return cls(
            clientAuth=effectiveClientAuth(clientCAFile, clientAuth),
            passphrase=checkPassphrases(passphrase, passphraseFile),
            sessions=SessionPolicy(sessionTimeout) if sessions else None,
        )
