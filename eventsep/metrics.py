"""Separation metrics: SI-SDR, SDR and their improvements over the unprocessed mixture (dB), STOI and
ESTOI (pystoi), the estimate's level outside the wanted sound's active span, and silent answers.

A silent reference gives -inf for SI-SDR and SDR and NaN for their improvements (nothing to measure);
a silent estimate gives SI-SDR -inf. No metric raises on silence.

`sdr` is the SNR-style SDR of the LASS papers, 10 log10(|s|² / |s - ŝ|²), not BSS-eval's: it rewards
turning the volume down (an all-zero answer scores SDRi > 0 wherever the mixture is louder than the
wanted sound), so quality is judged by SI-SDRi.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-10


def _inner(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b without BLAS: on a loaded machine a multithreaded BLAS dot of one long vector was measured
    1000x slower (44 ms instead of 0.05 ms for 320 000 samples) than this single-threaded loop."""
    return float(np.einsum("i,i->", a, b))


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
    energy = _inner(reference, reference)
    if energy < EPS or _inner(estimate, estimate) < EPS:
        return float("-inf")
    target = _inner(estimate, reference) / energy * reference
    noise = estimate - target
    return float(10 * np.log10((_inner(target, target) + EPS) / (_inner(noise, noise) + EPS)))


def sdr(estimate, reference) -> float:
    """Plain SDR: 10 log10(|s|² / |s - ŝ|²); -inf for a silent reference."""
    estimate, reference = _pair(estimate, reference)
    energy = _inner(reference, reference)
    if energy < EPS:
        return float("-inf")
    error = reference - estimate
    return float(10 * np.log10(energy / (_inner(error, error) + EPS)))


def _improvement(processed: float, unprocessed: float) -> float:
    if np.isneginf(processed) and np.isneginf(unprocessed):
        return float("nan")
    return processed - unprocessed


def si_sdr_improvement(estimate, reference, mixture) -> float:
    """SI-SDR of the estimate minus that of the mixture; NaN for a silent reference."""
    return _improvement(si_sdr(estimate, reference), si_sdr(mixture, reference))


def evaluate(estimate, reference, mixture, baseline: dict[str, float] | None = None) -> dict[str, float]:
    """SI-SDR, SI-SDRi, SDR and SDRi of `estimate` against `reference` (judge by SI-SDRi: SDRi rewards silence).
    `baseline` is `mixture_scores(mixture, reference)`, computed once when many answers share a mixture."""
    baseline = baseline or mixture_scores(mixture, reference)
    scores = {"si_sdr": si_sdr(estimate, reference), "sdr": sdr(estimate, reference)}
    scores["si_sdri"] = _improvement(scores["si_sdr"], baseline["si_sdr"])
    scores["sdri"] = _improvement(scores["sdr"], baseline["sdr"])
    return {name: scores[name] for name in ("si_sdr", "si_sdri", "sdr", "sdri")}


def mixture_scores(mixture, reference) -> dict[str, float]:
    """What the improvements are measured from: the unprocessed mixture's SI-SDR and SDR."""
    return {"si_sdr": si_sdr(mixture, reference), "sdr": sdr(mixture, reference)}


SILENT_DB = 20.0  # an answer this far or more below the reference's energy counts as silent
STOI_RATE = 10000  # pystoi's own rate: resampled once here (soxr) instead of inside every call


def energy_db(signal) -> float:
    signal = np.asarray(signal, np.float64).ravel()
    return float(10 * np.log10(_inner(signal, signal) + EPS))


def is_silent(estimate, reference) -> bool:
    """The answer's energy is SILENT_DB (20 dB) or more below the reference's."""
    return energy_db(estimate) <= energy_db(reference) - SILENT_DB


def outside_db(estimate, sample_rate: int, onset: float | None, offset: float | None) -> float:
    """Mean power of the estimate outside [onset, offset) relative to inside it, in dB (lower: less sound
    where the wanted sound is absent). NaN without a span, or when the span covers all or none of it;
    +inf when the estimate is silent inside the span but not outside, -inf for silence outside."""
    samples = np.asarray(estimate, np.float64).ravel()
    if onset is None or offset is None:
        return float("nan")
    start = min(max(int(round(onset * sample_rate)), 0), len(samples))
    end = min(max(int(round(offset * sample_rate)), start), len(samples))
    inside, outside = samples[start:end], np.concatenate([samples[:start], samples[end:]])
    if inside.size == 0 or outside.size == 0:
        return float("nan")
    power_in, power_out = np.mean(inside ** 2), np.mean(outside ** 2)
    if power_out < EPS ** 2:
        return float("-inf") if power_in >= EPS ** 2 else float("nan")
    if power_in < EPS ** 2:
        return float("inf")
    return float(10 * np.log10(power_out / power_in))


def stoi_scores(estimate, reference, sample_rate: int) -> dict[str, float]:
    """STOI and ESTOI (pystoi) of the estimate against the clean reference; NaN for a silent reference."""
    from pystoi import stoi

    from .audio import resample

    estimate, reference = _pair(estimate, reference)
    if _inner(reference, reference) < EPS:
        return {"stoi": float("nan"), "estoi": float("nan")}
    clean = resample(reference.astype(np.float32), sample_rate, STOI_RATE).astype(np.float64)
    answer = resample(estimate.astype(np.float32), sample_rate, STOI_RATE).astype(np.float64)
    return {"stoi": float(stoi(clean, answer, STOI_RATE)),
            "estoi": float(stoi(clean, answer, STOI_RATE, extended=True))}


def score(estimate, reference, mixture, sample_rate: int, *, speech: bool = False,
          span: tuple[float | None, float | None] = (None, None),
          baseline: dict[str, float] | None = None) -> dict[str, float | bool]:
    """Everything `eventsep evaluate` reports for one answer: `evaluate`'s four scores, STOI and ESTOI when
    the reference is speech (NaN otherwise), `outside_db` over the wanted sound's span, and `silent`.
    `baseline` is `mixture_scores(mixture, reference)`, computed once when many answers share a mixture."""
    scores: dict[str, float | bool] = evaluate(estimate, reference, mixture, baseline)
    scores.update(stoi_scores(estimate, reference, sample_rate) if speech
                  else {"stoi": float("nan"), "estoi": float("nan")})
    scores["outside_db"] = outside_db(estimate, sample_rate, *span)
    scores["silent"] = is_silent(estimate, reference)
    return scores
