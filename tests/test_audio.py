"""eventsep.audio: reading every format, mono mix-down, resampling, validation errors, atomic writes."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile

import eventsep.audio as audio_module
from eventsep.audio import Audio, AudioError, audio_from_array, energy, load_audio, resample, write_audio


def sine(freq, seconds, rate, amplitude=0.5):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(samples, rate):
    windowed = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(windowed))
    return np.argmax(spectrum) * rate / len(samples)


# ---------------------------------------------------------------- reading

def test_wav_roundtrip_is_exact_for_float(tmp_path):
    samples = sine(440, 0.5, 16000)
    write_audio(tmp_path / "a.wav", samples, 16000)
    loaded = load_audio(tmp_path / "a.wav")
    assert loaded.sample_rate == 16000
    assert loaded.samples.dtype == np.float32 and loaded.samples.ndim == 1
    assert loaded.samples.flags.c_contiguous
    np.testing.assert_array_equal(loaded.samples, samples)
    assert loaded.duration == pytest.approx(0.5)
    assert loaded.source == str(tmp_path / "a.wav")


def test_stereo_mixdown_is_the_mean_of_the_channels(tmp_path):
    left, right = sine(300, 0.5, 8000, 0.6), sine(1100, 0.5, 8000, 0.2)
    soundfile.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    loaded = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(loaded.samples, (left + right) / 2, atol=1e-7)


def test_resampling_48k_to_32k_keeps_frequency_and_length(tmp_path):
    n = 48000
    soundfile.write(tmp_path / "t.wav", sine(1000, 1.0, 48000), 48000, subtype="FLOAT")
    loaded = load_audio(tmp_path / "t.wav", sample_rate=32000)
    assert loaded.sample_rate == 32000
    assert len(loaded.samples) == round(n * 32 / 48)
    assert peak_frequency(loaded.samples, 32000) == pytest.approx(1000, abs=2)
    # Amplitude survives: the middle of a 0.5-amplitude sine has RMS 0.5/sqrt(2).
    middle = loaded.samples[4000:-4000]
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)


def test_resample_identity_and_length():
    samples = sine(1000, 0.3, 44100)
    assert resample(samples, 44100, 44100) is samples
    out = resample(samples, 44100, 16000)
    assert out.dtype == np.float32 and len(out) == round(len(samples) * 16000 / 44100)
    assert peak_frequency(out, 16000) == pytest.approx(1000, abs=4)
    with pytest.raises(ValueError, match="sample rate"):
        resample(samples, 0, 16000)


def test_reads_flac_and_ogg(tmp_path):
    samples = sine(1000, 0.5, 22050)
    write_audio(tmp_path / "a.flac", samples, 22050)
    soundfile.write(tmp_path / "a.ogg", samples, 22050, format="OGG", subtype="VORBIS")
    flac = load_audio(tmp_path / "a.flac")
    np.testing.assert_allclose(flac.samples, samples, atol=1 / 32768 + 1e-7)
    ogg = load_audio(tmp_path / "a.ogg")
    assert ogg.sample_rate == 22050
    assert peak_frequency(ogg.samples, 22050) == pytest.approx(1000, abs=3)


def test_reads_mp3_made_by_an_encoder(tmp_path):
    """An mp3 from ffmpeg (installed by scripts/setup.sh), else from libsndfile's own LAME encoder."""
    source, mp3 = tmp_path / "src.wav", tmp_path / "a.mp3"
    samples = np.stack([sine(1000, 1.0, 44100), sine(1000, 1.0, 44100)], axis=1)
    soundfile.write(source, samples, 44100, subtype="PCM_16")
    if shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), str(mp3)], check=True)
    else:
        soundfile.write(mp3, samples, 44100, format="MP3", subtype="MPEG_LAYER_III")
    loaded = load_audio(mp3)
    assert loaded.sample_rate == 44100
    assert abs(len(loaded.samples) - 44100) < 2400  # encoder padding, at most a couple of mp3 frames
    assert peak_frequency(loaded.samples, 44100) == pytest.approx(1000, abs=3)
    assert 0.25 < np.sqrt(np.mean(loaded.samples ** 2)) < 0.45


# ---------------------------------------------------------------- bad input: one AudioError, one line

def check_error(error_info, path, problem_start):
    error = error_info.value
    assert isinstance(error, ValueError)
    assert error.path == str(path) and error.problem.startswith(problem_start)
    assert str(error) == f"{path}: {error.problem}" and "\n" not in str(error)


def test_text_file_named_wav_is_not_audio(tmp_path):
    path = tmp_path / "x.wav"
    path.write_text("this is not a RIFF header, just text\n" * 10)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    check_error(info, path, "not an audio file")


def test_empty_file(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as info:
        load_audio(path)
    check_error(info, path, "empty")


def test_wav_with_no_samples(tmp_path):
    path = tmp_path / "x.wav"
    soundfile.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    check_error(info, path, "empty")


def test_too_short_file_names_its_length(tmp_path):
    path = tmp_path / "x.wav"
    soundfile.write(path, sine(440, 0.05, 16000), 16000)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    check_error(info, path, "shorter than 0.1 s")
    assert str(info.value) == f"{path}: shorter than 0.1 s (0.05 s)"
    assert len(load_audio(path, min_seconds=0.04).samples) == 800


def test_nan_samples_in_float_wav(tmp_path):
    path = tmp_path / "x.wav"
    samples = sine(440, 0.5, 16000)
    samples[100] = np.nan
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as info:
        load_audio(path)
    check_error(info, path, "contains NaN or Inf samples")


def test_missing_path(tmp_path):
    path = tmp_path / "nowhere" / "x.wav"
    with pytest.raises(AudioError) as info:
        load_audio(path)
    check_error(info, path, "no such file")


def test_directory(tmp_path):
    path = tmp_path / "x.wav"
    path.mkdir()
    with pytest.raises(AudioError) as info:
        load_audio(path)
    check_error(info, path, "is a directory")


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "x.wav"
    soundfile.write(path, sine(440, 0.5, 16000), 16000)

    def refuse(*args, **kwargs):  # tests may run as root, where chmod 000 does not stop reading
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(audio_module, "open", refuse, raising=False)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    check_error(info, path, "cannot be read (permission denied)")


def test_truncated_wav_cannot_be_decoded(tmp_path):
    path = tmp_path / "x.wav"
    soundfile.write(path, sine(440, 0.5, 16000), 16000)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}: ")


def test_bad_target_rate(tmp_path):
    path = tmp_path / "x.wav"
    soundfile.write(path, sine(440, 0.5, 16000), 16000)
    with pytest.raises(AudioError, match="positive whole number"):
        load_audio(path, sample_rate=-8000)


# ---------------------------------------------------------------- in-memory audio

def test_audio_from_array_shapes():
    left, right = sine(300, 0.2, 8000, 0.6), sine(900, 0.2, 8000, 0.2)
    expected = (left + right) / 2
    mono = audio_from_array(left, 8000)
    np.testing.assert_array_equal(mono.samples, left)
    assert mono.source == "<array>"
    frames_first = audio_from_array(np.stack([left, right], axis=1), 8000)
    channels_first = audio_from_array(np.stack([left, right], axis=0), 8000.0)
    np.testing.assert_allclose(frames_first.samples, expected, atol=1e-7)
    np.testing.assert_allclose(channels_first.samples, expected, atol=1e-7)
    assert channels_first.sample_rate == 8000 and isinstance(channels_first.sample_rate, int)


def test_audio_from_array_scales_int16():
    pcm = np.array([0, 16384, -32768] * 400, dtype=np.int16)
    audio = audio_from_array(pcm, 8000)
    np.testing.assert_array_equal(audio.samples[:3], np.array([0.0, 0.5, -1.0], np.float32))


@pytest.mark.parametrize("samples, rate, problem", [
    (np.zeros(0, np.float32), 8000, "empty"),
    (np.zeros(400, np.float32), 8000, "shorter than 0.1 s (0.05 s)"),
    (np.full(8000, np.inf, np.float32), 8000, "contains NaN or Inf samples"),
    (np.zeros((2, 2, 8000), np.float32), 8000, "expected shape"),
    (np.array(["a"] * 8000), 8000, "samples must be floats"),
    (np.zeros(8000, np.float32), 0, "sample rate must be"),
    (np.zeros(8000, np.float32), 8000.5, "sample rate must be"),
])
def test_audio_from_array_rejects(samples, rate, problem):
    with pytest.raises(AudioError) as info:
        audio_from_array(samples, rate, name="clip")
    assert str(info.value).startswith(f"clip: {problem}")


def test_audio_normalises_samples_and_keys():
    audio = Audio(np.arange(10, dtype=np.float64)[::2], 16000)
    assert audio.samples.dtype == np.float32 and audio.samples.flags.c_contiguous
    assert audio.key == Audio(np.array([0, 2, 4, 6, 8], np.float32), 16000).key
    assert audio.key != Audio(np.array([0, 2, 4, 6, 9], np.float32), 16000).key
    assert Audio(audio.samples, 16000, key_override="f" * 64).key == "f" * 64
    with pytest.raises(ValueError, match="shape"):
        Audio(np.zeros((4, 2), np.float32), 16000)


# ---------------------------------------------------------------- writing

def test_write_creates_folders_and_clips_integer_subtypes(tmp_path):
    samples = np.array([0.0, 0.5, 1.7, -3.0] * 100, np.float32)
    flac = write_audio(tmp_path / "deep" / "er" / "a.flac", samples, 8000)
    assert flac == tmp_path / "deep" / "er" / "a.flac"
    assert soundfile.info(flac).subtype == "PCM_16"
    read = soundfile.read(flac, dtype="float32")[0]
    assert read.max() == pytest.approx(1.0, abs=1 / 32768) and read.min() == pytest.approx(-1.0, abs=1 / 32768)
    wav = write_audio(tmp_path / "a.WAV", samples, 8000)
    assert soundfile.info(wav).subtype == "FLOAT"
    np.testing.assert_array_equal(soundfile.read(wav, dtype="float32")[0], samples)  # float keeps > 1
    pcm24 = write_audio(tmp_path / "b.wav", samples, 8000, subtype="PCM_24")
    assert soundfile.info(pcm24).subtype == "PCM_24"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.WAV", "b.wav", "deep"]


@pytest.mark.parametrize("name, subtype, bits", [
    ("a.wav", "PCM_16", 16), ("a.flac", "PCM_16", 16), ("a.wav", "PCM_24", 24), ("a.flac", "PCM_24", 24),
    ("a.wav", "PCM_U8", 8), ("a.flac", "PCM_S8", 8)])
def test_integer_subtypes_round_to_the_nearest_step(tmp_path, name, subtype, bits):
    rng = np.random.default_rng(3)
    samples = (0.4 * rng.standard_normal(4000)).astype(np.float32)
    write_audio(tmp_path / name, samples, 8000, subtype=subtype)
    full_scale = 2.0 ** (bits - 1)
    steps = np.clip(np.rint(samples.astype(np.float64) * full_scale), -full_scale, full_scale - 1)
    assert (steps == full_scale - 1).any() and (steps == -full_scale).any()  # clipping is exercised
    expected = steps / full_scale
    np.testing.assert_array_equal(soundfile.read(tmp_path / name, dtype="float64")[0], expected)


@pytest.mark.parametrize("name, subtype, samples, problem", [
    ("a.mp3", None, np.zeros(100), "cannot write .mp3"),
    ("a", None, np.zeros(100), "cannot write a file without a suffix"),
    ("a.flac", "FLOAT", np.zeros(100), "FLAC cannot store subtype FLOAT"),
    ("a.wav", None, np.array([0.0, np.nan]), "refusing to write NaN"),
])
def test_write_rejects(tmp_path, name, subtype, samples, problem):
    with pytest.raises(AudioError) as info:
        write_audio(tmp_path / name, samples, 8000, subtype=subtype)
    assert str(info.value) == f"{tmp_path / name}: {info.value.problem}"
    assert info.value.problem.startswith(problem)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, subtype", [("a.wav", None), ("a.flac", None), ("a.wav", "PCM_24")])
def test_writing_in_blocks_gives_the_file_of_one_block(tmp_path, monkeypatch, name, subtype):
    rng = np.random.default_rng(5)
    samples = (0.5 * rng.standard_normal((3001, 2))).astype(np.float32)
    whole = write_audio(tmp_path / "whole" / name, samples, 8000, subtype=subtype)
    monkeypatch.setattr(audio_module, "WRITE_BLOCK", 1000)  # four blocks, the last one frame long
    blocks = write_audio(tmp_path / "blocks" / name, samples, 8000, subtype=subtype)
    np.testing.assert_array_equal(soundfile.read(blocks, dtype="float64")[0],
                                  soundfile.read(whole, dtype="float64")[0])
    assert soundfile.info(blocks).frames == 3001


def test_ogg_written_in_blocks_is_as_close_to_the_samples_as_one_block(tmp_path, monkeypatch):
    """Vorbis encodes each write call's frames as they come, so the bytes differ with the block size; the
    sound must not."""
    samples = np.stack([sine(440, 0.5, 8000), sine(660, 0.5, 8000)], axis=1).astype(np.float32)
    whole = soundfile.read(write_audio(tmp_path / "whole.ogg", samples, 8000), dtype="float64")[0]
    monkeypatch.setattr(audio_module, "WRITE_BLOCK", 1000)
    blocks = soundfile.read(write_audio(tmp_path / "blocks.ogg", samples, 8000), dtype="float64")[0]
    assert blocks.shape == whole.shape == samples.shape
    error_whole, error_blocks = (float(np.sqrt(np.mean((x - samples) ** 2))) for x in (whole, blocks))
    assert error_blocks < 0.05 and error_blocks < 2 * error_whole + 1e-3


def test_a_bad_sample_in_a_later_block_leaves_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "out.flac"
    write_audio(target, sine(440, 0.2, 8000), 8000)
    before = target.read_bytes()
    monkeypatch.setattr(audio_module, "WRITE_BLOCK", 100)
    samples = np.zeros(1000, np.float32)
    samples[950] = np.inf
    with pytest.raises(AudioError, match="refusing to write NaN or Inf"):
        write_audio(target, samples, 8000)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.flac"]


def test_write_is_atomic_when_the_writer_crashes(tmp_path, monkeypatch):
    target = tmp_path / "out.wav"
    write_audio(target, sine(440, 0.2, 8000), 8000)
    before = target.read_bytes()

    def crash_halfway(self, *args, **kwargs):  # after the header is written, before the samples
        raise OSError("disk full")

    monkeypatch.setattr(audio_module.soundfile.SoundFile, "write", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_audio(target, np.zeros(8000, np.float32), 8000)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_write_replaces_existing_file(tmp_path):
    target = tmp_path / "out.flac"
    write_audio(target, sine(440, 0.2, 8000), 8000)
    write_audio(target, sine(880, 0.3, 8000), 8000)
    loaded = load_audio(target)
    assert len(loaded.samples) == 2400 and peak_frequency(loaded.samples, 8000) == pytest.approx(880, abs=15)


def test_energy_in_blocks_is_the_float64_sum_of_squares(monkeypatch):
    monkeypatch.setattr(audio_module, "ENERGY_BLOCK", 1000)
    samples = np.random.default_rng(4).standard_normal((2501, 2)).astype(np.float32) * 3
    assert energy(samples) == pytest.approx(float(np.sum(np.square(samples, dtype=np.float64))), rel=1e-12)
    assert energy(samples[:, 0]) == pytest.approx(float(np.sum(samples[:, 0].astype(np.float64) ** 2)), rel=1e-12)
    assert energy(np.zeros(0, np.float32)) == 0.0
