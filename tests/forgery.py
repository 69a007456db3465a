"""Checkpoints as an attacker writes them: our header and a correct checksum around any contents."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from qapprox.dqn.checkpoint import MAGIC, MAGIC_V1


class Payload:
    """Unpickling this calls exec(...), which writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def raw_checkpoint(path: Path, payload: bytes, meta: bytes = b"{}", version: int = 2) -> Path:
    """Write `payload` (and, in version 2, `meta`) behind our header with a correct sha256."""
    if version == 1:
        path.write_bytes(MAGIC_V1 + hashlib.sha256(payload).digest() + payload)
    else:
        digest = hashlib.sha256(meta + payload).digest()
        path.write_bytes(MAGIC + digest + len(meta).to_bytes(8, "little") + meta + payload)
    return path


def forged(path: Path, state: dict, meta: dict, version: int = 2) -> Path:
    """A checkpoint of any `state` and `meta`, re-hashed: what 'change one field and re-hash' makes."""
    buffer = io.BytesIO()
    meta_text = json.dumps(meta)
    torch.save({**state, "meta": meta_text} if version == 1 else state, buffer)
    return raw_checkpoint(path, buffer.getvalue(), meta_text.encode(), version)


def malicious_checkpoint(path: Path, marker: Path, meta: dict, version: int = 2) -> Path:
    """A real agent's `meta`, and a payload that would run code on a plain torch.load: only the
    weights-only unpickler stands between the file and exec."""
    return forged(path, {"q": Payload(marker)}, meta, version)
