"""The FlowSep separator backend: 10.24 s windows (the length FlowSep was trained on), cross-faded."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...config import SeparatorParams
from ..apply import apply_chunked
from .model import FlowSep


class FlowSepSeparator:
    """Satisfies `eventsep.backends.Separator`. `text.context(query)` gives the cross-attention context."""

    param_fields = ("overlap_seconds", "steps", "seed", "text")

    def __init__(self, name: str, model: FlowSep, text, identity: str, batch_size: int = 2):
        self.name = name
        # CUDA when present; the noise is drawn on the CPU, so a seed gives the same start on either device
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = model.eval().to(self.device)
        self.text = text
        self._identity = identity
        self.sample_rate = model.config.sample_rate
        self.window = int(round(model.config.window_seconds * self.sample_rate))
        self.batch_size = batch_size

    def identity(self) -> str:
        return self._identity

    def separate(self, samples: np.ndarray, query: str, params: SeparatorParams,
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
        context, mask = self.text.context(query)
        generator = torch.Generator().manual_seed(params.seed)
        overlap = min(int(params.overlap_seconds * self.sample_rate), self.window // 2)

        def run(chunks: torch.Tensor) -> torch.Tensor:
            # a window is always the trained length: shorter input is zero-padded and the output cut back
            length = chunks.shape[-1]
            padded = torch.nn.functional.pad(chunks[:, 0], (0, self.window - length)).to(self.device)
            count = len(chunks)
            estimate = self.model.separate(padded, context.to(self.device).expand(count, -1, -1),
                                           None if mask is None else mask.to(self.device).expand(count, -1),
                                           params.steps, generator)
            return estimate[:, None, :length].float().cpu()

        samples = np.asarray(samples, dtype=np.float32)
        return apply_chunked(run, samples, self.window, overlap, self.batch_size, progress)[: len(samples)]


def official_present() -> bool:
    """Whether the official FlowSep's files are in the model folder (then the backend is the official one)."""
    from ... import pretrained

    return pretrained.path_of("flowsep-v2").is_file() and pretrained.path_of("flan-t5-large-tokenizer").is_file()


def card_name() -> str | None:
    """The model card of the backend `flowsep_backend` builds here; None for the official weights."""
    return None if official_present() else "flowsep-mini"


def flowsep_backend() -> FlowSepSeparator:
    """The official FlowSep (FLAN-T5-large context, BigVGAN) when its files are in the model folder, else
    the project's mini FlowSep conditioned on MiniLM."""
    from ... import backends, pretrained
    from ...hashing import file_sha256
    from .text import SentenceContext

    if official_present():
        model, text = pretrained.load_official_flowsep()
        return FlowSepSeparator("flowsep", model, text, file_sha256(pretrained.locate("flowsep-v2")))
    model, _ = pretrained.load_mini_flowsep()
    encoder = backends.get("text_encoder", "minilm")
    identity = f"{file_sha256(pretrained.locate('flowsep-mini'))}+{encoder.identity()}"
    return FlowSepSeparator("flowsep", model, SentenceContext(encoder), identity)
