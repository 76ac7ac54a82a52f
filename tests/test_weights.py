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


# ---------------------------------------------------------------- other weights: EVENTSEP_WEIGHTS and --weights

@pytest.fixture
def other_mini(tmp_path, monkeypatch):
    """A copy of the packaged mini AudioSep with one tensor changed (so another sha256), as a training's export."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    packaged = pretrained.packaged_path("audiosep-mini")
    tensors = load_file(str(packaged))
    with safe_open(str(packaged), "pt") as handle:
        metadata = handle.metadata()
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1.0
    other = tmp_path / "candidate.safetensors"
    save_file(tensors, str(other), metadata=metadata)
    monkeypatch.setenv("EVENTSEP_WEIGHTS", "")
    backends.unregister("separator", "audiosep")
    yield other, name, tensors[name]
    backends.unregister("separator", "audiosep")  # no instance of the other weights outlives the test


def test_other_weights_are_loaded_and_keyed_by_their_own_sha256(other_mini, monkeypatch):
    other, name, changed = other_mini
    packaged_identity = backends.get("separator", "audiosep").identity()
    backends.unregister("separator", "audiosep")
    monkeypatch.setenv("EVENTSEP_WEIGHTS", f"audiosep-mini={other}")
    assert pretrained.locate("audiosep-mini") == other.resolve()  # no CorruptWeights: not the registry's file
    model, _ = pretrained.load_mini_audiosep()
    assert np.array_equal(model.state_dict()[name].numpy(), changed.numpy())
    identity = backends.get("separator", "audiosep").identity()
    assert identity.startswith(hashing.file_sha256(other)) and identity != packaged_identity
    assert pretrained.packaged_path("audiosep-mini") == pretrained.REGISTRY["audiosep-mini"].packaged
    status, message = pretrained.verify("audiosep-mini")
    assert status == "ok" and "EVENTSEP_WEIGHTS" in message and hashing.file_sha256(other) in message


@pytest.mark.parametrize("value, message", [
    ("audiosep-mini", "'audiosep-mini' is not NAME=FILE"),
    ("audiosep-mini=", "'audiosep-mini=' is not NAME=FILE"),
    ("minilm=/x", "'minilm' is not one of the project's own models (flowsep-mini, audiosep-mini)"),
])
def test_a_malformed_weights_setting_is_one_line(monkeypatch, value, message):
    monkeypatch.setenv("EVENTSEP_WEIGHTS", value)
    with pytest.raises(ValueError) as error:
        pretrained.overrides()
    assert str(error.value) == f"EVENTSEP_WEIGHTS: {message}"


def test_two_overrides_and_spaces(monkeypatch, tmp_path):
    monkeypatch.setenv("EVENTSEP_WEIGHTS", f" audiosep-mini = {tmp_path}/a.safetensors , flowsep-mini={tmp_path}/f ,")
    assert pretrained.overrides() == {"audiosep-mini": tmp_path / "a.safetensors", "flowsep-mini": tmp_path / "f"}
    assert pretrained.path_of("flowsep-mini") == tmp_path / "f"
    assert pretrained.path_of("minilm") != tmp_path / "f"


def test_absent_other_weights_stop_the_command_before_any_work(cache_env, capsys, mixture, tmp_path):
    wav = cache_env / "tone.wav"
    write_audio(wav, mixture.samples, mixture.sample_rate)
    out = cache_env / "out"
    missing = tmp_path / "nowhere" / "candidate.safetensors"
    code = main(["separate", str(wav), "the tone", "-o", str(out), "--local", "--encoder", "standin-encoder",
                 "--sed", "standin-sed", "--separators", "standin-a", "--weights", f"audiosep-mini={missing}"])
    [line] = capsys.readouterr().err.splitlines()
    assert code == EXIT_BAD_INPUT and not out.exists()
    assert line == f"eventsep: {missing} not found (the audiosep-mini weights EVENTSEP_WEIGHTS or --weights names)"
    with pytest.raises(pretrained.MissingWeights, match="candidate.safetensors not found in .*nowhere"):
        pretrained.locate("audiosep-mini")  # the CLI put it in EVENTSEP_WEIGHTS (cache_env restores it)


def test_export_from_a_folder_or_a_checkpoint_file(tmp_path, capsys):
    import json

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from eventsep.separators.training import export

    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    checkpoint = {"model": state, "optimizer": {}, "state": json.dumps({"step": 7}),
                  "model_config": json.dumps({"width": 2}), "train_config": json.dumps({"seed": 0})}
    (tmp_path / "round").mkdir()
    torch.save(checkpoint, tmp_path / "round" / "last.pt")
    torch.save({**checkpoint, "state": json.dumps({"step": 9})}, tmp_path / "step9.pt")
    for source, step in ((tmp_path / "round", 7), (tmp_path / "step9.pt", 9)):
        written = export(source, tmp_path / f"out{step}.safetensors")
        assert {k: v.tolist() for k, v in load_file(written).items()} == {"w": [[0, 1, 2], [3, 4, 5]], "b": [1, 1]}
        with safe_open(str(written), "pt") as handle:
            assert json.loads(handle.metadata()["state"]) == {"step": step}
    with pytest.raises(ValueError, match="nothing not found: give a training folder holding last.pt, or a"):
        export(tmp_path / "nothing", tmp_path / "x.safetensors")
    (tmp_path / "nothing").mkdir()
    assert main(["models", "export", "audiosep-mini", "--from", str(tmp_path / "nothing"), "-o",
                 str(tmp_path / "x.safetensors")]) == EXIT_BAD_INPUT
    assert "nothing/last.pt not found: give a training folder" in capsys.readouterr().err
    assert main(["models", "export", "minilm", "--from", str(tmp_path / "step9.pt"), "-o",
                 str(tmp_path / "x.safetensors")]) == EXIT_BAD_INPUT
    assert "minilm is not one of the project's own models" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
