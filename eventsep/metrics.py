"""Separation metrics in dB: SI-SDR, SDR and their improvements over the unprocessed mixture."""

from __future__ import annotations

import numpy as np

EPS = 1e-10


def _pair(estimate, reference) -> tuple[np.ndarray, np.ndarray]:
    estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate has shape {estimate.shape} but the reference has {reference.shape}")
    return estimate, reference


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


def si_sdr_improvement(estimate, reference, mixture) -> float:
    return si_sdr(estimate, reference) - si_sdr(mixture, reference)


def evaluate(estimate, reference, mixture) -> dict[str, float]:
    """SI-SDR, SI-SDRi, SDR and SDRi of `estimate` against `reference` (judge by SI-SDRi: SDRi rewards silence)."""
    return {"si_sdr": si_sdr(estimate, reference), "si_sdri": si_sdr_improvement(estimate, reference, mixture),
            "sdr": sdr(estimate, reference), "sdri": sdr(estimate, reference) - sdr(mixture, reference)}
