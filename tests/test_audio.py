import subprocess

import numpy as np
import pytest
import soundfile

from eventsep.audio import AudioError, audio_from_array, load_audio, resample, write_audio

RATE = 48000


def tone(seconds=1.0, rate=RATE, freq=1000.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(signal, rate):
    spectrum = np.abs(np.fft.rfft(signal))
    return np.fft.rfftfreq(len(signal), 1 / rate)[np.argmax(spectrum)]


def test_stereo_is_mixed_down_to_the_mean(tmp_path):
    left, right = tone(), tone(freq=500.0)
    soundfile.write(tmp_path / "s.wav", np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    audio = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(audio.samples, (left + right) / 2, atol=1e-6)
    assert audio.sample_rate == RATE and audio.samples.dtype == np.float32


def test_resampling_keeps_frequency_and_length(tmp_path):
    write_audio(tmp_path / "t.wav", tone(), RATE)
    audio = load_audio(tmp_path / "t.wav", sample_rate=32000)
    assert audio.sample_rate == 32000 and len(audio.samples) == round(RATE * 32 / 48)
    assert dominant_frequency(audio.samples, 32000) == pytest.approx(1000.0, abs=2)


@pytest.mark.parametrize("suffix, extra", [(".ogg", ["-c:a", "libvorbis"]), (".mp3", [])])
def test_compressed_formats_are_read(tmp_path, suffix, extra):
    write_audio(tmp_path / "t.wav", tone(), RATE)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(tmp_path / "t.wav"), *extra,
                    str(tmp_path / f"t{suffix}")], check=True)
    audio = load_audio(tmp_path / f"t{suffix}")
    assert dominant_frequency(audio.samples, audio.sample_rate) == pytest.approx(1000.0, abs=5)


def make_bad(tmp_path, kind):
    path = tmp_path / "bad.wav"
    if kind == "text":
        path.write_text("this is not audio")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "short":
        soundfile.write(path, tone(0.05), RATE)
    elif kind == "nan":
        samples = tone()
        samples[100] = np.nan
        soundfile.write(path, samples, RATE, subtype="FLOAT")
    elif kind == "missing":
        pass
    elif kind == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind, problem", [
    ("text", "not an audio file"), ("empty", "empty"), ("short", "shorter than 0.1 s"),
    ("nan", "NaN or Inf"), ("missing", "no such file"), ("directory", "is a directory")])
def test_bad_input_raises_one_error_type_with_one_line(tmp_path, kind, problem):
    path = make_bad(tmp_path, kind)
    with pytest.raises(AudioError) as caught:
        load_audio(path)
    message = str(caught.value)
    assert problem in message and message.startswith(str(path)) and "\n" not in message


def test_array_input_is_validated():
    with pytest.raises(AudioError, match="NaN"):
        audio_from_array(np.array([0.0, np.inf] * 4000), 16000)
    assert audio_from_array(np.zeros((2, 16000)), 16000).samples.shape == (16000,)


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path, monkeypatch):
    write_audio(tmp_path / "out.flac", tone(), RATE)
    before = (tmp_path / "out.flac").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(soundfile, "write", crash)
    with pytest.raises(OSError):
        write_audio(tmp_path / "out.flac", tone(freq=300), RATE)
    assert (tmp_path / "out.flac").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.flac"]


def test_unknown_output_format_is_refused(tmp_path):
    with pytest.raises(AudioError, match="use .wav or .flac"):
        write_audio(tmp_path / "x.mp3", tone(), RATE)


def test_resample_identity_when_rates_match():
    samples = tone()
    assert resample(samples, RATE, RATE) is samples
