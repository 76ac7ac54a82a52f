"""The open corpus: deterministic by seed, exact ground truth, labels that exist in AudioSet."""

import json
from pathlib import Path

import numpy as np
import pytest

from eventsep.corpus import ALL_KINDS, make_mixture, write_mixture
from eventsep.corpus.sources import render
from eventsep.metrics import si_sdr
from eventsep.ontology import by_name

pytestmark = pytest.mark.slow


def test_every_label_is_an_audioset_class():
    for kind in ALL_KINDS.values():
        assert by_name(kind.label).name == kind.label


def test_same_seed_same_samples_with_or_without_the_render_cache(corpus_cache):
    import shutil

    first = make_mixture(3, seconds=4.0)
    again = make_mixture(3, seconds=4.0)  # from the render cache
    shutil.rmtree(corpus_cache)
    cold = make_mixture(3, seconds=4.0)  # rendered anew
    for other in (again, cold):
        np.testing.assert_array_equal(first.mixture, other.mixture)
        assert first.meta() == other.meta()
    assert not np.array_equal(make_mixture(4, seconds=4.0).mixture, first.mixture)


@pytest.mark.parametrize("target, interferer", [("accordion", "man speaking"), ("woman speaking", "drum kit"),
                                                ("dog", "helicopter"), ("tuba", "sea waves")])
def test_ground_truth_is_exact_and_the_target_is_active_part_of_the_time(corpus_cache, target, interferer):
    m = make_mixture(11, seconds=6.0, snr_db=5.0, target=target, interferer=interferer)
    np.testing.assert_allclose(m.mixture, m.target + m.interferer, atol=1e-7)
    assert np.abs(m.mixture).max() <= 0.9 + 1e-6
    rate, onset, offset = m.sample_rate, m.onset, m.offset
    assert 0 < offset - onset < 0.7 * 6.0
    assert np.abs(m.target[: int(onset * rate)]).max() == 0 and np.abs(m.target[int(offset * rate) + 1:]).max() == 0
    active = slice(int(onset * rate), int(offset * rate))
    measured = 10 * np.log10(np.mean(m.target[active] ** 2) / np.mean(m.interferer[active] ** 2))
    assert measured == pytest.approx(5.0, abs=0.05)
    assert np.abs(m.interferer).max() > 0 and m.target_label == ALL_KINDS[target].label
    assert m.prompts and all(isinstance(p, str) and p for p in m.prompts + m.removal_prompts)


def test_an_interferer_quiet_in_the_span_is_measured_no_lower_than_the_floor_under_its_whole_track():
    from eventsep.corpus.mixtures import SPAN_LEVEL_FLOOR_DB, interferer_gain

    target = np.zeros(1000, np.float32)
    target[400:600] = 0.1
    steady = np.full(1000, 0.05, np.float32)
    active = slice(400, 600)
    # a steady interferer: the span's level decides, the SNR holds inside the span
    gain = interferer_gain(target, steady, active, 0.0)
    assert 10 * np.log10(np.mean(target[active] ** 2) / np.mean((gain * steady[active]) ** 2)) == pytest.approx(0.0, abs=1e-4)
    # gunshots outside the span, a whisper inside: read at the floor, not 40 dB down, so the interferer's whole
    # track stays SPAN_LEVEL_FLOOR_DB above the target's span level
    shots = np.full(1000, 0.5, np.float32)
    shots[400:600] = 0.005
    gain = interferer_gain(target, shots, active, 0.0)
    whole = 10 * np.log10(np.mean((gain * shots) ** 2) / np.mean(target[active] ** 2))
    assert whole == pytest.approx(SPAN_LEVEL_FLOOR_DB, abs=1e-4)


def test_no_synthetic_development_item_buries_its_target(corpus_cache, tmp_path):
    # syn100002, "keep the horse" over gunshots nearly silent in the horse's span, once had its reference 44 dB
    # under its mixture; with the span level's floor it is 22 dB under, the most of any item
    from eventsep.corpus.mixtures import committed_synthetic_plan

    for item in committed_synthetic_plan()["items"][:3]:
        m = make_mixture(item["seed"], snr_db=item["snr_db"], target=item["target"])
        reference = m.interferer if item["remove"] else m.target
        assert 10 * np.log10(np.mean(m.mixture ** 2) / np.mean(reference ** 2)) < 25.0, item["id"]


def test_sources_are_not_silence_or_noise(corpus_cache):
    """Rendered instruments are periodic: a note correlates with itself one pitch period later."""
    samples = render(ALL_KINDS["clarinet"], 0, 2.0, 16000)
    assert np.sqrt(np.mean(samples ** 2)) > 0.01
    segment = samples[4000:8000]
    best = max(si_sdr(samples[4000 + lag:8000 + lag], segment) for lag in range(20, 400))
    assert best > 3.0


def test_write_mixture_files(corpus_cache, tmp_path):
    m = make_mixture(5, seconds=3.0)
    paths = write_mixture(m, tmp_path / "out")
    assert json.loads(paths["meta"].read_text())["target_label"] == m.target_label
    from eventsep.audio import load_audio

    assert abs(len(load_audio(paths["mixture"]).samples) - len(m.mixture)) == 0


@pytest.mark.parametrize("animal", [k.name for k in ALL_KINDS.values() if k.family == "animal"])
def test_every_animal_recording_loads(corpus_cache, animal):
    samples = render(ALL_KINDS[animal], 0, 3.0, 16000)
    assert len(samples) > 0.3 * 16000 and np.abs(samples).max() > 0.1


@pytest.mark.parametrize("label", ["Female speech, woman speaking", "Male speech, man speaking"])
def test_every_synthetic_voice_speaks(corpus_cache, label):
    """Each speaker program and voice the corpus may draw is installed and produces speech."""
    from eventsep.corpus.sources import SPEAKERS, render_speech

    voices_seen = set()
    for seed in range(200):
        rng = np.random.default_rng([seed, 2])
        voice = SPEAKERS[label][int(rng.integers(len(SPEAKERS[label])))]
        if voice in voices_seen:
            continue
        voices_seen.add(voice)
        samples = render_speech(label, seed, 16000)
        assert len(samples) > 16000 and np.sqrt(np.mean(samples ** 2)) > 0.005, voice
    assert voices_seen == set(SPEAKERS[label])


def test_corpus_command_writes_an_evaluation_manifest(corpus_cache, tmp_path, monkeypatch):
    from eventsep.evaluate import read_manifest
    from flows.cli import EXIT_OK, main

    monkeypatch.chdir(tmp_path)  # an output folder named relative to the working folder, as people type it
    assert main(["corpus", "set", "--seeds", "7-8"]) == EXIT_OK
    stored = json.loads((tmp_path / "set" / "manifest.json").read_text())["items"][0]
    assert stored["mixture"] == "mix00007.mixture.flac"  # relative to the manifest's folder
    items = read_manifest(tmp_path / "set" / "manifest.json")
    assert Path(items[0].mixture).is_file() and Path(items[0].reference).is_file()
    assert [i.id for i in items] == ["mix00007", "mix00008"]
    meta = json.loads((tmp_path / "set" / "mix00007.json").read_text())
    first = items[0]
    assert first.reference.endswith("mix00007.target.flac") and first.mixture.endswith("mix00007.mixture.flac")
    assert (first.onset, first.offset, first.cls, first.query) == (meta["onset"], meta["offset"], meta["target_label"],
                                                                   meta["prompts"][0])
    family = ALL_KINDS[meta["target_kind"]].family
    assert first.kind == {"voice": "speech", "instrument": "music", "drums": "music"}.get(family, "environment")


def test_synthetic_development_set_is_balanced_above_the_training_seeds(corpus_cache, tmp_path):
    from eventsep.corpus.mixtures import committed_synthetic_plan, synthetic_plan, write_synthetic_set
    from eventsep.separators.audiosep.train import DEFAULTS

    committed = committed_synthetic_plan()  # what `eventsep corpus OUT --synthetic-dev` renders
    plan = synthetic_plan(48)
    assert committed["items"] == plan["items"]  # the committed manifest is what the code renders
    assert min(item["seed"] for item in plan["items"]) >= max(DEFAULTS.train_seeds)
    for family in ("speech", "music", "environment"):
        assert sum(item["kind"] == family for item in plan["items"]) == 16
    assert sum(item["remove"] for item in plan["items"]) == 12
    removal = next(item for item in plan["items"] if item["remove"])
    short = {**plan, "seconds": 4.0, "items": [removal]}
    manifest = json.loads(write_synthetic_set(short, tmp_path / "syn").read_text())
    entry = manifest["items"][0]
    assert entry["remove"] is True and entry["reference"].endswith(".interferer.flac")
    assert 0 < entry["onset"] < entry["offset"] <= 4.0 and (tmp_path / "syn" / entry["mixture"]).exists()


def test_synthetic_dev_takes_no_seeds_and_excludes_real(tmp_path, capsys):
    from flows.cli import EXIT_BAD_INPUT, main

    assert main(["corpus", str(tmp_path / "o"), "--synthetic-dev", "--seeds", "0-3"]) == EXIT_BAD_INPUT
    assert "takes no --seeds" in capsys.readouterr().err and not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        main(["corpus", str(tmp_path / "o"), "--synthetic-dev", "--real"])


def _dominant_hz(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_procedural_sounds_sound_like_their_class(seed):
    """An alarm beeps at 1.8-4.2 kHz with gaps; a siren sweeps between 0.5 and 1.7 kHz without gaps; glass
    clinks ring above 1.5 kHz and die away. Fixed per seed."""
    from eventsep.corpus.procedural import KINDS, render

    rate = 32000
    alarm, siren, glass = (render(KINDS[name], seed, 3.0, rate) for name in ("alarm", "siren", "clinking glass"))
    assert np.array_equal(alarm, render(KINDS["alarm"], seed, 3.0, rate)) and alarm.dtype == np.float32
    assert 1800 <= _dominant_hz(alarm, rate) <= 4200 * 1.01 and (np.abs(alarm) < 1e-6).mean() > 0.1
    frames = siren[: len(siren) // 320 * 320].reshape(-1, 320)
    assert 480 <= _dominant_hz(siren, rate) <= 1750 and (np.abs(frames).max(axis=1) > 0.01).all()
    assert [_dominant_hz(frames[i], rate) for i in (0, len(frames) // 2)] != [0.0, 0.0]
    assert _dominant_hz(glass, rate) >= 1500
    onset = int(np.argmax(np.abs(glass) > 0.05))
    ring = glass[onset:onset + rate // 5]
    assert np.abs(ring[-rate // 50:]).max() < 0.5 * np.abs(ring[: rate // 50]).max()  # it dies away
    for kind in KINDS.values():
        by_name(kind.label)


def test_procedural_targets_are_active_once_for_part_of_the_item():
    from eventsep.corpus.procedural import KINDS, procedural_classes, procedural_target, PROCEDURAL_SEEDS

    kinds = []
    for i in range(12):
        track, kind, prompts = procedural_target(PROCEDURAL_SEEDS + i, 4.0, 16000)
        span = np.flatnonzero(track)
        assert 0.25 * len(track) <= span[-1] - span[0] + 1 <= 0.6 * len(track) and kind in KINDS
        assert len(prompts) == 4 and all(isinstance(p, str) and p for p in prompts)
        kinds.append(KINDS[kind].label)
    from collections import Counter

    assert procedural_classes(12) == dict(Counter(kinds))  # the card's counts are the items' kinds


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_procedural_glass_stays_below_nyquist_at_16_khz(seed):
    from eventsep.corpus.procedural import KINDS, render

    spectrum = np.abs(np.fft.rfft(render(KINDS["clinking glass"], seed, 2.0, 16000)))
    frequencies = np.fft.rfftfreq(32000, 1 / 16000)
    # partials drawn up to 10 kHz and folded back put 8-21 % of the magnitude above 7.3 kHz; the strike's click
    # alone puts under 3 % there
    assert spectrum[frequencies > 7300].sum() < 0.05 * spectrum.sum()
