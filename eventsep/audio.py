"""Audio in and out: read wav/flac/ogg/mp3 at any rate as mono float32 (keeping the channels of a
multichannel input beside it), resample with soxr, write atomically.

Every problem with an input is raised as one `AudioError` whose message is one line, "<file>: <problem>",
so a batch can report it and go on.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile
import soxr

from .hashing import recording_key
from .atomic import atomic_file

MIN_SECONDS = 0.1
MAX_ARRAY_CHANNELS = 8
# Default subtype per writable suffix: float wav keeps everything; 16-bit flac is the compact lossless copy.
WRITABLE = {".wav": "FLOAT", ".flac": "PCM_16", ".ogg": "VORBIS"}  # .ogg: small files for HTML reports
# Integer PCM subtypes and their bits. write_audio quantises these itself (round to nearest), because
# libsndfile's own float->int conversion differs between formats (wav and flac disagree by one step).
_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
# libsndfile's SF_ERR_UNRECOGNISED_FORMAT: the bytes are not any audio format it knows.
_UNRECOGNISED_FORMAT = 1


class AudioError(ValueError):
    """Bad audio input; `str(error)` is "<file>: <problem>" on one line."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 samples at `sample_rate` Hz; `key` identifies the content (hashing.recording_key).

    `key_override` lets a derived recording (e.g. the mixture gated by a mask) carry the key of the
    computation that made it instead of a hash of its samples. `channels`, for a multichannel input,
    holds its channels (n, c) beside the mono mix: the stages see the mix, the outputs get c channels.
    """

    samples: np.ndarray
    sample_rate: int
    source: str | None = None
    key_override: str | None = field(default=None, repr=False)
    channels: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        name = self.source or "<array>"
        samples = np.ascontiguousarray(self.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise AudioError(name, f"Audio needs mono samples of shape (n,), got shape {samples.shape}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", _checked_rate(self.sample_rate, name))
        if self.channels is not None:
            channels = np.ascontiguousarray(self.channels, dtype=np.float32)
            if channels.ndim != 2 or channels.shape[0] != len(samples):
                raise AudioError(name, f"channels must have shape ({len(samples)}, c), got {channels.shape}")
            object.__setattr__(self, "channels", channels if channels.shape[1] > 1 else None)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    @cached_property
    def key(self) -> str:
        return self.key_override or recording_key(self.samples, self.sample_rate)


class RawSamples:
    """float32 samples ((n,) or (n, channels)) stored raw in a file and read a stretch at a time with ordinary
    reads, never memory-mapped: a mapped hour would enter the process's memory whole, since the kernel maps the
    file's cached pages around every one touched. For pictures of long recordings (`report.spectrogram_db`)."""

    dtype = np.dtype(np.float32)

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...]):
        self.path, self.shape = Path(path), tuple(int(size) for size in shape)
        self.ndim = len(self.shape)
        self._row = int(np.prod(self.shape[1:], dtype=np.int64)) if self.ndim > 1 else 1

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) (clipped to the recording)."""
        start, stop = max(0, start), min(len(self), stop)
        count = max(0, stop - start) * self._row
        data = np.fromfile(self.path, np.float32, count=count, offset=start * self._row * 4)
        return data.reshape((-1, *self.shape[1:]))

    def frames(self, size: int, hop: int) -> np.ndarray:
        """The frames of `size` samples every `hop` samples that fit in the recording, as (frames, size) or
        (frames, channels, size), as `sliding_window_view(samples, size, axis=0)[::hop]` gives them."""
        count = (len(self) - size) // hop + 1 if len(self) >= size else 0
        out = np.empty((count, *self.shape[1:], size), np.float32)
        with open(self.path, "rb") as handle:
            for index in range(count):
                handle.seek(index * hop * self._row * 4)
                frame = np.fromfile(handle, np.float32, count=size * self._row).reshape((size, *self.shape[1:]))
                out[index] = np.moveaxis(frame, 0, -1)
        return out


def _checked_rate(sample_rate, name: str) -> int:
    try:
        rate = int(sample_rate)
        integral = rate == sample_rate
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral or isinstance(sample_rate, bool) or rate <= 0:
        raise AudioError(name, f"sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    return rate


def _validated_mono(samples: np.ndarray, sample_rate: int, name: str, min_seconds: float) -> np.ndarray:
    """(n,) or (n, channels) float samples → checked mono float32; channels are averaged."""
    if samples.size == 0:  # before the mix-down: a (0, c) or (c, 0) array has no column to take
        raise AudioError(name, "empty (no samples)")
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float64) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(samples).all():
        raise AudioError(name, "contains NaN or Inf samples")
    if len(samples) < min_seconds * sample_rate:
        raise AudioError(name, f"shorter than {min_seconds:g} s ({len(samples) / sample_rate:.3g} s)")
    return np.ascontiguousarray(samples, dtype=np.float32)


def audio_from_array(samples, sample_rate: int, name: str = "<array>", *,
                     min_seconds: float = MIN_SECONDS) -> Audio:
    """Validate in-memory audio and mix it down to mono, with the same checks as `load_audio`.

    Shapes: (n,); (n, channels); or (channels, n) when it has at most 8 rows and more columns than
    rows. Floats are taken as they are (full scale ±1); signed integer arrays (e.g. int16 PCM) are
    scaled by their full scale, 2**(bits-1).
    """
    rate = _checked_rate(sample_rate, name)
    try:
        array = np.asarray(samples)
    except (TypeError, ValueError) as error:
        raise AudioError(name, f"not an array of samples ({error})") from None
    if array.dtype.kind == "i":
        array = array.astype(np.float64) / float(2 ** (8 * array.dtype.itemsize - 1))
    elif array.dtype.kind not in "f":
        raise AudioError(name, f"samples must be floats or signed integers, got dtype {array.dtype}")
    if array.ndim == 2 and array.shape[0] <= MAX_ARRAY_CHANNELS and array.shape[1] > array.shape[0]:
        array = array.T
    if array.ndim not in (1, 2):
        raise AudioError(name, f"expected shape (n,), (n, channels) or (channels, n), got {array.shape}")
    return Audio(_validated_mono(array, rate, name, min_seconds), rate, name, channels=_kept_channels(array))


def _kept_channels(samples: np.ndarray) -> np.ndarray | None:
    """The channels of a multichannel (n, c) input as float32, None for mono."""
    return samples.astype(np.float32, copy=False) if samples.ndim == 2 and samples.shape[1] > 1 else None


@contextmanager
def _decoding(name: str) -> Iterator[None]:
    """Every failure to read or decode `name` as one AudioError line."""
    try:
        yield
    except PermissionError:
        raise AudioError(name, "cannot be read (permission denied)") from None
    except soundfile.LibsndfileError as error:
        if error.code == _UNRECOGNISED_FORMAT:
            raise AudioError(name, "not an audio file (format not recognised)") from None
        raise AudioError(name, f"cannot be decoded ({error.error_string.rstrip('.')})") from None
    except (OSError, RuntimeError, ValueError, TypeError) as error:
        raise AudioError(name, f"cannot be decoded ({error})") from None


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, *,
               min_seconds: float = MIN_SECONDS) -> Audio:
    """Read wav/flac/ogg/mp3 (anything libsndfile reads) as mono float32 (the mean of the channels; a
    multichannel file also keeps its channels in `Audio.channels`).

    With `sample_rate`, the result is resampled to it (soxr, high quality); the length check uses the
    file's own rate. Every problem raises `AudioError` "<path>: <problem>".
    """
    name = str(path)
    target = Path(path)
    if sample_rate is not None:
        sample_rate = _checked_rate(sample_rate, name)
    if not target.exists():
        raise AudioError(name, "no such file")
    if target.is_dir():
        raise AudioError(name, "is a directory")
    if target.stat().st_size == 0:
        raise AudioError(name, "empty")
    with _decoding(name):
        with open(target, "rb"):
            pass  # a readable file; libsndfile then opens it by path (some mp3 files with long
            # ID3 tags are recognised by path but not from a Python file object)
        samples, rate = soundfile.read(str(target), dtype="float32", always_2d=True)
    channels = _kept_channels(samples)
    samples = _validated_mono(samples, int(rate), name, min_seconds)
    if sample_rate is not None and sample_rate != rate:
        channels = None if channels is None else resample(channels, rate, sample_rate)
        samples, rate = resample(samples, rate, sample_rate), sample_rate
    return Audio(samples, int(rate), name, channels=channels)


def check_whole(path: str | os.PathLike) -> None:
    """Raise AudioError unless the file decodes to its last frame: a file still being written (a FLAC cut
    short, a WAV whose RIFF header promises more bytes than are there) is not whole."""
    name = str(path)
    size = os.path.getsize(path)
    if size == 0:
        raise AudioError(name, "empty")
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        declared = int.from_bytes(head[4:8], "little") + 8
        if declared not in (8, 0xFFFFFFFF + 8) and declared > size:  # 0 / -1: a streaming writer's header
            raise AudioError(name, f"truncated (the header promises {declared} bytes, the file has {size})")
    with _decoding(name), soundfile.SoundFile(name) as audio:
        frames = sum(len(block) for block in audio.blocks(65536, dtype="float32"))
        declared_frames = audio.frames
    if declared_frames > 0 and frames < declared_frames:
        raise AudioError(name, f"truncated (decoded {frames} of {declared_frames} frames)")


ENERGY_BLOCK = 1 << 20


def energy(samples: np.ndarray) -> float:
    """Sum of squares in float64, a block at a time (a whole float64 square of an hour at 32 kHz is 922 MB)."""
    flat = np.asarray(samples).reshape(-1)
    total = 0.0
    for start in range(0, len(flat), ENERGY_BLOCK):
        block = flat[start:start + ENERGY_BLOCK].astype(np.float64)
        total += float(np.dot(block, block))
    return total


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr "HQ") of (n,) or (n, channels); the same array when the rates are equal.

    The output has round(n * to_rate / from_rate) samples.
    """
    from_rate, to_rate = _checked_rate(from_rate, "resample"), _checked_rate(to_rate, "resample")
    if from_rate == to_rate:
        return samples
    data = np.ascontiguousarray(samples, dtype=np.float32)
    return soxr.resample(data, from_rate, to_rate, "HQ").astype(np.float32, copy=False)


def _quantised(samples: np.ndarray, bits: int) -> np.ndarray:
    """Round to the nearest `bits`-bit step (full scale 2**(bits-1), clipped), left-aligned in int32,
    which libsndfile stores exactly in any integer PCM subtype of that width."""
    full_scale = 2.0 ** (bits - 1)
    steps = np.clip(np.rint(samples.astype(np.float64) * full_scale), -full_scale, full_scale - 1)
    return (steps.astype(np.int64) << (32 - bits)).astype(np.int32)


_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # sndfile.h
WRITE_BLOCK = 1 << 18  # frames per block written


def _without_peak_chunk(out: soundfile.SoundFile) -> None:
    """libsndfile adds a PEAK chunk holding the time of writing to float WAV files: without it the same
    samples always give the same bytes (a batch on Dask workers and one run here compare byte for byte)."""
    soundfile._snd.sf_command(out._file, _SFC_SET_ADD_PEAK_CHUNK, soundfile._ffi.NULL, 0)


def write_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int,
                subtype: str | None = None) -> Path:
    """Write (n,) or (n, channels) samples to .wav (FLOAT by default), .flac (PCM_16) or .ogg (Vorbis).

    Parent folders are created. The file is written under a temporary name in the same folder and
    renamed over `path`, so a crash never leaves a half-written output. Integer subtypes clip to [-1, 1].
    """
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim not in (1, 2):
        raise AudioError(path, f"samples must have shape (n,) or (n, channels), got {data.shape}")
    with audio_writer(path, sample_rate, 1 if data.ndim == 1 else data.shape[1], subtype, empty=len(data) == 0) as write:
        # checked, converted and written a block at a time: an hour's quantisation would otherwise hold several
        # whole-length int64/float64 copies
        for start in range(0, max(len(data), 1), WRITE_BLOCK):
            write(data[start:start + WRITE_BLOCK])
    return Path(path)


@contextmanager
def audio_writer(path: str | os.PathLike, sample_rate: int, channels: int = 1, subtype: str | None = None, *,
                 empty: bool = False) -> Iterator[Callable[[np.ndarray], None]]:
    """A function that appends (n,) or (n, channels) float samples to `path` (as `write_audio` writes it), for
    audio made a stretch at a time; the file is renamed into place when the block ends without error, never
    left half-written. `empty`: no sample will come (refused for FLAC, whose header libsndfile then omits)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE:
        raise AudioError(path, f"cannot write {suffix or 'a file without a suffix'}; use .wav, .flac or .ogg")
    subtype = (subtype or WRITABLE[suffix]).upper()
    file_format = suffix[1:].upper()
    if not soundfile.check_format(file_format, subtype):
        raise AudioError(path, f"{file_format} cannot store subtype {subtype}")
    rate = _checked_rate(sample_rate, str(path))
    if empty and file_format == "FLAC":
        raise AudioError(path, "cannot write an empty FLAC (libsndfile writes no header without samples); "
                               "use .wav or .ogg")

    # a bad block aborts the temporary file, never `path`
    with atomic_file(path) as temporary, open(temporary, "xb") as handle:
        with soundfile.SoundFile(handle, "w", rate, channels, subtype=subtype, format=file_format) as out:
            _without_peak_chunk(out)

            def write(block: np.ndarray) -> None:
                block = np.asarray(block, dtype=np.float32)
                if block.ndim != (1 if channels == 1 else 2) or (block.ndim == 2 and block.shape[1] != channels):
                    raise AudioError(path, f"a block of shape {block.shape} for a file of {channels} channel(s)")
                if not np.isfinite(block).all():
                    raise AudioError(path, "refusing to write NaN or Inf samples")
                if subtype in _PCM_BITS:
                    block = _quantised(block, _PCM_BITS[subtype])
                elif subtype not in ("FLOAT", "DOUBLE"):
                    block = np.clip(block, -1.0, 1.0)
                out.write(block)

            yield write
