"""A run's outputs are written as a set (a failure while writing leaves the previous set whole), name
their input, and a batch keeps inputs with one stem apart."""

import json

import pytest

from eventsep import api, outputs
from eventsep.atomic import atomic_dir, publish_dir


@pytest.fixture
def results(cache_env, mixture, standin_options):
    """Two results of one recording that differ in every output file."""
    audio = (mixture.samples, mixture.sample_rate)
    return (api.separate(audio, "the tone", **standin_options, mask={"threshold": 0.3}),
            api.separate(audio, "the tone", **standin_options, mask={"mode": "hard", "threshold": 0.7}))


def contents(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_failure_while_writing_leaves_the_previous_set_whole(cache_env, results, monkeypatch):
    folder = cache_env / "out"
    outputs.write_result(results[0], folder, "mix")
    before = contents(folder)
    assert len(before) == 7  # target, residual, events (2), report.json, report.html and its picture

    real = outputs.write_text

    def failing(path, text):  # the report, written last, fails after the new audio and events are written
        if str(path).endswith(".report.json"):
            raise OSError(28, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(outputs, "write_text", failing)
    with pytest.raises(OSError, match="No space"):
        outputs.write_result(results[1], folder, "mix")
    assert contents(folder) == before  # old target, residual, events and reports; no partial folder
    monkeypatch.setattr(outputs, "write_text", real)
    outputs.write_result(results[1], folder, "mix")
    after = contents(folder)
    assert set(after) == set(before) and all(after[name] != before[name] for name in (
        "mix.target.wav", "mix.report.json", "mix.report.html", "mix.report.png"))


def test_the_report_names_its_input(cache_env, results, mixture, standin_options):
    from eventsep.audio import write_audio

    path = cache_env / "in" / "tone.wav"
    write_audio(path, mixture.samples, mixture.sample_rate)
    written = outputs.write_result(api.separate(str(path), "the tone", **standin_options), cache_env / "o", "tone")
    assert json.loads(open(written["report"]).read())["input"] == str(path)


def test_inputs_with_one_stem_keep_their_whole_names():
    assert outputs.output_stems(["a/ex.mp3", "b/ex.ogg", "c/other.wav", "d/ex.mp3"]) == [
        "ex.mp3.1", "ex.ogg", "other", "ex.mp3.4"]
    assert outputs.output_stems(["ex.mp3", "ex.ogg"]) == ["ex.mp3", "ex.ogg"]
    assert outputs.output_stems(["one.wav", "two.wav"]) == ["one", "two"]


def test_publish_dir_renames_a_new_folder_and_swaps_or_merges_an_existing_one(tmp_path):
    final = tmp_path / "results" / "upload"
    with atomic_dir(final) as staging:
        (staging / "a.txt").write_text("1")
    assert contents(final) == {"a.txt": b"1"}
    with atomic_dir(final) as staging:  # merge: entries the new set lacks stay
        (staging / "b.txt").write_text("2")
    assert contents(final) == {"a.txt": b"1", "b.txt": b"2"}
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "c.txt").write_text("3")
    publish_dir(staged, final, replace=True)  # swap: the folder holds exactly the new set
    assert contents(final) == {"c.txt": b"3"} and not staged.exists()
    assert [p.name for p in final.parent.iterdir()] == ["upload"]
    with pytest.raises(RuntimeError), atomic_dir(final) as staging:
        (staging / "c.txt").write_text("half")
        raise RuntimeError("writer died")
    assert contents(final) == {"c.txt": b"3"}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["c.txt", "results", "upload"]
