"""Content keys: of recordings (decoded samples), weight files (sha256), parameters (canonical JSON) and stages."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel

_file_hashes: dict[tuple[str, int, int], str] = {}
_file_hashes_lock = threading.Lock()


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces; pydantic models as their JSON dump plus class name."""
    if isinstance(value, BaseModel):
        value = {"__model__": type(value).__name__, **value.model_dump(mode="json")}
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recording_key(samples: np.ndarray, sample_rate: int) -> str:
    """Hash of the decoded samples and their rate: a lossless re-encode keeps it, one changed sample changes it."""
    data = np.ascontiguousarray(samples, dtype="<f4")
    digest = hashlib.sha256(f"float32le;{data.shape};{int(sample_rate)};".encode())
    digest.update(data.tobytes())
    return digest.hexdigest()


def _read_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so an unchanged weight file is read once."""
    path = os.path.abspath(path)
    stat = os.stat(path)
    identity = (path, stat.st_size, stat.st_mtime_ns)
    with _file_hashes_lock:
        if identity in _file_hashes:
            return _file_hashes[identity]
    digest = _read_sha256(path)
    with _file_hashes_lock:
        _file_hashes[identity] = digest
    return digest


def params_key(params: BaseModel | Mapping | None) -> str:
    return _sha256(canonical_json(params))


def stage_key(stage: str, version: str | int, params: BaseModel | Mapping | None = None,
              inputs: Mapping[str, str] | None = None, weights: Mapping[str, str] | None = None) -> str:
    """The cache key of a stage's output: what computes it, with which settings, from what, with which weights."""
    return _sha256(canonical_json({
        "stage": stage, "version": str(version), "params": params_key(params),
        "inputs": dict(sorted((inputs or {}).items())), "weights": dict(sorted((weights or {}).items()))}))
