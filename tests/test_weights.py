"""Weight files against their registered sha256: damaged copies stop a run with one line, verify tells
absent from failed, YAMNet is unpacked into the model folder."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from eventsep import backends, hashing, pretrained
from eventsep.audio import write_audio
from flows.cli import EXIT_BAD_INPUT, EXIT_OK, main

DEFAULT_ENTRIES = [name for name, entry in pretrained.REGISTRY.items() if entry.default]


def flip_middle_byte(path):
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


@pytest.fixture
def models(cache_env, monkeypatch):
    """A model folder apart from the cache, so nothing may land in <EVENTSEP_CACHE>/models."""
    folder = cache_env / "models-elsewhere"
    monkeypatch.setenv("EVENTSEP_MODELS", str(folder))
    return folder


@pytest.fixture
def damaged_mini(tmp_path, monkeypatch):
    """A corrupted copy of the packaged mini AudioSep standing in for the packaged file."""
    copy = tmp_path / "audiosep-mini.safetensors"
    shutil.copy(pretrained.path_of("audiosep-mini"), copy)
    flip_middle_byte(copy)
    monkeypatch.setitem(pretrained.REGISTRY, "audiosep-mini",
                        replace(pretrained.REGISTRY["audiosep-mini"], packaged=copy))
    backends.unregister("separator", "audiosep")  # drop any instance built from the good file
    return copy


def test_every_default_file_has_a_sha256():
    assert {"audiosep-mini", "flowsep-mini", "minilm", "yamnet-archive", "yamnet-onnx"} <= set(DEFAULT_ENTRIES)
    assert all(len(pretrained.REGISTRY[name].sha256 or "") == 64 for name in DEFAULT_ENTRIES)


def test_fresh_install_verifies_with_exit_0(models, capsys):
    assert main(["models", "verify"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    status = {line.split()[1].rstrip(":"): line.split()[0] for line in lines}
    assert status["audiosep-base"] == "absent" and status["yamnet-onnx"] == "absent"
    assert all(status[name] in ("ok", "absent") for name in DEFAULT_ENTRIES)
    assert status["audiosep-mini"] == "ok" and status["minilm"] == "ok"


def test_damaged_mini_weights_are_one_clear_error(damaged_mini, cache_env, capsys, mixture):
    with pytest.raises(pretrained.CorruptWeights, match=str(damaged_mini)):
        pretrained.load_mini_audiosep()
    assert main(["models", "verify", "audiosep-mini"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().out.startswith("FAILED audiosep-mini")
    wav = cache_env / "tone.wav"
    write_audio(wav, mixture.samples, mixture.sample_rate)
    out = cache_env / "out"
    code = main(["separate", str(wav), "the tone", "-o", str(out), "--local", "--encoder", "standin-encoder",
                 "--sed", "standin-sed", "--separators", "audiosep,standin-a"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and not out.exists()  # never a result from the other separator
    [line] = err.splitlines()
    assert str(damaged_mini) in line and "git checkout" in line


def test_yamnet_is_unpacked_into_the_model_folder_and_checked(models, cache_env, capsys, mixture):
    from eventsep.sed.yamnet import YamnetSed

    model = YamnetSed()._extracted_model()
    assert model.parent == models / "yamnet" and (models / "yamnet" / "model.data").is_file()
    assert not (cache_env / "cache" / "models").exists()
    flip_middle_byte(models / "yamnet" / "model.data")
    with pytest.raises(pretrained.CorruptWeights, match="eventsep models pull yamnet-onnx-data"):
        YamnetSed().detect(np.zeros(16000, np.float32), 16000)
    wav = cache_env / "tone.wav"
    write_audio(wav, mixture.samples, mixture.sample_rate)
    backends.unregister("sed", "yamnet")
    code = main(["separate", str(wav), "the tone", "-o", str(cache_env / "out"), "--local",
                 "--encoder", "standin-encoder", "--sed", "yamnet", "--separators", "standin-a"])
    [line] = capsys.readouterr().err.splitlines()
    assert code == EXIT_BAD_INPUT and "model.data is damaged" in line
    assert main(["models", "pull", "yamnet-onnx-data"]) == EXIT_OK
    assert main(["models", "verify", "yamnet-onnx-data"]) == EXIT_OK


def test_the_check_reads_a_file_once_until_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    monkeypatch.setitem(pretrained.REGISTRY, "test-w", pretrained.ModelFile(
        "test-w", "w.bin", "test", None, hashing.file_sha256(path), 7, packaged=path))
    reads = []
    real = hashing._read_sha256
    monkeypatch.setattr(hashing, "_read_sha256", lambda p: reads.append(p) or real(p))
    pretrained.locate("test-w")
    pretrained.locate("test-w")
    assert reads == []  # remembered from the first hash by path, size and mtime
    path.write_bytes(b"weighTs")
    with pytest.raises(pretrained.CorruptWeights):
        pretrained.locate("test-w")
    assert len(reads) == 1
