"""The fusion stage: two separator estimates to one rate, aligned, loudness-matched, combined in the STFT domain.

The first estimate (AudioSep) gives the phase and everything the second (FlowSep) cannot hold: above
the second's Nyquist frequency the output is the first's, so the fused output keeps the input's band.
"""

from __future__ import annotations

import numpy as np
import torch

from .audio import resample
from .config import FusionParams

# soxr's passband ends a little below Nyquist: above this fraction of it a resampled estimate is empty.
PASSBAND = 0.95


def fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    signal = np.asarray(signal, dtype=np.float32)
    return signal[:length] if len(signal) >= length else np.pad(signal, (0, length - len(signal)))


def align(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, max_lag_ms: float
          ) -> tuple[np.ndarray, int]:
    """Shift `estimate` by the lag (within ±max_lag_ms) that best correlates it with `reference`."""
    max_lag = int(round(max_lag_ms / 1000 * sample_rate))
    if max_lag == 0 or not np.any(estimate) or not np.any(reference):
        return fit_length(estimate, len(reference)), 0
    size = 1 << int(np.ceil(np.log2(len(reference) + len(estimate))))
    spectrum = torch.fft.rfft(torch.from_numpy(np.asarray(reference, np.float32)), size) * torch.conj(
        torch.fft.rfft(torch.from_numpy(np.asarray(estimate, np.float32)), size))
    correlation = torch.fft.irfft(spectrum, size).numpy()
    lags = np.arange(-max_lag, max_lag + 1)
    lag = int(lags[np.argmax(correlation[lags % size])])
    shifted = np.roll(fit_length(estimate, len(reference)), lag)
    if lag > 0:
        shifted[:lag] = 0.0
    elif lag < 0:
        shifted[lag:] = 0.0
    return shifted, lag


def rms_match(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Scale `estimate` to the RMS of `reference` (unchanged when either is silent)."""
    ref_rms, est_rms = float(np.sqrt(np.mean(reference ** 2))), float(np.sqrt(np.mean(estimate ** 2)))
    if ref_rms == 0.0 or est_rms == 0.0:
        return estimate
    return (estimate * (ref_rms / est_rms)).astype(np.float32)


def first_weight(params: FusionParams, frequencies: np.ndarray, second_nyquist: float) -> np.ndarray:
    """Per-frequency weight of the first estimate's magnitude (1 = first only, 0 = second only)."""
    relative = np.clip(frequencies / second_nyquist, 0.0, 1.0)
    weight = {
        "rate": np.full_like(frequencies, params.alpha),
        "band": (frequencies < params.split_hz).astype(np.float64),
        "band-reversed": (frequencies >= params.split_hz).astype(np.float64),
        "progressive": 1.0 - relative,
        "progressive-reversed": relative,
    }[params.mode]
    return np.where(frequencies >= PASSBAND * second_nyquist, 1.0, weight)


def _stft(signal: np.ndarray, params: FusionParams, window: torch.Tensor) -> torch.Tensor:
    return torch.stft(torch.from_numpy(signal), params.n_fft, params.hop, window=window, center=True,
                      return_complex=True)


def fuse(first: np.ndarray, first_rate: int, second: np.ndarray | None, second_rate: int | None,
         params: FusionParams, *, out_rate: int, out_length: int | None = None) -> np.ndarray:
    """Combine the estimates' STFT magnitudes per `params.mode` with the first's phase, at `out_rate`."""
    a = resample(np.asarray(first, np.float32), first_rate, out_rate)
    length = out_length if out_length is not None else len(a)
    a = fit_length(a, length)
    if second is None:
        return a
    if params.mode.startswith("band"):
        params.check_rate(out_rate)
    b = fit_length(resample(np.asarray(second, np.float32), second_rate, out_rate), length)
    b, _ = align(a, b, out_rate, params.max_lag_ms)
    if params.rms_match:
        b = rms_match(a, b)
    window = torch.hann_window(params.n_fft, periodic=True)
    spec_a, spec_b = _stft(a, params, window), _stft(b, params, window)
    frequencies = np.fft.rfftfreq(params.n_fft, 1.0 / out_rate)
    nyquist_b = min(second_rate, out_rate) / 2
    weight = torch.from_numpy(first_weight(params, frequencies, nyquist_b).astype(np.float32))[:, None]
    magnitude_a = spec_a.abs()
    magnitude = weight * magnitude_a + (1 - weight) * spec_b.abs()
    phase = torch.where(magnitude_a > 0, spec_a / magnitude_a.clamp_min(1e-12), torch.ones_like(spec_a))
    fused = torch.istft(magnitude * phase, params.n_fft, params.hop, window=window, center=True,
                        length=length)
    return fused.numpy().astype(np.float32)


def residual(mixture: np.ndarray, target: np.ndarray) -> np.ndarray:
    """What is left of the mixture once the target is taken out (same rate and length required)."""
    if len(mixture) != len(target):
        raise ValueError(f"mixture has {len(mixture)} samples but the target has {len(target)}")
    return (np.asarray(mixture, np.float32) - np.asarray(target, np.float32)).astype(np.float32)
