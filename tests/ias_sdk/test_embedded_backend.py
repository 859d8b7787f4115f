"""ledger.backends.embedded.EmbeddedBackend against the real ledger node (gRPC, mutual TLS)."""

from __future__ import annotations

import os

import grpc
import pytest

from ledger.backends.embedded import NoSigningKey, event_from_pb
from mpkix.v1 import ledger_pb2
from tests.ias_sdk.support import World, account


def test_status_names_the_chain_and_registry(world: World) -> None:
    world.issue_batch(1)
    st = world.source().status()
    assert st.chain_id == world.chain_id
    assert len(st.registry_address) == 20 and st.registry_address == world.registry
    assert st.event_cursor > 0 and st.head_block > 0 and st.head_time > 1.7e9


def test_events_after_pages_in_order_with_bytes_arguments(world: World) -> None:
    [issued] = world.issue_batch(1)
    src = world.source()
    head = src.status().event_cursor
    everything = src.events_after(0, 100_000)
    assert [e.cursor for e in everything] == list(range(1, head + 1))
    assert [e.cursor for e in src.events_after(3, 2)] == [4, 5]
    assert src.events_after(head, 10) == []
    anchored = next(
        e
        for e in everything
        if e.name == "BatchAnchored" and e.args["batch_id"] == issued.inclusion.batch_id
    )
    assert anchored.args["root"] == issued.inclusion.root
    assert anchored.args["ca_cert_hash"] == world.ca1.cert_hash
    assert (
        isinstance(anchored.args["size"], int)
        and anchored.tx_hash == issued.inclusion.anchor_tx_hash
    )
    added = next(e for e in everything if e.name == "ValidatorAdded")
    assert isinstance(added.args["account"], bytes) and len(added.args["account"]) == 20
    assert isinstance(added.args["label"], bytes) and len(added.args["label"]) == 32
    genesis = everything[0]
    assert genesis.block_number == 0 and genesis.tx_hash == bytes(32)
    with pytest.raises(ValueError):
        src.events_after(0, 0)


def test_cursor_beyond_the_ledger_is_refused(world: World) -> None:
    src = world.source()
    with pytest.raises(grpc.RpcError) as info:
        src.events_after(src.status().event_cursor + 1000, 10)
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_event_conversion_uses_the_abi_types() -> None:
    ev = ledger_pb2.LedgerEvent(
        cursor=7,
        block_number=3,
        event_name="X",
        args_json='{"h": "0xabcd", "s": "0xnot-bytes", "n": 5}',
    )
    typed = event_from_pb(ev, {"X": {"h": "bytes32", "s": "string", "n": "uint256"}})
    assert typed.args == {"h": b"\xab\xcd", "s": "0xnot-bytes", "n": 5}
    with pytest.raises(ValueError):
        event_from_pb(ledger_pb2.LedgerEvent(cursor=1, args_json="[1, 2]"))


def test_views_and_transactions(world: World) -> None:
    backend = world.ca1.backend
    assert backend is not None
    assert backend.account == account("ca1").address
    root = os.urandom(32)
    assert backend.call("batch_of_root", root) == 0
    out = backend.transact("anchor_batch", root, 7, world.ca1.cert_hash)
    assert out.success and out.block_number > 0 and len(out.tx_hash) == 32
    [ev] = [e for e in out.events if e.name == "BatchAnchored"]
    batch_id = ev.args["batch_id"]
    assert backend.call("batch_of_root", root) == batch_id
    got_root, size, ca_hash, anchored_at = backend.call("batch", batch_id)
    assert (got_root, size, ca_hash) == (root, 7, world.ca1.cert_hash)
    assert anchored_at == int(out.block_time)
    again = backend.transact("anchor_batch", root, 7, world.ca1.cert_hash)
    assert not again.success and "root already anchored" in again.revert_reason
    assert (
        world.op_backend.transact(
            "anchor_batch", os.urandom(32), 1, world.ca1.cert_hash
        ).revert_reason
        == "only a CA validator may anchor batches"
    )


def test_read_only_backend_cannot_write(world: World) -> None:
    src = world.source()
    with pytest.raises(NoSigningKey):
        src.transact("anchor_batch", os.urandom(32), 1, world.ca1.cert_hash)
    with pytest.raises(NoSigningKey):
        _ = src.account
    assert src.call("threshold") == 2
