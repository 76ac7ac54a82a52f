"""The result store: stage outputs as safetensors files named by their stage key, on any fsspec location.

Arrays go in as tensors and metadata as JSON in the safetensors header, so reading a result never
unpickles code. Local writes are atomic (temporary file, then rename); a truncated or damaged file
is detected on read and treated as missing. The Prefect tasks write the very same files, so a
notebook can read what a deployment computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from . import atomic

FORMAT = "eventsep-result/1"


class CorruptResult(ValueError):
    """A stored result is truncated, damaged or not an EventSep result."""


@dataclass
class StageResult:
    """What one stage produced: named arrays plus JSON-able metadata, under its stage key."""

    stage: str
    key: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def encode(result: StageResult) -> bytes:
    arrays = {name: np.ascontiguousarray(a) for name, a in result.arrays.items()}
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(arrays[name].tobytes())
    header = {"format": FORMAT, "stage": result.stage, "key": result.key,
              "meta": result.meta, "sha256": digest.hexdigest()}
    return save_tensors(arrays, metadata={"eventsep": json.dumps(header, sort_keys=True)})


def expected_size(head: bytes) -> int:
    """Total file size a safetensors file declares in its header (needs the first 8 + N bytes)."""
    if len(head) < 8:
        raise CorruptResult("shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > 100_000_000 or len(head) < 8 + header_len:
        raise CorruptResult("safetensors header cut off")
    try:
        header = json.loads(head[8:8 + header_len])
    except ValueError as error:
        raise CorruptResult(f"unreadable safetensors header ({error})") from None
    ends = [t["data_offsets"][1] for name, t in header.items() if name != "__metadata__"]
    return 8 + header_len + max(ends, default=0)


def decode(blob: bytes, expected_key: str | None = None) -> StageResult:
    try:
        if len(blob) != expected_size(blob):
            raise CorruptResult(f"size {len(blob)} differs from the declared size")
        arrays = load_tensors(blob)
        header = json.loads(_metadata_of(blob)["eventsep"])
    except CorruptResult:
        raise
    except Exception as error:  # safetensors raises its own error types
        raise CorruptResult(f"not a readable EventSep result ({error})") from None
    if header.get("format") != FORMAT:
        raise CorruptResult(f"unknown format {header.get('format')!r}")
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(arrays[name].tobytes())
    if digest.hexdigest() != header["sha256"]:
        raise CorruptResult("checksum mismatch")
    if expected_key is not None and header["key"] != expected_key:
        raise CorruptResult(f"holds key {header['key']} instead of {expected_key}")
    return StageResult(header["stage"], header["key"], dict(arrays), header["meta"])


def _metadata_of(blob: bytes) -> dict[str, str]:
    (header_len,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + header_len]).get("__metadata__") or {}


class ResultStore:
    """Stage results as files `<root>/<key>` on a local folder or any fsspec URL (s3://, gs://, memory://)."""

    def __init__(self, root: str | os.PathLike):
        self.root = str(root).rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                   else (self.fs.protocol,))

    def __repr__(self) -> str:
        return f"ResultStore({self.root!r})"

    def path(self, key: str) -> str:
        return f"{self._base}/{key}"

    def write_bytes(self, name: str, blob: bytes) -> None:
        """Write atomically: readers see the old file or the whole new one, never a part."""
        path = self.path(name)
        if self.is_local:
            atomic.write_bytes(path, blob)
        else:
            # Object stores (S3, GCS) publish an upload only once it is complete.
            self.fs.pipe_file(path, blob)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(self.path(name))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def delete(self, name: str) -> None:
        try:
            self.fs.rm_file(self.path(name))
        except FileNotFoundError:
            pass

    def is_complete(self, key: str) -> bool:
        """True when the result file exists and has the size its header declares (cheap check)."""
        path = self.path(key)
        try:
            size = self.fs.size(path)
            with self.fs.open(path, "rb") as handle:
                head = handle.read(8)
                if len(head) == 8:
                    head += handle.read(min(struct.unpack("<Q", head)[0], 100_000_000))
            return size == expected_size(head)
        except (FileNotFoundError, CorruptResult, struct.error):
            return False

    def save(self, result: StageResult) -> None:
        self.write_bytes(result.key, encode(result))

    def load(self, key: str) -> StageResult | None:
        """The stored result, or None when it is missing; a damaged file is removed and reported missing."""
        blob = self.read_bytes(key)
        if blob is None:
            return None
        try:
            return decode(blob, expected_key=key)
        except CorruptResult:
            self.delete(key)
            return None

    def keys(self) -> list[str]:
        try:
            entries = self.fs.ls(self._base, detail=False)
        except FileNotFoundError:
            return []
        names = [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]
        return sorted(n for n in names if len(n) == 64 and all(c in "0123456789abcdef" for c in n))

    def info(self, key: str) -> dict[str, Any]:
        """Stage, size and metadata of one stored result (reads the header only)."""
        path = self.path(key)
        with self.fs.open(path, "rb") as handle:
            head = handle.read(8)
            head += handle.read(struct.unpack("<Q", head)[0])
        header = json.loads(_metadata_of(head)["eventsep"])
        return {"key": key, "stage": header["stage"], "bytes": self.fs.size(path),
                "meta": header["meta"]}

    def clear(self, stage: str | None = None) -> int:
        removed = 0
        for key in self.keys():
            if stage is not None:
                try:
                    if self.info(key)["stage"] != stage:
                        continue
                except Exception:
                    pass
            self.delete(key)
            removed += 1
        return removed
