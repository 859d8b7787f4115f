"""Governance of CertificateRegistry: k-of-n proposals for validators, trust anchors, threshold."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from web3.contract import Contract

from ledger.contracts import ProposalKind, Role
from tests.ledger.contracts.support import (
    CA1_CERT,
    CA2_CERT,
    OP1_KEY,
    Chain,
    Registry,
    events,
    h,
    label32,
    reverts,
)


@dataclass
class Gov:
    """A three-validator registry (one CA, two operators), k = 2 (the default majority)."""

    chain: Chain
    contract: Contract
    a: str
    b: str
    c: str
    newcomer: str
    outsider: str

    def tx(self, fn: Any, sender: str) -> Any:
        return self.chain.transact(fn, sender)


@pytest.fixture(scope="module")
def _gov(chain: Chain) -> Gov:
    a, b, c, newcomer, outsider = chain.accounts[1:6]
    contract = chain.deploy(
        [a, b, c],
        [Role.CA, Role.OPERATOR, Role.OPERATOR],
        [label32("ca-a"), label32("op-b"), label32("op-c")],
        [CA1_CERT],
        [a],
        ttl=3600,
    )
    return Gov(chain, contract, a, b, c, newcomer, outsider)


@pytest.fixture
def gov(_gov: Gov) -> Iterator[Gov]:
    snap = _gov.chain.tester.take_snapshot()
    yield _gov
    _gov.chain.tester.revert_to_snapshot(snap)


@pytest.fixture(scope="module")
def _solo(chain: Chain) -> tuple[Contract, str]:
    only = chain.accounts[7]
    return chain.deploy([only], [Role.CA], [label32("solo")]), only


@pytest.fixture
def solo(_solo: tuple[Contract, str], chain: Chain) -> Iterator[tuple[Contract, str]]:
    snap = chain.tester.take_snapshot()
    yield _solo
    chain.tester.revert_to_snapshot(snap)


def test_one_of_one_executes_on_proposal(solo: tuple[Contract, str], chain: Chain) -> None:
    reg, only = solo
    newcomer = chain.accounts[8]
    assert reg.functions.threshold().call() == 1
    receipt = chain.transact(
        reg.functions.propose_add_validator(newcomer, Role.OPERATOR, label32("op-new")), only
    )
    assert events(reg, "ValidatorAdded", receipt) == [
        {"account": newcomer, "role": Role.OPERATOR, "label": label32("op-new")}
    ]
    assert events(reg, "ProposalExecuted", receipt) == [
        {"proposal_id": 1, "kind": ProposalKind.ADD_VALIDATOR}
    ]
    # with two validators no single one may act alone any more: k rises to 2
    assert events(reg, "ThresholdChanged", receipt) == [{"old_threshold": 1, "new_threshold": 2}]
    assert reg.functions.threshold().call() == 2
    assert reg.functions.is_validator(newcomer).call()
    receipt = chain.transact(reg.functions.propose_remove_validator(newcomer), only)
    assert events(reg, "ProposalExecuted", receipt) == []
    assert reg.functions.is_validator(newcomer).call()


def test_last_validator_cannot_be_removed(solo: tuple[Contract, str], chain: Chain) -> None:
    reg, only = solo
    with reverts("cannot remove the last validator"):
        chain.transact(reg.functions.propose_remove_validator(only), only)


def test_two_of_three_needs_a_second_approval(gov: Gov) -> None:
    reg = gov.contract
    receipt = gov.tx(
        reg.functions.propose_add_validator(gov.newcomer, Role.CA, label32("ca-n")), gov.a
    )
    created = events(reg, "ProposalCreated", receipt)
    assert created == [
        {
            "proposal_id": 1,
            "proposer": gov.a,
            "kind": ProposalKind.ADD_VALIDATOR,
            "account": gov.newcomer,
            "role": Role.CA,
            "label": label32("ca-n"),
            "anchor_hash": bytes(32),
            "threshold": 0,
            "expires_at": created[0]["expires_at"],
        }
    ]
    assert created[0]["expires_at"] > 0
    assert events(reg, "ProposalApproved", receipt) == [
        {"proposal_id": 1, "approver": gov.a, "approvals": 1}
    ]
    assert events(reg, "ValidatorAdded", receipt) == []
    assert not reg.functions.is_validator(gov.newcomer).call()
    assert reg.functions.approvals(1).call() == 1
    assert reg.functions.has_approved(1, gov.a).call()
    assert not reg.functions.has_approved(1, gov.b).call()

    with reverts("proposal already approved by caller"):
        gov.tx(reg.functions.approve(1), gov.a)
    with reverts("not enough approvals"):
        gov.tx(reg.functions.execute(1), gov.a)

    receipt = gov.tx(reg.functions.approve(1), gov.b)
    assert events(reg, "ProposalApproved", receipt) == [
        {"proposal_id": 1, "approver": gov.b, "approvals": 2}
    ]
    assert events(reg, "ValidatorAdded", receipt) == [
        {"account": gov.newcomer, "role": Role.CA, "label": label32("ca-n")}
    ]
    assert events(reg, "ProposalExecuted", receipt) == [
        {"proposal_id": 1, "kind": ProposalKind.ADD_VALIDATOR}
    ]
    assert reg.functions.is_validator(gov.newcomer).call()
    assert reg.functions.validator_count().call() == 4
    assert reg.functions.ca_count().call() == 2
    assert reg.functions.operator_count().call() == 2
    assert reg.functions.role_of(gov.newcomer).call() == Role.CA
    role, label, _added, _serial = reg.functions.validator(gov.newcomer).call()
    assert (role, label) == (Role.CA, label32("ca-n"))
    assert gov.newcomer in reg.functions.validators().call()
    proposal = reg.functions.proposal(1).call()
    assert proposal[0] == ProposalKind.ADD_VALIDATOR and proposal[-1] is True

    with reverts("proposal already executed"):
        gov.tx(reg.functions.approve(1), gov.c)
    # a majority of 4 is not needed retroactively, but k stays as set: 2
    assert reg.functions.threshold().call() == 2


def test_non_validators_cannot_propose_or_approve(gov: Gov) -> None:
    reg = gov.contract
    with reverts("caller is not a validator"):
        gov.tx(
            reg.functions.propose_add_validator(gov.outsider, Role.CA, label32("x")), gov.outsider
        )
    with reverts("caller is not a validator"):
        gov.tx(reg.functions.propose_add_trust_anchor(CA2_CERT, gov.a), gov.outsider)
    with reverts("caller is not a validator"):
        gov.tx(reg.functions.propose_threshold(3), gov.outsider)
    gov.tx(reg.functions.propose_threshold(3), gov.a)
    with reverts("caller is not a validator"):
        gov.tx(reg.functions.approve(1), gov.outsider)
    with reverts("caller is not a validator"):
        gov.tx(reg.functions.execute(1), gov.outsider)
    assert reg.functions.threshold().call() == 2


def test_unknown_and_expired_proposals(gov: Gov) -> None:
    reg = gov.contract
    with reverts("unknown proposal"):
        gov.tx(reg.functions.approve(7), gov.b)
    gov.tx(reg.functions.propose_threshold(3), gov.a)
    expires_at = reg.functions.proposal(1).call()[8]
    gov.chain.tester.time_travel(expires_at + 1)
    with reverts("proposal expired"):
        gov.tx(reg.functions.approve(1), gov.b)
    assert reg.functions.threshold().call() == 2


def test_invalid_validator_proposals(gov: Gov) -> None:
    reg = gov.contract
    with reverts("invalid validator role"):
        gov.tx(reg.functions.propose_add_validator(gov.newcomer, 3, label32("x")), gov.a)
    with reverts("invalid validator role"):
        gov.tx(reg.functions.propose_add_validator(gov.newcomer, 0, label32("x")), gov.a)
    with reverts("already a validator"):
        gov.tx(reg.functions.propose_add_validator(gov.b, Role.CA, label32("x")), gov.a)
    zero = "0x" + "00" * 20
    with reverts("validator address is zero"):
        gov.tx(reg.functions.propose_add_validator(zero, Role.CA, label32("x")), gov.a)
    with reverts("not a validator"):
        gov.tx(reg.functions.propose_remove_validator(gov.outsider), gov.a)
    with reverts("validator still owns trust anchors"):
        gov.tx(reg.functions.propose_remove_validator(gov.a), gov.b)


def test_same_change_proposed_twice_executes_once(gov: Gov) -> None:
    reg = gov.contract
    add = reg.functions.propose_add_validator(gov.newcomer, Role.OPERATOR, label32("n"))
    gov.tx(add, gov.a)
    gov.tx(add, gov.b)
    gov.tx(reg.functions.approve(1), gov.c)
    with reverts("already a validator"):
        gov.tx(reg.functions.approve(2), gov.a)
    assert reg.functions.validator_count().call() == 4


def test_threshold_bounds_and_change(gov: Gov) -> None:
    reg = gov.contract
    with reverts("threshold must be at least 2 with several validators"):
        gov.tx(reg.functions.propose_threshold(1), gov.a)
    with reverts("threshold must be between 1 and the validator count"):
        gov.tx(reg.functions.propose_threshold(4), gov.a)
    with reverts("threshold must be between 1 and the validator count"):
        gov.tx(reg.functions.propose_threshold(0), gov.a)
    gov.tx(reg.functions.propose_threshold(3), gov.a)
    receipt = gov.tx(reg.functions.approve(1), gov.c)
    assert events(reg, "ThresholdChanged", receipt) == [{"old_threshold": 2, "new_threshold": 3}]
    assert events(reg, "ProposalExecuted", receipt) == [
        {"proposal_id": 1, "kind": ProposalKind.SET_THRESHOLD}
    ]
    assert reg.functions.threshold().call() == 3
    # now two approvals no longer suffice
    gov.tx(reg.functions.propose_add_validator(gov.newcomer, Role.CA, label32("n")), gov.a)
    gov.tx(reg.functions.approve(2), gov.b)
    assert not reg.functions.is_validator(gov.newcomer).call()
    gov.tx(reg.functions.approve(2), gov.c)
    assert reg.functions.is_validator(gov.newcomer).call()


def test_execute_after_threshold_is_lowered(gov: Gov) -> None:
    reg = gov.contract
    gov.tx(reg.functions.propose_threshold(3), gov.a)
    gov.tx(reg.functions.approve(1), gov.b)  # k = 3 now
    gov.tx(reg.functions.propose_add_trust_anchor(CA2_CERT, gov.a), gov.a)  # proposal 2
    gov.tx(reg.functions.approve(2), gov.b)  # 2 of 3: pending
    assert not reg.functions.is_trust_anchor(CA2_CERT).call()
    gov.tx(reg.functions.propose_threshold(2), gov.a)  # proposal 3
    gov.tx(reg.functions.approve(3), gov.b)
    gov.tx(reg.functions.approve(3), gov.c)
    assert reg.functions.threshold().call() == 2
    receipt = gov.tx(reg.functions.execute(2), gov.c)
    assert events(reg, "TrustAnchorAdded", receipt) == [
        {"anchor_hash": CA2_CERT, "kind": Role.CA, "owner": gov.a}
    ]
    with reverts("proposal already executed"):
        gov.tx(reg.functions.execute(2), gov.c)


def test_trust_anchor_lifecycle(gov: Gov) -> None:
    reg = gov.contract
    op_key = h("operator b key 2")
    with reverts("trust anchor owner is not a validator"):
        gov.tx(reg.functions.propose_add_trust_anchor(op_key, gov.outsider), gov.a)
    with reverts("trust anchor hash is zero"):
        gov.tx(reg.functions.propose_add_trust_anchor(bytes(32), gov.b), gov.a)
    with reverts("trust anchor already registered"):
        gov.tx(reg.functions.propose_add_trust_anchor(CA1_CERT, gov.a), gov.b)
    with reverts("unknown trust anchor"):
        gov.tx(reg.functions.propose_remove_trust_anchor(op_key), gov.a)

    gov.tx(reg.functions.propose_add_trust_anchor(op_key, gov.b), gov.c)
    receipt = gov.tx(reg.functions.approve(1), gov.a)
    # the anchor's kind is its owner's role: an operator owns endorsement keys
    assert events(reg, "TrustAnchorAdded", receipt) == [
        {"anchor_hash": op_key, "kind": Role.OPERATOR, "owner": gov.b}
    ]
    assert reg.functions.is_trust_anchor(op_key).call()
    assert reg.functions.trust_anchor(op_key).call()[:2] == (Role.OPERATOR, gov.b)
    assert reg.functions.trust_anchor_count().call() == 2
    assert reg.functions.operator_anchor_count().call() == 1
    assert reg.functions.ca_anchor_count().call() == 1
    assert reg.functions.anchors_owned(gov.b).call() == 1
    assert set(reg.functions.trust_anchors().call()) == {CA1_CERT, op_key}

    gov.tx(reg.functions.propose_remove_trust_anchor(op_key), gov.b)
    receipt = gov.tx(reg.functions.approve(2), gov.c)
    assert events(reg, "TrustAnchorRemoved", receipt) == [
        {"anchor_hash": op_key, "kind": Role.OPERATOR, "owner": gov.b}
    ]
    assert not reg.functions.is_trust_anchor(op_key).call()
    assert reg.functions.trust_anchor(op_key).call()[:2] == (0, "0x" + "00" * 20)
    assert reg.functions.trust_anchors().call() == [CA1_CERT]
    assert reg.functions.anchor_retired(op_key).call()
    assert reg.functions.operator_anchor_count().call() == 0
    # a removed anchor is retired for good
    with reverts("trust anchor was removed"):
        gov.tx(reg.functions.propose_add_trust_anchor(op_key, gov.b), gov.a)


def test_remove_validator_after_its_anchors_and_threshold_follows(gov: Gov) -> None:
    reg = gov.contract
    gov.tx(reg.functions.propose_threshold(3), gov.a)
    gov.tx(reg.functions.approve(1), gov.b)
    assert reg.functions.threshold().call() == 3
    gov.tx(reg.functions.propose_remove_trust_anchor(CA1_CERT), gov.b)
    gov.tx(reg.functions.approve(2), gov.c)
    gov.tx(reg.functions.approve(2), gov.a)
    assert reg.functions.anchors_owned(gov.a).call() == 0
    gov.tx(reg.functions.propose_remove_validator(gov.a), gov.b)
    gov.tx(reg.functions.approve(3), gov.c)
    receipt = gov.tx(reg.functions.approve(3), gov.a)
    assert events(reg, "ValidatorRemoved", receipt) == [{"account": gov.a, "role": Role.CA}]
    # k = 3 cannot be reached by two validators: it follows n down
    assert events(reg, "ThresholdChanged", receipt) == [{"old_threshold": 3, "new_threshold": 2}]
    assert not reg.functions.is_validator(gov.a).call()
    assert set(reg.functions.validators().call()) == {gov.b, gov.c}
    assert (reg.functions.validator_count().call(), reg.functions.ca_count().call()) == (2, 0)
    with reverts("caller is not a validator"):
        gov.tx(reg.functions.propose_threshold(2), gov.a)


def test_approval_of_a_removed_validator_stops_counting(gov: Gov) -> None:
    reg = gov.contract
    # proposal 1, approved by a and (below) c, stays pending under k = 3
    gov.tx(reg.functions.propose_threshold(3), gov.a)
    gov.tx(reg.functions.approve(1), gov.b)
    gov.tx(reg.functions.propose_add_trust_anchor(CA2_CERT, gov.a), gov.b)  # proposal 2
    gov.tx(reg.functions.approve(2), gov.c)
    assert reg.functions.approvals(2).call() == 2
    # remove c (3 of 3), then c's approval of proposal 2 no longer counts
    gov.tx(reg.functions.propose_remove_validator(gov.c), gov.a)
    gov.tx(reg.functions.approve(3), gov.b)
    gov.tx(reg.functions.approve(3), gov.c)
    assert reg.functions.approvals(2).call() == 1
    assert reg.functions.threshold().call() == 2
    # re-admitted, c is a new member: its old approval does not come back
    gov.tx(reg.functions.propose_add_validator(gov.c, Role.OPERATOR, label32("op-c")), gov.a)
    gov.tx(reg.functions.approve(4), gov.b)
    assert reg.functions.is_validator(gov.c).call()
    assert reg.functions.approvals(2).call() == 1
    assert not reg.functions.has_approved(2, gov.c).call()
    receipt = gov.tx(reg.functions.approve(2), gov.c)
    assert events(reg, "ProposalExecuted", receipt) == [
        {"proposal_id": 2, "kind": ProposalKind.ADD_TRUST_ANCHOR}
    ]


def test_main_registry_views(registry: Registry) -> None:
    reg = registry.contract
    assert reg.functions.validator_count().call() == 4
    assert reg.functions.threshold().call() == 3  # majority of 4
    assert reg.functions.proposal_ttl().call() == 0
    assert reg.functions.is_validator(registry.op1).call()
    assert not reg.functions.is_validator(registry.outsider).call()
    assert reg.functions.role_of(registry.outsider).call() == Role.NONE
    assert reg.functions.is_trust_anchor(OP1_KEY).call()
    assert reg.functions.trust_anchor(CA2_CERT).call()[:2] == (Role.CA, registry.ca2)
    assert reg.functions.trust_anchor_count().call() == 4
    # proposals never expire without a TTL
    registry.tx(reg.functions.propose_threshold(4), registry.ca1)
    assert reg.functions.proposal(1).call()[8] == 0


_TWO = ([1, 2], [1, 2], [b"a", b"b"])
_THREE = ([1, 2, 3], [1, 2, 2], [b"a", b"b", b"c"])
_MSG_K2 = "threshold must be at least 2 with several validators"
_MSG_KN = "threshold must be between 1 and the validator count"


@pytest.mark.parametrize(
    ("validators", "roles", "labels", "anchors", "owners", "threshold", "message"),
    [
        ([], [], [], [], [], 0, "at least one validator required"),
        ([1, 2], [1], [b"a", b"b"], [], [], 0, "one role per validator required"),
        ([1, 2], [1, 2], [b"a"], [], [], 0, "one label per validator required"),
        ([1], [1], [b"a"], [CA1_CERT], [], 0, "one owner per trust anchor required"),
        ([1, 1], [1, 2], [b"a", b"b"], [], [], 0, "already a validator"),
        ([1], [5], [b"a"], [], [], 0, "invalid validator role"),
        (*_TWO, [CA1_CERT], [3], 0, "trust anchor owner is not a validator"),
        (*_TWO, [CA1_CERT, CA1_CERT], [1, 1], 0, "trust anchor already registered"),
        (*_THREE, [], [], 1, _MSG_K2),
        (*_THREE, [], [], 4, _MSG_KN),
    ],
)
def test_constructor_rejects_bad_setups(
    chain: Chain,
    validators: list[int],
    roles: list[int],
    labels: list[bytes],
    anchors: list[bytes],
    owners: list[int],
    threshold: int,
    message: str,
) -> None:
    acct = chain.accounts
    with reverts(message):
        chain.deploy(
            [acct[i] for i in validators],
            roles,
            [label32(x.decode()) for x in labels],
            anchors,
            [acct[i] for i in owners],
            threshold,
        )


def test_constructor_explicit_threshold_and_events(chain: Chain, snapshot: None) -> None:
    acct = chain.accounts
    reg, creation = chain.deploy_with_receipt(
        [acct[1], acct[2], acct[3]],
        [Role.CA, Role.OPERATOR, Role.OPERATOR],
        [label32("a"), label32("b"), label32("c")],
        [CA1_CERT, OP1_KEY],
        [acct[1], acct[3]],
        threshold=3,
    )
    assert reg.functions.threshold().call() == 3
    assert [e["account"] for e in events(reg, "ValidatorAdded", creation)] == acct[1:4]
    assert events(reg, "TrustAnchorAdded", creation) == [
        {"anchor_hash": CA1_CERT, "kind": Role.CA, "owner": acct[1]},
        {"anchor_hash": OP1_KEY, "kind": Role.OPERATOR, "owner": acct[3]},
    ]
    assert events(reg, "ThresholdChanged", creation) == [{"old_threshold": 0, "new_threshold": 3}]
