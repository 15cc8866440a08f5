"""
Uses the public API as a user would, for mypy --strict to check; pytest
collects nothing here (no test functions).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.web.resource import Resource

from txtlsreload import (
    CertificateInfo,
    ClientHelloReader,
    CredentialError,
    ExpiryWarnings,
    MetricsCollector,
    ReloadingCertificateStore,
    ReloadingClientContextFactory,
    ReloadingContextFactory,
    ReloadingPolicyForHTTPS,
    ReloadingServerEndpoint,
    ReloadResult,
    SIGHUPReloader,
    StatusResource,
    StoreReloadResult,
    SystemdNotifier,
    UnknownNames,
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


def serveMany(reactor: IReactorTCP, directory: str) -> Deferred[StoreReloadResult]:
    unknown: UnknownNames = "refuse"
    store = ReloadingCertificateStore(
        directory,
        "default.pem",
        "default.key",
        clientCAFile="clients.pem",
        unknownNames=unknown,
        cacheSize=100,
    )

    def reloaded(result: StoreReloadResult) -> None:
        print(result.added, result.replaced, result.removed, result.parsed)
        for error in result.refused:
            print(error.path, error.reason)

    store.addReloadCallbacks(reloaded, reloaded)
    info: CertificateInfo | None = store.certificateFor("www.example.com")
    print(info, store.certificate, len(store.names), store.lastResult.succeeded)
    ReloadingServerEndpoint(reactor, store, 8443)
    if not store.reload().succeeded:
        print(store.lastResult)
    return store.reloadInSteps()


def resume(certificate: str, key: str, directory: str, hello: bytes) -> bytes | None:
    factory = ReloadingContextFactory(
        certificate, key, sessions=True, sessionTimeout=3600
    )
    factory.flushSessions()
    ReloadingCertificateStore(directory, sessions=True).flushSessions()
    reader = ClientHelloReader()
    if reader.feed(hello) and len(hello) <= ClientHelloReader.maxBuffered:
        return reader.serverName
    return None


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
