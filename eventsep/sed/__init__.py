"""Sound event detection: a recording becomes (frames × 527) AudioSet probabilities with a frame rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np


@dataclass
class SedOutput:
    """probs[t, c]: probability of class c (PANNs order) in frame t, centred at t / frame_rate seconds."""

    probs: np.ndarray
    frame_rate: float
    model: str


class SedModel(Protocol):
    """`progress` is optional: a model that takes it calls it with the fraction done (0 to 1) as it goes."""

    name: str
    sample_rate: int

    def identity(self) -> str: ...

    def detect(self, samples: np.ndarray, sample_rate: int,
               progress: Callable[[float], None] | None = None) -> SedOutput: ...


def yamnet_model():
    from .yamnet import YamnetSed

    return YamnetSed(calibrated=True)


def yamnet_raw_model():
    from .yamnet import YamnetSed

    return YamnetSed(calibrated=False)


def panns_model():
    from ..hashing import file_sha256
    from ..pretrained import locate
    from .panns import PannsSed, load_panns

    path = locate("panns-cnn14-decisionlevelmax")
    return PannsSed(load_panns(path), file_sha256(path))
