# -*- test-case-name: tests.test_status -*-
# Twisted's web modules are not annotated; calling them is fine, so only that
# strict check is relaxed, for this module alone.
# mypy: disallow-untyped-calls=False
"""
A JSON status page of what the process serves, and the admin site that
C{twistd tlshello --admin} listens with.

The document is built from public descriptions only (L{CertificateInfo}
and the files' names), so no key material can reach it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from ._inventory import Certificate, Entry, Reloadables, inventory

__all__ = ["StatusResource", "adminResource", "statusDocument"]


def _isoformat(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def _certificate(certificate: Certificate, now: float) -> dict[str, Any]:
    info = certificate.info
    return {
        "role": certificate.role,
        "path": certificate.path,
        "subject": info.subject,
        "subjectAltNames": list(info.subjectAltNames),
        "serial": info.serialHex,
        "fingerprintSHA256": info.fingerprintSHA256,
        "notBefore": info.notBefore.isoformat(),
        "notAfter": info.notAfter.isoformat(),
        "secondsLeft": round(info.notAfter.timestamp() - now, 3),
    }


def _entry(entry: Entry, now: float) -> dict[str, Any]:
    record = entry.record
    lastReload = None
    if record is not None and record.lastAt is not None:
        lastReload = {
            "at": _isoformat(record.lastAt),
            "trigger": record.lastTrigger,
            "result": record.lastResult,
            "error": None if record.lastError is None else str(record.lastError),
        }
    return {
        "kind": entry.kind,
        "path": entry.path,
        "files": entry.files,
        "served": None if entry.leaf is None else _certificate(entry.leaf, now),
        "trusted": [
            _certificate(c, now) for c in entry.certificates if c is not entry.leaf
        ],
        "failing": entry.error is not None,
        "error": None if entry.error is None else str(entry.error),
        "loadedAt": None if record is None else _isoformat(record.loadedAt),
        "lastSuccessAt": None if record is None else _isoformat(record.lastSuccessAt),
        "lastReload": lastReload,
        "refusalsInARow": 0 if record is None else record.refusalsInARow,
    }


def statusDocument(reloadables: Reloadables = None, now: float = 0.0) -> dict[str, Any]:
    """
    The status of C{reloadables} (by default every one in the process) as a
    JSON-ready dictionary.

    @param now: The wall-clock time (POSIX seconds) that C{secondsLeft}
        counts from.
    """
    return {
        "generatedAt": _isoformat(now),
        "reloadables": [_entry(e, now) for e in inventory(reloadables)],
    }


class StatusResource(Resource):
    """
    A C{twisted.web} resource answering C{GET} with a JSON document listing
    every server factory and client credential set: files, what is served
    (subject, SANs, serial, SHA-256 fingerprint, notBefore, notAfter,
    seconds left), trusted CAs, the last reload (when, trigger, result,
    error) and how many refusals in a row.

    Mount it in any L{Site <twisted.web.server.Site>}; it never includes key
    material, but does tell whoever can reach it which files and names a
    server uses, so do not put it on a public port.
    """

    isLeaf = True

    def __init__(
        self, reloadables: Reloadables = None, clock: IReactorTime | None = None
    ) -> None:
        """
        @param reloadables: What to show: a collection, a function returning
            one, or by default everything alive in the process.
        @param clock: Says what time it is, for C{secondsLeft}; the global
            reactor by default.
        """
        super().__init__()
        self._reloadables = reloadables
        self._clock = clock

    def render_GET(self, request: Request) -> bytes:
        clock = self._clock
        if clock is None:
            from twisted.internet import reactor

            clock = IReactorTime(reactor)
        document = statusDocument(self._reloadables, clock.seconds())
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(document, indent=2).encode("utf-8") + b"\n"


class _MetricsUnavailable(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(501)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Metrics need prometheus-client: pip install 'txtlsreload[metrics]'\n"


def adminResource() -> Resource:
    """
    A resource tree with C{/status} (L{StatusResource} of the whole process)
    and C{/metrics} (prometheus-client's default registry, or a 501 saying
    how to install it), for a plain-HTTP listener that only operators can
    reach.
    """
    root = Resource()
    root.putChild(b"status", StatusResource())
    try:
        from prometheus_client.twisted import MetricsResource
    except ImportError:
        metrics: Resource = _MetricsUnavailable()
    else:
        from ._metrics import registerDefaultCollector

        registerDefaultCollector()
        # prometheus-client annotates it as the WSGI resource it is built on.
        metrics = MetricsResource()  # type: ignore[assignment]
    root.putChild(b"metrics", metrics)
    return root
