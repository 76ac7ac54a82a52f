"""Removal queries remove: "remove the speech" through the whole pipeline with the packaged mini AudioSep,
MiniLM and YAMNet leaves the other source, as well as asking to keep that source does (issue 16)."""

import numpy as np
import pytest

import eventsep

from eventsep import api
from eventsep.metrics import si_sdr, si_sdr_improvement


@pytest.fixture(scope="module")
def violin_under_a_man(tmp_path_factory):
    """5 s of a violin (active part of the time) over a man speaking throughout, 0 dB; seed 320005 was used
    neither in training (0-1999) nor in choosing the separator's text (200000-210007)."""
    from eventsep.corpus import make_mixture

    return make_mixture(320005, seconds=5.0, interferer="man speaking")


def test_remove_the_speech_leaves_the_other_source(violin_under_a_man, cache_env):
    mixture = violin_under_a_man
    assert mixture.target_kind == "violin"
    audio = (mixture.mixture, mixture.sample_rate)
    keep = api.separate(audio, "keep the violin", separators=["audiosep"])
    removed = api.separate(audio, "remove the speech", separators=["audiosep"])
    assert removed.mapping["remove"] and removed.mapping["classes"][0]["name"] == "Speech"
    kept_db = si_sdr_improvement(keep.target, mixture.target, mixture.mixture)
    removed_db = si_sdr_improvement(removed.target, mixture.target, mixture.mixture)
    # measured: keep +12.6 dB, remove +8.5 dB (step 30775, no mask; step 13434 with the floor-0.5 mask: +12.3,
    # +9.9; with the user's word "speech" as the text: +0.3 dB)
    assert kept_db >= 6.0 and removed_db >= 6.0, (kept_db, removed_db)


RATE = 32000


def test_a_removal_query_returns_the_residual_and_a_keep_query_the_estimate(cache_env, standin_options):
    t = np.arange(3 * RATE) / RATE
    low = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)    # what the stand-in separator finds
    high = (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)  # everything else
    options = {**standin_options, "separators": ("standin-lowpass",)}
    keep = eventsep.separate((low + high, RATE), "the tone", options=options, mask={"mode": "off"})
    removed = eventsep.separate((low + high, RATE), "remove the tone", options=options, mask={"mode": "off"})
    assert not keep.mapping["remove"] and removed.mapping["remove"]
    assert si_sdr(keep.target, low) > 30 and si_sdr(keep.residual, high) > 30
    assert si_sdr(removed.target, high) > 30 and si_sdr(removed.residual, low) > 30


def _mapping(query: str, target_text: str, best: list[str]):
    from eventsep.store import StageResult

    return StageResult("map_query", "", meta={"query": query, "target_text": target_text,
                                               "classes": [{"name": name} for name in best]})


def test_the_separator_text_each_way():
    from eventsep.pipeline import target_text

    mapping = _mapping("remove the barking dog and the speech", "barking dog and speech", ["Bark", "Speech"])
    assert target_text(mapping) == "barking dog and a person speaking"
    assert target_text(mapping, "words") == "barking dog and speech"
    assert target_text(mapping, "class") == "Bark and Speech"
    assert target_text(mapping, "class+words") == "Bark, barking dog and Speech"  # "speech" is the name itself
    # without a best class for every phrase, the words as typed
    assert target_text(_mapping("the hum and the buzz", "hum and buzz", ["Hum"]), "class") == "hum and buzz"


def test_the_default_text_keeps_the_separators_cache_keys_and_another_text_changes_them(cache_env):
    from eventsep import backends
    from eventsep.audio import audio_from_array
    from eventsep.config import SeparatorParams
    from eventsep.hashing import stage_key
    from eventsep.pipeline import VERSIONS, separate_key

    recording = audio_from_array(np.zeros(32000, np.float32), 32000)
    mapping = _mapping("the dog", "dog", ["Dog"])
    auto = separate_key(recording, mapping, "audiosep", SeparatorParams())
    # the key every AudioSep result had before the option existed: its two chunking fields only
    before = stage_key("separate", VERSIONS["separate"], {"chunk_seconds": 10.0, "overlap_seconds": 1.0},
                       inputs={"recording": recording.key, "map_query": mapping.key, "separator": "audiosep"},
                       weights={"audiosep": backends.get("separator", "audiosep").identity()})
    assert auto == before
    assert separate_key(recording, mapping, "audiosep", SeparatorParams(text="class")) != auto
    # DeepFilterNet3 is not asked for a text: one key whatever the option says
    assert (separate_key(recording, mapping, "dfn3", SeparatorParams(text="class"))
            == separate_key(recording, mapping, "dfn3", SeparatorParams()))
