import numpy as np
import pytest

from eventsep.metrics import evaluate, sdr, si_sdr


def test_si_sdr_known_values():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(10000)
    noise = rng.standard_normal(10000)
    noise -= noise @ reference / (reference @ reference) * reference  # orthogonal to the reference
    noise *= np.linalg.norm(reference) / np.linalg.norm(noise) / 10  # 20 dB below
    assert si_sdr(reference + noise, reference) == pytest.approx(20.0, abs=1e-6)
    assert si_sdr(3 * reference, reference) > 100  # scale-invariant
    assert sdr(3 * reference, reference) == pytest.approx(10 * np.log10(1 / 4), abs=1e-6)


def test_silence_does_not_crash():
    assert si_sdr(np.zeros(100), np.ones(100)) == float("-inf")
    assert np.isneginf(evaluate(np.ones(100), np.zeros(100), np.ones(100))["sdr"])


def test_improvement_over_the_mixture():
    rng = np.random.default_rng(1)
    target, other = rng.standard_normal(8000), rng.standard_normal(8000)
    scores = evaluate(target + 0.1 * other, target, target + other)
    assert scores["si_sdri"] == pytest.approx(scores["si_sdr"] - si_sdr(target + other, target))
    assert scores["si_sdri"] > 15
