import numpy as np
import pytest
import torch

from eventsep.audio import resample
from eventsep.config import FusionParams
from eventsep.fusion import align, fuse, istft, residual, rms_match, stft
from eventsep.metrics import si_sdr

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


@pytest.mark.parametrize("mode, alone", [("band", "first"), ("band-reversed", "second")])
def test_a_split_at_or_above_nyquist_leaves_one_estimate(mode, alone):
    """8 kHz input, default split 4000 Hz: the whole band lies below the split."""
    first, second = tone(440, rate=8000), tone(440, rate=8000, amplitude=0.2)
    fused = fuse(first, 8000, second, 8000, FusionParams(mode=mode, split_hz=4000, rms_match=False), out_rate=8000)
    np.testing.assert_allclose(fused, first if alone == "first" else second, atol=1e-4)


def test_residual_is_mixture_minus_target():
    mixture, target = tone(440), tone(440, amplitude=0.2)
    np.testing.assert_allclose(residual(mixture, target), mixture - target)
    with pytest.raises(ValueError, match="shape"):
        residual(mixture, target[:-1])


@pytest.mark.parametrize("n_fft, hop, length", [(2048, 512, 32000), (1024, 300, 10007), (64, 16, 999)])
def test_stft_and_istft_match_torch(n_fft, hop, length):
    signal = np.random.default_rng(2).standard_normal(length).astype(np.float32)
    window = torch.hann_window(n_fft, periodic=True)
    expected = torch.stft(torch.from_numpy(signal), n_fft, hop, window=window, center=True, return_complex=True)
    spectrum = stft(signal, n_fft, hop)
    assert spectrum.shape == tuple(expected.shape)
    np.testing.assert_allclose(spectrum, expected.numpy(), atol=1e-3 * np.abs(spectrum).max())
    inverse = torch.istft(expected, n_fft, hop, window=window, center=True, length=length).numpy()
    # Loose: a 1.6e-4 difference from torch.istft showed up twice in ~50 runs (cause not found); the
    # round trip below is held to 1e-5.
    np.testing.assert_allclose(istft(expected.numpy(), n_fft, hop, length), inverse, atol=1e-3)
    np.testing.assert_allclose(istft(spectrum, n_fft, hop, length), signal, atol=1e-5)


def test_alignment_ignores_a_stronger_match_beyond_the_bound():
    rng = np.random.default_rng(3)
    reference = rng.standard_normal(RATE).astype(np.float32)
    far, near = int(0.040 * RATE), int(0.005 * RATE)
    estimate = np.roll(reference, far) + 0.3 * np.roll(reference, near)  # echo 40 ms late, weaker copy 5 ms late
    assert align(reference, estimate, RATE, max_lag_ms=50)[1] == -far
    assert align(reference, estimate, RATE, max_lag_ms=20)[1] == -near
    assert align(reference, estimate, RATE, max_lag_ms=0)[1] == 0


def test_alignment_shifts_later_with_zero_fill():
    reference = np.zeros(1000, np.float32)
    reference[500] = 1.0
    estimate = np.zeros(1000, np.float32)
    estimate[480] = 1.0
    aligned, lag = align(reference, estimate, 1000, max_lag_ms=50)
    assert lag == 20 and aligned[500] == 1.0 and aligned.sum() == 1.0 and len(aligned) == 1000


@pytest.mark.parametrize("mode, expected", [("progressive", 0.75), ("progressive-reversed", 0.25)])
def test_progressive_weight_is_linear_up_to_the_second_nyquist(mode, expected):
    first = tone(2000)  # 2 kHz is a quarter of a 16 kHz estimate's 8 kHz Nyquist
    silent_second = np.zeros(16000 * 2, np.float32)
    fused = fuse(first, RATE, silent_second, 16000, FusionParams(mode=mode, rms_match=False), out_rate=RATE)
    assert np.sqrt(energy_at(fused, 2000) / energy_at(first, 2000)) == pytest.approx(expected, abs=0.01)


def test_rms_match_scales_to_the_reference_loudness():
    matched = rms_match(tone(440, amplitude=0.5), tone(440, amplitude=0.1))
    assert np.sqrt(np.mean(matched ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    silent = np.zeros(100, np.float32)
    np.testing.assert_array_equal(rms_match(tone(440)[:100], silent), silent)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="mono"):
        fuse(np.zeros((100, 2)), RATE, None, None, FusionParams(), out_rate=RATE)
    with pytest.raises(ValueError, match="second_rate"):
        fuse(tone(440), RATE, tone(440), None, FusionParams(), out_rate=RATE)
    with pytest.raises(ValueError, match="NaN"):
        fuse(np.full(100, np.nan), RATE, None, None, FusionParams(), out_rate=RATE)


def test_fuse_aligns_a_late_16k_estimate_before_combining():
    rng = np.random.default_rng(6)
    spectrum = np.fft.rfft(rng.standard_normal(RATE * 2))
    spectrum[np.fft.rfftfreq(RATE * 2, 1 / RATE) > 6000] = 0  # content the 16 kHz estimate can hold
    bursts = (np.arange(RATE * 2) % 3200) < 960  # 30 ms of noise every 100 ms: misalignment shows
    first = (np.fft.irfft(spectrum) / 20 * bursts).astype(np.float32)
    late = np.concatenate([np.zeros(int(0.017 * RATE), np.float32), first])[: len(first)]
    second = resample(late, RATE, 16000)
    params = FusionParams(mode="rate", alpha=0.0, max_lag_ms=50)  # magnitudes all from the second
    aligned = fuse(first, RATE, second, 16000, params, out_rate=RATE)
    unaligned = fuse(first, RATE, second, 16000, params.model_copy(update={"max_lag_ms": 0}), out_rate=RATE)
    assert si_sdr(aligned[RATE // 10:], first[RATE // 10:]) > 30
    assert si_sdr(unaligned[RATE // 10:], first[RATE // 10:]) < 10


def test_loudness_matching_brings_a_quiet_second_estimate_to_the_first():
    """With rms_match (the default) a second estimate at 0.1x the first's level is scaled to it before the
    magnitudes mix, so rate fusion at alpha 0.5 gives the first back; without it, 0.5 + 0.5 x 0.1 = 0.55x."""
    first = tone(1000) + tone(2500, amplitude=0.2)
    matched = fuse(first, RATE, 0.1 * first, RATE, FusionParams(mode="rate", alpha=0.5), out_rate=RATE)
    np.testing.assert_allclose(matched, first, atol=2e-3)
    unmatched = fuse(first, RATE, 0.1 * first, RATE, FusionParams(mode="rate", alpha=0.5, rms_match=False),
                     out_rate=RATE)
    assert np.sqrt(np.mean(unmatched ** 2) / np.mean(first ** 2)) == pytest.approx(0.55, rel=0.01)
