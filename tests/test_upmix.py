"""Stereo out: the mono mix's answer applied to each channel (eventsep.upmix), and the audio it comes from."""

import numpy as np

from eventsep import upmix as module
from eventsep.audio import audio_from_array, load_audio, write_audio
from eventsep.upmix import upmix

RATE = 16000


def tone(freq, seconds=2.0, level=0.3):
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_identical_channels_each_get_the_mono_answer():
    mix = tone(440) + tone(3000)
    answer = tone(440) * np.linspace(0, 1, len(mix), dtype=np.float32)  # a part of the mix, not the mix
    out = upmix(np.stack([mix, mix], axis=1), mix, answer)
    assert out.shape == (len(mix), 2)
    inner = slice(module.N_FFT, -module.N_FFT)  # the bound |ratio| <= 1 may act in the outermost frames
    np.testing.assert_allclose(out[inner, 0], answer[inner], atol=1e-5)
    np.testing.assert_allclose(out[inner, 1], answer[inner], atol=1e-5)


def test_a_source_panned_left_is_answered_from_the_left_channel():
    a, b = tone(440), tone(3000, level=0.1)
    left, right = a + b, b  # the 440 Hz tone only on the left
    mix = (left + right) / 2
    out = upmix(np.stack([left, right], axis=1), mix, a / 2)  # the mono answer: a's part of the mix
    inner = slice(4096, -4096)
    assert np.abs(out[inner, 0] - a[inner]).max() < 0.02  # the left target is the tone at its full level
    assert np.sqrt(np.mean(out[inner, 1] ** 2)) < 0.01  # the right channel has none of it


def test_blocks_give_the_same_samples_as_one_stft(monkeypatch):
    rng = np.random.default_rng(0)
    channels = rng.standard_normal((40000, 2)).astype(np.float32) * 0.1
    mix = channels.mean(axis=1)
    answer = (mix * np.hanning(len(mix))).astype(np.float32)
    whole = upmix(channels, mix, answer)
    monkeypatch.setattr(module, "BLOCK", 4 * module.HOP * 4)  # many block edges inside the recording
    np.testing.assert_allclose(upmix(channels, mix, answer), whole, atol=1e-5)


def test_stereo_input_keeps_its_channels_beside_the_mono_mix(tmp_path):
    left, right = tone(440), tone(880)
    path = tmp_path / "stereo.wav"
    write_audio(path, np.stack([left, right], axis=1), RATE)
    recording = load_audio(path)
    np.testing.assert_allclose(recording.samples, (left + right) / 2, atol=1e-6)
    np.testing.assert_allclose(recording.channels, np.stack([left, right], axis=1), atol=1e-6)
    assert load_audio(path, 8000).channels.shape == (len(recording.samples) // 2, 2)
    assert audio_from_array(np.stack([left, right]), RATE).channels.shape == (len(left), 2)
    write_audio(path, left, RATE)
    assert load_audio(path).channels is None and audio_from_array(left, RATE).channels is None


def test_a_channel_never_gets_more_than_it_has():
    quiet = np.random.default_rng(1).standard_normal(2 * RATE).astype(np.float32) * 1e-4
    out = upmix(np.stack([quiet, quiet], axis=1), quiet, tone(440))  # an answer the mix does not hold
    assert np.sqrt(np.mean(out ** 2)) <= 1.01 * np.sqrt(np.mean(quiet ** 2))
