"""The reports' spectrograms: the same picture as matplotlib's specgram for a clip, bounded work for an hour."""

import numpy as np
import pytest

from eventsep.report import SPECTROGRAM_FFT, spectrogram_db


def _tones(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


def test_a_clip_is_drawn_as_matplotlib_draws_it():
    from matplotlib import mlab

    samples = _tones(2.0) + np.random.default_rng(0).normal(0, 0.01, 32000).astype(np.float32)
    ours = spectrogram_db(samples)
    power, _, _ = mlab.specgram(samples.astype(np.float64), NFFT=SPECTROGRAM_FFT, Fs=16000,
                                noverlap=SPECTROGRAM_FFT // 2)
    theirs = 10 * np.log10(power + 1e-20)
    assert ours.shape == theirs.shape
    # the same picture up to a constant (the report scales each picture to its first panel's peak); matplotlib's
    # one-sided density doubles every bin but 0 Hz and Nyquist, 3 dB that the picture's edge rows may differ by
    difference = ((ours - ours.max()) - (theirs - theirs.max()))[1:-1]
    assert np.abs(difference[ours[1:-1] > ours.max() - 60]).max() < 0.05


def test_a_long_recording_has_bounded_columns_and_keeps_its_sounds():
    samples = np.concatenate([_tones(20.0), np.zeros(20 * 16000, np.float32)])
    level = spectrogram_db(samples, columns=100)
    assert level.shape[0] == SPECTROGRAM_FFT // 2 + 1 and 50 <= level.shape[1] <= 100
    first, second = level[:, : level.shape[1] // 2 - 2], level[:, level.shape[1] // 2 + 2:]
    assert np.argmax(first.mean(axis=1)) == pytest.approx(1000 / 16000 * SPECTROGRAM_FFT, abs=1)
    assert second.max() < first.max() - 100  # the silent half stays silent
    stereo = np.stack([samples, samples], axis=1)
    assert np.allclose(spectrogram_db(stereo, columns=100), level, atol=1e-3)
    assert spectrogram_db(np.ones(10, np.float32)).shape == (SPECTROGRAM_FFT // 2 + 1, 1)


def test_a_sum_of_parts_is_drawn_as_their_sum_would_be():
    """The report draws the mixture as target + residual frame by frame, never as a whole-length sum."""
    rng = np.random.default_rng(2)
    target, residual = (rng.standard_normal(40_000).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(spectrogram_db((target, residual), columns=50),
                               spectrogram_db(target + residual, columns=50), atol=1e-3)
    stereo = rng.standard_normal((40_000, 2)).astype(np.float32)
    np.testing.assert_allclose(spectrogram_db((stereo, -0.5 * stereo), columns=50),
                               spectrogram_db(0.5 * stereo.mean(axis=1), columns=50), atol=1e-3)
    short = (np.ones(10, np.float32), np.ones(10, np.float32))
    np.testing.assert_allclose(spectrogram_db(short), spectrogram_db(np.full(10, 2.0, np.float32)))
    with pytest.raises(ValueError, match="differ in shape"):
        spectrogram_db((target, residual[:100]))


def test_a_mask_gain_that_was_not_applied_is_not_drawn_as_the_answers_mask():
    from types import SimpleNamespace

    from eventsep.report import applied_gain

    gain = np.linspace(0.0, 1.0, 8, dtype=np.float32)
    for mask_at, drawn in (("output", True), ("input", True), ("none", False)):
        result = SimpleNamespace(gain=gain, options={"mask": {"mode": "soft", "mask_at": mask_at}})
        assert (applied_gain(result) is gain) == drawn, mask_at


@pytest.mark.parametrize("shape", [(50_000,), (50_000, 2)])
def test_a_picture_from_a_raw_file_is_the_picture_of_its_samples(tmp_path, shape):
    """Long recordings in blocks draw their report from raw files read frame by frame (RawSamples), never mapped."""
    from eventsep.audio import RawSamples

    samples = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    other = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    for name, data in (("a", samples), ("b", other)):
        data.tofile(tmp_path / name)
    raw, raw_other = RawSamples(tmp_path / "a", shape), RawSamples(tmp_path / "b", shape)
    assert len(raw) == 50_000 and raw.ndim == len(shape)
    np.testing.assert_array_equal(raw.read(1000, 1010), samples[1000:1010])
    np.testing.assert_array_equal(raw.frames(2048, 700),
                                  np.lib.stride_tricks.sliding_window_view(samples, 2048, axis=0)[::700])
    np.testing.assert_array_equal(spectrogram_db(raw, columns=60), spectrogram_db(samples, columns=60))
    np.testing.assert_array_equal(spectrogram_db((raw, raw_other), columns=60),
                                  spectrogram_db((samples, other), columns=60))
    assert raw.read(5, 5).shape == (0, *shape[1:]) and raw.read(49_998, 60_000).shape == (2, *shape[1:])
    short = RawSamples(tmp_path / "a", (1000, *shape[1:]))  # shorter than one frame: padded as an array is
    assert short.frames(2048, 512).shape == (0, *shape[1:], 2048)
    np.testing.assert_array_equal(spectrogram_db(short), spectrogram_db(samples[:1000]))
