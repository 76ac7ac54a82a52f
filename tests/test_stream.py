"""Long recordings a block at a time (eventsep/stream.py): the same answer as the whole recording's run, written
as one set, through the command line and the flows; memory itself is measured by `eventsep bench long`."""

import json

import numpy as np
import pytest
import soundfile

from eventsep import backends, stream
from eventsep.api import local_runner, make_options, separate
from eventsep.audio import load_audio, write_audio
from eventsep.sed import SedOutput
from flows.cli import EXIT_OK, main
from standins import NUM_CLASSES


class FrameEnergySed:
    """Every class's probability follows each 10 ms frame's own level (no normalisation over the recording, unlike
    standin-sed), so a block's frames are the whole recording's frames."""

    name = "frame-energy-sed"

    def identity(self) -> str:
        return "frame-energy-sed-v1"

    def detect(self, samples: np.ndarray, sample_rate: int) -> SedOutput:
        hop = sample_rate // 100
        frames = len(samples) // hop + 1
        padded = np.pad(samples, (0, frames * hop - len(samples)))
        level = np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1))
        probs = np.clip(level * 4.0, 0.0, 1.0).astype(np.float32)
        return SedOutput(np.repeat(probs[:, None], NUM_CLASSES, axis=1), 100.0, self.name)


@pytest.fixture
def local_sed(cache_env):
    backends.register("sed", "frame-energy-sed", FrameEnergySed)
    yield
    backends.unregister("sed", "frame-energy-sed")


def bursts(seconds: float, rate: int = 8000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A tone in bursts of 1-3 s over quiet noise: events all through the recording."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    on = np.zeros(len(t), bool)
    start = 0.5
    while start < seconds:
        length = rng.uniform(1.0, 3.0)
        on |= (t >= start) & (t < start + length)
        start += length + rng.uniform(1.0, 4.0)
    tone = 0.4 * np.sin(2 * np.pi * 440 * t) * on
    mono = (tone + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    if channels == 1:
        return mono
    return np.stack([mono * (0.5 + 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)


def test_blocks_cover_the_recording_once_with_context_either_side():
    layout = stream.blocks(100, 1, block_seconds=30, before_seconds=20, after_seconds=10)
    assert [(b.start, b.stop, b.core_start, b.core_stop) for b in layout] == [
        (0, 40, 0, 30), (10, 70, 30, 60), (40, 100, 60, 90), (70, 100, 90, 100)]
    assert [layout[1].core, layout[3].core] == [slice(20, 50), slice(20, 30)]
    assert len(stream.blocks(3600 * 32000, 32000)) == 20  # an hour in the default 180 s blocks
    with pytest.raises(ValueError, match="blocks need a positive size and no negative context"):
        stream.blocks(100, 1, block_seconds=0)


def test_the_core_frames_of_each_block_join_into_the_whole_recordings_frames():
    rate, frame_rate = 100, 2.5  # a frame every 0.4 s; frame t of a block at block.start / rate + t / frame_rate
    whole = np.arange(11)[:, None]  # frames at 0, 0.4, ... 4.0 s of a 4.0 s recording (length // 40 + 1)
    layout = stream.blocks(400, rate, block_seconds=1.2, before_seconds=0.8, after_seconds=0.4)
    joined = []
    for index, block in enumerate(layout):
        first = int(round(block.start / rate * frame_rate))
        local = whole[first:first + (block.stop - block.start) // 40 + 1]
        joined.append(stream._core_frames(local, frame_rate, rate, block, index == len(layout) - 1))
    assert np.concatenate(joined)[:, 0].tolist() == list(range(11))


@pytest.mark.parametrize("query, fallback, channels", [
    ("the tone", "gated", 1),
    ("remove the tone", "gated", 1),
    ("the tone", "gated", 2),
])
def test_a_run_in_blocks_answers_as_the_whole_run(cache_env, local_sed, tmp_path, query, fallback, channels):
    audio = bursts(47.0, channels=channels)
    path = tmp_path / "long.wav"
    write_audio(path, audio, 8000)
    options = make_options(encoder="standin-encoder", sed="frame-energy-sed", separators=("standin-a",),
                           fallback=fallback, mask={"mode": "soft", "threshold": 0.5})
    whole = separate(str(path), query, options=options)
    result, paths = stream.separate_file(str(path), query, options, local_runner(), tmp_path / "out", "long",
                                         html=False, block_seconds=12.0, before_seconds=8.0, after_seconds=4.0)
    assert result.extra["blocks"].startswith("separated in 4 blocks of 12 s")
    for part, expected in (("target", whole.target), ("residual", whole.residual)):
        written, rate = soundfile.read(paths[part], dtype="float32")
        assert rate == 8000 and written.shape == expected.shape
        np.testing.assert_allclose(written, expected, atol=1e-6, rtol=0)
    assert [(e["label"], e["onset"], e["offset"]) for e in result.events] == [
        (e["label"], e["onset"], e["offset"]) for e in whole.events] and len(result.events) > 5
    assert np.allclose([e["peak"] for e in result.events], [e["peak"] for e in whole.events], atol=1e-6, rtol=0)
    assert result.extra["answer"] == whole.extra["answer"] and result.mapping == whole.mapping
    assert result.keys["recording"] == whole.keys["recording"]  # the whole recording's key, hashed a block at a time


def test_a_near_silent_answer_is_replaced_as_in_the_whole_run(cache_env, local_sed, tmp_path):
    from standins import GainSeparator

    backends.register("separator", "whisper-quiet", lambda: GainSeparator("whisper-quiet", 8000, 1e-3,
                                                                          cache_env / "weights" / "standin-a.bin"))
    path = tmp_path / "long.wav"
    write_audio(path, bursts(30.0), 8000)
    options = make_options(encoder="standin-encoder", sed="frame-energy-sed", separators=("whisper-quiet",),
                           mask={"mode": "soft"})
    whole = separate(str(path), "the tone", options=options)
    result, paths = stream.separate_file(str(path), "the tone", options, local_runner(), tmp_path / "out", "long",
                                         html=False, block_seconds=12.0, before_seconds=8.0, after_seconds=4.0)
    assert whole.extra["answer"] == result.extra["answer"] == "gated mixture"
    assert result.extra["warnings"] == whole.extra["warnings"]
    np.testing.assert_allclose(soundfile.read(paths["target"], dtype="float32")[0], whole.target, atol=1e-6, rtol=0)


def test_the_command_line_separates_a_long_recording_in_blocks(cache_env, local_sed, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stream, "STREAM_SECONDS", 20.0)
    monkeypatch.setattr(stream, "BLOCK_SECONDS", 12.0)
    monkeypatch.setattr(stream, "BEFORE_SECONDS", 8.0)
    monkeypatch.setattr(stream, "AFTER_SECONDS", 4.0)
    path = tmp_path / "long.wav"
    write_audio(path, bursts(30.0, channels=2), 8000)
    out = tmp_path / "out"
    code = main(["separate", str(path), "the tone", "-o", str(out), "--local", "--encoder", "standin-encoder",
                 "--sed", "frame-energy-sed", "--separators", "standin-a", "--quiet"])
    assert code == EXIT_OK
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"long.{part}" for part in ("target.wav", "residual.wav", "events.csv", "events.json", "report.json",
                                    "report.html", "report.png"))
    target, residual = (load_audio(out / f"long.{part}.wav") for part in ("target", "residual"))
    mixture = load_audio(path)
    assert target.channels.shape == (240000, 2)  # stereo in, stereo out, adding up to each channel
    np.testing.assert_allclose(target.channels + residual.channels, mixture.channels, atol=1e-5)
    report = json.loads((out / "long.report.json").read_text())
    assert report["blocks"].startswith("separated in 3 blocks of 12 s") and report["input"] == str(path)
    assert report["channels"].startswith("2 channels: separated on their mean")
    assert "long.target.wav" in (out / "long.report.html").read_text()
    assert "event" in capsys.readouterr().out
    assert not list(out.glob(".*")) and not list(tmp_path.glob(".out.*"))  # nothing staged is left


@pytest.mark.slow
def test_the_default_models_answer_in_blocks_as_on_the_whole_recording(cache_env, tmp_path):
    """YAMNet and the mini AudioSep (80 s of the example, 36 s blocks whose context starts inside the recording):
    within 1e-4 of the whole run everywhere, at the block edges too."""
    backends.unregister("sed", "standin-sed")
    example = load_audio("examples/accordion_and_speech.flac")
    path = tmp_path / "long.flac"
    write_audio(path, np.tile(example.samples, 8), example.sample_rate, subtype="PCM_16")
    whole = separate(str(path), "only the accordion")
    result, paths = stream.separate_file(str(path), "only the accordion", make_options(), local_runner(),
                                         tmp_path / "out", "long", html=False, block_seconds=36.0,
                                         before_seconds=36.0, after_seconds=36.0)
    target, _ = soundfile.read(paths["target"], dtype="float32")
    assert np.abs(target - whole.target).max() < 1e-4
    assert [(e["label"], e["onset"], e["offset"]) for e in result.events] == [
        (e["label"], e["onset"], e["offset"]) for e in whole.events]
    # YAMNet's int8 model turns the ~1e-7 differences of a block's resampled input (soxr on another stretch) into up
    # to 0.08 at a few frames: here one event's peak moves (0.72 -> 0.74), none of its times
    assert np.allclose([e["peak"] for e in result.events], [e["peak"] for e in whole.events], atol=0.05, rtol=0)


def test_an_answer_loud_only_in_its_seconds_is_trusted_as_in_the_whole_run(cache_env, local_sed, tmp_path):
    # a loud high tone with a 4 s gap where a quiet low tone plays alone: the low-pass stand-in's answer is more
    # than 20 dB under the mixture over the recording but the whole mixture in the gap, summed across block edges
    from eventsep.trust import level_db

    rate = 8000
    t = np.arange(30 * rate) / rate
    gap = (t >= 10.5) & (t < 14.5)  # across the edge of the 12 s blocks
    audio = np.where(gap, 0.02 * np.sin(2 * np.pi * 300 * t), 0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    path = tmp_path / "long.wav"
    write_audio(path, audio, rate)
    options = make_options(encoder="standin-encoder", sed="frame-energy-sed", separators=("standin-lowpass",),
                           mask={"mode": "soft"})
    whole = separate(str(path), "the tone", options=options)
    result, paths = stream.separate_file(str(path), "the tone", options, local_runner(), tmp_path / "out", "long",
                                         html=False, block_seconds=12.0, before_seconds=8.0, after_seconds=4.0)
    assert level_db(whole.target, audio) < -20
    assert whole.extra["answer"] == result.extra["answer"] == "separator"
    assert "untrusted" not in result.extra and "untrusted" not in whole.extra
