"""Prometheus /metrics of the CA and CMS nodes: counts an operator alerts on, no subscriber data."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cma.client import enroll
from cma.enrollment import EnrollmentFlow
from cma.keystore import generate_key
from cma.usim import EmulatedUsim
from deploy.local import LocalCluster
from mpkix.aka.sqn import UsimSqnState
from mpkix.attributes import canonical_values
from mpkix.rpc.tls import secure_channel
from tests.conftest import OPERATOR, running_cluster, subscribers


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, hss_template: Path) -> Iterator[LocalCluster]:
    work = tmp_path_factory.mktemp("metrics-cluster")
    with running_cluster(
        work, hss_template, with_ledger=True, anchor_window_s=0.05, metrics=True
    ) as c:
        yield c


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(mpkix_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_ca_and_cms_metrics_follow_issuance(metered: LocalCluster) -> None:
    c = metered
    assert c.ca is not None and c.ca.metrics is not None
    cms = c.cms[OPERATOR]
    assert cms.metrics is not None
    before_ca, before_cms = scrape(c.ca.metrics.port), scrape(cms.metrics.port)
    sub = subscribers(c.operators[0].hss_db, 1, offset=90)[0]
    flow = EnrollmentFlow(
        usim=EmulatedUsim(sub.imsi, sub.k, sub.opc, UsimSqnState()),
        attributes=canonical_values(sub),
        key=generate_key(),
    )
    with secure_channel(f"127.0.0.1:{c.cms_ports[OPERATOR]}", c.client_tls()) as ch:
        enroll(ch, flow)
    ca, cm = scrape(c.ca.metrics.port), scrape(cms.metrics.port)
    assert ca["mpkix_ca_issued_total"] == before_ca["mpkix_ca_issued_total"] + 1
    assert ca["mpkix_ca_batches_anchored_total"] >= before_ca["mpkix_ca_batches_anchored_total"] + 1
    assert ca["mpkix_ca_batches_unanchored"] == 0 and ca["mpkix_ca_batches_refused"] == 0
    assert ca["mpkix_ca_oldest_unanchored_seconds"] == 0
    assert cm["mpkix_cms_enrollments_total"] == before_cms["mpkix_cms_enrollments_total"] + 1
    assert cm["mpkix_cms_ledger_connected"] == 1
    body = urllib.request.urlopen(f"http://127.0.0.1:{cms.metrics.port}/metrics", timeout=5).read()
    for secret in (sub.imsi, sub.msisdn, sub.family_name, flow.subject_id):
        assert secret.encode() not in body
