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


# ---------------------------------------------------------------- argument guards, boundaries and edge cases

def test_an_audio_error_is_one_line_whatever_the_problem_text():
    error = AudioError(tmp := "dir/a.wav", "cannot be decoded (line one\n   line two\tend)  ")
    assert error.path == tmp and error.problem == "cannot be decoded (line one line two end)"
    assert str(error) == "dir/a.wav: cannot be decoded (line one line two end)"
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("rate", [True, "8000", float("inf"), float("nan"), 0, -1, 0.5, None, [8000]])
def test_a_sample_rate_must_be_a_positive_whole_number(rate):
    with pytest.raises(AudioError, match=r"^clip: sample rate must be a positive whole number of Hz, got "):
        audio_from_array(np.zeros(8000, np.float32), rate, name="clip")


@pytest.mark.parametrize("rate", [8000, 8000.0, np.int64(8000), np.float32(8000), 1])
def test_a_whole_sample_rate_is_kept_as_an_int(rate):
    audio = Audio(np.zeros(10, np.float32), rate)
    assert audio.sample_rate == int(rate) and type(audio.sample_rate) is int


def test_audio_duration_and_channels():
    samples = np.zeros(12000, np.float32)
    assert Audio(samples, 8000).duration == 1.5
    stereo = np.arange(24000, dtype=np.float64).reshape(12000, 2)
    audio = Audio(samples, 8000, channels=stereo)
    assert audio.channels.dtype == np.float32 and audio.channels.shape == (12000, 2)
    np.testing.assert_array_equal(audio.channels, stereo)
    assert Audio(samples, 8000, channels=np.zeros((12000, 1))).channels is None  # one channel: only the mix
    for bad in (np.zeros((11999, 2)), np.zeros(12000), np.zeros((12000, 2, 1))):
        with pytest.raises(AudioError, match=r"^s\.wav: channels must have shape \(12000, c\), got "):
            Audio(samples, 8000, source="s.wav", channels=bad)


def test_audio_names_its_source_in_errors():
    with pytest.raises(AudioError, match=r"^<array>: Audio needs mono samples of shape \(n,\), got shape \(4, 2\)"):
        Audio(np.zeros((4, 2), np.float32), 16000)
    with pytest.raises(AudioError, match=r"^a\.wav: sample rate must be"):
        Audio(np.zeros(4, np.float32), 0, source="a.wav")


def test_the_shortest_accepted_length_is_exactly_min_seconds():
    assert len(audio_from_array(np.zeros(800, np.float32), 8000).samples) == 800  # 0.1 s exactly
    with pytest.raises(AudioError, match=r"^<array>: shorter than 0\.1 s \(0\.0999 s\)$"):
        audio_from_array(np.zeros(799, np.float32), 8000)
    with pytest.raises(AudioError, match=r"^<array>: shorter than 0\.25 s \(0\.2 s\)$"):
        audio_from_array(np.zeros(1600, np.float32), 8000, min_seconds=0.25)
    assert len(audio_from_array(np.zeros(1, np.float32), 8000, min_seconds=0).samples) == 1


@pytest.mark.parametrize("dtype, value, expected", [
    (np.int8, -128, -1.0), (np.int8, 64, 0.5), (np.int32, 2 ** 30, 0.5), (np.int64, -(2 ** 62), -0.5),
    (np.int16, 32767, 32767 / 32768)])
def test_signed_integers_are_scaled_by_their_full_scale(dtype, value, expected):
    audio = audio_from_array(np.full(800, value, dtype=dtype), 8000)
    assert audio.samples.dtype == np.float32
    np.testing.assert_array_equal(audio.samples, np.full(800, expected, np.float32))


@pytest.mark.parametrize("samples, dtype", [
    (np.zeros(800, np.uint8), "uint8"), (np.zeros(800, np.complex64), "complex64"), (np.zeros(800, bool), "bool")])
def test_other_dtypes_are_refused_by_name(samples, dtype):
    with pytest.raises(AudioError, match=f"^clip: samples must be floats or signed integers, got dtype {dtype}$"):
        audio_from_array(samples, 8000, name="clip")


def test_float16_and_float64_arrays_are_taken_as_they_are():
    for dtype in (np.float16, np.float64):
        audio = audio_from_array(np.full(800, 0.5, dtype), 8000)
        assert audio.samples.dtype == np.float32 and (audio.samples == 0.5).all()


def test_channels_first_arrays_are_recognised_by_their_shape():
    # up to 8 rows and more columns than rows: (channels, n)
    eight = np.repeat(np.arange(8, dtype=np.float32)[:, None], 800, axis=1)
    audio = audio_from_array(eight, 8000)
    assert len(audio.samples) == 800 and audio.channels.shape == (800, 8)
    np.testing.assert_allclose(audio.samples, 3.5)
    # nine rows are nine frames of 800 channels (then too short), a square array is frames first
    with pytest.raises(AudioError, match="shorter than"):
        audio_from_array(np.zeros((9, 800), np.float32), 8000)
    square = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32)
    np.testing.assert_array_equal(audio_from_array(square, 8000, min_seconds=0).samples, [2, 5, 8])
    wide = np.array([[1, 2, 3], [4, 5, 6]], np.float32)  # two rows, three columns: two channels
    np.testing.assert_array_equal(audio_from_array(wide, 8000, min_seconds=0).samples, [2.5, 3.5, 4.5])


def test_a_one_column_array_is_mono_and_keeps_no_channels():
    column = np.linspace(-1, 1, 800, dtype=np.float32)[:, None]
    audio = audio_from_array(column, 8000)
    np.testing.assert_array_equal(audio.samples, column[:, 0])
    assert audio.channels is None
    assert audio_from_array(column[:, 0], 8000).channels is None


def test_stereo_arrays_keep_their_channels_beside_the_mix():
    stereo = np.stack([np.full(800, 0.25), np.full(800, -0.75)], axis=1)  # float64 in
    audio = audio_from_array(stereo, 8000)
    assert audio.channels.dtype == np.float32 and audio.channels.shape == (800, 2)
    np.testing.assert_array_equal(audio.channels, stereo)
    np.testing.assert_array_equal(audio.samples, np.full(800, -0.25, np.float32))


def test_the_mix_down_is_the_float64_mean_rounded_once():
    # 1 + 2**-24 + 2**-24 summed in float32 stays 1; in float64 it is 1 + 2**-23, whose third rounds up
    frames = np.tile(np.array([[1.0, 2.0 ** -24, 2.0 ** -24]], np.float32), (800, 1))
    assert audio_from_array(frames, 8000).samples[0] == np.float32((1 + 2.0 ** -23) / 3)


@pytest.mark.parametrize("samples, problem", [
    (np.float32(0.5), "expected shape (n,), (n, channels) or (channels, n), got ()"),
    (np.zeros((2, 2, 800)), "expected shape (n,), (n, channels) or (channels, n), got (2, 2, 800)"),
    ([[0.0, 1.0], [2.0]], "not an array of samples ("),
])
def test_a_shape_that_is_not_audio_is_named(samples, problem):
    with pytest.raises(AudioError) as caught:
        audio_from_array(samples, 8000, name="clip")
    assert str(caught.value).startswith(f"clip: {problem}")


def test_nan_inf_and_empty_arrays_are_refused_before_the_length_check():
    with pytest.raises(AudioError, match=r"^<array>: empty \(no samples\)$"):
        audio_from_array(np.zeros(0, np.float64), 8000)
    with pytest.raises(AudioError, match=r"^<array>: contains NaN or Inf samples$"):
        audio_from_array(np.array([0.0, -np.inf] * 400), 8000)
    with pytest.raises(AudioError, match=r"contains NaN or Inf samples"):
        audio_from_array(np.array([[0.0, np.nan]] * 800), 8000)  # NaN in one channel of two


def test_loading_at_the_files_own_rate_does_not_resample(tmp_path, monkeypatch):
    samples = sine(440, 0.5, 16000)
    write_audio(tmp_path / "a.wav", samples, 16000)
    monkeypatch.setattr(audio_module, "resample", lambda *args: pytest.fail("resampled at the same rate"))
    loaded = load_audio(tmp_path / "a.wav", sample_rate=16000)
    assert loaded.sample_rate == 16000 and type(loaded.sample_rate) is int
    np.testing.assert_array_equal(loaded.samples, samples)


def test_a_multichannel_file_keeps_its_channels_and_resamples_them(tmp_path):
    stereo = np.stack([sine(300, 0.5, 16000, 0.6), sine(700, 0.5, 16000, 0.2)], axis=1)
    write_audio(tmp_path / "s.wav", stereo, 16000)
    loaded = load_audio(tmp_path / "s.wav")
    np.testing.assert_array_equal(loaded.channels, stereo)
    halved = load_audio(tmp_path / "s.wav", sample_rate=8000)
    assert halved.sample_rate == 8000 and len(halved.samples) == 4000 and halved.channels.shape == (4000, 2)
    assert peak_frequency(halved.channels[:, 0], 8000) == pytest.approx(300, abs=4)
    assert peak_frequency(halved.channels[:, 1], 8000) == pytest.approx(700, abs=4)
    mono = load_audio(tmp_path / "s.wav", sample_rate=8000)
    np.testing.assert_allclose(mono.samples, halved.channels.mean(axis=1), atol=1e-5)
    write_audio(tmp_path / "m.wav", stereo[:, 0], 16000)
    assert load_audio(tmp_path / "m.wav", sample_rate=8000).channels is None


def test_a_bad_target_rate_is_named_before_the_file_is_looked_at(tmp_path):
    with pytest.raises(AudioError) as caught:
        load_audio(tmp_path / "missing.wav", sample_rate=0)
    assert str(caught.value) == f"{tmp_path / 'missing.wav'}: sample rate must be a positive whole number of Hz, got 0"


def test_a_decoder_failure_is_one_line_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    write_audio(path, sine(440, 0.5, 8000), 8000)

    def broken(*args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(audio_module.soundfile, "read", broken)
    with pytest.raises(AudioError) as caught:
        load_audio(path)
    assert str(caught.value) == f"{path}: cannot be decoded (decoder exploded)"


def test_a_libsndfile_error_drops_its_final_full_stop(tmp_path, monkeypatch):
    path = tmp_path / "a.flac"
    write_audio(path, sine(440, 0.5, 8000), 8000)

    def lost_sync(*args, **kwargs):
        raise soundfile.LibsndfileError(2, "Error opening: ")  # code 2: not "unrecognised format"

    monkeypatch.setattr(audio_module.soundfile, "read", lost_sync)
    monkeypatch.setattr(soundfile.LibsndfileError, "error_string", property(lambda self: "Internal error."))
    with pytest.raises(AudioError) as caught:
        load_audio(path)
    assert str(caught.value) == f"{path}: cannot be decoded (Internal error)"


def test_a_flac_cut_short_cannot_be_decoded(tmp_path):
    path = tmp_path / "a.flac"
    write_audio(path, (0.1 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32), 16000)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioError, match=r"cannot be decoded \(.*\)$") as caught:
        load_audio(path)
    assert str(caught.value).startswith(f"{path}: ")


# ---------------------------------------------------------------- check_whole: is a file finished?

def _wav(tmp_path, frames=800):
    path = tmp_path / "a.wav"
    soundfile.write(path, np.zeros(frames, np.float32), 8000, subtype="PCM_16")
    return path


def test_a_whole_file_passes_and_an_empty_one_does_not(tmp_path):
    from eventsep.audio import check_whole

    check_whole(_wav(tmp_path))
    write_audio(tmp_path / "b.flac", sine(440, 0.5, 8000), 8000)
    check_whole(tmp_path / "b.flac")
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(AudioError) as caught:
        check_whole(tmp_path / "e.wav")
    assert str(caught.value) == f"{tmp_path / 'e.wav'}: empty"


def test_a_wav_shorter_than_its_header_promises_is_truncated(tmp_path):
    from eventsep.audio import check_whole

    path = _wav(tmp_path)  # 44-byte header + 1600 bytes: RIFF size 1636, file 1644
    blob = path.read_bytes()
    assert len(blob) == 1644 and int.from_bytes(blob[4:8], "little") == 1636
    path.write_bytes(blob[:-1])
    with pytest.raises(AudioError) as caught:
        check_whole(path)
    assert str(caught.value) == f"{path}: truncated (the header promises 1644 bytes, the file has 1643)"
    path.write_bytes(blob + b"\x00\x00")  # longer than promised (a trailing chunk's padding): whole
    check_whole(path)


@pytest.mark.parametrize("riff_size", [0, 0xFFFFFFFF])
def test_a_streaming_writers_wav_header_is_not_read_as_a_promise(tmp_path, riff_size):
    from eventsep.audio import check_whole

    path = _wav(tmp_path)
    blob = bytearray(path.read_bytes())
    blob[4:8] = riff_size.to_bytes(4, "little")
    path.write_bytes(bytes(blob))
    check_whole(path)


def test_a_file_that_decodes_fewer_frames_than_it_declares_is_truncated(tmp_path, monkeypatch):
    from eventsep.audio import check_whole

    path = tmp_path / "a.ogg"
    path.write_bytes(b"OggS" + bytes(100))

    class Declares:  # a decoder that declares 1000 frames and yields 600 (in blocks of 200)
        frames = 1000

        def __init__(self, name):
            assert name == str(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def blocks(self, size, dtype):
            return iter([np.zeros(200, np.float32)] * 3)

    monkeypatch.setattr(audio_module.soundfile, "SoundFile", Declares)
    with pytest.raises(AudioError) as caught:
        check_whole(path)
    assert str(caught.value) == f"{path}: truncated (decoded 600 of 1000 frames)"
    Declares.frames = 600
    check_whole(path)
    Declares.frames = 1
    Declares.blocks = lambda self, size, dtype: iter([])
    with pytest.raises(AudioError) as caught:
        check_whole(path)
    assert str(caught.value) == f"{path}: truncated (decoded 0 of 1 frames)"
    Declares.frames = 0  # a format that does not know its length: whatever decodes is whole
    check_whole(path)


# ---------------------------------------------------------------- resampling and writing: edges

def test_resample_keeps_channels_and_returns_float32():
    stereo = np.stack([sine(500, 0.3, 48000), sine(900, 0.3, 48000)], axis=1).astype(np.float64)
    out = resample(stereo, 48000, 16000)
    assert out.shape == (4800, 2) and out.dtype == np.float32
    assert peak_frequency(out[:, 1], 16000) == pytest.approx(900, abs=4)
    with pytest.raises(AudioError, match=r"^resample: sample rate must be a positive whole number of Hz, got -1$"):
        resample(stereo, 48000, -1)
    with pytest.raises(AudioError, match=r"^resample: sample rate must be a positive whole number of Hz, got 0$"):
        resample(stereo, 0, 16000)
    assert len(resample(np.zeros(1001, np.float32), 3, 2)) == round(1001 * 2 / 3)


def test_write_rejects_bad_shapes_and_rates_without_leaving_a_file(tmp_path):
    with pytest.raises(AudioError) as caught:
        write_audio(tmp_path / "a.wav", np.zeros((2, 2, 2)), 8000)
    assert str(caught.value) == f"{tmp_path / 'a.wav'}: samples must have shape (n,) or (n, channels), got (2, 2, 2)"
    with pytest.raises(AudioError, match=r"a\.wav: sample rate must be a positive whole number of Hz, got 0$"):
        write_audio(tmp_path / "a.wav", np.zeros(10), 0)
    assert list(tmp_path.iterdir()) == []


def test_a_lower_case_subtype_is_accepted(tmp_path):
    path = write_audio(tmp_path / "a.wav", np.zeros(100, np.float32), 8000, subtype="pcm_24")
    assert soundfile.info(path).subtype == "PCM_24"


def test_float_wav_has_no_peak_chunk_so_the_same_samples_give_the_same_bytes(tmp_path):
    samples = sine(440, 0.1, 8000)
    first = write_audio(tmp_path / "a.wav", samples, 8000).read_bytes()
    assert b"PEAK" not in first
    assert write_audio(tmp_path / "b.wav", samples, 8000).read_bytes() == first


def test_ogg_is_clipped_to_full_scale(tmp_path):
    loud = sine(440, 0.5, 8000, amplitude=3.0)
    read = soundfile.read(write_audio(tmp_path / "a.ogg", loud, 8000), dtype="float32")[0]
    assert len(read) == len(loud) and 0.8 < np.abs(read).max() < 1.3  # unclipped it would peak near 3


def test_an_empty_recording_is_written_as_a_valid_empty_wav(tmp_path):
    path = write_audio(tmp_path / "a.wav", np.zeros(0, np.float32), 8000)
    assert soundfile.info(path).frames == 0 and soundfile.info(path).samplerate == 8000


def test_an_empty_flac_is_refused_and_empty_wav_and_ogg_are_readable(tmp_path):
    # libsndfile writes no bytes for a FLAC without frames: a 0-byte .flac no reader opens (found by mutmut)
    with pytest.raises(AudioError, match="cannot write an empty FLAC"):
        write_audio(tmp_path / "a.flac", np.zeros(0, np.float32), 8000)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    for suffix in (".wav", ".ogg"):
        assert soundfile.info(write_audio(tmp_path / f"a{suffix}", np.zeros(0, np.float32), 8000)).frames == 0


@pytest.mark.parametrize("shape", [(0, 2), (2, 0)])  # raised IndexError in the mix-down (found by mutmut)
def test_an_empty_multichannel_array_is_refused_as_empty(shape):
    with pytest.raises(AudioError, match=r"^<array>: empty \(no samples\)$"):
        audio_from_array(np.zeros(shape, np.float32), 8000)


def test_pcm_32_keeps_32_bits(tmp_path):
    samples = np.array([0.5, -0.25, 2.0 ** -31, 3 * 2.0 ** -31, -1.0] * 20, np.float32)
    write_audio(tmp_path / "a.wav", samples, 8000, subtype="PCM_32")
    np.testing.assert_array_equal(soundfile.read(tmp_path / "a.wav", dtype="float64")[0], samples)


def test_energy_with_the_default_block_is_the_sum_of_squares():
    assert energy(np.array([3.0, 4.0], np.float32)) == 25.0
    assert energy(np.array([[1.0, 2.0], [2.0, 0.5]], np.float32)) == 9.25


def test_a_whole_big_endian_wav_is_whole_and_a_non_audio_file_is_named(tmp_path):
    from eventsep.audio import check_whole

    path = tmp_path / "be.wav"  # "RIFX" ... "WAVE": its size field is big-endian, not a promise read here
    soundfile.write(path, np.zeros(800, np.float32), 8000, subtype="PCM_16", endian="BIG")
    assert path.read_bytes()[:4] == b"RIFX"
    check_whole(path)
    text = tmp_path / "x.wav"
    text.write_text("not audio at all, but long enough to have a header")
    with pytest.raises(AudioError) as caught:
        check_whole(text)
    assert str(caught.value) == f"{text}: not an audio file (format not recognised)"


def test_double_wav_keeps_values_beyond_full_scale(tmp_path):
    samples = np.array([0.0, 1.7, -3.0, 0.25] * 100, np.float32)
    path = write_audio(tmp_path / "a.wav", samples, 8000, subtype="DOUBLE")
    assert soundfile.info(path).subtype == "DOUBLE"
    np.testing.assert_array_equal(soundfile.read(path, dtype="float32")[0], samples)
