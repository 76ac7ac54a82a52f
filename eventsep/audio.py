"""Audio in and out: read wav/flac/ogg/mp3 at any rate as mono float32, resample with soxr, write atomically.

Every problem with an input file is raised as one `AudioError` whose message is one line naming
the file and the problem, so a batch can report it and go on.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import soundfile
import soxr

from .hashing import recording_key

MIN_SECONDS = 0.1
WRITABLE = {".wav": "FLOAT", ".flac": "PCM_16"}


class AudioError(ValueError):
    """Bad audio input; `str(error)` is "<file>: <problem>"."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 samples at `sample_rate`; `key` identifies the content (see hashing.recording_key)."""

    samples: np.ndarray
    sample_rate: int
    source: str | None = None
    key_override: str | None = field(default=None, repr=False)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @cached_property
    def key(self) -> str:
        return self.key_override or recording_key(self.samples, self.sample_rate)


def _validate(samples: np.ndarray, sample_rate: int, name: str, min_seconds: float) -> np.ndarray:
    if samples.size == 0:
        raise AudioError(name, "empty (no samples)")
    if not np.all(np.isfinite(samples)):
        raise AudioError(name, "contains NaN or Inf samples")
    if len(samples) < min_seconds * sample_rate:
        raise AudioError(name, f"shorter than {min_seconds:g} s ({len(samples) / sample_rate:.3f} s)")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _mono(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def audio_from_array(samples, sample_rate: int, name: str = "<array>", *,
                     min_seconds: float = MIN_SECONDS) -> Audio:
    """Validate in-memory audio: (n,), (n, channels), or (channels, n) with at most 8 channels."""
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim == 2 and array.shape[0] <= 8 < array.shape[1]:
        array = array.T
    if array.ndim not in (1, 2):
        raise AudioError(name, f"expected (samples,) or (samples, channels), got shape {array.shape}")
    if int(sample_rate) <= 0:
        raise AudioError(name, f"sample rate must be positive, got {sample_rate}")
    return Audio(_validate(_mono(array), int(sample_rate), name, min_seconds), int(sample_rate), name)


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, *,
               min_seconds: float = MIN_SECONDS) -> Audio:
    """Read a file as mono float32 (mean of channels), optionally resampled to `sample_rate`."""
    name = str(path)
    target = Path(path)
    if not target.exists():
        raise AudioError(name, "no such file")
    if target.is_dir():
        raise AudioError(name, "is a directory, not an audio file")
    if target.stat().st_size == 0:
        raise AudioError(name, "empty file")
    try:
        samples, rate = soundfile.read(target, dtype="float32", always_2d=True)
    except PermissionError:
        raise AudioError(name, "cannot be read (permission denied)") from None
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "format" in detail.lower() or "unknown" in detail.lower() or "recognised" in detail.lower():
            raise AudioError(name, "not an audio file (unrecognised format)") from None
        raise AudioError(name, f"cannot be decoded ({detail})") from None
    samples = _validate(_mono(samples), rate, name, min_seconds)
    if sample_rate is not None and sample_rate != rate:
        samples, rate = resample(samples, rate, sample_rate), sample_rate
    return Audio(samples, int(rate), name)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); the same array back when the rates are equal."""
    if int(from_rate) == int(to_rate):
        return samples
    return soxr.resample(np.asarray(samples, dtype=np.float32), int(from_rate), int(to_rate), "HQ").astype(
        np.float32, copy=False)


def write_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int,
                subtype: str | None = None) -> Path:
    """Write .wav (float by default) or .flac (16-bit) atomically: a temporary file, then a rename."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE:
        raise AudioError(path, f"cannot write {suffix or 'files without a suffix'}; use .wav or .flac")
    subtype = subtype or WRITABLE[suffix]
    data = np.asarray(samples, dtype=np.float32)
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        data = np.clip(data, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.partial{suffix}")
    try:
        soundfile.write(temporary, data, int(sample_rate), subtype=subtype, format=suffix[1:].upper())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
