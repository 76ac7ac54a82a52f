"""The AudioSep separator backend: a ResUNet30, the text embedding that conditions it, and chunking."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...config import SeparatorParams
from ..apply import apply_chunked
from .network import ResUNet30

# The mini AudioSep was trained on mixtures at a median of -22.6 dBFS RMS (2 s crops as training draws them;
# quartiles -25.5 and -19.3: scripts/training_levels.py) and never on louder ones scaled down: the same mixtures
# 12 dB louder lose about 10 dB SI-SDRi (docs/audiosep.md, session 12). So a window louder than that is turned
# down to it before the model hears it, and its estimate turned up again by as much; quieter ones are left.
MINI_LEVEL_CAP_DBFS = -22.6


class AudioSepSeparator:
    """Satisfies `eventsep.backends.Separator`; `embed(text)` gives the condition vector."""

    param_fields = ("chunk_seconds", "overlap_seconds", "text")

    def __init__(self, name: str, model: ResUNet30, embed: Callable[[str], np.ndarray], identity: str,
                 level_cap_dbfs: float | None = None):
        """`level_cap_dbfs`: each window louder than this RMS is separated at it (None: as it comes)."""
        self.name = name
        self.model = model.eval()
        self.embed = embed
        self.level_cap_dbfs = level_cap_dbfs
        self._identity = identity if level_cap_dbfs is None else f"{identity}+cap{level_cap_dbfs:g}"
        self.sample_rate = model.config.sample_rate

    def identity(self) -> str:
        return self._identity

    def separate(self, samples: np.ndarray, query: str, params: SeparatorParams,
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
        condition = torch.from_numpy(np.asarray(self.embed(query), dtype=np.float32))[None]
        window = int(params.chunk_seconds * self.sample_rate)
        overlap = int(params.overlap_seconds * self.sample_rate)

        def run(chunks: torch.Tensor) -> torch.Tensor:
            gain = window_gain(chunks, self.level_cap_dbfs)
            return self.model(chunks * gain, condition.expand(len(chunks), -1)) / gain

        samples = np.asarray(samples, dtype=np.float32)
        # reflect padding of the STFT needs more than half a window of signal
        short = max(0, self.model.config.n_fft - len(samples))
        estimate = apply_chunked(run, np.pad(samples, (0, short)) if short else samples, window, overlap,
                                 progress=progress)
        return estimate[: len(samples)]


def window_gain(chunks: torch.Tensor, cap_dbfs: float | None) -> torch.Tensor | float:
    """Per window of `chunks` (batch, 1, samples), the gain that brings a window louder than `cap_dbfs` RMS down
    to it; 1 for the others (silence included) and when there is no cap."""
    if cap_dbfs is None:
        return 1.0
    power = chunks.double().pow(2).mean(dim=-1, keepdim=True)
    cap = 10 ** (cap_dbfs / 10)
    return torch.where(power > cap, (cap / power.clamp_min(1e-30)).sqrt(), torch.ones_like(power)).float()


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
    return AudioSepSeparator("audiosep", model, lambda text: encoder.encode([text])[0], identity,
                             level_cap_dbfs=MINI_LEVEL_CAP_DBFS)
