"""Associated data of the sealed ppCSR submission (paper §5.2 step 2).

Binding the AES-GCM envelope to the EAP session and the transaction id stops a captured
submission from being replayed into another session or transaction.
"""


def submission_aad(session_id: str, transaction_id: str) -> bytes:
    return b"mpkix-ppcsr-v1\x00" + session_id.encode() + b"\x00" + transaction_id.encode()
