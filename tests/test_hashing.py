"""eventsep.hashing: recording keys survive lossless re-encoding, file hashes are memoised, keys are canonical."""

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from pydantic import BaseModel

from eventsep import hashing
from eventsep.audio import load_audio, write_audio
from eventsep.config import FusionParams, MaskParams

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_recording_key_is_sha256_of_header_and_little_endian_floats():
    samples = np.array([0.0, 0.5, -1.0], dtype=">f8")  # big-endian doubles: must hash as <f4 values
    expected = hashlib.sha256(b"float32le;(3,);16000;" + np.array([0.0, 0.5, -1.0], "<f4").tobytes())
    assert hashing.recording_key(samples, 16000) == expected.hexdigest()


def test_lossless_reencoding_keeps_the_recording_key(tmp_path):
    rng = np.random.default_rng(1)
    samples = np.clip(0.3 * rng.standard_normal(16000), -1, 1).astype(np.float32)
    write_audio(tmp_path / "a.wav", samples, 16000, subtype="PCM_16")
    write_audio(tmp_path / "b.flac", samples, 16000, subtype="PCM_16")
    wav, flac = load_audio(tmp_path / "a.wav"), load_audio(tmp_path / "b.flac")
    assert HEX64.match(wav.key)
    assert flac.key == wav.key
    (tmp_path / "a.wav").rename(tmp_path / "renamed.wav")
    assert load_audio(tmp_path / "renamed.wav").key == wav.key
    # A float wav keeps the unquantised samples, so it is a different recording.
    write_audio(tmp_path / "c.wav", samples, 16000)
    assert load_audio(tmp_path / "c.wav").key != wav.key


def test_flac_made_by_ffmpeg_from_a_16_bit_wav_has_the_wav_key(tmp_path):
    rng = np.random.default_rng(2)
    pcm = (8000 * rng.standard_normal((8000, 2))).astype(np.int16)
    soundfile.write(tmp_path / "a.wav", pcm, 16000, subtype="PCM_16")
    if shutil.which("ffmpeg"):  # installed by scripts/setup.sh
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(tmp_path / "a.wav"),
                        str(tmp_path / "a.flac")], check=True)
    else:
        soundfile.write(tmp_path / "a.flac", pcm, 16000, subtype="PCM_16")
    assert load_audio(tmp_path / "a.flac").key == load_audio(tmp_path / "a.wav").key


def test_one_changed_sample_or_rate_changes_the_key():
    samples = np.zeros(1000, dtype=np.float32)
    changed = samples.copy()
    changed[500] = 1e-4
    key = hashing.recording_key(samples, 16000)
    assert HEX64.match(key)
    assert hashing.recording_key(changed, 16000) != key
    assert hashing.recording_key(samples, 22050) != key
    assert hashing.recording_key(samples[:-1], 16000) != key
    assert hashing.recording_key(samples.copy(), 16000) == key


def test_file_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "weights.bin"
    content = os.urandom(3 * (1 << 20) + 17)  # several read blocks and a partial one
    path.write_bytes(content)
    assert hashing.file_sha256(path) == hashlib.sha256(content).hexdigest()
    assert hashing.file_sha256(str(path)) == hashlib.sha256(content).hexdigest()


def test_file_hash_is_memoised_until_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc" * 1000)
    os.utime(path, ns=(10**18, 10**18))
    reads = []
    real = hashing._read_sha256
    monkeypatch.setattr(hashing, "_read_sha256", lambda p: reads.append(p) or real(p))
    first = hashing.file_sha256(path)
    assert hashing.file_sha256(path) == first and len(reads) == 1
    monkeypatch.chdir(tmp_path)  # the same file by a relative name is still the same entry
    assert hashing.file_sha256("weights.bin") == first and len(reads) == 1

    path.write_bytes(b"abd" * 1000)  # same size: only the modification time tells
    os.utime(path, ns=(10**18 + 1, 10**18 + 1))
    second = hashing.file_sha256(path)
    assert second == hashlib.sha256(b"abd" * 1000).hexdigest() and len(reads) == 2

    path.write_bytes(b"abd" * 1001)  # other size, same modification time
    os.utime(path, ns=(10**18 + 1, 10**18 + 1))
    assert hashing.file_sha256(path) == hashlib.sha256(b"abd" * 1001).hexdigest() and len(reads) == 3


def test_file_sha256_of_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        hashing.file_sha256(tmp_path / "absent.bin")


class Left(BaseModel):
    a: int = 1
    b: str = "x"


class Right(BaseModel):
    b: str = "x"
    a: int = 1


class LeftAgain(BaseModel):
    b: str = "x"
    a: int = 1


def test_canonical_json():
    assert hashing.canonical_json({"b": [1, 2.5], "a": "é"}) == '{"a":"é","b":[1,2.5]}'
    assert hashing.canonical_json(Left()) == '{"__model__":"Left","a":1,"b":"x"}'
    assert hashing.canonical_json({"m": Left(a=2), "p": Path("/x/y"), "s": {3, 1}, "n": np.float32(0.5)}) == (
        '{"m":{"__model__":"Left","a":2,"b":"x"},"n":0.5,"p":"/x/y","s":[1,3]}')
    with pytest.raises(TypeError, match="cannot make a cache key from a object"):
        hashing.canonical_json({"x": object()})


def test_params_key_is_canonical():
    assert HEX64.match(hashing.params_key(MaskParams()))
    assert hashing.params_key(MaskParams(threshold=0.3, mode="hard")) == hashing.params_key(
        MaskParams(mode="hard", threshold=0.3))
    assert hashing.params_key(MaskParams()) == hashing.params_key(MaskParams(threshold=0.5))  # default spelled out
    assert hashing.params_key(MaskParams(threshold=0.3)) != hashing.params_key(MaskParams(threshold=0.31))
    assert hashing.params_key(MaskParams()) != hashing.params_key(FusionParams())
    assert hashing.params_key(Left()) != hashing.params_key(Right())  # same fields, other class
    # Field declaration order does not matter, only the class name and values.
    assert hashing.canonical_json(Right()).replace("Right", "LeftAgain") == hashing.canonical_json(LeftAgain())
    assert hashing.params_key(None) == hashlib.sha256(b"null").hexdigest()
    assert hashing.params_key({"b": 1, "a": 2}) == hashing.params_key({"a": 2, "b": 1})


def test_stage_key_depends_on_every_part():
    base = dict(stage="sed", version=1, params=MaskParams(), inputs={"a": "1"}, weights={"w": "x"})
    key = hashing.stage_key(**base)
    assert HEX64.match(key)
    changes = ({"stage": "mask"}, {"version": 2}, {"params": MaskParams(threshold=0.1)}, {"params": None},
               {"inputs": {"a": "2"}}, {"inputs": {"b": "1"}}, {"weights": {"w": "y"}}, {"weights": None})
    keys = {hashing.stage_key(**{**base, **change}) for change in changes}
    assert len(keys) == len(changes) and key not in keys
    assert hashing.stage_key(**{**base, "version": "1"}) == key
    assert hashing.stage_key(**{**base, "inputs": {"b": "2", "a": "1"}}) == hashing.stage_key(
        **{**base, "inputs": {"a": "1", "b": "2"}})


def test_stage_key_rejects_non_string_input_keys():
    with pytest.raises(TypeError, match="inputs must map names to key strings"):
        hashing.stage_key("sed", 1, inputs={"recording": None})


def test_stage_key_text_is_fixed_so_existing_caches_stay_valid():
    """The key is sha256 of this exact JSON: renaming a field would silently orphan every cached result."""
    null = hashlib.sha256(b"null").hexdigest()
    text = ('{"inputs":{"a":"1","b":"2"},"params":"' + null + '","stage":"sed","version":"1",'
            '"weights":{"w":"x"}}')
    assert hashing.stage_key("sed", 1, None, {"b": "2", "a": "1"}, {"w": "x"}) == hashlib.sha256(
        text.encode()).hexdigest()


def test_stage_key_rejects_non_string_weight_hashes():
    with pytest.raises(TypeError, match=r"^stage 'sed' weights must map names to key strings, got 'w': 3$"):
        hashing.stage_key("sed", 1, weights={"w": 3})


def test_a_model_is_keyed_by_its_json_dump():
    """Fields JSON has no type for (a datetime) are keyed as pydantic writes them in JSON."""
    import datetime

    class Stamp(BaseModel):
        at: datetime.datetime

    assert hashing.canonical_json(Stamp(at=datetime.datetime(2026, 12, 7))) == (
        '{"__model__":"Stamp","at":"2026-12-07T00:00:00"}')
    assert hashing.canonical_json({"m": Stamp(at=datetime.datetime(2026, 12, 7, 1))}) == (
        '{"m":{"__model__":"Stamp","at":"2026-12-07T01:00:00"}}')


def test_a_set_of_mixed_types_has_one_text():
    """Sets have no order: they are written sorted by their members' canonical JSON, which also orders
    members that Python cannot compare (a string and a number)."""
    assert hashing.canonical_json({"s": {1, "a", 10, 2}}) == '{"s":["a",1,10,2]}'
    assert hashing.canonical_json(frozenset([2, "a", 10, 1])) == '["a",1,10,2]'
