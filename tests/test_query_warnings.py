"""A query no class fits, or one not in English, is answered with a warning line in the result (and on
stderr from the command line), never silently (issue 16: "nur das Akkordeon" -> Sitar, Drum kit, Hi-hat)."""

import json

import pytest

from eventsep import api
from eventsep.query_warnings import WEAK_MATCH, looks_english, query_warnings


@pytest.mark.parametrize("query, english", [
    ("nur das Akkordeon", False), ("sólo la guitarra", False), ("seulement le chien", False),
    ("only the accordion", True), ("the lady's voice", True), ("keep the hi-hat", True),
    ("saxaphone", True), ("only the saxaphone", True), ("remove the dog barking", True)])
def test_english_is_told_from_other_languages_by_its_words(query, english):
    assert looks_english(query) is english


def test_a_weak_best_match_is_flagged_below_the_measured_threshold():
    def mapping(score):
        return {"query": "the blorp", "classes": [{"name": "Sitar", "score": score}]}

    assert query_warnings(mapping(WEAK_MATCH + 0.01)) == []
    [line] = query_warnings(mapping(WEAK_MATCH - 0.01))
    assert "'Sitar'" in line and "no sound class fits" in line


def test_a_german_query_is_answered_with_both_warnings_in_the_result_and_on_the_command_line(
        cache_env, mixture, standin_options, capsys):
    from eventsep.audio import write_audio
    from flows.cli import main

    options = {**standin_options, "encoder": "minilm"}
    audio = (mixture.samples, mixture.sample_rate)
    warnings = api.separate(audio, "nur das Akkordeon", **options).extra["warnings"]
    assert len(warnings) == 2 and "English-only" in warnings[0] and "no sound class fits" in warnings[1]
    assert "warnings" not in api.separate(audio, "only the accordion", **options).extra
    path = cache_env / "mix.wav"
    write_audio(path, *audio)
    assert main(["separate", str(path), "nur das Akkordeon", "-o", str(cache_env / "out"), "--local",
                 "--sed", "standin-sed", "--separators", "standin-a,standin-b"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if line.startswith("eventsep: warning:")]) == 2
    report = json.loads((cache_env / "out" / "mix.report.json").read_text())
    assert report["warnings"] == warnings
