# pragma version 0.4.3
"""
@title CertificateRegistry
@notice MPKIX ledger instead of CRLs (ARCHITECTURE.md §2.4; X.1122 §9.1.2; DLT-PKI).
        Permissioned: only registered validators (CA nodes, operator CMS nodes) write.
        Validators and trust anchors change only by k-of-n governance proposals.
        A CA anchors issued certificates in batches (one RFC 9162 Merkle root per batch).
        Status changes (revoke, suspend, resume) are per certificate and carry an RFC 9162
        inclusion proof of the certificate's leaf in its batch, so the contract itself checks
        that the caller is the issuing CA or the subject's operator (docs/decisions/0401).
@dev    Batch leaf entry = cert_hash ‖ operator_key_hash (64 bytes), where
        cert_hash = SHA-256(certificate DER) and operator_key_hash = SHA-256(SubjectPublicKeyInfo
        DER of the endorsing operator key), or 32 zero bytes for a certificate with no operator.
        Leaf hash = SHA-256(0x00 ‖ entry); node hash = SHA-256(0x01 ‖ left ‖ right).
        Certificate status is kept per issuing CA: status_of(ca_cert_hash, cert_hash).
"""

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

ROLE_NONE: constant(uint8) = 0
ROLE_CA: constant(uint8) = 1
ROLE_OPERATOR: constant(uint8) = 2

STATE_GOOD: constant(uint8) = 0  # nothing recorded: good if the certificate is anchored
STATE_SUSPENDED: constant(uint8) = 1
STATE_REVOKED: constant(uint8) = 2

# RFC 5280 §5.3.1 CRLReason codes that matter here
REASON_CA_COMPROMISE: constant(uint8) = 2
REASON_CERTIFICATE_HOLD: constant(uint8) = 6
REASON_REMOVE_FROM_CRL: constant(uint8) = 8
REASON_AA_COMPROMISE: constant(uint8) = 10

PROPOSAL_ADD_VALIDATOR: constant(uint8) = 1
PROPOSAL_REMOVE_VALIDATOR: constant(uint8) = 2
PROPOSAL_ADD_TRUST_ANCHOR: constant(uint8) = 3
PROPOSAL_REMOVE_TRUST_ANCHOR: constant(uint8) = 4
PROPOSAL_SET_THRESHOLD: constant(uint8) = 5

MAX_VALIDATORS: constant(uint256) = 64
MAX_TRUST_ANCHORS: constant(uint256) = 256
MAX_PROOF_LENGTH: constant(uint256) = 64

# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------

struct Validator:
    role: uint8
    label: bytes32
    added_at: uint256
    serial: uint256  # membership serial: approvals from an earlier membership do not count

struct TrustAnchor:
    kind: uint8  # ROLE_CA: CA certificate hash; ROLE_OPERATOR: endorsement key hash
    owner: address
    added_at: uint256

struct Batch:
    root: bytes32
    size: uint256
    ca_cert_hash: bytes32
    anchored_at: uint256

struct StoredBatch:
    root: bytes32
    ca_cert_hash: bytes32
    size_and_time: uint256  # size in bits 0-127, anchoring block time in bits 128-255

struct CertStatus:
    state: uint8
    reason: uint8
    updated_at: uint256
    batch_id: uint256

struct Proposal:
    kind: uint8
    proposer: address
    account: address  # validator to add/remove, or owner of a trust anchor to add
    role: uint8  # role of a validator to add
    label: bytes32  # label of a validator to add
    anchor_hash: bytes32  # trust anchor to add/remove
    threshold: uint256  # new k for PROPOSAL_SET_THRESHOLD
    created_at: uint256
    expires_at: uint256  # 0: never
    executed: bool

# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

event ValidatorAdded:
    account: indexed(address)
    role: uint8
    label: bytes32

event ValidatorRemoved:
    account: indexed(address)
    role: uint8

event TrustAnchorAdded:
    anchor_hash: indexed(bytes32)
    kind: uint8
    owner: indexed(address)

event TrustAnchorRemoved:
    anchor_hash: indexed(bytes32)
    kind: uint8
    owner: indexed(address)

event ThresholdChanged:
    old_threshold: uint256
    new_threshold: uint256

event ProposalCreated:
    proposal_id: indexed(uint256)
    proposer: indexed(address)
    kind: uint8
    account: address
    role: uint8
    label: bytes32
    anchor_hash: bytes32
    threshold: uint256
    expires_at: uint256

event ProposalApproved:
    proposal_id: indexed(uint256)
    approver: indexed(address)
    approvals: uint256

event ProposalExecuted:
    proposal_id: indexed(uint256)
    kind: uint8

event BatchAnchored:
    batch_id: indexed(uint256)
    root: bytes32
    size: uint256
    ca_cert_hash: indexed(bytes32)
    timestamp: uint256

event CertificateRevoked:
    ca_cert_hash: indexed(bytes32)
    cert_hash: indexed(bytes32)
    batch_id: uint256
    reason: uint8
    timestamp: uint256
    by: indexed(address)

event CertificateSuspended:
    ca_cert_hash: indexed(bytes32)
    cert_hash: indexed(bytes32)
    batch_id: uint256
    timestamp: uint256
    by: indexed(address)

event CertificateResumed:
    ca_cert_hash: indexed(bytes32)
    cert_hash: indexed(bytes32)
    batch_id: uint256
    timestamp: uint256
    by: indexed(address)

# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------

# validators
_validators: HashMap[address, Validator]
_validator_list: DynArray[address, MAX_VALIDATORS]
_validator_index: HashMap[address, uint256]  # position + 1 in _validator_list
_next_serial: uint256
validator_count: public(uint256)
ca_count: public(uint256)
operator_count: public(uint256)
threshold: public(uint256)
anchors_owned: public(HashMap[address, uint256])

# trust anchors
_anchors: HashMap[bytes32, TrustAnchor]
_anchor_list: DynArray[bytes32, MAX_TRUST_ANCHORS]
_anchor_index: HashMap[bytes32, uint256]  # position + 1 in _anchor_list
anchor_retired: public(HashMap[bytes32, bool])
trust_anchor_count: public(uint256)
ca_anchor_count: public(uint256)
operator_anchor_count: public(uint256)

# governance
proposal_ttl: public(uint256)  # seconds; 0: proposals never expire
proposal_count: public(uint256)
_proposals: HashMap[uint256, Proposal]
_approvals: HashMap[uint256, HashMap[address, uint256]]  # proposal -> validator -> serial

# batches
batch_count: public(uint256)
_batches: HashMap[uint256, StoredBatch]
batch_of_root: public(HashMap[bytes32, uint256])

# certificate status, per issuing CA certificate hash, packed into one slot (see _pack_status)
_statuses: HashMap[bytes32, HashMap[bytes32, uint256]]

# ---------------------------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------------------------

@deploy
def __init__(
    validators: DynArray[address, MAX_VALIDATORS],
    roles: DynArray[uint8, MAX_VALIDATORS],
    labels: DynArray[bytes32, MAX_VALIDATORS],
    anchor_hashes: DynArray[bytes32, MAX_TRUST_ANCHORS],
    anchor_owners: DynArray[address, MAX_TRUST_ANCHORS],
    threshold: uint256,
    proposal_ttl: uint256,
):
    """
    @param validators initial validator accounts
    @param roles their roles (1 = CA, 2 = operator), one per validator
    @param labels their public identifiers, one per validator
    @param anchor_hashes initial trust anchors (CA certificate or endorsement key hashes)
    @param anchor_owners the validator owning each anchor; the anchor kind is its role
    @param threshold approvals k needed to execute a proposal; 0 selects a majority
    @param proposal_ttl seconds a proposal stays open; 0: no expiry
    """
    assert len(validators) > 0, "at least one validator required"
    assert len(roles) == len(validators), "one role per validator required"
    assert len(labels) == len(validators), "one label per validator required"
    assert len(anchor_owners) == len(anchor_hashes), "one owner per trust anchor required"
    for i: uint256 in range(len(validators), bound=MAX_VALIDATORS):
        self._check_new_validator(validators[i], roles[i])
        self._add_validator(validators[i], roles[i], labels[i])
    for i: uint256 in range(len(anchor_hashes), bound=MAX_TRUST_ANCHORS):
        self._check_new_anchor(anchor_hashes[i], anchor_owners[i])
        self._add_anchor(anchor_hashes[i], anchor_owners[i])
    k: uint256 = threshold
    if k == 0:
        k = self.validator_count // 2 + 1
    self._check_threshold(k, self.validator_count)
    self.threshold = k
    log ThresholdChanged(old_threshold=0, new_threshold=k)
    self.proposal_ttl = proposal_ttl

# ---------------------------------------------------------------------------------------------
# Governance
# ---------------------------------------------------------------------------------------------

@external
def propose_add_validator(account: address, role: uint8, label: bytes32) -> uint256:
    """
    @notice Propose a new validator with a role (1 = CA, 2 = operator) and a label.
    @return the proposal id
    """
    self._only_validator()
    self._check_new_validator(account, role)
    return self._propose(PROPOSAL_ADD_VALIDATOR, account, role, label, empty(bytes32), 0)

@external
def propose_remove_validator(account: address) -> uint256:
    """
    @notice Propose removing a validator (it must first lose its trust anchors).
    """
    self._only_validator()
    self._check_removable_validator(account)
    return self._propose(
        PROPOSAL_REMOVE_VALIDATOR, account, ROLE_NONE, empty(bytes32), empty(bytes32), 0
    )

@external
def propose_add_trust_anchor(anchor_hash: bytes32, owner: address) -> uint256:
    """
    @notice Propose a trust anchor owned by a validator: a CA certificate hash for a CA
            validator, an endorsement-key hash for an operator validator.
    """
    self._only_validator()
    self._check_new_anchor(anchor_hash, owner)
    return self._propose(
        PROPOSAL_ADD_TRUST_ANCHOR, owner, ROLE_NONE, empty(bytes32), anchor_hash, 0
    )

@external
def propose_remove_trust_anchor(anchor_hash: bytes32) -> uint256:
    """
    @notice Propose removing (retiring for good) a trust anchor.
    """
    self._only_validator()
    assert self._anchors[anchor_hash].kind != ROLE_NONE, "unknown trust anchor"
    return self._propose(
        PROPOSAL_REMOVE_TRUST_ANCHOR, empty(address), ROLE_NONE, empty(bytes32), anchor_hash, 0
    )

@external
def propose_threshold(new_threshold: uint256) -> uint256:
    """
    @notice Propose a new approval threshold k (1..n; at least 2 while n > 1).
    """
    self._only_validator()
    self._check_threshold(new_threshold, self.validator_count)
    return self._propose(
        PROPOSAL_SET_THRESHOLD,
        empty(address),
        ROLE_NONE,
        empty(bytes32),
        empty(bytes32),
        new_threshold,
    )

@external
def approve(proposal_id: uint256):
    """
    @notice Approve an open proposal; it executes once approvals reach the threshold.
    """
    self._only_validator()
    self._check_open(proposal_id)
    serial: uint256 = self._validators[msg.sender].serial
    assert self._approvals[proposal_id][msg.sender] != serial, "proposal already approved by caller"
    self._approvals[proposal_id][msg.sender] = serial
    approvals: uint256 = self._approval_count(proposal_id)
    log ProposalApproved(proposal_id=proposal_id, approver=msg.sender, approvals=approvals)
    if approvals >= self.threshold:
        self._execute(proposal_id)

@external
def execute(proposal_id: uint256):
    """
    @notice Execute an open proposal whose approvals reach the current threshold (useful
            after the threshold was lowered).
    """
    self._only_validator()
    self._check_open(proposal_id)
    assert self._approval_count(proposal_id) >= self.threshold, "not enough approvals"
    self._execute(proposal_id)

# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------

@external
def anchor_batch(root: bytes32, size: uint256, ca_cert_hash: bytes32) -> uint256:
    """
    @notice Anchor the RFC 9162 Merkle root of a batch of certificates issued by the CA
            whose certificate hash is ca_cert_hash (a trust anchor owned by the caller).
    @dev A root can be anchored once; a retry reverts with "root already anchored" and
         batch_of_root(root) gives the existing batch id.
    @return the new batch id (ids start at 1)
    """
    role: uint8 = self._only_validator()
    assert role == ROLE_CA, "only a CA validator may anchor batches"
    assert root != empty(bytes32), "batch root is zero"
    assert size != 0, "batch size is zero"
    assert size < 2**64, "batch size too large"
    anchor: TrustAnchor = self._anchors[ca_cert_hash]
    assert anchor.kind == ROLE_CA, "CA certificate is not a trust anchor"
    assert anchor.owner == msg.sender, "CA trust anchor not owned by caller"
    assert self.batch_of_root[root] == 0, "root already anchored"
    batch_id: uint256 = self.batch_count + 1
    self.batch_count = batch_id
    self._batches[batch_id] = StoredBatch(
        root=root, ca_cert_hash=ca_cert_hash, size_and_time=size | (block.timestamp << 128)
    )
    self.batch_of_root[root] = batch_id
    log BatchAnchored(
        batch_id=batch_id,
        root=root,
        size=size,
        ca_cert_hash=ca_cert_hash,
        timestamp=block.timestamp,
    )
    return batch_id

# ---------------------------------------------------------------------------------------------
# Certificate status
# ---------------------------------------------------------------------------------------------

@external
def revoke(
    cert_hash: bytes32,
    operator_key_hash: bytes32,
    batch_id: uint256,
    leaf_index: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
    reason: uint8,
):
    """
    @notice Revoke a certificate for good, with an RFC 5280 CRLReason code.
    @dev The caller is the issuing CA or, with operator_key_hash of the leaf, the subject's
         operator. certificateHold (6) is suspend(); removeFromCRL (8) is resume().
    """
    role: uint8 = self._only_validator()
    assert reason <= REASON_AA_COMPROMISE and reason != 7, "invalid revocation reason"
    assert reason != REASON_CERTIFICATE_HOLD, "use suspend for certificateHold"
    assert reason != REASON_REMOVE_FROM_CRL, "use resume for removeFromCRL"
    if role == ROLE_OPERATOR:
        assert reason != REASON_CA_COMPROMISE and reason != REASON_AA_COMPROMISE, (
            "reason reserved for the issuing CA"
        )
    ca_cert_hash: bytes32 = self._authorize_status_change(
        role, cert_hash, operator_key_hash, batch_id, leaf_index, proof
    )
    state: uint8 = self._state_of(ca_cert_hash, cert_hash)
    assert state != STATE_REVOKED, "certificate already revoked"
    self._statuses[ca_cert_hash][cert_hash] = self._pack_status(STATE_REVOKED, reason, batch_id)
    log CertificateRevoked(
        ca_cert_hash=ca_cert_hash,
        cert_hash=cert_hash,
        batch_id=batch_id,
        reason=reason,
        timestamp=block.timestamp,
        by=msg.sender,
    )

@external
def suspend(
    cert_hash: bytes32,
    operator_key_hash: bytes32,
    batch_id: uint256,
    leaf_index: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
):
    """
    @notice Suspend a certificate (RFC 5280 certificateHold) until resumed or revoked.
    """
    role: uint8 = self._only_validator()
    ca_cert_hash: bytes32 = self._authorize_status_change(
        role, cert_hash, operator_key_hash, batch_id, leaf_index, proof
    )
    state: uint8 = self._state_of(ca_cert_hash, cert_hash)
    assert state != STATE_REVOKED, "certificate is revoked"
    assert state != STATE_SUSPENDED, "certificate already suspended"
    self._statuses[ca_cert_hash][cert_hash] = self._pack_status(
        STATE_SUSPENDED, REASON_CERTIFICATE_HOLD, batch_id
    )
    log CertificateSuspended(
        ca_cert_hash=ca_cert_hash,
        cert_hash=cert_hash,
        batch_id=batch_id,
        timestamp=block.timestamp,
        by=msg.sender,
    )

@external
def resume(
    cert_hash: bytes32,
    operator_key_hash: bytes32,
    batch_id: uint256,
    leaf_index: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
):
    """
    @notice Lift a suspension (RFC 5280 removeFromCRL); a revoked certificate stays revoked.
    """
    role: uint8 = self._only_validator()
    ca_cert_hash: bytes32 = self._authorize_status_change(
        role, cert_hash, operator_key_hash, batch_id, leaf_index, proof
    )
    state: uint8 = self._state_of(ca_cert_hash, cert_hash)
    assert state != STATE_REVOKED, "certificate is revoked"
    assert state == STATE_SUSPENDED, "certificate is not suspended"
    self._statuses[ca_cert_hash][cert_hash] = self._pack_status(
        STATE_GOOD, REASON_REMOVE_FROM_CRL, batch_id
    )
    log CertificateResumed(
        ca_cert_hash=ca_cert_hash,
        cert_hash=cert_hash,
        batch_id=batch_id,
        timestamp=block.timestamp,
        by=msg.sender,
    )

# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------

@view
@external
def is_validator(account: address) -> bool:
    return self._validators[account].role != ROLE_NONE

@view
@external
def validator(account: address) -> Validator:
    """
    @notice Role (0 when not a validator), label, time added and membership serial.
    """
    return self._validators[account]

@view
@external
def role_of(account: address) -> uint8:
    return self._validators[account].role

@view
@external
def validators() -> DynArray[address, MAX_VALIDATORS]:
    return self._validator_list

@view
@external
def is_trust_anchor(anchor_hash: bytes32) -> bool:
    return self._anchors[anchor_hash].kind != ROLE_NONE

@view
@external
def trust_anchor(anchor_hash: bytes32) -> TrustAnchor:
    """
    @notice Kind (1 = CA certificate, 2 = operator endorsement key; 0 when none) and owner.
    """
    return self._anchors[anchor_hash]

@view
@external
def trust_anchors() -> DynArray[bytes32, MAX_TRUST_ANCHORS]:
    return self._anchor_list

@view
@external
def batch(batch_id: uint256) -> Batch:
    """
    @notice The anchored batch (all zero for an unknown id).
    """
    return self._batch(batch_id)

@view
@external
def status_of(ca_cert_hash: bytes32, cert_hash: bytes32) -> CertStatus:
    """
    @notice Status of a certificate issued by the CA certificate ca_cert_hash:
            state 0 = good (nothing recorded, or resumed), 1 = suspended, 2 = revoked;
            reason is the RFC 5280 CRLReason of the last change (6 suspended, 8 resumed);
            updated_at the block time of the last change; batch_id the batch it named.
    """
    packed: uint256 = self._statuses[ca_cert_hash][cert_hash]
    return CertStatus(
        state=convert(packed & 255, uint8),
        reason=convert((packed >> 8) & 255, uint8),
        updated_at=(packed >> 16) & 18446744073709551615,
        batch_id=packed >> 80,
    )

@view
@external
def proposal(proposal_id: uint256) -> Proposal:
    return self._proposals[proposal_id]

@view
@external
def approvals(proposal_id: uint256) -> uint256:
    """
    @notice Approvals of a proposal by current validators.
    """
    return self._approval_count(proposal_id)

@view
@external
def has_approved(proposal_id: uint256, account: address) -> bool:
    serial: uint256 = self._validators[account].serial
    return serial != 0 and self._approvals[proposal_id][account] == serial

@pure
@external
def leaf_hash(cert_hash: bytes32, operator_key_hash: bytes32) -> bytes32:
    """
    @notice RFC 9162 leaf hash of a batch entry cert_hash ‖ operator_key_hash.
    """
    return self._leaf_hash(cert_hash, operator_key_hash)

@pure
@external
def verify_inclusion(
    leaf: bytes32,
    leaf_index: uint256,
    tree_size: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
    root: bytes32,
) -> bool:
    """
    @notice RFC 9162 §2.1.3.2 inclusion proof verification of a leaf hash.
    """
    return self._verify_inclusion(leaf, leaf_index, tree_size, proof, root)

@view
@external
def certificate_in_batch(
    cert_hash: bytes32,
    operator_key_hash: bytes32,
    batch_id: uint256,
    leaf_index: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
) -> bool:
    """
    @notice Whether the entry cert_hash ‖ operator_key_hash is at leaf_index of the batch.
    """
    b: Batch = self._batch(batch_id)
    if b.size == 0:
        return False
    return self._verify_inclusion(
        self._leaf_hash(cert_hash, operator_key_hash), leaf_index, b.size, proof, b.root
    )

# ---------------------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------------------

@view
@internal
def _only_validator() -> uint8:
    role: uint8 = self._validators[msg.sender].role
    assert role != ROLE_NONE, "caller is not a validator"
    return role

@view
@internal
def _check_new_validator(account: address, role: uint8):
    assert account != empty(address), "validator address is zero"
    assert role == ROLE_CA or role == ROLE_OPERATOR, "invalid validator role"
    assert self._validators[account].role == ROLE_NONE, "already a validator"

@view
@internal
def _check_removable_validator(account: address):
    assert self._validators[account].role != ROLE_NONE, "not a validator"
    assert self.validator_count > 1, "cannot remove the last validator"
    assert self.anchors_owned[account] == 0, "validator still owns trust anchors"

@view
@internal
def _check_new_anchor(anchor_hash: bytes32, owner: address):
    assert anchor_hash != empty(bytes32), "trust anchor hash is zero"
    assert self._anchors[anchor_hash].kind == ROLE_NONE, "trust anchor already registered"
    assert not self.anchor_retired[anchor_hash], "trust anchor was removed"
    assert self._validators[owner].role != ROLE_NONE, "trust anchor owner is not a validator"

@pure
@internal
def _check_threshold(k: uint256, n: uint256):
    assert k >= 1 and k <= n, "threshold must be between 1 and the validator count"
    assert n == 1 or k >= 2, "threshold must be at least 2 with several validators"

@internal
def _add_validator(account: address, role: uint8, label: bytes32):
    serial: uint256 = self._next_serial + 1
    self._next_serial = serial
    self._validators[account] = Validator(
        role=role, label=label, added_at=block.timestamp, serial=serial
    )
    self._validator_list.append(account)
    self._validator_index[account] = len(self._validator_list)
    self.validator_count += 1
    if role == ROLE_CA:
        self.ca_count += 1
    else:
        self.operator_count += 1
    log ValidatorAdded(account=account, role=role, label=label)

@internal
def _remove_validator(account: address):
    role: uint8 = self._validators[account].role
    position: uint256 = self._validator_index[account] - 1
    last: address = self._validator_list.pop()
    if last != account:
        self._validator_list[position] = last
        self._validator_index[last] = position + 1
    self._validator_index[account] = 0
    self._validators[account] = empty(Validator)
    self.validator_count -= 1
    if role == ROLE_CA:
        self.ca_count -= 1
    else:
        self.operator_count -= 1
    log ValidatorRemoved(account=account, role=role)

@internal
def _add_anchor(anchor_hash: bytes32, owner: address):
    kind: uint8 = self._validators[owner].role
    self._anchors[anchor_hash] = TrustAnchor(kind=kind, owner=owner, added_at=block.timestamp)
    self._anchor_list.append(anchor_hash)
    self._anchor_index[anchor_hash] = len(self._anchor_list)
    self.anchors_owned[owner] += 1
    self.trust_anchor_count += 1
    if kind == ROLE_CA:
        self.ca_anchor_count += 1
    else:
        self.operator_anchor_count += 1
    log TrustAnchorAdded(anchor_hash=anchor_hash, kind=kind, owner=owner)

@internal
def _remove_anchor(anchor_hash: bytes32):
    anchor: TrustAnchor = self._anchors[anchor_hash]
    position: uint256 = self._anchor_index[anchor_hash] - 1
    last: bytes32 = self._anchor_list.pop()
    if last != anchor_hash:
        self._anchor_list[position] = last
        self._anchor_index[last] = position + 1
    self._anchor_index[anchor_hash] = 0
    self._anchors[anchor_hash] = empty(TrustAnchor)
    self.anchor_retired[anchor_hash] = True
    self.anchors_owned[anchor.owner] -= 1
    self.trust_anchor_count -= 1
    if anchor.kind == ROLE_CA:
        self.ca_anchor_count -= 1
    else:
        self.operator_anchor_count -= 1
    log TrustAnchorRemoved(anchor_hash=anchor_hash, kind=anchor.kind, owner=anchor.owner)

@internal
def _set_threshold(k: uint256):
    old: uint256 = self.threshold
    if old != k:
        self.threshold = k
        log ThresholdChanged(old_threshold=old, new_threshold=k)

@internal
def _propose(
    kind: uint8,
    account: address,
    role: uint8,
    label: bytes32,
    anchor_hash: bytes32,
    new_threshold: uint256,
) -> uint256:
    proposal_id: uint256 = self.proposal_count + 1
    self.proposal_count = proposal_id
    expires_at: uint256 = 0
    if self.proposal_ttl != 0:
        expires_at = block.timestamp + self.proposal_ttl
    self._proposals[proposal_id] = Proposal(
        kind=kind,
        proposer=msg.sender,
        account=account,
        role=role,
        label=label,
        anchor_hash=anchor_hash,
        threshold=new_threshold,
        created_at=block.timestamp,
        expires_at=expires_at,
        executed=False,
    )
    log ProposalCreated(
        proposal_id=proposal_id,
        proposer=msg.sender,
        kind=kind,
        account=account,
        role=role,
        label=label,
        anchor_hash=anchor_hash,
        threshold=new_threshold,
        expires_at=expires_at,
    )
    # the proposer approves its own proposal
    self._approvals[proposal_id][msg.sender] = self._validators[msg.sender].serial
    log ProposalApproved(proposal_id=proposal_id, approver=msg.sender, approvals=1)
    if self.threshold <= 1:
        self._execute(proposal_id)
    return proposal_id

@view
@internal
def _check_open(proposal_id: uint256):
    p: Proposal = self._proposals[proposal_id]
    assert p.kind != 0, "unknown proposal"
    assert not p.executed, "proposal already executed"
    assert p.expires_at == 0 or block.timestamp < p.expires_at, "proposal expired"

@view
@internal
def _approval_count(proposal_id: uint256) -> uint256:
    count: uint256 = 0
    for v: address in self._validator_list:
        if self._approvals[proposal_id][v] == self._validators[v].serial:
            count += 1
    return count

@internal
def _execute(proposal_id: uint256):
    p: Proposal = self._proposals[proposal_id]
    self._proposals[proposal_id].executed = True
    if p.kind == PROPOSAL_ADD_VALIDATOR:
        self._check_new_validator(p.account, p.role)
        self._add_validator(p.account, p.role, p.label)
        if self.validator_count > 1 and self.threshold < 2:
            self._set_threshold(2)
    elif p.kind == PROPOSAL_REMOVE_VALIDATOR:
        self._check_removable_validator(p.account)
        self._remove_validator(p.account)
        if self.threshold > self.validator_count:
            self._set_threshold(self.validator_count)
    elif p.kind == PROPOSAL_ADD_TRUST_ANCHOR:
        self._check_new_anchor(p.anchor_hash, p.account)
        self._add_anchor(p.anchor_hash, p.account)
    elif p.kind == PROPOSAL_REMOVE_TRUST_ANCHOR:
        assert self._anchors[p.anchor_hash].kind != ROLE_NONE, "unknown trust anchor"
        self._remove_anchor(p.anchor_hash)
    else:
        self._check_threshold(p.threshold, self.validator_count)
        self._set_threshold(p.threshold)
    log ProposalExecuted(proposal_id=proposal_id, kind=p.kind)

@view
@internal
def _batch(batch_id: uint256) -> Batch:
    stored: StoredBatch = self._batches[batch_id]
    return Batch(
        root=stored.root,
        size=stored.size_and_time & (2**128 - 1),
        ca_cert_hash=stored.ca_cert_hash,
        anchored_at=stored.size_and_time >> 128,
    )

@view
@internal
def _pack_status(state: uint8, reason: uint8, batch_id: uint256) -> uint256:
    # bits 0-7 state, 8-15 reason, 16-79 block time, 80-255 batch id: one storage slot
    return (
        convert(state, uint256)
        | (convert(reason, uint256) << 8)
        | (block.timestamp << 16)
        | (batch_id << 80)
    )

@view
@internal
def _state_of(ca_cert_hash: bytes32, cert_hash: bytes32) -> uint8:
    return convert(self._statuses[ca_cert_hash][cert_hash] & 255, uint8)

@pure
@internal
def _leaf_hash(cert_hash: bytes32, operator_key_hash: bytes32) -> bytes32:
    return sha256(concat(b"\x00", cert_hash, operator_key_hash))

@pure
@internal
def _verify_inclusion(
    leaf: bytes32,
    leaf_index: uint256,
    tree_size: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
    root: bytes32,
) -> bool:
    # RFC 9162 §2.1.3.2
    if leaf_index >= tree_size:
        return False
    fn: uint256 = leaf_index
    sn: uint256 = tree_size - 1
    r: bytes32 = leaf
    for p: bytes32 in proof:
        if sn == 0:
            return False
        if (fn & 1) == 1 or fn == sn:
            r = sha256(concat(b"\x01", p, r))
            if (fn & 1) == 0:
                for _: uint256 in range(256):
                    if (fn & 1) == 1 or fn == 0:
                        break
                    fn = fn >> 1
                    sn = sn >> 1
        else:
            r = sha256(concat(b"\x01", r, p))
        fn = fn >> 1
        sn = sn >> 1
    return sn == 0 and r == root

@view
@internal
def _authorize_status_change(
    role: uint8,
    cert_hash: bytes32,
    operator_key_hash: bytes32,
    batch_id: uint256,
    leaf_index: uint256,
    proof: DynArray[bytes32, MAX_PROOF_LENGTH],
) -> bytes32:
    """
    @return the issuing CA certificate hash of the batch
    """
    assert cert_hash != empty(bytes32), "certificate hash is zero"
    b: Batch = self._batch(batch_id)
    assert b.size != 0, "unknown batch"
    assert self._verify_inclusion(
        self._leaf_hash(cert_hash, operator_key_hash), leaf_index, b.size, proof, b.root
    ), "certificate not in batch"
    if role == ROLE_CA:
        assert self._anchors[b.ca_cert_hash].owner == msg.sender, "caller is not the issuing CA"
    else:
        assert operator_key_hash != empty(bytes32), "certificate has no operator"
        anchor: TrustAnchor = self._anchors[operator_key_hash]
        assert anchor.owner == msg.sender, "caller is not the subject's operator"
    return b.ca_cert_hash
