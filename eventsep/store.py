"""The result store: stage outputs as safetensors files named by their stage key, on any fsspec location.

Arrays go in as tensors and metadata as JSON in the safetensors header, so reading a result never
unpickles code. One sha256 covers the stage, the key, the metadata text and every array (name,
dtype, shape, bytes). Local writes are atomic (temporary file, then rename); a truncated or damaged
file is detected on read, deleted, named in one warning line and treated as missing, so the stage
is recomputed. Files of an older format are recomputed without a warning. The Prefect tasks write
the very same files, so a notebook can read what a deployment computed. A local store may have a size
limit (`EVENTSEP_CACHE_MAX`): after each write the least recently used results are deleted until it fits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors
from safetensors.numpy import save_file

from . import atomic

# /2: the checksum covers the metadata too (/1 files are recomputed as stale, not reported as damaged).
FORMAT = "eventsep-result/2"

log = logging.getLogger("eventsep.store")


class CorruptResult(ValueError):
    """A stored result is truncated, damaged or not an EventSep result."""


class StaleResult(CorruptResult):
    """A stored result written by an older EventSep in a format this one no longer reads."""


@dataclass
class StageResult:
    """What one stage produced: named arrays plus JSON-able metadata, under its stage key."""

    stage: str
    key: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def checksum(stage: str, key: str, meta_text: str, arrays: dict[str, np.ndarray]) -> str:
    """sha256 over everything a result holds: its identity, its metadata as stored, and each array."""
    digest = hashlib.sha256(json.dumps([FORMAT, stage, key, meta_text]).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _contents(result: StageResult) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and the safetensors metadata of a result's file."""
    arrays = {name: np.ascontiguousarray(a) for name, a in result.arrays.items()}
    # the metadata is kept as the very text that was hashed, so reading it back cannot change a byte
    meta_text = json.dumps(result.meta, sort_keys=True)
    header = {"format": FORMAT, "stage": result.stage, "key": result.key, "meta": meta_text,
              "sha256": checksum(result.stage, result.key, meta_text, arrays)}
    return arrays, {"eventsep": json.dumps(header, sort_keys=True)}


def encode(result: StageResult) -> bytes:
    arrays, metadata = _contents(result)
    return save_tensors(arrays, metadata=metadata)


def encode_to(result: StageResult, path: str | os.PathLike) -> None:
    """The bytes of `encode(result)` written to `path` straight from the arrays' memory: no whole-file copy
    in memory (an hour's stage output is 461 MB of float32)."""
    arrays, metadata = _contents(result)
    save_file(arrays, path, metadata=metadata)


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
    if not isinstance(header, dict):
        raise CorruptResult("no EventSep header")
    if str(header.get("format", "")).startswith("eventsep-result/") and header["format"] != FORMAT:
        raise StaleResult(f"older format {header['format']!r}")
    if header.get("format") != FORMAT:
        raise CorruptResult(f"unknown format {header.get('format')!r}")
    try:
        stage, key, meta_text, expected = header["stage"], header["key"], header["meta"], header["sha256"]
        if checksum(stage, key, meta_text, arrays) != expected:
            raise CorruptResult("checksum mismatch")
        meta = json.loads(meta_text)
    except CorruptResult:
        raise
    except Exception as error:  # a header field missing or of the wrong type
        raise CorruptResult(f"damaged EventSep header ({type(error).__name__}: {error})") from None
    if expected_key is not None and key != expected_key:
        raise CorruptResult(f"holds key {key} instead of {expected_key}")
    return StageResult(stage, key, dict(arrays), meta)


def _metadata_of(blob: bytes) -> dict[str, str]:
    (header_len,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + header_len]).get("__metadata__") or {}


class ResultStore:
    """Stage results as files `<root>/<key>` on a local folder or any fsspec URL (s3://, gs://, memory://)."""

    def __init__(self, root: str | os.PathLike, max_bytes: int | None = None):
        """`max_bytes`: keep a local store under this size, evicting least recently used results after
        each write (None: no limit; remote stores are never evicted, their own lifecycle rules do that)."""
        self.root = str(root).rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                   else (self.fs.protocol,))
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"ResultStore({self.root!r})"

    def path(self, key: str) -> str:
        return f"{self._base}/{key}"

    def write_bytes(self, name: str, blob: bytes) -> None:
        """Write atomically: readers see the old file or the whole new one, never a part."""
        path = self.path(name)
        if self.is_local:
            atomic.write_bytes(path, blob)
            if self.max_bytes is not None:
                self.evict(keep=name)
        else:
            # Object stores (S3, GCS) publish an upload only once it is complete.
            self.fs.pipe_file(path, blob)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            blob = self.fs.cat_file(self.path(name))
        except (FileNotFoundError, IsADirectoryError):
            return None
        if self.is_local and self.max_bytes is not None:
            # mark it used now: eviction goes by mtime, as atime is often not kept (noatime, relatime)
            try:
                os.utime(self.path(name))
            except OSError:
                pass
        return blob

    def evict(self, keep: str | None = None) -> list[str]:
        """Delete least recently used results (oldest mtime: written or read longest ago) until the local
        store is within `max_bytes`; never `keep`, the file just written. Returns the deleted keys.

        Deleting is one unlink of a whole file: a process already reading it keeps its open copy, and one
        that comes later finds it missing and recomputes it."""
        if not self.is_local or self.max_bytes is None:
            return []
        entries = []
        for key in self.keys():
            try:
                stat = os.stat(self.path(key))
            except FileNotFoundError:  # another process evicted it
                continue
            entries.append((stat.st_mtime_ns, key, stat.st_size))
        total = sum(size for _, _, size in entries)
        deleted = []
        for _, key, size in sorted(entries):
            if total <= self.max_bytes:
                break
            if key == keep:
                continue
            self.delete(key)
            total -= size
            deleted.append(key)
        if deleted:
            log.info("eventsep: cache over %d bytes: evicted %d least recently used results",
                     self.max_bytes, len(deleted))
        return deleted

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
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, CorruptResult, struct.error):
            return False  # a folder where the file should be is no result either

    def save(self, result: StageResult) -> None:
        if not self.is_local:
            self.write_bytes(result.key, encode(result))
            return
        # written under a temporary name and renamed in, as write_bytes does, without the bytes in memory
        with atomic.atomic_file(self.path(result.key)) as temporary:
            encode_to(result, temporary)
        if self.max_bytes is not None:
            self.evict(keep=result.key)

    def load(self, key: str) -> StageResult | None:
        """The stored result, or None when it is missing. A file that fails its checks is deleted and
        reported missing, so the caller recomputes it; a damaged one (not merely an older format) is
        named in one warning line."""
        blob = self.read_bytes(key)
        if blob is None:
            return None
        try:
            return decode(blob, expected_key=key)
        except CorruptResult as error:
            self.delete(key)
            if not isinstance(error, StaleResult):
                log.warning("eventsep: warning: result file %s (key %s) is damaged (%s); deleted, it will be "
                            "recomputed", self.path(key), key, error)
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
        meta = header["meta"]
        return {"key": key, "stage": header["stage"], "bytes": self.fs.size(path),
                "meta": json.loads(meta) if isinstance(meta, str) else meta}

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
