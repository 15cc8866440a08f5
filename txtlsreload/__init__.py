"""
Hitless TLS certificate rotation for Twisted.

A L{ReloadingContextFactory} serves a certificate, key, chain and client-CA
bundle from files and swaps in new ones while the program runs: no restart,
no dropped connection, no failed handshake.  L{reloadOnSIGHUP} makes
C{kill -HUP} trigger that reload; L{FileWatcher} triggers it when the files
change.  L{ReloadingClientContextFactory} and L{ReloadingPolicyForHTTPS} do the
same for outgoing connections, verifying the server's identity.

For operators: L{StatusResource} (a JSON status page), L{warnBeforeExpiry},
L{notifySystemd} (C{Type=notify-reload}), and L{MetricsCollector} for
Prometheus when the C{metrics} extra is installed.
"""

from typing import TYPE_CHECKING, Any

from ._agentpolicy import ReloadingPolicyForHTTPS
from ._client import (
    ClientReloadResult,
    ReloadingClientContextFactory,
    ReloadingClientCredentials,
)
from ._clientendpoint import ReloadingClientEndpoint
from ._endpoint import ReloadingServerEndpoint
from ._errors import CredentialError
from ._expiry import ExpiryWarnings, warnBeforeExpiry
from ._factory import ClientAuth, ReloadingContextFactory, ReloadResult
from ._loading import CertificateInfo
from ._registry import IReloadable
from ._serveridentity import ServerIdentityError
from ._sighup import SIGHUPReloader, reloadOnSIGHUP
from ._status import StatusResource, adminResource
from ._systemd import SystemdNotifier, notifySystemd
from ._watching import FileWatcher, watchFiles

if TYPE_CHECKING:
    from ._metrics import MetricsCollector

__all__ = [
    "CertificateInfo",
    "ClientAuth",
    "ClientReloadResult",
    "CredentialError",
    "ExpiryWarnings",
    "FileWatcher",
    "IReloadable",
    "MetricsCollector",
    "ReloadResult",
    "ReloadingClientContextFactory",
    "ReloadingClientCredentials",
    "ReloadingClientEndpoint",
    "ReloadingContextFactory",
    "ReloadingPolicyForHTTPS",
    "ReloadingServerEndpoint",
    "SIGHUPReloader",
    "ServerIdentityError",
    "StatusResource",
    "SystemdNotifier",
    "adminResource",
    "notifySystemd",
    "reloadOnSIGHUP",
    "warnBeforeExpiry",
    "watchFiles",
]


def __getattr__(name: str) -> Any:
    # MetricsCollector needs prometheus-client (the metrics extra): imported
    # only when asked for, so that txtlsreload works without it.
    if name == "MetricsCollector":
        from ._metrics import MetricsCollector

        return MetricsCollector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
