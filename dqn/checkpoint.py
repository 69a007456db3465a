"""Safe, atomic, bounded checkpoint files: nothing in them can run code, and nothing is read unchecked.

File layout (version 2):
    MAGIC (b"QAPPROX-CKPT-2\\n") | sha256(meta ‖ payload) (32 bytes) | len(meta) (8 bytes, little-endian)
    | meta (UTF-8 JSON: config, counters, RNG states) | payload (torch.save of tensors and state dicts)
The payload is read back with torch.load(weights_only=True). Version 1 files (MAGIC b"QAPPROX-CKPT-1\\n",
the meta as a JSON string inside the payload) still load.

    save_checkpoint(path, state, meta)                 # written to PATH.tmp, fsync'd, renamed over PATH
    state = load_checkpoint(path, size_limit=…)        # state["meta"] is the parsed meta dict

Before anything is allocated, load_checkpoint refuses what is not a regular file, a meta over
META_LIMIT bytes, and a file larger than `max_bytes` or than `size_limit(meta)` (the size the meta's
own configuration implies); it then hashes in chunks. What the contents *mean* is checked by the
caller (dqn.schema): this module only guarantees an intact, pickle-free dict.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qapprox.approximators.limits import check_memory, format_bytes

MAGIC = b"QAPPROX-CKPT-2\n"
MAGIC_V1 = b"QAPPROX-CKPT-1\n"
DIGEST_SIZE = 32
META_LIMIT = 1 << 20  # bytes of JSON meta: far above any config (a few KiB) and the RNG states (~7 KiB)
V1_LIMIT = 1 << 30  # version 1 files carry no meta before their payload: their default size limit
CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: one line naming the path and why (at most MESSAGE_LIMIT characters,
    so a crafted key or value cannot flood the terminal)."""

    MESSAGE_LIMIT = 600

    def __init__(self, message: str) -> None:
        message = " ".join(message.split())
        super().__init__(message if len(message) <= self.MESSAGE_LIMIT else message[: self.MESSAGE_LIMIT - 1] + "…")


def save_checkpoint(path: str | Path, state: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
    """Write `state` (tensors, state dicts, primitives) and `meta` (JSON-able) atomically: a crash or a
    full disk mid-write leaves any previous file at `path` intact and no PATH.tmp behind.

    numpy arrays anywhere in `state` are stored as tensors (load_checkpoint does not turn them back).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta_bytes = json.dumps(meta or {}, allow_nan=False).encode()
    if len(meta_bytes) > META_LIMIT:
        raise ValueError(f"checkpoint meta is {len(meta_bytes)} bytes; at most {META_LIMIT}")
    buffer = io.BytesIO()
    torch.save(_tensors_for_arrays(state), buffer)
    payload = buffer.getbuffer()
    digest = hashlib.sha256(meta_bytes)
    digest.update(payload)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)  # a stale .tmp (or a link planted there) is never written through
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with open(descriptor, "wb") as file:
            file.write(MAGIC + digest.digest() + len(meta_bytes).to_bytes(8, "little") + meta_bytes)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:  # a full or read-only disk: name the file, leave no partial one
        _remove(temporary)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        _remove(temporary)
        raise
    _fsync_directory(path.parent)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", max_bytes: int | None = None,
                    size_limit: Callable[[dict[str, Any]], int] | None = None) -> dict[str, Any]:
    """The state saved at `path`, with state["meta"] the parsed meta dict.

    CheckpointError (one line, naming the path) if it is not a regular file, not ours, larger than
    `max_bytes` or `size_limit(meta)` (which may itself raise CheckpointError for a bad meta) or than
    memory can hold, unreadable, corrupt, compressed, or holds objects that could run code or tensors
    that are not plain CPU arrays. FileNotFoundError if it does not exist.
    """
    path = Path(path)
    _check_file(path, os.stat)  # before opening: opening a device or a FIFO can itself do something
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in must not block
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be opened: {exc.strerror}") from None
    try:
        size = _check_file(path, lambda _: os.fstat(descriptor)).st_size  # the file actually opened
    except CheckpointError:
        os.close(descriptor)
        raise
    with open(descriptor, "rb") as file:
        try:
            return _read(path, file, size, map_location, max_bytes, size_limit)
        except OSError as exc:  # EIO and the like while reading: the file, not the disk we write to
            raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from None


def _check_file(path: Path, stat_function) -> os.stat_result:
    try:
        info = stat_function(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"{path} is a directory, not a qapprox checkpoint")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path} is not a regular file (a device, FIFO or socket); refused")
    return info


def _read(path: Path, file, size: int, map_location, max_bytes: int | None,
          size_limit: Callable[[dict[str, Any]], int] | None) -> dict[str, Any]:
    _check_size(path, size, max_bytes, "--max-checkpoint-bytes")
    magic = file.read(len(MAGIC))
    if magic == MAGIC_V1:
        return _load_v1(path, file, size, map_location, max_bytes)
    if magic != MAGIC:
        raise CheckpointError(f"{path} is not a qapprox checkpoint (no {MAGIC[:-1].decode()} header)")
    digest, length = file.read(DIGEST_SIZE), int.from_bytes(file.read(8), "little")
    header = len(MAGIC) + DIGEST_SIZE + 8
    if len(digest) != DIGEST_SIZE or length > size - header:
        raise CheckpointError(f"{path} is truncated or corrupt (header)")
    if length > META_LIMIT:
        raise CheckpointError(f"{path} has {length} bytes of meta; at most {META_LIMIT} are read")
    meta_bytes = file.read(length)
    meta = _parse_meta(path, meta_bytes)
    if max_bytes is None and size_limit is not None:
        _check_size(path, size, size_limit(meta), "the size its config implies")
    _check_fits(path, size)
    hasher = hashlib.sha256(meta_bytes)
    payload = _read_hashed(file, size - header - length, hasher)
    if hasher.digest() != digest:
        raise CheckpointError(f"{path} is truncated or corrupt (checksum mismatch)")
    state = _unpickle(path, payload, map_location)
    state["meta"] = meta
    return state


def _check_fits(path: Path, size: int) -> None:
    """Reading holds the payload about three times (the bytes, the unpickler's buffer, the tensors)."""
    try:
        check_memory(f"checkpoint {path} ({format_bytes(size)})", 3 * size)
    except ValueError as exc:
        raise CheckpointError(f"{exc}; refused before reading") from None


def _load_v1(path: Path, file, size: int, map_location, max_bytes: int | None) -> dict[str, Any]:
    """MAGIC_V1 | sha256(payload) | payload, the meta a JSON string in the payload."""
    if max_bytes is None:
        _check_size(path, size, V1_LIMIT, "the limit for version-1 checkpoints (--max-checkpoint-bytes)")
    _check_fits(path, size)
    digest = file.read(DIGEST_SIZE)
    hasher = hashlib.sha256()
    payload = _read_hashed(file, max(size - len(MAGIC_V1) - DIGEST_SIZE, 0), hasher)
    if len(digest) != DIGEST_SIZE or hasher.digest() != digest:
        raise CheckpointError(f"{path} is truncated or corrupt (checksum mismatch)")
    state = _unpickle(path, payload, map_location)
    meta = state.get("meta")
    state["meta"] = _parse_meta(path, meta.encode() if isinstance(meta, str) else b"")
    return state


def _check_size(path: Path, size: int, limit: int | None, what: str) -> None:
    if limit is not None and size > limit:
        raise CheckpointError(f"{path} is {format_bytes(size)}, larger than {what} ({format_bytes(limit)}); "
                              "refused before reading")


def _read_hashed(file, length: int, hasher) -> bytearray:
    """`length` bytes read in chunks into one buffer, each chunk hashed as it arrives."""
    payload = bytearray()
    while len(payload) < length:
        chunk = file.read(min(CHUNK, length - len(payload)))
        if not chunk:
            break
        hasher.update(chunk)
        payload += chunk
    return payload


def _parse_meta(path: Path, data: bytes) -> dict[str, Any]:
    def refuse_constant(name: str):
        raise ValueError(f"{name} is not a JSON number")

    try:
        meta = json.loads(data.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} has no valid qapprox metadata ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has no valid qapprox metadata (a JSON {type(meta).__name__}, not an object)")
    return meta


def _unpickle(path: Path, payload: bytearray, map_location) -> dict[str, Any]:
    _check_archive(path, payload)
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the zip/unpickler on bad bytes is refused
        text = str(exc)
        if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in text:  # a callable named
            raise CheckpointError(f"{path} contains objects that could run code; refused") from None
        message = ("not a weights-only torch payload" if isinstance(exc, pickle.UnpicklingError)
                   else f"{type(exc).__name__}: {(text.splitlines() or [''])[0][:160]}")
        raise CheckpointError(f"{path} is truncated or corrupt ({message})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint dictionary")
    _check_plain_tensors(path, state)
    return state


def _check_archive(path: Path, payload: bytearray) -> None:
    """torch.save writes an uncompressed zip: a compressed entry (which could inflate to far more memory
    than the file's size, a zip bomb) or entries larger in total than the payload are refused."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, OSError):
        raise CheckpointError(f"{path} is truncated or corrupt (the payload is not a torch zip archive)") from None
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries):
        raise CheckpointError(f"{path} has compressed entries in its payload (torch.save stores them plain); refused")
    if sum(entry.file_size for entry in entries) > len(payload):
        raise CheckpointError(f"{path} declares more bytes in its payload than it holds; refused")


def _check_plain_tensors(path: Path, value: Any, where: str = "payload", depth: int = 0) -> None:
    """Every tensor anywhere in the state is a dense (strided) CPU tensor of an ordinary dtype."""
    if depth > 16:
        raise CheckpointError(f"{path}: {where} is nested more than 16 levels deep")
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.device.type != "cpu" or value.is_quantized:
            raise CheckpointError(f"{path}: {where} is a {value.layout} tensor on {value.device}; only dense CPU "
                                  "tensors are read")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_plain_tensors(path, item, f"{where}.{key}" if depth else str(key), depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain_tensors(path, item, f"{where}[{index}]", depth + 1)


def _tensors_for_arrays(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {key: _tensors_for_arrays(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tensors_for_arrays(item) for item in value)
    return value


def _remove(path: Path) -> None:
    """Delete `path` if it exists and can be deleted (on a read-only disk it cannot, and was not written)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


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
