"""An untrusted separator answer (near-silent while the sound is there, or a class outside its model card) is
announced, flagged and by default replaced by the mixture gated by the detector (eventsep/trust.py)."""

import numpy as np
import pytest

import eventsep
from eventsep import backends, cards
from eventsep.mask import apply_gain
from eventsep.trust import kin
from standins import GainSeparator


@pytest.fixture
def quiet_separator(cache_env, standin_options):
    """A stand-in separator answering 60 dB below its input; the energy stand-in SED finds the tone."""
    weights = cache_env / "weights" / "standin-a.bin"
    backends.register("separator", "standin-quiet", lambda: GainSeparator("standin-quiet", 32000, 1e-3, weights))
    return {**standin_options, "separators": ("standin-quiet",)}


def test_a_near_silent_answer_is_replaced_by_the_gated_mixture(quiet_separator, mixture):
    # a mask floor of 0.5 protects a separator's answer; the fallback gates the mixture by the detector alone
    result = eventsep.separate((mixture.samples, mixture.sample_rate), "the tone", options=quiet_separator,
                               mask={"mode": "soft", "floor": 0.5})
    assert result.extra["answer"] == "gated mixture"
    assert "60 dB below the mixture while the detector finds it" in result.extra["untrusted"]
    [warning] = [w for w in result.extra["warnings"] if "gated by the detector" in w]
    assert result.mapping["classes"][0]["name"] in warning
    gate = (result.gain - 0.5) / 0.5
    np.testing.assert_allclose(result.target, apply_gain(mixture.samples, gate), atol=1e-6)
    assert 0.0 <= gate.min() < 0.1 and gate.max() > 0.9  # the detector's gate, not the mixture itself


def test_the_default_mask_still_gives_the_fallback_the_detectors_whole_gate(quiet_separator, mixture):
    # "auto" does not apply its gain to a separator's answer, but a near-silent answer is replaced by the mixture
    # gated by the detector with no floor: silent where the detector finds nothing
    result = eventsep.separate((mixture.samples, mixture.sample_rate), "the tone", options=quiet_separator)
    assert result.options["mask"]["mask_at"] == "none" and result.extra["answer"] == "gated mixture"
    np.testing.assert_allclose(result.target, apply_gain(mixture.samples, result.gain), atol=1e-6)
    assert result.gain.min() < 0.01 and result.gain.max() > 0.99
    assert "not applied" in result.extra["mask_note"]


def test_a_removal_keeps_the_separator_answer_with_a_warning_by_default(quiet_separator, mixture):
    result = eventsep.separate((mixture.samples, mixture.sample_rate), "remove the tone", options=quiet_separator)
    assert result.mapping["remove"] and result.extra["answer"] == "separator"
    assert any("a removal is not answered by the detector's gate" in w for w in result.extra["warnings"])
    # the default ("auto") mask finds events but leaves the answer as separated (docs/mask.md)
    np.testing.assert_allclose(result.target, mixture.samples - 1e-3 * mixture.samples, atol=1e-6)


def test_gated_all_answers_a_removal_with_the_mixture_gated_by_one_minus_the_gain(quiet_separator, mixture):
    result = eventsep.separate((mixture.samples, mixture.sample_rate), "remove the tone",
                               options={**quiet_separator, "fallback": "gated-all"}, mask={"mode": "soft"})
    assert result.mapping["remove"] and result.extra["answer"] == "gated mixture"
    np.testing.assert_allclose(result.target, mixture.samples * (1.0 - result.gain), atol=1e-6)
    np.testing.assert_allclose(result.residual, mixture.samples * result.gain, atol=1e-6)


def test_a_gate_that_would_leave_almost_nothing_gives_the_mixture_whole(quiet_separator, mixture):
    # the gate is open for the first 10 ms only, where there is only faint noise
    result = eventsep.separate((mixture.samples, mixture.sample_rate), "the tone", options=quiet_separator,
                               mask={"spans": "0-0.01", "spans_mode": "replace"})
    assert result.extra["answer"] == "mixture"
    assert any("answering with the mixture itself" in w for w in result.extra["warnings"])
    np.testing.assert_allclose(result.target, mixture.samples, atol=1e-6)
    # a removal whose gate is open everywhere (one span over the whole clip) would remove everything: nothing is
    # removed instead; the quiet separator is distrusted because the detector finds the sound (the span)
    whole = f"0-{len(mixture.samples) / mixture.sample_rate:.3f}"
    removed = eventsep.separate((mixture.samples, mixture.sample_rate), "remove the tone",
                                options={**quiet_separator, "fallback": "gated-all"},
                                mask={"spans": whole, "spans_mode": "replace", "mode": "hard"})
    assert removed.extra["answer"] == "mixture"
    np.testing.assert_allclose(removed.target, mixture.samples, atol=1e-6)


def test_fallback_off_keeps_the_separator_answer_but_still_warns(quiet_separator, mixture):
    result = eventsep.separate((mixture.samples, mixture.sample_rate), "the tone",
                               options={**quiet_separator, "fallback": "off"})
    assert result.extra["answer"] == "separator" and result.extra["untrusted"]
    assert any("fallback off" in w for w in result.extra["warnings"])
    assert np.sqrt(np.mean(result.target ** 2)) < 1e-3 * np.sqrt(np.mean(mixture.samples ** 2)) * 1.01


def test_a_class_outside_the_model_card_is_announced(cache_env, standin_options, mixture, monkeypatch):
    # standin-a answers with DeepFilterNet3's card, which lists speech classes only
    monkeypatch.setitem(cards.SEPARATOR_CARDS, "standin-a", "eventsep.separators.dfn3.backend:card_name")
    result = eventsep.separate((mixture.samples, mixture.sample_rate), "the tone",
                               options={**standin_options, "separators": ("standin-a",)})
    name = result.mapping["classes"][0]["name"]
    assert not kin(name) & set(cards.load_card("deepfilternet3")["classes"])
    assert result.extra["untrusted"] == (f"{name!r} is outside the classes the separator was trained on "
                                         "(model card of standin-a)")
    # announced, not replaced: the answer stays the separator's (docs/trust.md)
    assert result.extra["answer"] == "separator"
    assert [w for w in result.extra["warnings"] if "outside the classes" in w] == [
        f"{result.extra['untrusted']}: answering with the separator's output, which may miss or mistake the sound"]
    np.testing.assert_allclose(result.target, 0.5 * mixture.samples, atol=1e-6)  # auto: the gain is not applied


def test_a_normal_answer_carries_no_warning(cache_env, standin_options, mixture):
    result = eventsep.separate((mixture.samples, mixture.sample_rate), "the tone",
                               options={**standin_options, "separators": ("standin-a",)})
    assert result.extra["answer"] == "separator" and "untrusted" not in result.extra
    assert not any("trained on" in w or "below the mixture" in w for w in result.extra.get("warnings", []))
    np.testing.assert_allclose(result.target, 0.5 * mixture.samples, atol=1e-6)  # auto: the gain is not applied


def test_auto_leaves_the_answer_unmasked_however_the_options_are_given(cache_env, standin_options, mixture):
    """A RunOptions object passes through model_dump/model_validate in `api.separate` (every field then counts as
    set); "auto" must still leave a non-speech answer as separated, as it does for a dict of options."""
    from eventsep.pipeline import RunOptions

    for options in ({**standin_options, "separators": ("standin-a",)},
                    RunOptions(**{**standin_options, "separators": ("standin-a",)})):
        result = eventsep.separate((mixture.samples, mixture.sample_rate), "the tone", options=options)
        assert result.options["mask"]["mask_at"] == "none" and "not applied" in result.extra["mask_note"]
        np.testing.assert_allclose(result.target, 0.5 * mixture.samples, atol=1e-6)


def test_a_run_frees_its_fused_audio_and_answers_as_a_kept_one_would(cache_env, standin_options, mixture):
    """`pipeline.run` lets `finish` take the fused audio out of its stage result (one whole-length array less at
    the peak); the answer is the one `finish` gives when the result is kept, as re-fusion does."""
    from eventsep.api import local_runner
    from eventsep.pipeline import RunOptions, finish

    result = eventsep.separate((mixture.samples, mixture.sample_rate), "the tone",
                               options={**standin_options, "separators": ("standin-a",)})
    store = local_runner().store
    fused, mask_result, mapping = (store.load(result.keys[name]) for name in ("fuse", "mask", "map_query"))
    options = RunOptions(**result.options)  # as resolved for the query
    kept = finish(mixture, fused, mask_result, mapping, options)
    assert "audio" in fused.arrays  # re-fusion's grid reuses it
    taken = finish(mixture, fused, mask_result, mapping, options, consume=True)
    assert "audio" not in fused.arrays
    for answer in (kept, taken):
        np.testing.assert_array_equal(answer.target, result.target)
        np.testing.assert_array_equal(answer.residual, result.residual)


def test_the_command_line_prints_one_warning_line_and_the_report_records_the_answer(quiet_separator, mixture,
                                                                                      cache_env, capsys):
    import json

    from eventsep.audio import write_audio
    from flows.cli import EXIT_OK, main

    wav = cache_env / "tone.wav"
    write_audio(wav, mixture.samples, mixture.sample_rate)
    out = wav.parent / "out"
    args = ["--local", "--encoder", "standin-encoder", "--sed", "standin-sed", "--separators", "standin-quiet"]
    assert main(["separate", str(wav), "the tone", "-o", str(out), *args]) == EXIT_OK
    [line] = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    report = json.loads((out / "tone.report.json").read_text())
    assert line.startswith("eventsep: warning: ") and report["mapping"]["classes"][0]["name"] in line
    assert "gated by the detector" in line and report["answer"] == "gated mixture" and report["untrusted"]
    assert main(["separate", str(wav), "the tone", "-o", str(out), *args, "--fallback", "off"]) == EXIT_OK
    [line] = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert "(fallback off)" in line and json.loads((out / "tone.report.json").read_text())["answer"] == "separator"



def test_evaluate_scores_the_fallback_answer_and_records_it(quiet_separator, cache_env):
    from eventsep.evaluate import GridSpec, evaluate
    from eventsep.pipeline import RunOptions
    from standins import tone_set

    (cache_env / "set").mkdir()
    spec = GridSpec(separators=("standin-quiet",), masks=("soft",), thresholds=(0.5,))
    doc = evaluate(tone_set(cache_env / "set"), cache_env / "eval", spec, options=RunOptions(**quiet_separator),
                   report=False)
    rows = {(r["item"], r["setting"]): r for r in doc["rows"]}
    for item in {r["item"] for r in doc["rows"]}:
        fallback, gated = rows[(item, "standin-quiet · soft θ=0.5")], rows[(item, "mixture · soft θ=0.5")]
        assert fallback["answer"] == gated["answer"] == "gated mixture"
        assert fallback["si_sdri"] == pytest.approx(gated["si_sdri"], abs=1e-6) and fallback["si_sdri"] > 1.0
    assert "answer" in (cache_env / "eval" / "results.csv").read_text().splitlines()[0]


def test_the_prefect_artifact_says_which_answer_was_given(prefect_server, quiet_separator, mixture, cache_env):
    from prefect.client.orchestration import get_client

    from eventsep.api import make_options
    from eventsep.audio import write_audio
    from flows.artifacts import artifact_key
    from flows.separate import separate_flow

    wav = cache_env / "quiet.wav"
    write_audio(wav, mixture.samples, mixture.sample_rate)
    summary = separate_flow(str(wav), "the tone", str(cache_env / "out"), make_options(quiet_separator))
    assert summary["answer"] == "gated mixture"
    with get_client(sync_client=True) as client:
        [outputs] = [a for a in client.read_artifacts() if a.key == f"outputs-{artifact_key('quiet')}"]
    assert "answer: gated mixture" in outputs.data and "gated by the detector" in outputs.data


def test_a_class_heard_in_few_training_clips_does_not_count_as_trained_on(monkeypatch):
    from eventsep import trust

    card = {"classes": {"Dog": 40, "Whale vocalization": trust.CARD_MIN_CLIPS - 1, "Speech": None}}
    monkeypatch.setattr(cards, "separator_card", lambda name: card)
    assert trust.card_classes("audiosep") == {"Dog", "Speech"}
    card["classes"] = ["Speech", "Whale vocalization"]  # a card without counts lists what it knows
    assert trust.card_classes("audiosep") == {"Speech", "Whale vocalization"}


def test_second_energies_fall_on_the_recordings_seconds_wherever_a_piece_starts():
    from eventsep.trust import second_energies

    samples = np.arange(1, 26, dtype=np.float32)  # a piece starting at sample 7 of a recording at 10 Hz
    first, sums = second_energies(samples, 10, start=7)
    assert first == 0 and len(sums) == 4  # samples 7-9 in second 0, 10-19 in second 1, 20-29, 30-31
    expected = [np.sum(samples[a:b].astype(np.float64) ** 2) for a, b in ((0, 3), (3, 13), (13, 23), (23, 25))]
    np.testing.assert_allclose(sums, expected)


def test_the_loudest_second_reads_the_mixture_no_lower_than_quiet_db_under_its_mean_second():
    from eventsep.trust import QUIET_DB, loudest_second_db

    mixture = np.array([1.0, 1.0, 1.0, 1e-9])
    assert loudest_second_db(np.array([0.5, 0.01, 0.01, 0.0]), mixture) == pytest.approx(-3.0103, abs=1e-3)
    # a faint answer in the mixture's near-silent second is read against the floor, not the silence
    floor = mixture.mean() * 10 ** (-QUIET_DB / 10)
    assert loudest_second_db(np.array([0.0, 0.0, 0.0, 1e-4]), mixture) == pytest.approx(
        10 * np.log10(1e-4 / floor))
    assert loudest_second_db(np.zeros(4), mixture) == float("-inf")


def _quiet_between_loud(rate=32000):
    """A loud 5 kHz tone in seconds 0-1 and 2-3, a quiet 440 Hz tone alone in second 1-2 (a horse between
    gunshots); and the same loud tone throughout over a 440 Hz tone 30 dB under it (a whisper under a roar)."""
    t = np.arange(3 * rate) / rate
    loud = np.sin(2 * np.pi * 5000 * t)
    between = 0.03 * np.sin(2 * np.pi * 440 * t)
    second = (t >= 1.0) & (t < 2.0)
    horse = np.where(second, between, 0.3 * loud).astype(np.float32)
    whisper = (0.3 * loud + 0.0095 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return horse, whisper, rate


def test_an_answer_quiet_overall_but_loud_where_it_happens_is_trusted(cache_env, standin_options):
    # the low-pass stand-in answers with the 440 Hz tone, over 20 dB under the mixture overall in both recordings;
    # in the first it is the whole mixture in its second, in the second it is 30 dB under it everywhere
    from eventsep.trust import level_db

    horse, whisper, rate = _quiet_between_loud()
    options = {**standin_options, "separators": ("standin-lowpass",)}
    kept = eventsep.separate((horse, rate), "the tone", options=options)
    assert level_db(kept.target, horse) < -20
    assert kept.extra["answer"] == "separator" and "untrusted" not in kept.extra
    replaced = eventsep.separate((whisper, rate), "the tone", options=options)
    assert replaced.extra["answer"] != "separator" and "dB below the mixture" in replaced.extra["untrusted"]
