"""Progress: chunked separators and SED report the fraction done through a callback, the pipeline names
each stage, and the command line draws it only on a terminal."""

import io

import numpy as np
import pytest

import eventsep
from eventsep import backends
from eventsep.separators.apply import apply_chunked
from flows.progress import ProgressDisplay
from standins import GainSeparator


def test_chunked_inference_reports_each_batch_up_to_one():
    seen = []
    apply_chunked(lambda x: x, np.zeros(10_000, np.float32), window=1000, overlap=100, batch_size=4,
                  progress=seen.append)
    assert len(seen) == 3 and seen == sorted(seen) and 0 < seen[0] < 1 and seen[-1] == 1.0
    short = []
    apply_chunked(lambda x: x, np.zeros(500, np.float32), window=1000, overlap=100, progress=short.append)
    assert short == [1.0]


def test_yamnet_reports_each_batch_of_patches(monkeypatch):
    from eventsep.sed import yamnet

    monkeypatch.setattr(yamnet, "PATCHES_PER_BATCH", 4)
    monkeypatch.setattr(yamnet.YamnetSed, "logits", lambda self, patches: np.zeros((len(patches), 521), np.float32))
    monkeypatch.setattr(yamnet.YamnetSed, "column_of_527", np.zeros(527, int))
    seen = []
    yamnet.YamnetSed().detect(np.zeros(16000 * 5, np.float32), 16000, progress=seen.append)
    assert seen == [4 / 11, 8 / 11, 1.0]  # 5 s → 11 patches, 4 a batch


class ChunkingSeparator(GainSeparator):
    """A stand-in that takes `progress` and goes through the recording in four steps."""

    def separate(self, samples, query, params, progress=None):
        for step in range(1, 5):
            progress(step / 4)
        return super().separate(samples, query, params)


@pytest.fixture
def chunking(cache_env):
    (cache_env / "w.bin").write_bytes(b"w")
    backends.register("separator", "standin-chunks",
                      lambda: ChunkingSeparator("standin-chunks", 32000, 0.5, cache_env / "w.bin"))
    yield
    backends.unregister("separator", "standin-chunks")


def test_the_pipeline_names_each_stage_and_passes_fractions_on(chunking, mixture, standin_options):
    events = []
    eventsep.separate(mixture, "the tone", options={**standin_options, "separators": ("standin-chunks", "standin-b")},
                      progress=lambda stage, fraction: events.append((stage, fraction)))
    starts = [stage for stage, fraction in events if fraction is None]
    assert starts == ["map_query", "sed", "mask", "separate (standin-chunks)", "separate (standin-b)", "fuse"]
    assert [f for s, f in events if s == "separate (standin-chunks)"] == [None, 0.25, 0.5, 0.75, 1.0]


def test_display_draws_stages_and_percent_on_a_terminal_only():
    from rich.console import Console

    screen = io.StringIO()
    with ProgressDisplay(console=Console(file=screen, force_terminal=True, width=100)) as display:
        display("sed", None)
        display("sed", 0.5)
        display._bars.refresh()
        display("mask", None)
        display._bars.refresh()
        assert [task.description for task in display._bars.tasks] == ["mask"]  # only what runs now
    assert "sed" in screen.getvalue() and "50%" in screen.getvalue()
    for quiet, terminal in ((True, True), (False, False)):
        screen = io.StringIO()
        with ProgressDisplay(quiet, Console(file=screen, force_terminal=terminal, width=100)) as display:
            display("sed", 0.5)
        assert screen.getvalue() == ""


def test_separate_prints_no_progress_when_piped(cache_env, mixture, capsys):
    from eventsep.audio import write_audio
    from flows.cli import main

    wav = cache_env / "tone.wav"
    write_audio(wav, mixture.samples, mixture.sample_rate)
    assert main(["separate", str(wav), "the tone", "-o", str(cache_env / "out"), "--local",
                 "--encoder", "standin-encoder", "--sed", "standin-sed", "--separators", "standin-a"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_batch_labels_each_recording(prefect_server, cache_env, mixture, standin_options):
    from eventsep.api import make_options
    from eventsep.audio import write_audio
    from flows.batch import run_batch

    paths = []
    for name in ("a.wav", "b.wav"):
        write_audio(cache_env / name, mixture.samples, mixture.sample_rate)
        paths.append(str(cache_env / name))
    events = []
    run_batch(paths, "the tone", str(cache_env / "out"), make_options(standin_options),
              progress=lambda stage, fraction: events.append((stage, fraction)))
    starts = [stage for stage, fraction in events if fraction is None]
    assert starts[0] == "1/2 a.wav: map_query" and starts[-1] == "2/2 b.wav: fuse"


@pytest.mark.slow
def test_the_prefect_path_passes_progress_through_its_tasks(prefect_server, cache_env, chunking, mixture,
                                                            standin_options):
    from eventsep.api import make_options
    from eventsep.audio import write_audio
    from flows.separate import separate_flow

    wav = cache_env / "tone.wav"
    write_audio(wav, mixture.samples, mixture.sample_rate)
    events = []
    separate_flow(str(wav), "the tone", str(cache_env / "out"),
                  make_options(standin_options, separators=("standin-chunks",)),
                  progress=lambda stage, fraction: events.append((stage, fraction)))
    assert [f for s, f in events if s == "separate (standin-chunks)"] == [None, 0.25, 0.5, 0.75, 1.0]
    assert events[0] == ("load", None) and events[-1] == ("write", None)
