"""`eventsep evaluate`: the manifest, the grid, the metrics per item and setting, the aggregates and the files."""

import csv
import json
import os

import numpy as np
import pytest

from eventsep.evaluate import (GridSpec, ManifestError, evaluate, paired_bootstrap, read_manifest, summarise,
                               write_manifest)
from eventsep.metrics import sdr
from eventsep.audio import load_audio
from flows.cli import EXIT_BAD_INPUT, EXIT_OK, main
from standins import STANDIN_OPTIONS, tone_set

STANDINS = ["--local", "--encoder", "standin-encoder", "--sed", "standin-sed", "--separators", "standin-a,standin-b"]


@pytest.fixture
def manifest(cache_env):
    (cache_env / "set").mkdir()
    return tone_set(cache_env / "set")


def test_manifest_paths_are_relative_to_its_folder_and_read_back(cache_env, manifest):
    stored = json.loads(manifest.read_text())["items"]
    assert stored[0]["mixture"] == "tone0.mixture.wav" and stored[0]["kind"] == "speech"
    items = read_manifest(manifest)
    assert [i.id for i in items] == ["tone0", "tone1"] and items[1].kind == "music"
    assert items[0].mixture == str(manifest.parent / "tone0.mixture.wav") and items[0].cls == "Sine wave"
    bare = cache_env / "set" / "bare.json"  # a bare list is accepted too
    bare.write_text(json.dumps(json.loads(manifest.read_text())["items"]))
    assert [i.id for i in read_manifest(bare)] == ["tone0", "tone1"]


@pytest.mark.parametrize("change, problem", [
    ({"reference": "gone.wav"}, "reference"),
    ({"kind": "noise"}, "kind must be one of"),
    ({"onset": 2.0, "offset": 1.0}, "not after onset"),
    ({"offset": None}, "both onset and offset"),
    ({"class": "Tuba"}, "not an AudioSet display name"),
    ({"query": ""}, "'query'"),
    ({"id": "tone0"}, "used twice"),
])
def test_bad_manifest_item_exits_2_with_one_line_naming_it(cache_env, manifest, capsys, change, problem):
    data = json.loads(manifest.read_text())
    data["items"][1].update(change)
    data["items"][1] = {k: v for k, v in data["items"][1].items() if v is not None}
    manifest.write_text(json.dumps(data))
    assert main(["evaluate", str(manifest), "-o", str(cache_env / "out"), *STANDINS]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and problem in err and "item 1" in err
    assert not (cache_env / "out").exists()


def test_not_json_is_one_line(cache_env, capsys):
    path = cache_env / "m.json"
    path.write_text("{items: [")
    with pytest.raises(ManifestError, match="not JSON"):
        read_manifest(path)
    assert main(["evaluate", str(path), "-o", str(cache_env / "out"), *STANDINS]) == EXIT_BAD_INPUT


def test_grid_has_each_separator_alone_each_fusion_and_the_masked_mixture():
    spec = GridSpec(separators=("a", "b"), fusions=("band", "rate"), masks=("off", "soft", "hard"),
                    thresholds=(0.3, 0.5))
    labels = [p.label() for p in spec.points()]
    assert len(labels) == len(set(labels)) == 4 * 5 + 4
    assert "a · mask off" in labels and "fused rate · hard θ=0.3" in labels and "mixture · soft θ=0.5" in labels
    assert "mixture · mask off" not in labels
    single = [p.label() for p in GridSpec(separators=("a",), masks=("off", "hard"), thresholds=(0.5,)).points()]
    assert single == ["a · mask off", "a · hard θ=0.5", "mixture · hard θ=0.5"]


def test_paired_bootstrap_interval_and_summaries():
    gains = np.random.default_rng(0).normal(1.0, 1.0, 200)
    result = paired_bootstrap(gains)
    assert result["ci95"][0] < result["mean"] < result["ci95"][1]
    assert 0.1 < result["ci95"][1] - result["ci95"][0] < 0.6  # about 2 x 1.96 x 1/sqrt(200)
    assert paired_bootstrap(gains) == result  # fixed seed
    assert paired_bootstrap([2.0, 2.0, float("nan")])["ci95"] == [2.0, 2.0]
    # the mask rule's figures count every pair: a silent answer (-inf) is the worst item and a loss over 1 dB
    # though the mean leaves it out; a loss of exactly 1 dB is not over it
    rule = paired_bootstrap([0.5, -1.0, -1.5, float("-inf"), float("nan"), 3.0])
    assert rule["worst"] == float("-inf") and rule["lost_1db"] == 2
    assert rule["n"] == 4 and rule["mean"] == (0.5 - 1.0 - 1.5 + 3.0) / 4
    assert paired_bootstrap([0.2, -0.7])["worst"] == -0.7 and paired_bootstrap([])["lost_1db"] == 0
    summary = summarise([1.0, 3.0, float("-inf"), None])
    assert summary["mean"] == 2.0 and summary["median"] == 1.0 and summary["n_finite"] == 2 and summary["n"] == 3


def test_evaluate_scores_every_item_and_setting_and_writes_the_files(cache_env, manifest, standin_options):
    from eventsep.api import make_options

    spec = GridSpec(separators=("standin-a", "standin-b"), fusions=("band",), masks=("off", "hard"),
                    thresholds=(0.5,))
    out = cache_env / "out"
    doc = evaluate(manifest, out, spec, make_options(standin_options), audio_items=1)
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.csv", "report.html", "items", "audio"}
    rows = {(r["item"], r["setting"]): r for r in doc["rows"]}
    assert len(rows) == 2 * len(spec.points()) == 2 * 7  # 3 sources x (off, hard) + the masked mixture
    mixture = load_audio(manifest.parent / "tone0.mixture.wav").samples
    reference = load_audio(manifest.parent / "tone0.reference.wav").samples
    # standin-a answers half the mixture: SI-SDR is blind to the scale, the SNR-style SDR is not
    alone = rows["tone0", "standin-a · mask off"]
    assert alone["si_sdri"] == pytest.approx(0.0, abs=1e-6)
    assert alone["sdri"] == pytest.approx(sdr(0.5 * mixture, reference) - sdr(mixture, reference), abs=1e-4)
    # the SED mask (energy stand-in) takes out the noise before and after the tone: the WHEN, measured directly
    for source in ("standin-a", "standin-b", "fused band"):
        for item in ("tone0", "tone1"):
            assert rows[item, f"{source} · hard θ=0.5"]["outside_db"] < rows[item, f"{source} · mask off"][
                "outside_db"] - 20
    for item in ("tone0", "tone1"):
        assert rows[item, "standin-a · hard θ=0.5"]["si_sdri"] > rows[item, "standin-a · mask off"]["si_sdri"] + 1
    assert 0.0 < rows["tone0", "mixture · hard θ=0.5"]["stoi"] <= 1.0  # speech item: STOI and ESTOI
    assert np.isnan(rows["tone1", "mixture · hard θ=0.5"]["stoi"])  # music item: none
    assert not any(r["silent"] for r in doc["rows"])
    summary = doc["summary"]["standin-a · hard θ=0.5"]
    assert summary["items"] == 2 and set(summary["by_kind"]) == {"speech", "music"}
    gain = next(g for g in doc["gains"] if g["setting"] == "standin-a · hard θ=0.5" and g["kind"] == "mask")
    assert gain["over"] == "standin-a · mask off" and gain["si_sdri"]["n"] == 2 and gain["si_sdri"]["mean"] > 1
    assert {g["over"] for g in doc["gains"] if g["setting"] == "fused band · mask off"} == {
        "standin-a · mask off", "standin-b · mask off"}
    saved = json.loads((out / "results.json").read_text())
    # the run's own setting (soft θ=0.5) is not in this grid: pictures and audio show its first point
    assert "SNR-style" in saved["note"] and saved["default"] == "standin-a · mask off"
    with open(out / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 14 and "sdri_snr_style" in table[0]
    assert sorted(p.name for p in (out / "audio").iterdir()) == [
        f"tone0.{part}.ogg" for part in ("estimate", "mixture", "reference", "residual")]
    assert sorted(p.name for p in (out / "items").iterdir()) == ["tone0.png", "tone1.png"]


def test_evaluate_command_and_a_silent_answer(cache_env, manifest, capsys):
    out = cache_env / "out"
    args = ["evaluate", str(manifest), "-o", str(out), "--masks", "off,hard", "--thresholds", "0.5,1.0",
            "--fusions", "rate", "--no-report", *STANDINS]
    assert main(args) == EXIT_OK
    printed = capsys.readouterr().out
    assert "SNR-style" in printed and "fused rate · hard θ=1" in printed
    doc = json.loads((out / "results.json").read_text())
    # θ = 1 with min_peak: the energy stand-in reaches 1 only at its loudest frame; the mask passes almost
    # nothing there, so the answer is silent (20 dB or more below the reference) for every item
    silent = doc["summary"]["mixture · hard θ=1"]["silent"]
    assert silent == 2 and doc["summary"]["mixture · hard θ=0.5"]["silent"] == 0
    assert not (out / "report.html").exists()


def test_write_manifest_keeps_outside_paths_absolute(cache_env, manifest):
    target = cache_env / "elsewhere" / "m.json"
    target.parent.mkdir()
    write_manifest([{"id": "x", "mixture": str(manifest.parent / "tone0.mixture.wav"),
                     "reference": str(manifest.parent / "tone0.reference.wav"), "query": "q", "kind": None}], target)
    item = json.loads(target.read_text())["items"][0]
    assert item["mixture"].startswith("/") and "kind" not in item
    assert read_manifest(target)[0].query == "q"


def test_standin_options_match_the_command_lines(standin_options):
    assert tuple(standin_options["separators"]) == tuple(STANDIN_OPTIONS["separators"])


def test_the_defaults_row_is_what_separate_answers_with_no_option(cache_env, manifest, standin_options,
                                                                  monkeypatch):
    """The `separate defaults` row scores `eventsep.separate(mixture, query)` itself (separators, SED and mask
    as "auto" resolves them per query), not a grid point; with no option given the grid runs other separators."""
    import eventsep
    from eventsep import pipeline
    from eventsep.api import make_options
    from eventsep.evaluate import DEFAULTS_LABEL
    from eventsep.metrics import si_sdr

    # "auto" picks standin-b for a query that is not speech, standin-a for speech; the grid runs standin-a only
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "other", lambda: ("standin-b",))
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "speech", lambda: ("standin-a",))
    spec = GridSpec(separators=("standin-a",), masks=("off",), baseline=False, defaults=True)
    options = make_options(standin_options, separators=("standin-a",))
    doc = evaluate(manifest, cache_env / "out", spec, options, report=False)
    rows = {(r["item"], r["setting"]): r for r in doc["rows"]}
    for item in read_manifest(manifest):
        mixture, reference = load_audio(item.mixture).samples, load_audio(item.reference).samples
        answer = eventsep.separate(item.mixture, item.query, encoder="standin-encoder", sed="standin-sed")
        row = rows[item.id, DEFAULTS_LABEL]
        assert row["separator"] == "standin-b"  # "the tone" is not speech
        assert row["mask_mode"] == "off"  # "auto" finds the events but applies no gain to a non-speech answer
        assert row["si_sdri"] == pytest.approx(si_sdr(answer.target, reference) - si_sdr(mixture, reference),
                                               abs=1e-4)
        assert row["si_sdri"] != pytest.approx(rows[item.id, "standin-a · mask off"]["si_sdri"], abs=0.1)
    assert doc["summary"][DEFAULTS_LABEL]["items"] == 2
    gain = next(g for g in doc["gains"] if g["kind"] == "defaults")
    assert gain["setting"] == DEFAULTS_LABEL and gain["over"] == "standin-a · mask off"


def test_the_report_shows_what_separate_answers_when_it_was_scored(cache_env, manifest, standin_options,
                                                                  monkeypatch):
    """With the defaults row, the report's pictures, players and items table show that answer (what a user of
    `eventsep separate` hears), not the grid point closest to it."""
    from eventsep import pipeline
    from eventsep.api import make_options
    from eventsep.evaluate import DEFAULTS_LABEL
    from eventsep.report import number

    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "other", lambda: ("standin-b",))
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "speech", lambda: ("standin-a",))
    import eventsep
    from eventsep import report

    drawn = {}
    real_overview = report.overview_png

    def recording_overview(path, panels, *args, **kwargs):  # keep the estimate each picture draws
        drawn[os.path.basename(str(path)).rsplit(".", 1)[0]] = (panels[1][0], panels[1][1])
        return real_overview(path, panels, *args, **kwargs)

    monkeypatch.setattr(report, "overview_png", recording_overview)
    options = make_options(standin_options, separators=("standin-a",))
    spec = GridSpec(separators=("standin-a",), masks=("off",), baseline=False, defaults=True)
    doc = evaluate(manifest, cache_env / "shown", spec, options, audio_items=0)
    assert doc["shown"] == DEFAULTS_LABEL and doc["default"] == "standin-a · mask off"
    for item in read_manifest(manifest):
        title, estimate = drawn[item.id]
        answer = eventsep.separate(item.mixture, item.query, encoder="standin-encoder", sed="standin-sed")
        assert title == f"estimate: {DEFAULTS_LABEL}"
        np.testing.assert_array_equal(estimate, answer.target)
    page = (cache_env / "shown" / "report.html").read_text()
    assert f"pictures and players show <b>{DEFAULTS_LABEL}</b>" in page
    rows = {(r["item"], r["setting"]): r for r in doc["rows"]}
    for item in ("tone0", "tone1"):
        shown, grid = rows[item, DEFAULTS_LABEL]["si_sdri"], rows[item, "standin-a · mask off"]["si_sdri"]
        assert f"SI-SDRi {number(shown)} dB" in page and f"SI-SDRi {number(grid)} dB" not in page
    without = evaluate(manifest, cache_env / "grid", spec.model_copy(update={"defaults": False}), options,
                       audio_items=0)
    assert without["shown"] == "standin-a · mask off"


def test_kinds_selects_items_and_refuses_unknown_or_empty_selections(cache_env, manifest, capsys):
    out = cache_env / "out"
    args = ["evaluate", str(manifest), "-o", str(out), "--masks", "off", "--fusions", "", "--no-report",
            "--no-defaults", *STANDINS]
    assert main([*args, "--kinds", "music"]) == EXIT_OK
    doc = json.loads((out / "results.json").read_text())
    assert [i["id"] for i in doc["items"]] == ["tone1"] and {r["item"] for r in doc["rows"]} == {"tone1"}
    capsys.readouterr()
    for kinds, problem in (("noise", "unknown kind"), ("environment", "no item of kind environment")):
        assert main([*args, "-o", str(cache_env / kinds), "--kinds", kinds]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and problem in err and not (cache_env / kinds).exists()


def test_floor_sets_the_gain_the_grid_masks_keep_outside_events(cache_env, manifest, capsys):
    args = ["evaluate", str(manifest), "--masks", "off,hard", "--thresholds", "0.5", "--fusions", "",
            "--no-report", "--no-defaults", *STANDINS]
    assert main([*args, "-o", str(cache_env / "one"), "--floor", "1.0"]) == EXIT_OK
    rows = {(r["item"], r["setting"]): r for r in json.loads((cache_env / "one" / "results.json").read_text())["rows"]}
    for item in ("tone0", "tone1"):  # a floor of 1 passes everything: the masked answer is the unmasked one
        assert rows[item, "standin-a · hard θ=0.5"]["si_sdri"] == pytest.approx(
            rows[item, "standin-a · mask off"]["si_sdri"], abs=1e-6)
    assert main([*args, "-o", str(cache_env / "half"), "--floor", "0.5"]) == EXIT_OK
    half = {(r["item"], r["setting"]): r for r in json.loads((cache_env / "half" / "results.json").read_text())["rows"]}
    assert half["tone0", "standin-a · hard θ=0.5"]["outside_db"] == pytest.approx(
        rows["tone0", "standin-a · mask off"]["outside_db"] + 20 * np.log10(0.5), abs=0.5)
    capsys.readouterr()
    assert main([*args, "-o", str(cache_env / "bad"), "--floor", "1.5"]) == EXIT_BAD_INPUT
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (cache_env / "bad").exists()


def test_the_oracle_mask_gates_each_source_by_the_true_span(cache_env, manifest, standin_options):
    from eventsep.api import make_options
    from eventsep.metrics import si_sdr

    spec = GridSpec(separators=("standin-a",), fusions=(), masks=("off", "oracle"), thresholds=(0.3, 0.5))
    assert [p.label() for p in spec.points()] == ["standin-a · mask off", "standin-a · oracle span",
                                                  "mixture · oracle span"]  # one oracle point, whatever θ
    doc = evaluate(manifest, cache_env / "out", spec, make_options(standin_options), report=False)
    rows = {(r["item"], r["setting"]): r for r in doc["rows"]}
    for index in (0, 1):
        mixture = load_audio(manifest.parent / f"tone{index}.mixture.wav").samples.astype(np.float64)
        reference = load_audio(manifest.parent / f"tone{index}.reference.wav").samples.astype(np.float64)
        t = np.arange(len(mixture)) / 32000
        inside = (t >= 1.0) & (t < 2.0)  # the manifest's onset 1.0 s and offset 2.0 s
        for setting, estimate in (("standin-a · oracle span", 0.5 * mixture * inside),
                                  ("mixture · oracle span", mixture * inside)):
            row = rows[f"tone{index}", setting]
            expected = si_sdr(estimate, reference) - si_sdr(mixture, reference)
            # the gate's 10 ms fades at the edges cut a little of this sharp-edged tone: never more than the exact gate
            assert expected - 1.5 < row["si_sdri"] <= expected + 0.01
            assert row["outside_db"] < -50  # nothing outside the span but the fades' 5 ms
        assert rows[f"tone{index}", "standin-a · oracle span"]["si_sdri"] > rows[f"tone{index}",
                                                                                "standin-a · mask off"]["si_sdri"] + 3
    gain = next(g for g in doc["gains"] if g["setting"] == "standin-a · oracle span")
    assert gain["kind"] == "mask" and gain["over"] == "standin-a · mask off" and gain["si_sdri"]["mean"] > 3


def test_the_oracle_mask_needs_every_item_span(cache_env, manifest, capsys):
    data = json.loads(manifest.read_text())
    del data["items"][1]["onset"], data["items"][1]["offset"]
    manifest.write_text(json.dumps(data))
    out = cache_env / "out"
    code = main(["evaluate", str(manifest), "-o", str(out), "--masks", "off,oracle", "--no-report", *STANDINS])
    [line] = capsys.readouterr().err.splitlines()
    assert code == EXIT_BAD_INPUT and not out.exists()
    assert line.endswith("the oracle mask needs each item's onset and offset; tone1 lack them")


def test_an_oracle_point_is_a_hard_floor_0_gate_on_the_span_alone():
    from eventsep.config import MaskParams
    from eventsep.mask import compute_mask
    from eventsep.pipeline import GridPoint, RunOptions, _point_mask

    options = RunOptions(mask={"mode": "soft", "floor": 0.5, "spans": "0.1-0.2", "threshold": 0.3})
    params = _point_mask(GridPoint(mask_mode="oracle", separator="x"), options, (1.0, 2.0))
    assert (params.mode, params.spans, params.spans_mode, params.floor) == ("hard", ((1.0, 2.0),), "replace", 0.0)
    assert _point_mask(GridPoint(mask_mode="soft", threshold=0.7), options, (1.0, 2.0)) == MaskParams(
        mode="soft", floor=0.5, spans="0.1-0.2", threshold=0.7)  # other points keep the options' mask
    with pytest.raises(ValueError, match="the oracle mask needs the wanted sound's onset and offset"):
        _point_mask(GridPoint(mask_mode="oracle"), options, None)
    # the detector is not read: probabilities of 1 everywhere change nothing
    gain = compute_mask(np.ones((30, 3), np.float32), 10.0, [0], params, num_samples=96000, sample_rate=32000).gain
    t = np.arange(96000) / 32000
    assert np.all(gain[(t > 1.01) & (t < 1.99)] == 1.0) and np.all(gain[(t < 0.99) | (t > 2.01)] == 0.0)
