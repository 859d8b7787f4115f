"""Prometheus metrics of a CMS node, read on scrape (no subscriber data, only counts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from cms_node.node import CmsNode


class CmsCollector(Collector):
    def __init__(self, node: CmsNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        state = self.node.state
        yield CounterMetricFamily(
            "mpkix_cms_enrollments", "Endorsed enrollments stored", value=state.count_enrollments()
        )
        yield GaugeMetricFamily("mpkix_cms_subjects", "Pseudonymous subjects with keys",
                                state.count_subjects())
        yield GaugeMetricFamily(
            "mpkix_cms_auth_sessions",
            "Live EAP-AKA' sessions",
            self.node.authenticator.live_sessions(),
        )
        failures = CounterMetricFamily(
            "mpkix_cms_auth_failures", "Refused EAP-AKA' steps by reason", labels=["reason"]
        )
        for reason, n in sorted(self.node.authenticator.failures.items()):
            failures.add_metric([reason], n)
        yield failures
        yield GaugeMetricFamily(
            "mpkix_cms_ledger_connected", "1 when the Lifecycle service has a ledger",
            1.0 if self.node.ledger is not None else 0.0,
        )
