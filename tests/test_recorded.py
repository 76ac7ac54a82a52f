"""Recorded corpus sources: labels that exist in AudioSet, a fixed split that training never crosses, exact
time-selective mixtures and the committed real development set. Needs the packages of scripts/setup_corpus.sh."""

import json
from collections import Counter

import numpy as np
import pytest

from eventsep.corpus import real, recorded
from eventsep.ontology import by_mid, by_name

pytestmark = pytest.mark.slow


def test_label_table_names_audioset_classes_with_their_mids():
    rules = recorded.label_rules()
    assert len(rules) > 100
    for rule in rules:
        assert by_name(rule.label).name == rule.label and by_mid(rule.mid).name == rule.label, rule
        assert rule.family in recorded.FAMILIES and rule.unit in ("file", "kit", "program", "drums")
        assert rule.package in recorded.ROOTS


def test_every_class_has_everyday_prompts_that_are_not_its_label():
    phrases = recorded.prompt_phrases()
    for label in {rule.label for rule in recorded.label_rules()}:
        assert phrases[label], label
        for phrase in phrases[label]:
            # everyday words, not a display name such as "Bird vocalization, bird call, bird song"
            assert "," not in phrase and "(" not in phrase and phrase != label, (label, phrase)


def test_every_rule_labels_installed_files():
    """Each pattern of the table matches something in its installed package (0ad-data is optional)."""
    used = {unit.rule for unit in recorded.catalogue()}
    unused = [r for r in recorded.label_rules() if r not in used and r.package != "0ad-data"]
    assert not unused, unused
    assert {u.family for u in recorded.units("held_out")} == set(recorded.FAMILIES)
    assert {u.family for u in recorded.units("train")} == set(recorded.FAMILIES)


def test_split_holds_out_about_a_fifth_by_a_fixed_hash():
    keys = [u.key for u in recorded.catalogue()]
    share = np.mean([recorded.held_out(k) for k in keys])
    assert 0.15 < share < 0.25
    # pinned: changing the hash or its salt would silently change the development set
    kits = sorted(u.key for u in recorded.units("held_out") if u.rule.unit in ("kit", "drums"))
    assert kits == ["avldrums.lv2-soundfont/Red_Zeppelin_4_LV2.sf2", "hydrogen-drumkits/Audiophob",
                    "hydrogen-drumkits/BJA_Pacific", "hydrogen-drumkits/ColomboAcousticDrumkit",
                    "hydrogen-drumkits/Millo_MultiLayered2"]
    assert not set(recorded.units("held_out")) & set(recorded.units("train"))


def test_silence_is_dropped_and_clips_are_trimmed_and_normalised():
    rate = 16000
    assert len(recorded.process_clip(np.zeros(rate, np.float32), rate)) == 0
    assert len(recorded.process_clip(np.full(rate, 1e-4, np.float32), rate)) == 0
    tone = 0.05 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)
    padded = np.concatenate([np.zeros(rate // 2, np.float32), tone, np.zeros(rate // 2, np.float32)])
    out = recorded.process_clip(padded, rate)
    assert abs(len(out) - rate) < 0.01 * rate
    quiet = recorded.process_clip(padded * 0.1, rate)
    np.testing.assert_allclose(np.abs(out).max(), np.abs(quiet).max(), rtol=1e-3)  # same loudness


def _fake_audio(monkeypatch):
    """Every piece is seeded noise of 1.5 s; returns the list of unit keys the renderer was asked for."""
    asked = []

    def fake(unit, piece, sample_rate):
        asked.append(unit.key)
        return np.random.default_rng(len(asked)).standard_normal(int(1.5 * sample_rate)) * 0.1

    monkeypatch.setattr(real, "_piece_audio", fake)
    return asked


def test_training_data_never_renders_a_held_out_unit(tmp_path, monkeypatch):
    from eventsep.separators import training

    asked = _fake_audio(monkeypatch)
    splits = []
    plan_item = real.plan_item

    def recording_plan(seed, split, **options):
        plan = plan_item(seed, split, **options)
        splits.append((seed, split, {p["source"] for part in ("target", "interferer")
                                     for p in plan[part]["pieces"]}))
        return plan

    monkeypatch.setattr(real, "plan_item", recording_plan)
    monkeypatch.setattr(training, "embed_prompts",
                        lambda groups: (sorted({p for g in groups for p in g}), np.zeros((sum(map(len, groups)), 3))))
    config = training.TrainConfig(train_seeds=(0, 90), validation_seeds=(100_000, 100_006), item_seconds=2.0,
                                  recorded_share=1.0)
    training.training_data(tmp_path, config, 8000)
    train = [keys for seed, split, keys in splits if seed < 100_000]
    assert len(train) == 90 and asked
    assert all(split == "train" for seed, split, _ in splits if seed < 100_000)
    assert not [k for keys in train for k in keys if recorded.held_out(k)]
    # the validation items come from held-out units only
    assert all(recorded.held_out(k) for seed, _, keys in splits if seed >= 100_000 for k in keys)
    families = {recorded.catalogue()[[u.key for u in recorded.catalogue()].index(next(iter(keys)))].family
                for keys in train}
    assert families == set(recorded.FAMILIES)


def test_recorded_items_balance_the_families_of_the_whole_corpus():
    from eventsep.separators.training import recorded_family_weights

    assert recorded_family_weights(1.0) == pytest.approx([1 / 3] * 3)
    half = recorded_family_weights(0.5)
    assert half.sum() == pytest.approx(1.0) and half[0] > half[1] > half[2]  # the synthetic corpus is speech-poor


def test_recorded_families_set_how_often_each_family_is_the_target():
    from eventsep.separators.training import recorded_family

    assert {recorded_family(seed, 0.5, (0, 0, 1)) for seed in range(40)} == {"environment"}
    draws = Counter(recorded_family(seed, 0.5, (1, 1, 2)) for seed in range(4000))
    assert draws["environment"] / 4000 == pytest.approx(0.5, abs=0.03)
    assert draws["speech"] / 4000 == pytest.approx(0.25, abs=0.03)
    # unset, the weights balance the whole corpus (speech most often among the recorded items)
    balanced = Counter(recorded_family(seed, 0.5) for seed in range(4000))
    assert balanced["speech"] > balanced["music"] > balanced["environment"]


def test_real_mixture_is_exact_time_selective_and_at_its_snr(corpus_cache, tmp_path):
    from eventsep.audio import load_audio

    plan = real.plan_set(range(3, 6), seconds=6.0, sample_rate=16000)  # one item of each family
    assert [item["kind"] for item in plan["items"]] == ["speech", "music", "environment"]
    for item in plan["items"]:
        assert all(recorded.held_out(p["source"]) for part in ("target", "interferer")
                   for p in item[part]["pieces"])
        m = real.render_plan(item, 16000, 6.0)
        assert np.array_equal(m.mixture, m.target + m.interferer)
        onset, offset = int(item["onset"] * 16000), int(item["offset"] * 16000)
        assert np.abs(m.target[:onset]).max() == 0 and np.abs(m.target[offset + 1:]).max(initial=0) == 0
        assert 0.2 * 6.0 - 0.3 <= item["offset"] - item["onset"] <= 0.8 * 6.0
        measured = 10 * np.log10(np.mean(m.target[onset:offset] ** 2) / np.mean(m.interferer[onset:offset] ** 2))
        assert measured == pytest.approx(item["snr_db"], abs=0.2)
        assert np.abs(m.mixture).max() <= 0.9 + 1e-4
    manifest = json.loads(real.write_set(plan, tmp_path / "set").read_text())
    assert [e["id"] for e in manifest["items"]] == [item["id"] for item in plan["items"]]
    removal = manifest["items"][0]  # seed 3: every fourth item is a removal request
    assert removal["remove"] is True and removal["reference"] == "real0003.interferer.wav"
    assert "remove" not in manifest["items"][1] and manifest["items"][1]["reference"] == "real0004.target.wav"
    for entry in manifest["items"]:
        assert set(entry) - {"remove"} == {"id", "mixture", "reference", "query", "onset", "offset", "kind",
                                           "class"}
        stem = tmp_path / "set" / entry["id"]
        mixture, target, interferer = (load_audio(f"{stem}.{part}.wav").samples for part in
                                       ("mixture", "target", "interferer"))
        assert np.array_equal(mixture, target + interferer)


def test_committed_development_set_is_balanced_held_out_and_worded_for_people():
    plan = real.committed_plan()
    items = plan["items"]
    assert len(items) == 48 and plan["sample_rate"] == 32000 and plan["seconds"] == 10.0
    for family in recorded.FAMILIES:
        assert sum(item["kind"] == family for item in items) == 16
    for snr in real.SNRS:
        assert 14 <= sum(item["snr_db"] == snr for item in items) <= 18
    assert 8 <= sum(item["remove"] for item in items) <= 16
    assert sum(2.0 <= item["offset"] - item["onset"] <= 6.0 for item in items) >= 0.75 * len(items)
    for item in items:
        assert all(recorded.held_out(p["source"]) for part in ("target", "interferer")
                   for p in item[part]["pieces"]), item["id"]
        compound = "," in item["class"] or "(" in item["class"]  # a display name nobody would say
        assert not (compound and item["class"].lower() in item["query"].lower()), item["query"]
        assert by_name(item["class"]).name == item["class"]


def test_manifest_refuses_an_item_without_its_fields(tmp_path):
    from eventsep.corpus.manifest import write_manifest

    with pytest.raises(ValueError, match="missing reference"):
        write_manifest([{"id": "a", "mixture": "a.wav", "query": "q", "onset": 0, "offset": 1,
                         "kind": "music", "class": "Piano"}], tmp_path / "manifest.json")
    assert not (tmp_path / "manifest.json").exists()


def test_command_line_renders_the_real_set_and_refuses_bad_seeds(corpus_cache, tmp_path, capsys):
    from flows.cli import main

    assert main(["corpus", str(tmp_path / "out"), "--real", "--seeds", "7-7"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [e["id"] for e in manifest["items"]] == ["real0007"]
    assert main(["corpus", str(tmp_path / "bad"), "--real", "--seeds", "7-x"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_target_classes_are_the_classes_the_items_render(corpus_cache):
    """A model card's class counts come from `training.target_classes`, which renders nothing: each count must be
    the class of the item that training renders for that seed (recorded or synthetic)."""
    from eventsep.corpus.mixtures import make_mixture
    from eventsep.corpus import ALL_KINDS
    from eventsep.separators.training import is_recorded, recorded_family, target_classes

    seeds = range(0, 12)
    recorded_seeds = [s for s in seeds if is_recorded(s, 0.5)]
    assert 2 <= len(recorded_seeds) <= 10
    rendered = []
    for seed in seeds:
        if seed in recorded_seeds:
            plan = real.plan_item(seed, "train", sample_rate=16000, seconds=4.0, family=recorded_family(seed, 0.5))
            rendered.append(plan["class"])
        else:
            rendered.append(ALL_KINDS[make_mixture(seed, sample_rate=16000, seconds=4.0).target_kind].label)
    assert target_classes(seeds, 0.5) == dict(sorted(Counter(rendered).items()))
    assert sum(target_classes(range(0, 40), 0.0).values()) == 40
