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


# --- argument guards, boundaries and edge cases (mutation testing, docs/testing.md) ---

def test_empty_and_non_finite_signals_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"^cannot score empty signals$"):
        si_sdr(np.zeros(0), np.zeros(0))
    for bad in ((np.array([1.0, np.nan]), np.ones(2)), (np.ones(2), np.array([np.inf, 1.0]))):
        with pytest.raises(ValueError, match=r"^cannot score signals containing NaN or infinite samples$"):
            sdr(*bad)


def test_one_sample_signals_are_scored():
    assert sdr(np.array([1.0]), np.array([2.0])) == pytest.approx(10 * np.log10(4.0), abs=1e-6)


def test_integer_pcm_is_scored_as_its_values():
    """int16 samples are scored in float64: 2 samples of 128 (energy 32768) do not wrap around."""
    reference = np.array([128, 128], np.int16)
    estimate = np.array([128, 64], np.int16)
    as_float = si_sdr(estimate.astype(np.float64), reference.astype(np.float64))
    assert si_sdr(estimate, reference) == pytest.approx(as_float)
    assert si_sdr(reference, estimate) == pytest.approx(si_sdr(reference.astype(float), estimate.astype(float)))
    from eventsep.metrics import energy_db
    assert energy_db(np.full(256, 256, np.int16)) == pytest.approx(10 * np.log10(256 * 256.0 ** 2))
    pcm = np.array([128, 128, 256, 256, 128, 128], np.int16)  # outside half the amplitude of inside: -6.02 dB
    assert outside_db(pcm, 1, 2.0, 4.0) == pytest.approx(20 * np.log10(0.5))


def test_perfect_and_orthogonal_estimates_give_finite_scores():
    reference = np.ones(100)
    assert 100 < sdr(reference, reference) < np.inf
    orthogonal = np.array([1.0, -1.0] * 50)
    assert -np.inf < si_sdr(orthogonal, reference) < -90


def test_a_silent_estimate_is_the_worst_improvement_not_nan():
    rng = np.random.default_rng(6)
    reference, other = rng.standard_normal(1000), rng.standard_normal(1000)
    scores = evaluate(np.zeros(1000), reference, reference + other)
    assert scores["si_sdr"] == -np.inf and scores["si_sdri"] == -np.inf
    assert si_sdr_improvement(np.zeros(1000), reference, reference + other) == -np.inf


def test_an_answer_exactly_20_db_below_the_reference_is_silent():
    """Energies 1e10 and 1e12 (exact in float64): exactly 20 dB apart counts as silent ("20 dB or more")."""
    assert is_silent(np.full(100, 1e4), np.full(100, 1e5))
    assert not is_silent(np.full(100, 1.001e4), np.full(100, 1e5))


def test_outside_db_of_one_sided_spans_and_silences():
    rate = 1000
    signal = np.full(4000, 0.05)
    signal[1000:2000] = 0.5  # inside 20 dB above outside, at levels other than 1
    assert outside_db(signal, rate, 1.0, 2.0) == pytest.approx(-20.0, abs=1e-9)
    assert np.isnan(outside_db(signal, rate, 1.0, None)) and np.isnan(outside_db(signal, rate, None, 2.0))
    assert np.isnan(outside_db(np.zeros(4000), rate, 1.0, 2.0))  # silent everywhere
    inside_silent = signal.copy()
    inside_silent[1000:2000] = 0.0
    assert outside_db(inside_silent, rate, 1.0, 2.0) == np.inf
    # a very quiet part is measured, not taken for silence: 1e-6 against 1 is 120 dB
    quiet_inside = np.array([1.0, 1e-6, 1.0])
    assert outside_db(quiet_inside, 1, 1.0, 2.0) == pytest.approx(120.0)
    quiet_outside = np.array([1e-6, 1.0, 1e-6])
    assert outside_db(quiet_outside, 1, 1.0, 2.0) == pytest.approx(-120.0)
    assert outside_db(np.array([0.0, 1e-6, 0.0]), 1, 1.0, 2.0) == -np.inf


def test_outside_db_of_one_sample_inside_or_outside():
    assert outside_db(np.array([0.1, 1.0, 1.0]), 1, 1.0, 3.0) == pytest.approx(-20.0)  # one sample outside
    assert outside_db(np.array([1.0, 0.1, 1.0]), 1, 1.0, 2.0) == pytest.approx(20.0)  # one sample inside


def test_outside_db_of_a_span_covering_all_or_nothing_is_nan_without_warnings():
    import warnings
    signal = np.ones(100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(outside_db(signal, 10, 0.0, 10.0)) and np.isnan(outside_db(signal, 10, 5.0, 5.0))


def test_stoi_of_a_silent_reference_is_nan():
    scores = stoi_scores(np.ones(16000), np.zeros(16000), 16000)
    assert set(scores) == {"stoi", "estoi"} and np.isnan(scores["stoi"]) and np.isnan(scores["estoi"])


def test_score_reports_everything_for_one_answer():
    rng = np.random.default_rng(7)
    rate = 16000
    reference = rng.standard_normal(rate)
    mixture = reference + rng.standard_normal(rate)
    estimate = reference.copy()
    estimate[: rate // 2] *= 0.1  # outside the span (0.5-1 s) 20 dB quieter
    scores = score(estimate, reference, mixture, rate, span=(0.5, 1.0))
    assert set(scores) == {"si_sdr", "si_sdri", "sdr", "sdri", "stoi", "estoi", "outside_db", "silent"}
    assert np.isnan(scores["stoi"]) and np.isnan(scores["estoi"])  # not speech unless asked
    assert scores["outside_db"] == pytest.approx(outside_db(estimate, rate, 0.5, 1.0))
    assert scores["outside_db"] == pytest.approx(-20.0, abs=0.5) and scores["silent"] is False
    assert score(0.01 * reference, reference, mixture, rate)["silent"] is True
    speech = score(estimate, reference, mixture, rate, speech=True)
    assert {k: speech[k] for k in ("stoi", "estoi")} == pytest.approx(stoi_scores(estimate, reference, rate))
    # a given baseline is used as it is
    given = score(estimate, reference, mixture, rate, baseline={"si_sdr": 0.0, "sdr": 0.0})
    assert given["si_sdri"] == pytest.approx(given["si_sdr"]) and given["sdri"] == pytest.approx(given["sdr"])
