"""The mini AudioSep training is resumable: a second call continues from the first one's checkpoint."""

import json

import pytest
import torch

from eventsep.separators.audiosep.train import train
from eventsep.separators.training import TrainConfig, export

pytestmark = pytest.mark.slow


def test_training_resumes_and_exports(tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTSEP_CACHE", str(tmp_path / "cache"))
    config = TrainConfig(train_seeds=(0, 3), validation_seeds=(100_000, 100_001), item_seconds=2.5,
                         crop_seconds=1.0, batch_size=2)
    folder = tmp_path / "run"
    rows = []
    first = train(folder, 0.05, config, progress=rows.append)
    assert first["step"] >= 1 and (folder / "last.pt").exists()
    second = train(folder, 0.05, config, progress=rows.append)
    assert second["step"] > first["step"]
    assert [h["step"] for h in second["history"]] == [first["step"], second["step"]]
    path = export(folder, tmp_path / "mini.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        assert json.loads(handle.metadata()["state"])["step"] == second["step"]
        assert "optimizer" not in handle.keys()
    checkpoint = torch.load(folder / "last.pt", weights_only=True)
    assert set(checkpoint) >= {"model", "optimizer", "state"}

    # A new machine without the checkpoint continues from the exported weights, step count included.
    (folder / "last.pt").unlink()
    third = train(folder, 0.05, config, progress=rows.append, warm_start=path)
    assert third["step"] > second["step"]
    assert [h["step"] for h in third["history"]][:2] == [first["step"], second["step"]]
