"""Chunked inference for any length: overlapping windows, batched, each computed once, cross-faded.

Unlike the official chunking (zeros for input of 5 s or less, every window computed twice), a
recording no longer than one window is a single exact pass, and longer ones are covered by
windows whose linear cross-fades sum to one, so memory depends on the window, not the length.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def crossfade_weights(window: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    weights = np.ones(window, dtype=np.float32)
    if overlap > 0:
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not first:
            weights[:overlap] = ramp
        if not last:
            weights[-overlap:] = ramp[::-1]
    return weights


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    hop = window - overlap
    starts = list(range(0, max(length - window, 0), hop))
    return starts + [max(length - window, 0)]


def apply_chunked(model: Callable[[torch.Tensor], torch.Tensor], samples: np.ndarray, window: int,
                  overlap: int, batch_size: int = 4,
                  progress: Callable[[float], None] | None = None) -> np.ndarray:
    """`model` maps (batch, 1, window) to (batch, 1, window); returns the estimate for all of `samples`.
    `progress`, when given, is called with the fraction of windows done (0 to 1) after each batch."""
    samples = np.asarray(samples, dtype=np.float32)
    length = len(samples)
    with torch.inference_mode():
        if length <= window:
            estimate = model(torch.from_numpy(samples)[None, None])[0, 0].numpy()
            if progress is not None:
                progress(1.0)
            return estimate
        overlap = min(overlap, window // 2)
        starts = window_starts(length, window, overlap)
        output = np.zeros(length, dtype=np.float32)
        total = np.zeros(length, dtype=np.float32)
        for first in range(0, len(starts), batch_size):
            group = starts[first:first + batch_size]
            chunk = torch.from_numpy(np.stack([samples[s:s + window] for s in group]))[:, None]
            estimates = model(chunk)[:, 0].numpy()
            for index, (start, estimate) in enumerate(zip(group, estimates)):
                position = first + index
                weights = crossfade_weights(window, overlap, position == 0, position == len(starts) - 1)
                # the last window may overlap its predecessor by more than `overlap`; the weights still sum up
                output[start:start + window] += estimate * weights
                total[start:start + window] += weights
            if progress is not None:
                progress((first + len(group)) / len(starts))
        return output / np.maximum(total, 1e-8)
