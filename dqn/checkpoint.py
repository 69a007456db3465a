"""Safe, atomic checkpoint files: nothing in them can run code when loaded.

File layout:  MAGIC (b"QAPPROX-CKPT-1\\n") | sha256(payload) (32 bytes) | payload
payload = torch.save of a dict holding only tensors, state dicts and primitives (config, counters
and RNG states go in as one JSON string), read back with torch.load(weights_only=True).

    save_checkpoint(path, state)      # written to PATH.tmp, fsync'd, then renamed over PATH
    state = load_checkpoint(path)     # magic, checksum, then the weights-only unpickler
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAGIC = b"QAPPROX-CKPT-1\n"
DIGEST_SIZE = 32


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: one line naming the path and why."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` atomically: a crash mid-write leaves any previous file at `path` intact.

    numpy arrays anywhere in `state` are stored as tensors (load_checkpoint does not turn them back).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(_tensors_for_arrays(state), buffer)
    payload = buffer.getvalue()
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        file.write(MAGIC)
        file.write(hashlib.sha256(payload).digest())
        file.write(payload)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state dict saved at `path`; CheckpointError if it is not ours, is corrupt, or could run code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a qapprox checkpoint")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{path} is not a qapprox checkpoint (no {MAGIC[:-1].decode()} header)")
    digest, payload = data[len(MAGIC): len(MAGIC) + DIGEST_SIZE], data[len(MAGIC) + DIGEST_SIZE:]
    if len(digest) != DIGEST_SIZE or hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"{path} is truncated or corrupt (checksum mismatch)")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path} contains objects that could run code; refused") from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint dictionary")
    return state


def _tensors_for_arrays(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {key: _tensors_for_arrays(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tensors_for_arrays(item) for item in value)
    return value


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
