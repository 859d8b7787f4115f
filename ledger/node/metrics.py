"""Prometheus metrics of a ledger node (ARCHITECTURE §1), read from the node on scrape.

Nothing is counted on the hot path: a custom collector reads the producer's counters and the
chain head when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ledger.node.node import LedgerNode
from mpkix._internal.metrics import MetricsServer
from mpkix._internal.metrics import serve_metrics as serve


class LedgerCollector(Collector):
    def __init__(self, node: LedgerNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        st = self.node.stats
        status = self.node.status()
        yield CounterMetricFamily(
            "mpkix_ledger_blocks", "Blocks produced since start", value=st.blocks
        )
        yield CounterMetricFamily(
            "mpkix_ledger_transactions", "Transactions included since start", value=st.transactions
        )
        yield CounterMetricFamily(
            "mpkix_ledger_rejected", "Transactions rejected since start", value=st.rejected
        )
        yield GaugeMetricFamily("mpkix_ledger_head_block", "Head block number", status.head_number)
        yield GaugeMetricFamily(
            "mpkix_ledger_event_cursor", "Newest event cursor", status.last_cursor
        )
        yield GaugeMetricFamily("mpkix_ledger_pending", "Transactions waiting", status.pending)
        yield GaugeMetricFamily(
            "mpkix_ledger_last_block_txs", "Transactions in the last block", st.last_block_txs
        )
        yield GaugeMetricFamily(
            "mpkix_ledger_last_block_exec_ms", "Execution time of the last block", st.last_block_ms
        )
        yield GaugeMetricFamily(
            "mpkix_ledger_last_commit_ms",
            "Durable commit time of the last block",
            st.last_commit_ms,
        )


def serve_metrics(node: LedgerNode, listen: str) -> MetricsServer:
    """Expose ``/metrics`` on ``host:port`` (a daemon thread)."""
    return serve(LedgerCollector(node), listen)
