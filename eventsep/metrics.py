"""Separation metrics in dB: SI-SDR, SDR and their improvements over the unprocessed mixture.

A silent reference gives -inf for SI-SDR and SDR and NaN for their improvements (nothing to measure);
a silent estimate gives SI-SDR -inf. No metric raises on silence.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-10


def _pair(estimate, reference) -> tuple[np.ndarray, np.ndarray]:
    estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate has shape {estimate.shape} but the reference has {reference.shape}")
    if estimate.size == 0:
        raise ValueError("cannot score empty signals")
    if not (np.all(np.isfinite(estimate)) and np.all(np.isfinite(reference))):
        raise ValueError("cannot score signals containing NaN or infinite samples")
    return estimate.ravel(), reference.ravel()


def si_sdr(estimate, reference) -> float:
    """Scale-invariant SDR; -inf for a silent reference or estimate (nothing to match)."""
    estimate, reference = _pair(estimate, reference)
    energy = np.dot(reference, reference)
    if energy < EPS or np.dot(estimate, estimate) < EPS:
        return float("-inf")
    target = np.dot(estimate, reference) / energy * reference
    noise = estimate - target
    return float(10 * np.log10((np.dot(target, target) + EPS) / (np.dot(noise, noise) + EPS)))


def sdr(estimate, reference) -> float:
    """Plain SDR: 10 log10(|s|² / |s - ŝ|²); -inf for a silent reference."""
    estimate, reference = _pair(estimate, reference)
    energy = np.dot(reference, reference)
    if energy < EPS:
        return float("-inf")
    error = reference - estimate
    return float(10 * np.log10(energy / (np.dot(error, error) + EPS)))


def _improvement(processed: float, unprocessed: float) -> float:
    if np.isneginf(processed) and np.isneginf(unprocessed):
        return float("nan")
    return processed - unprocessed


def si_sdr_improvement(estimate, reference, mixture) -> float:
    """SI-SDR of the estimate minus that of the mixture; NaN for a silent reference."""
    return _improvement(si_sdr(estimate, reference), si_sdr(mixture, reference))


def evaluate(estimate, reference, mixture) -> dict[str, float]:
    """SI-SDR, SI-SDRi, SDR and SDRi of `estimate` against `reference` (judge by SI-SDRi: SDRi rewards silence)."""
    scores = {"si_sdr": si_sdr(estimate, reference), "sdr": sdr(estimate, reference)}
    scores["si_sdri"] = _improvement(scores["si_sdr"], si_sdr(mixture, reference))
    scores["sdri"] = _improvement(scores["sdr"], sdr(mixture, reference))
    return {name: scores[name] for name in ("si_sdr", "si_sdri", "sdr", "sdri")}
