import numpy as np
import pytest

from eventsep.metrics import evaluate, is_silent, outside_db, score, sdr, si_sdr, si_sdr_improvement, stoi_scores


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


def test_sdr_of_a_known_error_and_the_improvements():
    rng = np.random.default_rng(2)
    reference = rng.standard_normal(4000)
    error = rng.standard_normal(4000)
    error *= np.linalg.norm(reference) / np.linalg.norm(error) / np.sqrt(10)  # error energy 10 dB below
    mixture = reference + error * np.sqrt(10)  # error energy equal to the reference's: 0 dB
    scores = evaluate(reference + error, reference, mixture)
    assert set(scores) == {"si_sdr", "si_sdri", "sdr", "sdri"}
    assert scores["sdr"] == pytest.approx(10.0, abs=1e-6) and scores["sdri"] == pytest.approx(10.0, abs=1e-6)
    assert si_sdr_improvement(reference + error, reference, mixture) == pytest.approx(scores["si_sdri"])


def test_silent_reference_gives_minus_inf_scores_and_nan_improvements():
    scores = evaluate(np.ones(100), np.zeros(100), np.ones(100))
    assert np.isneginf(scores["si_sdr"]) and np.isneginf(scores["sdr"])
    assert np.isnan(scores["si_sdri"]) and np.isnan(scores["sdri"])


def test_shapes_must_match_and_multichannel_is_scored_as_a_whole():
    with pytest.raises(ValueError, match="shape"):
        sdr(np.ones(10), np.ones(11))
    stereo = np.random.default_rng(3).standard_normal((500, 2))
    assert si_sdr(stereo, stereo) > 90


def test_outside_db_is_the_level_outside_the_span_relative_to_inside():
    rate = 1000
    signal = np.full(4000, 0.1)
    signal[1000:2000] = 1.0  # 20 dB louder inside 1-2 s
    assert outside_db(signal, rate, 1.0, 2.0) == pytest.approx(-20.0, abs=1e-9)
    signal[:1000] = signal[2000:] = 0.0
    assert outside_db(signal, rate, 1.0, 2.0) == float("-inf")
    assert np.isnan(outside_db(signal, rate, None, None)) and np.isnan(outside_db(signal, rate, 0.0, 4.0))


def test_an_answer_20_db_below_the_reference_is_silent():
    reference = np.random.default_rng(4).standard_normal(1000)
    assert is_silent(reference * 0.099, reference) and not is_silent(reference * 0.101, reference)
    assert is_silent(np.zeros(1000), reference)


def test_stoi_of_speech_like_signals_and_none_for_other_kinds():
    rng = np.random.default_rng(5)
    rate = 16000
    t = np.arange(3 * rate) / rate
    clean = np.sin(2 * np.pi * 150 * t) * np.clip(np.sin(2 * np.pi * 4 * t), 0, None) + 0.3 * np.sin(
        2 * np.pi * 1200 * t) * np.clip(np.sin(2 * np.pi * 3 * t + 1), 0, None)
    perfect = stoi_scores(clean, clean, rate)
    assert perfect["stoi"] == pytest.approx(1.0, abs=1e-3) and perfect["estoi"] == pytest.approx(1.0, abs=1e-3)
    noisy = stoi_scores(clean + 2 * rng.standard_normal(len(t)), clean, rate)
    assert noisy["stoi"] < 0.8 and noisy["estoi"] < noisy["stoi"]
    scores = score(clean, clean, clean + rng.standard_normal(len(t)), rate, speech=False, span=(1.0, 2.0))
    assert np.isnan(scores["stoi"]) and scores["silent"] is False and scores["si_sdri"] > 0
