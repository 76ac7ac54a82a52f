"""Model cards: every packaged card is whole, its classes are the corpus's, `models card` renders it, and the
default fuses a second separator only where its card shows it within 3 dB of the first."""

from collections import Counter

import pytest

from eventsep import cards
from eventsep.corpus import recorded
from eventsep.corpus.mixtures import make_mixture, target_kind_of
from eventsep.corpus.sources import ALL_KINDS
from eventsep.ontology import by_name
from eventsep.pipeline import RunOptions
from flows.cli import EXIT_BAD_INPUT, EXIT_OK, main


def card_with(synthetic=None, real=None):
    """A card whose validation 'all' means are the given figures (None: not measured)."""
    def figures(mean):
        return None if mean is None else {"all": {"mean": mean, "median": mean, "n": 20}}

    return {"name": "x", "validation": {"synthetic": figures(synthetic), "real": figures(real)}}


@pytest.mark.parametrize("name", ["audiosep-mini", "flowsep-mini", "yamnet"])
def test_packaged_cards_are_whole(name):
    card = cards.load_card(name)
    assert card["name"] == name and set(cards.FIELDS) <= set(card)
    assert card["classes"] and all(by_name(label) for label in card["classes"])  # AudioSet display names
    for dataset in cards.VALIDATION_SETS:
        for family, stats in (card["validation"].get(dataset) or {}).items():
            assert family in (*cards.VALIDATION_FAMILIES, "set"), family
            assert family == "set" or {"mean", "median", "n"} <= set(stats)


def _synthetic_targets(seeds) -> Counter:
    return Counter(ALL_KINDS[target_kind_of(seed)].label for seed in seeds)


@pytest.mark.slow
def test_mini_cards_count_the_target_clips_of_their_training_seeds(corpus_cache):
    from eventsep.separators.audiosep.train import DEFAULTS
    from eventsep.separators.training import target_classes

    assert cards.load_card("flowsep-mini")["classes"] == dict(_synthetic_targets(range(0, 400)))
    # the mini AudioSep: the synthetic rounds (seeds 0-1999), then each round with recorded items as the card
    # lists them (the last one is the training defaults' recipe)
    card = cards.load_card("audiosep-mini")
    rounds = card["training"]["class_rounds"]
    last = rounds[-1]
    assert (tuple(last["seeds"]), last["recorded_share"], last["recorded_families"], last.get("procedural", 0)) == (
        DEFAULTS.train_seeds, DEFAULTS.recorded_share,
        None if DEFAULTS.recorded_families is None else list(DEFAULTS.recorded_families), DEFAULTS.procedural_items)
    installed = any(unit.key.startswith(recorded.TRAINING_ONLY) for unit in recorded.catalogue())
    counts, uncounted = _synthetic_targets(range(0, 2000)), 0
    for step in rounds:
        if step["training_only"] and not installed:  # drawn from 0ad-data, which this machine lacks
            uncounted += step["seeds"][1] - step["seeds"][0]
            continue
        families = None if step["recorded_families"] is None else tuple(step["recorded_families"])
        counts += Counter(target_classes(range(*step["seeds"]), step["recorded_share"], "train", families,
                                         step["training_only"], step.get("procedural", 0)))
    if not uncounted:
        assert card["classes"] == dict(sorted(counts.items()))
    else:  # what can be counted here is in the card, and the rest adds up to the rounds that could not be
        rest = Counter(card["classes"])
        rest.subtract(counts)
        assert min(rest.values()) >= 0 and sum(rest.values()) == uncounted
    for seed in (0, 1, 100_000):  # the first draw alone says what make_mixture renders
        assert make_mixture(seed, seconds=1.0, sample_rate=16000).target_kind == target_kind_of(seed)


def test_render_says_not_measured_where_nothing_was_measured():
    text = cards.render({**card_with(synthetic=-4.8), "classes": {"Dog": 3}})
    assert "real: not measured" in text and "synthetic all         -4.80 dB / -4.80 dB, n = 20" in text
    text = cards.render(cards.load_card("flowsep-mini"))
    assert "real      all         -6.25 dB / -5.69 dB, n = 48" in text
    text = cards.render(cards.load_card("audiosep-mini"))
    assert "real      all         +5.98 dB / +6.18 dB, n = 48" in text
    assert "Accordion: 156 clips" in text
    text = cards.render(cards.load_card("deepfilternet3"))  # its speech figures and its note are shown
    assert "real      speech      +12.22 dB / +12.04 dB, n = 16" in text
    assert "  note: Real-time factor of the stage" in text
    blank = cards.render({**card_with(), "name": "blank", "classes": {"Dog": None}})
    assert "synthetic: not measured" in blank and "Dog: clip count not known" in blank


def test_models_card_command(capsys):
    assert main(["models", "card", "flowsep-mini"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("model card: flowsep-mini") and "-6.25 dB" in out
    assert main(["models", "card", "no-such-model"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "no model card named 'no-such-model'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("first, second, fused", [
    (card_with(14.33), card_with(-7.37), False),            # the mini FlowSep: 21.7 dB below
    (card_with(10.0), card_with(7.0), True),                # exactly 3 dB below: within
    (card_with(10.0), card_with(6.9), False),               # just beyond
    (card_with(10.0), card_with(12.0), True),               # better
    (card_with(10.0, 5.0), card_with(9.0, 1.0), False),     # within on synthetic, 4 dB below on real
    (card_with(10.0, None), card_with(9.0, 1.0), True),     # only the set both measured counts
    (card_with(None), card_with(9.0), False),               # nothing to compare: not shown to help
    (card_with(10.0), card_with(None), False),
    (card_with(10.0), None, True),                          # official weights of the second: the method
    (None, None, True),
])
def test_fuse_second_only_within_3_db_on_the_development_sets(first, second, fused):
    assert cards.fuse_second(first, second) is fused


def test_the_packaged_cards_leave_the_mini_flowsep_out_of_the_default():
    assert not cards.fuse_second(cards.load_card("audiosep-mini"), cards.load_card("flowsep-mini"))


def auto_separators(options: RunOptions) -> tuple[str, ...]:
    """What "auto" becomes for a query that is not speech (an accordion)."""
    from eventsep.pipeline import resolve
    from eventsep.store import StageResult

    mapping = StageResult("map_query", "k", meta={"query": "the accordion", "remove": False,
                                                   "classes": [{"index": 209, "name": "Accordion", "score": 1.0}]})
    return resolve(options, mapping)[0].separators


def test_default_separators_follow_the_weights_present(tmp_path, monkeypatch):
    models = tmp_path / "models"
    monkeypatch.setenv("EVENTSEP_MODELS", str(models))
    assert cards.default_separators() == ("audiosep",) == auto_separators(RunOptions())
    for part in ("flowsep/v2_100k.ckpt", "flan-t5-large/tokenizer.json"):  # official FlowSep present
        (models / part).parent.mkdir(parents=True, exist_ok=True)
        (models / part).write_bytes(b"x")
    assert cards.default_separators() == ("audiosep", "flowsep") == auto_separators(RunOptions())
    assert auto_separators(RunOptions(separators=("audiosep",))) == ("audiosep",)  # asked for: as asked
