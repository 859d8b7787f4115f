"""Shared fixtures: a real HSS database and a real local cluster (TLS on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cms_node.hss.generator import populate
from cms_node.hss.model import Subscriber
from cms_node.hss.sqlite_store import SqliteSubscriberStore
from deploy.local import LocalCluster, OperatorSpec

OPERATOR = "310-260"
HSS_COUNT = 300
HSS_SEED = 20261123


def make_hss(path: Path, count: int = HSS_COUNT, seed: int = HSS_SEED, mnc: str = "260") -> Path:
    store = SqliteSubscriberStore(path)
    try:
        populate(store, count, seed, mnc=mnc)
    finally:
        store.close()
    return path


@pytest.fixture(scope="session")
def hss_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hss(tmp_path_factory.mktemp("hss") / "hss.sqlite")


@contextmanager
def running_cluster(work: Path, hss_template: Path, **options: Any) -> Iterator[LocalCluster]:
    """A started one-operator cluster under ``work`` with its own copy of the HSS."""
    hss = work / "hss.sqlite"
    hss.write_bytes(hss_template.read_bytes())
    c = LocalCluster(work, [OperatorSpec(OPERATOR, hss)], **options)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, hss_template: Path) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), hss_template) as c:
        yield c


@pytest.fixture(scope="module")
def ledger_cluster(
    tmp_path_factory: pytest.TempPathFactory, hss_template: Path
) -> Iterator[LocalCluster]:
    """A cluster with an embedded ledger node; the CA anchors in 50 ms windows."""
    work = tmp_path_factory.mktemp("ledger-cluster")
    with running_cluster(work, hss_template, with_ledger=True, anchor_window_s=0.05) as c:
        yield c


def subscribers(hss: Path, n: int, offset: int = 0) -> list[Subscriber]:
    store = SqliteSubscriberStore(hss, create=False)
    try:
        out = []
        for i, s in enumerate(store.iter_all()):
            if i >= offset:
                out.append(s)
            if len(out) == n:
                break
        return out
    finally:
        store.close()
