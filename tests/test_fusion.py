import numpy as np
import pytest

from eventsep.audio import resample
from eventsep.config import FusionParams, ParamError
from eventsep.fusion import align, fuse, residual

RATE = 32000


def tone(freq, seconds=2.0, rate=RATE, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def energy_at(signal, freq, rate=RATE):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    freqs = np.fft.rfftfreq(len(signal), 1 / rate)
    band = (freqs > freq - 20) & (freqs < freq + 20)
    return float(np.sum(spectrum[band] ** 2))


def test_band_takes_first_below_split_and_second_above():
    first = tone(1000) + tone(6000)   # both estimates hold both tones, at different levels
    second = 0.2 * first
    params = FusionParams(mode="band", split_hz=3000, rms_match=False)
    fused = fuse(first, RATE, second, RATE, params, out_rate=RATE)
    assert energy_at(fused, 1000) == pytest.approx(energy_at(first, 1000), rel=0.05)
    assert energy_at(fused, 6000) == pytest.approx(energy_at(second, 6000), rel=0.05)
    reversed_ = fuse(first, RATE, second, RATE, params.model_copy(update={"mode": "band-reversed"}),
                     out_rate=RATE)
    assert energy_at(reversed_, 1000) == pytest.approx(energy_at(second, 1000), rel=0.05)
    assert energy_at(reversed_, 6000) == pytest.approx(energy_at(first, 6000), rel=0.05)


@pytest.mark.parametrize("mode", ["rate", "band", "band-reversed", "progressive", "progressive-reversed"])
def test_full_band_survives_fusion_with_a_16k_estimate(mode):
    first = tone(1000) + tone(12000)
    second = resample(tone(1000), RATE, 16000)  # nothing above 8 kHz
    fused = fuse(first, RATE, second, 16000, FusionParams(mode=mode, alpha=0.0, split_hz=3000), out_rate=RATE)
    assert energy_at(fused, 12000) == pytest.approx(energy_at(first, 12000), rel=0.05)


def test_rate_alpha_one_returns_the_first():
    first, second = tone(500), tone(700)
    fused = fuse(first, RATE, second, RATE, FusionParams(mode="rate", alpha=1.0), out_rate=RATE)
    np.testing.assert_allclose(fused, first, atol=1e-4)


def test_rate_mixes_magnitudes():
    first = tone(1000)
    fused = fuse(first, RATE, 0.0 * first + 1e-9, RATE, FusionParams(mode="rate", alpha=0.25, rms_match=False),
                 out_rate=RATE)
    assert np.sqrt(energy_at(fused, 1000) / energy_at(first, 1000)) == pytest.approx(0.25, rel=0.02)


def test_alignment_recovers_a_known_shift_within_the_bound():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(RATE).astype(np.float32)
    lag = int(0.017 * RATE)
    shifted = np.concatenate([np.zeros(lag, np.float32), reference[:-lag]])
    aligned, found = align(reference, shifted, RATE, max_lag_ms=50)
    assert found == -lag
    np.testing.assert_allclose(aligned[: RATE - lag], reference[: RATE - lag], atol=1e-5)
    _, limited = align(reference, shifted, RATE, max_lag_ms=10)
    assert abs(limited) <= int(0.010 * RATE)


def test_output_has_the_requested_rate_and_length():
    fused = fuse(tone(440, rate=32000), 32000, tone(440, rate=16000), 16000, FusionParams(), out_rate=44100,
                 out_length=88200)
    assert fused.shape == (88200,) and fused.dtype == np.float32


def test_single_estimate_is_passed_through():
    first = tone(440)
    np.testing.assert_array_equal(fuse(first, RATE, None, None, FusionParams(), out_rate=RATE), first)


def test_split_at_or_above_nyquist_is_refused():
    with pytest.raises(ParamError, match="Nyquist"):
        fuse(tone(440, rate=8000), 8000, tone(440, rate=8000), 8000, FusionParams(split_hz=4000), out_rate=8000)


def test_residual_is_mixture_minus_target():
    mixture, target = tone(440), tone(440, amplitude=0.2)
    np.testing.assert_allclose(residual(mixture, target), mixture - target)
    with pytest.raises(ValueError, match="samples"):
        residual(mixture, target[:-1])
