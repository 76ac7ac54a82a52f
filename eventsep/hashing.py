"""Content keys (64 hex chars, usable as cache keys and file names) of recordings, files, parameters and stages."""

from __future__ import annotations

import enum
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
from pydantic import BaseModel

_READ_BLOCK = 1 << 20
# (absolute path, size, mtime_ns) -> sha256; lets a multi-GB weight file be hashed once per process.
_file_hashes: dict[tuple[str, int, int], str] = {}
_file_hashes_lock = threading.Lock()


def _jsonable(value: Any) -> Any:
    """Fallback for json.dumps: the few non-JSON types parameters hold; anything else is an error,
    because str() of an arbitrary object (e.g. with a memory address) would make keys that never repeat."""
    if isinstance(value, BaseModel):
        return {"__model__": type(value).__name__, **value.model_dump(mode="json")}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=canonical_json)
    raise TypeError(f"cannot make a cache key from a {type(value).__name__}: {value!r:.80}")


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces; a pydantic model is its JSON dump plus its class name."""
    return json.dumps(_jsonable(value) if isinstance(value, BaseModel) else value, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recording_key(samples: np.ndarray, sample_rate: int) -> str:
    """Hash of the samples as float32 little-endian and of the rate: a lossless re-encode keeps the key,
    one changed sample or another rate changes it."""
    data = np.ascontiguousarray(samples, dtype="<f4")
    digest = hashlib.sha256(f"float32le;{data.shape};{int(sample_rate)};".encode())
    digest.update(memoryview(data).cast("B"))
    return digest.hexdigest()


def _read_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_READ_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Streamed sha256 of a file, remembered by (absolute path, size, mtime) so an unchanged file is read
    once per process; a file whose size or modification time changed is read again."""
    path = os.path.abspath(path)
    stat = os.stat(path)
    identity = (path, stat.st_size, stat.st_mtime_ns)
    with _file_hashes_lock:
        known = _file_hashes.get(identity)
    if known is not None:
        return known
    digest = _read_sha256(path)
    with _file_hashes_lock:
        _file_hashes[identity] = digest
    return digest


def params_key(params: BaseModel | Mapping | None) -> str:
    """Hash of the canonical JSON of a parameter model (with its class name); field order does not matter."""
    return _sha256_text(canonical_json(params))


def stage_key(stage: str, version: str | int, params: BaseModel | Mapping | None = None,
              inputs: Mapping[str, str] | None = None, weights: Mapping[str, str] | None = None) -> str:
    """The cache key of a stage's output: which stage and version, its parameters, the keys of its inputs
    and the hashes of the model weights it uses (inputs and weights are name -> key maps)."""
    for kind, mapping in (("inputs", inputs), ("weights", weights)):
        for name, key in (mapping or {}).items():
            if not isinstance(name, str) or not isinstance(key, str):
                raise TypeError(f"stage {stage!r} {kind} must map names to key strings, got {name!r}: {key!r:.80}")
    return _sha256_text(canonical_json({
        "stage": stage, "version": str(version), "params": params_key(params),
        "inputs": dict(sorted((inputs or {}).items())), "weights": dict(sorted((weights or {}).items()))}))
