"""
Uses the public API as a user would, for mypy --strict to check; pytest
collects nothing here (no test functions).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.web.resource import Resource

from txtlsreload import (
    CertificateInfo,
    CredentialError,
    ExpiryWarnings,
    MetricsCollector,
    ReloadingClientContextFactory,
    ReloadingContextFactory,
    ReloadingPolicyForHTTPS,
    ReloadingServerEndpoint,
    ReloadResult,
    SIGHUPReloader,
    StatusResource,
    SystemdNotifier,
    adminResource,
    notifySystemd,
    reloadOnSIGHUP,
    warnBeforeExpiry,
)


def serve(reactor: IReactorTCP, certificate: str, key: str) -> SIGHUPReloader:
    try:
        factory = ReloadingContextFactory(
            certificate,
            key,
            clientCAFile="clients.pem",
            clientAuth="optional",
            passphraseFile="passphrase",
        )
    except CredentialError as e:
        raise SystemExit(f"{e.path}: {e.reason}") from e

    def reloaded(result: ReloadResult) -> None:
        info: CertificateInfo = result.certificate
        print(info.serialHex, info.notAfter.isoformat(), info.subjectAltNames)

    def refused(result: ReloadResult) -> None:
        assert result.error is not None
        print(result.error.path, result.error.reason)

    removeCallbacks = factory.addReloadCallbacks(reloaded, refused)
    result = factory.reload()
    if result.succeeded and not result.changed:
        removeCallbacks()
    ReloadingServerEndpoint(reactor, factory, 8443, "::1", watch=5.0)
    return reloadOnSIGHUP([factory])


def call(certificate: str, key: str) -> ReloadingPolicyForHTTPS:
    client = ReloadingClientContextFactory(
        "example.com",
        caCertsFile="ca.pem",
        clientCertificateFile=certificate,
        clientKeyFile=key,
    )
    outcome = client.reload()
    if not outcome.succeeded:
        print(outcome.error)
    return ReloadingPolicyForHTTPS(credentials=client.credentials)


def operate(reactor: IReactorTime, factory: ReloadingContextFactory) -> Resource:
    warnings: ExpiryWarnings = warnBeforeExpiry(reactor, [factory])
    warnings.check()
    notifier: SystemdNotifier | None = notifySystemd()
    if notifier is not None:
        notifier.status()
    collector = MetricsCollector([factory])
    for metric in collector.collect():
        print(metric.name)
    cas: tuple[CertificateInfo, ...] = factory.clientCAs
    print(len(cas))
    root = adminResource()
    root.putChild(b"tls", StatusResource([factory], reactor))
    return root
