"""Prometheus metrics of a CA node, read on scrape: what was issued, and how far anchoring lags
(a growing ``mpkix_ca_oldest_unanchored_seconds`` or any refused batch wants an operator)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ca_node.node import CaNode


class CaCollector(Collector):
    def __init__(self, node: CaNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "mpkix_ca_issued", "ppCerts in the issued store", value=self.node.store.count()
        )
        b = self.node.batcher
        if b is None:
            return
        st = b.stats()
        yield CounterMetricFamily(
            "mpkix_ca_batches_anchored",
            "Batches anchored since start",
            value=st.anchored_since_start,
        )
        yield GaugeMetricFamily("mpkix_ca_leaves_queued", "Certificates waiting for a batch",
                                st.queued)
        yield GaugeMetricFamily("mpkix_ca_batches_unanchored", "Batches built, not yet anchored",
                                st.unanchored)
        yield GaugeMetricFamily("mpkix_ca_batches_refused", "Batches the registry refuses",
                                st.refused)
        yield GaugeMetricFamily(
            "mpkix_ca_oldest_unanchored_seconds",
            "Age of the oldest built but unanchored batch (0: none)",
            st.oldest_unanchored_s,
        )
