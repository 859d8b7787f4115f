"""Decoding contract logs with the registry ABI (Solidity ABI spec, "Events").

A log's first topic is ``keccak(signature)``; indexed parameters follow as topics (static
types) and the rest are ABI-encoded in the data. Decoded arguments are rendered as JSON-ready
values: integers stay integers, ``bytesN``/``bytes``/``address`` become ``0x`` lowercase hex.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

UNKNOWN_EVENT = ""


def _canonical_type(param: dict[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param.get("components", []))
        return f"({inner}){t[len('tuple') :]}"
    return t


def event_signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_canonical_type(p) for p in entry['inputs'])})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class DecodedEvent:
    name: str  # UNKNOWN_EVENT when the log matches no ABI event
    args: dict[str, Any]

    def args_json(self) -> str:
        return json.dumps(self.args, sort_keys=True, separators=(",", ":"))


class EventDecoder:
    """Maps topic0 to the ABI event and decodes logs of the registry."""

    def __init__(self, abi: Sequence[dict[str, Any]]) -> None:
        self._by_topic: dict[bytes, dict[str, Any]] = {}
        for entry in abi:
            if entry.get("type") == "event" and not entry.get("anonymous", False):
                self._by_topic[bytes(keccak(text=event_signature(entry)))] = entry

    @property
    def event_names(self) -> list[str]:
        return sorted(e["name"] for e in self._by_topic.values())

    def topic_of(self, name: str) -> bytes:
        for topic, entry in self._by_topic.items():
            if entry["name"] == name:
                return topic
        raise KeyError(name)

    def decode(self, topics: Sequence[bytes], data: bytes) -> DecodedEvent:
        if not topics or topics[0] not in self._by_topic:
            return DecodedEvent(UNKNOWN_EVENT, {})
        entry = self._by_topic[topics[0]]
        indexed = [p for p in entry["inputs"] if p.get("indexed")]
        plain = [p for p in entry["inputs"] if not p.get("indexed")]
        if len(topics) != 1 + len(indexed):
            return DecodedEvent(UNKNOWN_EVENT, {})
        try:
            args: dict[str, Any] = {}
            for param, topic in zip(indexed, topics[1:], strict=True):
                t = _canonical_type(param)
                if t in ("string", "bytes") or t.endswith("]") or t.startswith("("):
                    args[param["name"]] = "0x" + topic.hex()  # dynamic: only its hash is logged
                else:
                    args[param["name"]] = _jsonable(abi_decode([t], topic)[0])
            values = abi_decode([_canonical_type(p) for p in plain], data)
            for param, value in zip(plain, values, strict=True):
                args[param["name"]] = _jsonable(value)
        except (DecodingError, ValueError, OverflowError):
            return DecodedEvent(UNKNOWN_EVENT, {})
        return DecodedEvent(str(entry["name"]), args)
