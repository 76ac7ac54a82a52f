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
        if length <= window:  # pragma: no mutate
            estimate = model(torch.from_numpy(samples)[None, None])[0, 0].numpy()
            if progress is not None:
                progress(1.0)
            return estimate
        overlap = min(overlap, window // 2)
        starts = window_starts(length, window, overlap)
        output = np.zeros(length, dtype=np.float32)  # the one whole-length array made here
        for first in range(0, len(starts), batch_size):
            group = starts[first:first + batch_size]
            chunk = torch.from_numpy(np.stack([samples[s:s + window] for s in group]))[:, None]
            estimates = model(chunk)[:, 0].numpy()
            for index, (start, estimate) in enumerate(zip(group, estimates)):
                position = first + index
                weights = crossfade_weights(window, overlap, position == 0, position == len(starts) - 1)
                output[start:start + window] += estimate * weights
            if progress is not None:
                progress((first + len(group)) / len(starts))
        _divide_by_weight_sums(output, starts, window, overlap)
        return output


NORMALISE_BLOCK = 1 << 20


def _divide_by_weight_sums(output: np.ndarray, starts: list[int], window: int, overlap: int) -> None:
    """Divide `output` in place by the sum of the windows' cross-fade weights at each sample, made a block at a
    time from the windows that reach it (the last window may overlap its predecessor by more than `overlap`, so
    the sums are not all one), adding the weights in window order as the whole-length sum would."""
    from bisect import bisect_right

    for block_start in range(0, len(output), NORMALISE_BLOCK):
        block_stop = min(len(output), block_start + NORMALISE_BLOCK)
        total = np.zeros(block_stop - block_start, dtype=np.float32)
        for position in range(bisect_right(starts, block_start - window), len(starts)):
            start = starts[position]
            if start >= block_stop:  # pragma: no mutate
                break
            weights = crossfade_weights(window, overlap, position == 0, position == len(starts) - 1)
            low, high = max(start, block_start), min(start + window, block_stop)
            total[low - block_start:high - block_start] += weights[low - start:high - start]
        output[block_start:block_stop] /= np.maximum(total, 1e-8)
