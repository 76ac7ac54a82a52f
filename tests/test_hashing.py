import os

import numpy as np

from eventsep import hashing
from eventsep.audio import load_audio, write_audio
from eventsep.config import FusionParams, MaskParams


def test_lossless_reencoding_keeps_the_recording_key(tmp_path):
    rng = np.random.default_rng(1)
    samples = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    write_audio(tmp_path / "a.wav", samples, 16000, subtype="PCM_16")
    wav = load_audio(tmp_path / "a.wav")
    write_audio(tmp_path / "b.flac", wav.samples, 16000, subtype="PCM_16")
    assert load_audio(tmp_path / "b.flac").key == wav.key
    (tmp_path / "a.wav").rename(tmp_path / "renamed.wav")
    assert load_audio(tmp_path / "renamed.wav").key == wav.key


def test_one_changed_sample_or_rate_changes_the_key():
    samples = np.zeros(1000, dtype=np.float32)
    changed = samples.copy()
    changed[500] = 1e-4
    key = hashing.recording_key(samples, 16000)
    assert hashing.recording_key(changed, 16000) != key
    assert hashing.recording_key(samples, 22050) != key
    assert len(key) == 64


def test_file_hash_is_memoised_until_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc" * 1000)
    reads = []
    real = hashing._read_sha256
    monkeypatch.setattr(hashing, "_read_sha256", lambda p: reads.append(p) or real(p))
    first = hashing.file_sha256(path)
    assert hashing.file_sha256(path) == first and len(reads) == 1
    path.write_bytes(b"abd" * 1000)
    os.utime(path, ns=(1, 1))
    assert hashing.file_sha256(path) != first and len(reads) == 2


def test_params_key_is_canonical():
    assert hashing.params_key(MaskParams(threshold=0.3, mode="hard")) == hashing.params_key(
        MaskParams(mode="hard", threshold=0.3))
    assert hashing.params_key(MaskParams(threshold=0.3)) != hashing.params_key(MaskParams(threshold=0.31))
    assert hashing.params_key(MaskParams()) != hashing.params_key(FusionParams())


def test_stage_key_depends_on_every_part():
    base = dict(stage="sed", version=1, params=MaskParams(), inputs={"a": "1"}, weights={"w": "x"})
    key = hashing.stage_key(**base)
    for change in ({"stage": "mask"}, {"version": 2}, {"params": MaskParams(threshold=0.1)},
                   {"inputs": {"a": "2"}}, {"weights": {"w": "y"}}):
        assert hashing.stage_key(**{**base, **change}) != key
    assert hashing.stage_key(**{**base, "inputs": {"b": "2", "a": "1"}}) == hashing.stage_key(
        **{**base, "inputs": {"a": "1", "b": "2"}})
