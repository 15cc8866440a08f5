"""
Hitless TLS certificate rotation for Twisted.

A L{ReloadingContextFactory} serves a certificate, key, chain and client-CA
bundle from files and swaps in new ones while the program runs: no restart,
no dropped connection, no failed handshake.  L{reloadOnSIGHUP} makes
C{kill -HUP} trigger that reload; L{FileWatcher} triggers it when the files
change.  L{ReloadingClientContextFactory} and L{ReloadingPolicyForHTTPS} do the
same for outgoing connections, verifying the server's identity.
"""

from ._agentpolicy import ReloadingPolicyForHTTPS
from ._client import (
    ClientReloadResult,
    ReloadingClientContextFactory,
    ReloadingClientCredentials,
)
from ._clientendpoint import ReloadingClientEndpoint
from ._endpoint import ReloadingServerEndpoint
from ._errors import CredentialError
from ._factory import ClientAuth, ReloadingContextFactory, ReloadResult
from ._loading import CertificateInfo
from ._registry import IReloadable
from ._serveridentity import ServerIdentityError
from ._sighup import SIGHUPReloader, reloadOnSIGHUP
from ._watching import FileWatcher, watchFiles

__all__ = [
    "CertificateInfo",
    "ClientAuth",
    "ClientReloadResult",
    "CredentialError",
    "FileWatcher",
    "IReloadable",
    "ReloadResult",
    "ReloadingClientContextFactory",
    "ReloadingClientCredentials",
    "ReloadingClientEndpoint",
    "ReloadingContextFactory",
    "ReloadingPolicyForHTTPS",
    "ReloadingServerEndpoint",
    "SIGHUPReloader",
    "ServerIdentityError",
    "reloadOnSIGHUP",
    "watchFiles",
]
