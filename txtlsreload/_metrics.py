# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics for every reloadable of the process (the C{metrics}
extra: prometheus-client).

A custom collector rather than prometheus-client's own gauges: it yields
only the series of what is served at the moment of the scrape, so the
series of a rotated-away certificate disappears by itself, and the label
sets stay bounded however many rotations a process lives through.  Only
this module imports prometheus-client; nothing imports it unless the extra
is installed.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from . import _activity
from ._errors import shortened
from ._inventory import Reloadables, inventory

__all__ = ["MetricsCollector", "registerDefaultCollector"]

# server_names: the DNS names and IP addresses the certificate is served for
# (its subjectAltNames), so that a store's series say which sites they are.
_CERTIFICATE_LABELS = ["role", "path", "subject", "serial", "server_names"]
_FACTORY_LABELS = ["role", "path"]


class MetricsCollector(Collector):
    """
    A prometheus-client collector of txtlsreload's metrics.

    One is registered in prometheus-client's default registry as soon as
    anything is loaded, when prometheus-client is installed; make your own
    to serve them from another registry.

    Series:
      - C{txtlsreload_certificate_not_after_timestamp_seconds} and
        C{..._not_before_...}, per certificate served (C{role="server"}),
        presented (C{"client"}) or trusted (C{"client_ca"}, C{"trust"}),
        labelled with C{path}, C{subject} and C{serial};
      - C{txtlsreload_reloads_total} by C{result} (C{changed},
        C{unchanged}, C{refused}) and C{trigger} (C{sighup}, C{watch},
        C{interval}, C{call});
      - C{txtlsreload_reload_failing} (1 while the latest reload was
        refused) and C{txtlsreload_last_successful_reload_timestamp_seconds},
        per server factory or client credential set (C{role}, C{path});
      - C{txtlsreload_reload_duration_seconds}, a histogram.
    """

    def __init__(self, reloadables: Reloadables = None) -> None:
        """
        @param reloadables: Whose certificates to report: a collection, a
            function returning one, or by default everything alive in the
            process.  Reload counts and durations are always the process's.
        """
        self._reloadables = reloadables

    def collect(self) -> Iterator[Metric]:
        """
        Yield the current series.
        """
        notAfter = GaugeMetricFamily(
            "txtlsreload_certificate_not_after_timestamp_seconds",
            "End of validity of each certificate served or trusted.",
            labels=_CERTIFICATE_LABELS,
        )
        notBefore = GaugeMetricFamily(
            "txtlsreload_certificate_not_before_timestamp_seconds",
            "Start of validity of each certificate served or trusted.",
            labels=_CERTIFICATE_LABELS,
        )
        failing = GaugeMetricFamily(
            "txtlsreload_reload_failing",
            "1 while the latest reload was refused, else 0.",
            labels=_FACTORY_LABELS,
        )
        lastSuccess = GaugeMetricFamily(
            "txtlsreload_last_successful_reload_timestamp_seconds",
            "When the files were last found good (initial load or reload).",
            labels=_FACTORY_LABELS,
        )
        seenCertificates: set[tuple[str, ...]] = set()
        seenFactories: set[tuple[str, ...]] = set()
        for entry in inventory(self._reloadables):
            for certificate in entry.certificates:
                labels = (
                    certificate.role,
                    certificate.path,
                    certificate.info.subject,
                    certificate.info.serialHex,
                    shortened(",".join(certificate.info.subjectAltNames), 200),
                )
                # Two factories serving the same file would repeat a series,
                # which scrapers refuse.
                if labels in seenCertificates:
                    continue
                seenCertificates.add(labels)
                notAfter.add_metric(labels, certificate.info.notAfter.timestamp())
                notBefore.add_metric(labels, certificate.info.notBefore.timestamp())
            factoryLabels = (entry.kind, entry.path)
            if factoryLabels in seenFactories:
                continue
            seenFactories.add(factoryLabels)
            failing.add_metric(factoryLabels, 0 if entry.error is None else 1)
            if entry.record is not None:
                lastSuccess.add_metric(factoryLabels, entry.record.lastSuccessAt)
        yield from (notAfter, notBefore, failing, lastSuccess)

        reloads = CounterMetricFamily(
            "txtlsreload_reloads",
            "Reloads by result and trigger.",
            labels=["result", "trigger"],
        )
        for (result, trigger), count in sorted(_activity.counts().items()):
            reloads.add_metric((result, trigger), count)
        yield reloads

        perBucket, count, total = _activity.durations()
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, inBucket in zip(_activity.DURATION_BUCKETS, perBucket, strict=True):
            cumulative += inBucket
            buckets.append((repr(bound), cumulative))
        buckets.append(("+Inf", count))
        yield HistogramMetricFamily(
            "txtlsreload_reload_duration_seconds",
            "How long reloads took, from reading the files to the swap.",
            buckets=buckets,
            sum_value=total,
        )


_default: MetricsCollector | None = None


def registerDefaultCollector() -> None:
    """
    Register one L{MetricsCollector} in prometheus-client's default
    registry, once per process.
    """
    global _default
    if _default is None:
        _default = MetricsCollector()
        REGISTRY.register(_default)
