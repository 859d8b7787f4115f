"""Fixtures: one real ledger node and CA world per test session, a fresh mirror per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ias_sdk import LedgerMirror
from tests.ias_sdk.support import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("ias-world"))
    try:
        yield w
    finally:
        w.close()
        w.server.runner.stop(grace=0.5)


@pytest.fixture
def mirror(world: World, tmp_path: Path) -> Iterator[LedgerMirror]:
    """A mirror synced to the ledger's current head (no follower thread)."""
    m = LedgerMirror(tmp_path / "mirror.sqlite", world.source())
    m.sync()
    try:
        yield m
    finally:
        m.close()
