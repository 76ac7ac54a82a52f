"""The AudioSep separator backend: a ResUNet30, the text embedding that conditions it, and chunking."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...config import SeparatorParams
from ..apply import apply_chunked
from .network import ResUNet30


class AudioSepSeparator:
    """Satisfies `eventsep.backends.Separator`; `embed(text)` gives the condition vector."""

    param_fields = ("chunk_seconds", "overlap_seconds", "text")

    def __init__(self, name: str, model: ResUNet30, embed: Callable[[str], np.ndarray], identity: str):
        self.name = name
        self.model = model.eval()
        self.embed = embed
        self._identity = identity
        self.sample_rate = model.config.sample_rate

    def identity(self) -> str:
        return self._identity

    def separate(self, samples: np.ndarray, query: str, params: SeparatorParams,
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
        condition = torch.from_numpy(np.asarray(self.embed(query), dtype=np.float32))[None]
        window = int(params.chunk_seconds * self.sample_rate)
        overlap = int(params.overlap_seconds * self.sample_rate)

        def run(chunks: torch.Tensor) -> torch.Tensor:
            return self.model(chunks, condition.expand(len(chunks), -1))

        samples = np.asarray(samples, dtype=np.float32)
        # reflect padding of the STFT needs more than half a window of signal
        short = max(0, self.model.config.n_fft - len(samples))
        estimate = apply_chunked(run, np.pad(samples, (0, short)) if short else samples, window, overlap,
                                 progress=progress)
        return estimate[: len(samples)]


OFFICIAL_FILES = ("audiosep-base", "roberta-base-vocab", "roberta-base-merges")


def official_present() -> bool:
    """Whether the official AudioSep's files are in the model folder (then the backend is the official one)."""
    from ... import pretrained

    return all(pretrained.path_of(name).is_file() for name in OFFICIAL_FILES)


def card_name() -> str | None:
    """The model card of the backend `audiosep_backend` builds here; None for the official weights."""
    return None if official_present() else "audiosep-mini"


def audiosep_backend() -> AudioSepSeparator:
    """The official AudioSep (with its CLAP text encoder) when its files are in the model folder, else the
    project's mini AudioSep conditioned on MiniLM."""
    from ... import backends, pretrained
    from ...hashing import file_sha256

    if official_present():
        checkpoint = pretrained.locate("audiosep-base")
        encoder = pretrained.load_official_clap_text()
        model = pretrained.load_official_audiosep(checkpoint)
        return AudioSepSeparator("audiosep", model, lambda text: encoder.encode([text])[0],
                                 file_sha256(checkpoint))
    model, _ = pretrained.load_mini_audiosep()
    encoder = backends.get("text_encoder", "minilm")
    identity = f"{file_sha256(pretrained.locate('audiosep-mini'))}+{encoder.identity()}"
    return AudioSepSeparator("audiosep", model, lambda text: encoder.encode([text])[0], identity)
