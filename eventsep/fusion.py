"""The fusion stage: two separator estimates to one rate, aligned, loudness-matched, combined in the STFT domain.

The first estimate (AudioSep) gives the phase and everything the second (FlowSep) cannot hold: above
the second's Nyquist frequency the output is the first's, so the fused output keeps the input's band.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .audio import energy, resample
from .config import FusionParams

# soxr's passband ends a little below Nyquist: above this fraction of it a resampled estimate is empty.
PASSBAND = 0.95


def _signal(samples, name: str) -> np.ndarray:
    signal = np.asarray(samples, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"{name} must be mono samples of shape (n,), got shape {signal.shape}")
    if signal.size == 0:
        raise ValueError(f"{name} has no samples")
    if not np.all(np.isfinite(signal)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return signal


def fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad to `length` samples."""
    signal = np.asarray(signal, dtype=np.float32)
    return signal[:length] if len(signal) >= length else np.pad(signal, (0, length - len(signal)))


def _fast_fft_size(minimum: int) -> int:
    """The smallest 2^a 3^b 5^c >= minimum (pocketfft is fast on those; a power of two can be ~2x larger)."""
    best = 1 << max(0, int(minimum - 1).bit_length())
    power5 = 1
    while power5 < best:  # pragma: no mutate
        power35 = power5
        while power35 < best:  # pragma: no mutate
            size = power35
            while size < minimum:  # pragma: no mutate
                size *= 2
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best


def align(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, max_lag_ms: float
          ) -> tuple[np.ndarray, int]:
    """Shift `estimate` by the lag (within ±max_lag_ms) that best correlates it with `reference`.

    Returns the shifted estimate (zero-filled, as long as `reference`) and the lag in samples:
    positive moves the estimate later, negative earlier.
    """
    reference, estimate = _signal(reference, "reference"), _signal(estimate, "estimate")
    if sample_rate <= 0 or max_lag_ms < 0:
        raise ValueError(f"need sample_rate > 0 and max_lag_ms >= 0, got {sample_rate} and {max_lag_ms}")
    max_lag = min(int(round(max_lag_ms / 1000 * sample_rate)), max(len(reference), len(estimate)) - 1)
    if max_lag <= 0 or not np.any(estimate) or not np.any(reference):
        return fit_length(estimate, len(reference)), 0
    # Circular correlation equals the linear one for |lag| <= max_lag once size >= longest + max_lag + 1.
    size = _fast_fft_size(max(len(reference), len(estimate)) + max_lag + 1)
    correlation = np.fft.irfft(np.fft.rfft(reference, size) * np.conj(np.fft.rfft(estimate, size)), size)
    lags = np.arange(-max_lag, max_lag + 1)
    lag = int(lags[np.argmax(correlation[lags % size])])
    return shift(estimate, lag, len(reference)), lag


def shift(signal: np.ndarray, lag: int, length: int) -> np.ndarray:
    """`signal` moved `lag` samples later (earlier if negative), zero-filled, cut or padded to `length`."""
    shifted = np.zeros(length, dtype=np.float32)
    if lag >= 0:  # pragma: no mutate
        part = signal[:max(0, length - lag)]
        shifted[lag:lag + len(part)] = part
    else:
        part = signal[-lag:-lag + length]
        shifted[:len(part)] = part
    return shifted


def rms_match(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Scale `estimate` to the RMS of `reference` (unchanged when either is silent)."""
    reference, estimate = np.asarray(reference, np.float32), np.asarray(estimate, np.float32)
    ref_rms = float(np.sqrt(energy(reference) / max(reference.size, 1)))
    est_rms = float(np.sqrt(energy(estimate) / max(estimate.size, 1)))
    if ref_rms == 0.0 or est_rms == 0.0:
        return estimate
    return (estimate * (ref_rms / est_rms)).astype(np.float32)


def first_weight(params: FusionParams, frequencies: np.ndarray, second_rate: float, out_rate: float) -> np.ndarray:
    """Per-frequency weight of the first estimate's magnitude (1 = first only, 0 = second only)."""
    second_nyquist = min(second_rate, out_rate) / 2
    relative = np.clip(frequencies / second_nyquist, 0.0, 1.0)
    weight = {
        "rate": np.full_like(frequencies, params.alpha),
        "band": (frequencies < params.effective_split(out_rate)).astype(np.float64),
        "band-reversed": (frequencies >= params.effective_split(out_rate)).astype(np.float64),
        "progressive": 1.0 - relative,
        "progressive-reversed": relative,
    }[params.mode]
    if second_rate < out_rate:  # the upsampled second estimate is empty up there
        weight = np.where(frequencies >= PASSBAND * second_nyquist, 1.0, weight)
    return weight


def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window (as torch.hann_window(n_fft, periodic=True))."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


# STFT/ISTFT with numpy's single-threaded pocketfft, numerically torch.stft/istft(center=True, reflect
# padding, periodic Hann; tests compare them): under CPU contention torch's 2-thread FFT ran ~10x slower.
def stft(signal: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(n_fft // 2 + 1, 1 + len // hop) complex spectrum of a mono signal, as torch.stft(center=True)."""
    pad = n_fft // 2
    padded = np.pad(np.asarray(signal, np.float32), pad, mode="reflect" if len(signal) > pad else "constant")
    frames = sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * hann(n_fft), axis=-1).T


def istft(spectrum: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Inverse of `stft` by windowed overlap-add, cut or zero-padded to `length` samples."""
    window = hann(n_fft)
    frames = (np.fft.irfft(spectrum.T, n=n_fft, axis=-1) * window).astype(np.float32)
    count = frames.shape[0]
    pieces = -(-n_fft // hop)  # each frame spans this many hop-sized pieces
    frames = np.pad(frames, ((0, 0), (0, pieces * hop - n_fft)))
    window_sq = np.pad(window ** 2, (0, pieces * hop - n_fft))
    output = np.zeros((count + pieces, hop), dtype=np.float32)
    norm = np.zeros((count + pieces, hop), dtype=np.float32)
    for piece in range(pieces):
        output[piece:piece + count] += frames[:, piece * hop:(piece + 1) * hop]
        norm[piece:piece + count] += window_sq[piece * hop:(piece + 1) * hop]
    start = n_fft // 2
    output, norm = output.ravel()[start:start + length], norm.ravel()[start:start + length]
    return fit_length(output / np.where(norm > 1e-11, norm, 1.0), length)


def fuse(first: np.ndarray, first_rate: int, second: np.ndarray | None, second_rate: int | None,
         params: FusionParams, *, out_rate: int, out_length: int | None = None) -> np.ndarray:
    """Combine the estimates' STFT magnitudes per `params.mode` with the first's phase, at `out_rate`.

    With `second` None the first estimate is returned at `out_rate` (a single separator).
    """
    if out_rate <= 0 or (out_length is not None and out_length <= 0):
        raise ValueError(f"need out_rate > 0 and out_length > 0, got {out_rate} and {out_length}")
    a = resample(_signal(first, "first estimate"), first_rate, out_rate)
    length = out_length if out_length is not None else len(a)
    a = fit_length(a, length)
    if second is None:
        return a
    if second_rate is None:
        raise ValueError("the second estimate needs its sample rate (second_rate)")
    second = _signal(second, "second estimate")
    b = resample(second, second_rate, out_rate)
    if second_rate < out_rate:
        # Align at the second's own rate: its band is all there is to correlate, at a fraction of the
        # cost; the lag is then off by less than out_rate/second_rate samples, which no magnitude notices.
        _, lag = align(resample(a, out_rate, second_rate), second, second_rate, params.max_lag_ms)
        b = shift(b, int(round(lag * out_rate / second_rate)), length)
    else:
        b, _ = align(a, fit_length(b, length), out_rate, params.max_lag_ms)
    if params.rms_match:
        b = rms_match(a, b)

    frequencies = np.fft.rfftfreq(params.n_fft, 1.0 / out_rate)
    weight = first_weight(params, frequencies, second_rate, out_rate).astype(np.float32)
    mixed = np.flatnonzero(weight < 1.0)
    if mixed.size == 0:
        return a
    # Where the weight is 1 the output bin is the first's bin: only the mixed bins are recomputed.
    rows = slice(int(mixed[0]), int(mixed[-1]) + 1)
    spec_a = stft(a, params.n_fft, params.hop)
    part_a, magnitude_b = spec_a[rows], np.abs(stft(b, params.n_fft, params.hop)[rows])
    w = weight[rows, None]
    magnitude_a = np.abs(part_a)
    scale = np.divide(magnitude_b, magnitude_a, out=np.zeros_like(magnitude_b), where=magnitude_a > 0)
    # |F| = w|A| + (1-w)|B| with A's phase; a bin where A is zero takes phase 0.
    spec_a[rows] = np.where(magnitude_a > 0, part_a * (w + (1 - w) * scale), (1 - w) * magnitude_b)
    return istft(spec_a, params.n_fft, params.hop, length)


def residual(mixture: np.ndarray, target: np.ndarray) -> np.ndarray:
    """What is left of the mixture once the target is taken out (same rate and length required)."""
    mixture, target = np.asarray(mixture, np.float32), np.asarray(target, np.float32)
    if mixture.shape != target.shape:
        raise ValueError(f"mixture has shape {mixture.shape} but the target has {target.shape} "
                         "(resample and fit the target to the mixture first)")
    return mixture - target
