"""The mini separators' training: resumable, with checked settings, an optional annealed rate and a corpus
rendered again when its seeds change."""

import json

import pytest
import torch

from eventsep.separators.audiosep.train import train
from eventsep.separators.training import TrainConfig, export

pytestmark = pytest.mark.slow


def test_training_resumes_and_exports(tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTSEP_CACHE", str(tmp_path / "cache"))
    # recorded_share: seeds 0, 2 and 100_000 are recorded mixtures (scripts/setup_corpus.sh), seed 1 synthetic
    config = TrainConfig(train_seeds=(0, 3), validation_seeds=(100_000, 100_001), item_seconds=2.5,
                         crop_seconds=1.0, batch_size=2, final_learning_rate=1e-4, mask_weight=1.0,
                         recorded_share=0.3)
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


def test_learning_rate_falls_along_a_half_cosine_when_asked():
    from eventsep.separators.training import learning_rate_at

    constant = TrainConfig(learning_rate=1e-3)
    assert learning_rate_at(constant, 0.0) == learning_rate_at(constant, 0.9) == 1e-3
    annealed = TrainConfig(learning_rate=1e-3, final_learning_rate=1e-5)
    rates = [learning_rate_at(annealed, f) for f in (0.0, 0.25, 0.5, 1.0, 1.5)]
    assert rates[0] == pytest.approx(1e-3) and rates[3] == pytest.approx(1e-5) and rates[4] == rates[3]
    assert rates[2] == pytest.approx((1e-3 + 1e-5) / 2)
    assert rates[0] > rates[1] > rates[2] > rates[3]


def test_settings_are_checked_by_name_and_lists_become_tuples():
    from eventsep.separators.training import config_with

    config = config_with(TrainConfig(), {"train_seeds": [0, 2000], "final_learning_rate": 1e-5})
    assert config.train_seeds == (0, 2000) and config.final_learning_rate == 1e-5
    with pytest.raises(ValueError, match="unknown training setting.*learning_rat\\b"):
        config_with(TrainConfig(), {"learning_rat": 1e-3})


def test_training_data_is_rendered_again_when_its_seeds_change(tmp_path, monkeypatch):
    """The cached corpus in a training folder belongs to one set of seeds, lengths and rate: a run with
    other seeds must not silently train on the old items."""
    import numpy as np

    from eventsep.separators import training

    rendered = []

    def fake_items(seeds, seconds, sample_rate, *recorded):
        rendered.append((seeds.start, seeds.stop))
        count = len(seeds)
        return {"target": np.full((count, 4), seeds.start, np.float32), "interferer": np.zeros((count, 4), np.float32),
                "prompts": [[f"item {s}"] for s in seeds], "kinds": ["k"] * count}

    monkeypatch.setattr(training, "corpus_items", fake_items)
    monkeypatch.setattr(training, "embed_prompts",
                        lambda groups: (sorted({p for g in groups for p in g}), np.zeros((sum(map(len, groups)), 3))))
    small = TrainConfig(train_seeds=(0, 2), validation_seeds=(10, 11))
    first = training.training_data(tmp_path, small, 16000)
    again = training.training_data(tmp_path, small, 16000)
    assert rendered == [(0, 2), (10, 11)] and len(again.arrays["target"]) == len(first.arrays["target"]) == 2
    larger = training.training_data(tmp_path, TrainConfig(train_seeds=(0, 5), validation_seeds=(10, 11)), 16000)
    assert len(larger.arrays["target"]) == 5 and rendered[2:] == [(0, 5), (10, 11)]
    training.training_data(tmp_path, small, 32000)
    assert len(rendered) == 6


def test_procedural_items_join_the_training_items_only_when_asked(tmp_path, monkeypatch):
    """procedural_items adds that many procedural targets after the corpus items (never to validation), and a
    folder rendered without them stays valid for a config without them."""
    import numpy as np

    from eventsep.corpus.procedural import KINDS
    from eventsep.separators import training

    def fake_items(seeds, seconds, sample_rate, *recorded):
        count = len(seeds)
        return {"target": np.zeros((count, int(seconds * sample_rate)), np.float32),
                "interferer": np.full((count, int(seconds * sample_rate)), seeds.start + 1, np.float32),
                "prompts": [[f"item {s}"] for s in seeds], "kinds": ["k"] * count}

    monkeypatch.setattr(training, "corpus_items", fake_items)
    monkeypatch.setattr(training, "embed_prompts",
                        lambda groups: (sorted({p for g in groups for p in g}), np.zeros((sum(map(len, groups)), 3))))
    plain = TrainConfig(train_seeds=(0, 3), validation_seeds=(10, 11), item_seconds=1.0)
    before = training.training_data(tmp_path, plain, 8000)
    spec = json.loads((tmp_path / "data.json").read_text())["spec"]
    assert "procedural_items" not in spec and len(before.arrays["target"]) == 3
    data = training.training_data(tmp_path, TrainConfig(**{**plain.__dict__, "procedural_items": 4}), 8000)
    meta = json.loads((tmp_path / "data.json").read_text())
    assert len(data.arrays["target"]) == 7 and len(data.valid["target"]) == 1
    assert set(meta["kinds"][3:]) <= set(KINDS) and all(np.abs(t).max() > 0.1 for t in data.arrays["target"][3:])
    assert (data.arrays["interferer"][3:] == 1).all()  # copies of corpus items' interferers
    assert all(any(name in prompt for name in (kind, *KINDS[kind].words) for prompt in group)
               for kind, group in zip(meta["kinds"][3:], meta["prompts"][3:]))


# ---------------------------------------------------------------- the training's validation items as a manifest

@pytest.mark.parametrize("share", [0.0, 1.0])
def test_the_validation_items_become_an_evaluate_manifest(tmp_path, share):
    import numpy as np
    import soundfile

    from eventsep.corpus import ALL_KINDS
    from eventsep.separators.training import corpus_item, recorded_family, write_validation_set

    config = TrainConfig(validation_seeds=(100_003, 100_005), item_seconds=1.5, recorded_share=share,
                         recorded_families=(0.3, 0.25, 0.45))
    manifest = json.loads(write_validation_set(tmp_path, config, 16000).read_text())
    family_kind = {"voice": "speech", "instrument": "music", "drums": "music", "effect": "environment",
                   "animal": "environment"}
    assert [item["id"] for item in manifest["items"]] == ["valid100003", "valid100004"]
    for seed, item in zip((100_003, 100_004), manifest["items"]):
        made = corpus_item(seed, 1.5, 16000, share, "held_out", (0.3, 0.25, 0.45))  # what the trainer validates on
        mixture, rate = soundfile.read(tmp_path / item["mixture"], dtype="float32")
        reference, _ = soundfile.read(tmp_path / item["reference"], dtype="float32")
        assert rate == 16000 and len(mixture) == 24000
        assert np.array_equal(mixture, made.target + made.interferer) and np.array_equal(reference, made.target)
        assert item["query"] == made.prompts[0] and item["class"] == made.target_label
        assert (item["onset"], item["offset"]) == (made.onset, made.offset)
        kind = recorded_family(seed, share, (0.3, 0.25, 0.45)) if share else family_kind[ALL_KINDS[made.target_kind].family]
        assert item["kind"] == kind


def test_corpus_training_validation_takes_no_seeds(tmp_path, capsys):
    from flows.cli import EXIT_BAD_INPUT, main

    assert main(["corpus", str(tmp_path / "v"), "--training-validation", "audiosep-mini", "--seeds", "1-2"]) \
        == EXIT_BAD_INPUT
    assert "takes no --seeds" in capsys.readouterr().err and not (tmp_path / "v").exists()


def test_a_level_range_spreads_the_pairs_levels_and_keeps_each_target_in_its_mixture():
    import numpy as np

    from eventsep.separators.training import TrainingData, sample_batch

    rng = np.random.default_rng(0)
    count, length = 6, 4000
    arrays = {"target": (0.05 * rng.standard_normal((count, length))).astype(np.float32),
              "interferer": (0.05 * rng.standard_normal((count, length))).astype(np.float32),
              "embeddings": np.eye(2, dtype=np.float32)}
    data = TrainingData(arrays, {}, [[0, 1]] * count, {})
    flat, spread = TrainConfig(batch_size=64), TrainConfig(batch_size=64, level_db=12.0)
    same = [sample_batch(np.random.default_rng(1), data, flat, 2000) for _ in range(2)]
    assert torch.equal(same[0][0], same[1][0])  # no level range: nothing more is drawn
    mixtures, targets, _ = sample_batch(np.random.default_rng(1), data, spread, 2000)
    levels = 10 * torch.log10(mixtures.pow(2).mean(dim=-1)).flatten()
    plain = 10 * torch.log10(same[0][0].pow(2).mean(dim=-1)).flatten()
    assert plain.max() - plain.min() < 12 and levels.max() - levels.min() > 18  # about ±12 dB around the same
    assert mixtures.abs().max() <= 1.0 + 1e-6  # the clipping guard still holds
    ratio = (targets.pow(2).sum(dim=-1) / mixtures.pow(2).sum(dim=-1)).flatten()
    plain_ratio = (same[0][1].pow(2).sum(dim=-1) / same[0][0].pow(2).sum(dim=-1)).flatten()
    assert torch.allclose(ratio, plain_ratio, rtol=1e-4)  # each pair drawn alike, then scaled as one
