"""Stereo out from a separation of the mono mix: the answer's complex time-frequency ratio to the mix,
bounded to 1, applied to each channel (so target + residual is each input channel exactly)."""

from __future__ import annotations

import numpy as np

N_FFT = 2048
HOP = 512
# Samples per block; blocks overlap by PAD on each side, so every sample kept is computed from whole frames
# exactly as one STFT of the whole recording would (blocks only bound the memory of the STFT arrays).
BLOCK = 1 << 20
PAD = 2 * N_FFT


def _stft(signal, window):
    import torch

    return torch.stft(signal, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)


def upmix(channels: np.ndarray, mix: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """`channels` (n, c), `mix` (n,) the mono mix that was separated, `answer` (n,) its separated part
    -> (n, c): each channel gated by ratio = answer / mix per STFT bin, its magnitude at most 1. Where every
    channel equals the mix, each gets `answer` back (wherever |answer| <= |mix| in a bin)."""
    import torch

    n, count = channels.shape
    window = torch.hann_window(N_FFT, dtype=torch.float64)
    out = np.empty((n, count), dtype=np.float32)
    for start in range(0, n, BLOCK):  # BLOCK and PAD are multiples of HOP: frames fall on one global grid
        stop = min(n, start + BLOCK)
        lo, hi = max(0, start - PAD), min(n, stop + PAD)
        x = _stft(torch.from_numpy(np.asarray(mix[lo:hi], dtype=np.float64)), window)
        t = _stft(torch.from_numpy(np.asarray(answer[lo:hi], dtype=np.float64)), window)
        power = x.abs() ** 2
        ratio = t * x.conj() / power.clamp_min(1e-20)
        ratio = torch.where(power > 1e-20, ratio, torch.zeros_like(ratio))
        ratio = ratio / ratio.abs().clamp_min(1.0)  # never more of a channel than the channel has
        for c in range(count):
            spec = _stft(torch.from_numpy(np.asarray(channels[lo:hi, c], dtype=np.float64)), window)
            block = torch.istft(ratio * spec, N_FFT, HOP, window=window, center=True, length=hi - lo)
            out[start:stop, c] = block.numpy()[start - lo: stop - lo]
    return out
