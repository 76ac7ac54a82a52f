"""The Prefect flows against the session's temporary Prefect server (conftest.py): Cached states, locks, refuse."""

import json
import threading
import time
from pathlib import Path

import pytest

from eventsep import pipeline
from eventsep.api import make_options
from eventsep.audio import write_audio
from eventsep.settings import settings
from eventsep.store import ResultStore
from damage import change_meta_digit, flip_array_byte
from standins import CALLS

pytestmark = pytest.mark.slow


@pytest.fixture
def wav(cache_env, mixture):
    path = cache_env / "in" / "tone.wav"
    write_audio(path, mixture.samples, mixture.sample_rate, subtype="FLOAT")
    return str(path)


def within(seconds, function, *args, **kwargs):
    """Run `function` in a thread and fail (instead of hanging the suite) if it takes too long."""
    box = {}

    def target():
        try:
            box["value"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised below
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def task_states(flow_state) -> dict[str, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    # Task states reach the server as events: on a busy machine the last ones may lag the flow's return.
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id])))
            if all(run.state is not None and run.state.is_final() for run in runs) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    states: dict[str, list[str]] = {}
    for run in runs:
        states.setdefault(run.name.split("-")[0], []).append(run.state.name)
    return states


def separate(wav, out, options, **kwargs):
    from flows.separate import separate_flow

    state = within(120, separate_flow, wav, "the tone", str(out), options, return_state=True, **kwargs)
    return state.result(), task_states(state)


def test_new_threshold_runs_no_separator_and_the_separator_task_is_cached(
        prefect_server, cache_env, wav, standin_options):
    options = make_options(standin_options)
    summary, states = separate(wav, cache_env / "out", options)
    assert Path(summary["outputs"]["target"]).exists()
    assert states["separate"] == ["Completed", "Completed"]
    calls = dict(CALLS)
    _, states = separate(wav, cache_env / "out", make_options(standin_options, mask={"threshold": 0.2}))
    assert dict(CALLS) == calls
    assert states["separate"] == ["Cached", "Cached"] and states["sed"] == ["Cached"]
    assert states["mask"] == ["Completed"]


def test_flow_and_library_share_one_cache(prefect_server, cache_env, wav, standin_options):
    import eventsep

    separate(wav, cache_env / "out", make_options(standin_options))
    calls = dict(CALLS)
    result = eventsep.separate(wav, "the tone", options=standin_options)
    assert dict(CALLS) == calls and result.target.size > 0


def test_deleted_and_truncated_results_are_recomputed_without_hanging(
        prefect_server, cache_env, wav, standin_options):
    options = make_options(standin_options)
    summary, _ = separate(wav, cache_env / "out", options)
    report = json.loads(Path(summary["outputs"]["report"]).read_text())
    store = ResultStore(settings().results_url)
    store.delete(report["keys"]["separate:standin-a"])
    sed_file = Path(store.path(report["keys"]["sed"]))
    sed_file.write_bytes(sed_file.read_bytes()[:100])
    calls = dict(CALLS)
    _, states = separate(wav, cache_env / "out", options)
    assert CALLS["standin-a"] == calls["standin-a"] + 1 and CALLS["sed"] == calls["sed"] + 1
    assert sorted(states["separate"]) == ["Cached", "Completed"]


def test_damaged_results_are_recomputed_and_named_on_the_prefect_path(
        prefect_server, cache_env, wav, standin_options, caplog):
    options = make_options(standin_options)
    summary, _ = separate(wav, cache_env / "out", options)
    report = json.loads(Path(summary["outputs"]["report"]).read_text())
    target = Path(summary["outputs"]["target"]).read_bytes()
    store = ResultStore(settings().results_url)
    damaged = {stage: Path(store.path(report["keys"][stage])) for stage in ("separate:standin-a", "mask")}
    flip_array_byte(damaged["separate:standin-a"])
    change_meta_digit(damaged["mask"], b"onset")
    calls = dict(CALLS)
    with caplog.at_level("WARNING", logger="eventsep.store"):
        again, states = separate(wav, cache_env / "out", options)
    assert CALLS["standin-a"] == calls["standin-a"] + 1
    assert sorted(states["separate"]) == ["Cached", "Completed"] and states["mask"] == ["Completed"]
    assert again["events"] == summary["events"]
    assert Path(again["outputs"]["target"]).read_bytes() == target
    warnings = [r.getMessage() for r in caplog.records if r.name == "eventsep.store"]
    for stage, path in damaged.items():
        assert any(str(path) in w and report["keys"][stage] in w for w in warnings)


def test_lock_left_by_a_killed_run_does_not_block(prefect_server, cache_env, wav, standin_options):
    import subprocess
    import sys

    from eventsep.audio import load_audio

    options = make_options(standin_options)
    recording = load_audio(wav)
    key = pipeline.sed_key(recording, options.sed, options.sed_params)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    locks = settings().locks_dir
    locks.mkdir(parents=True, exist_ok=True)
    (locks / f"{key}.lock").write_text(json.dumps(
        {"holder": "killed", "host": __import__("socket").gethostname(), "pid": int(dead), "expires": None}))
    summary, states = separate(wav, cache_env / "out", options)
    assert states["sed"] == ["Completed"] and Path(summary["outputs"]["target"]).exists()


def test_concurrent_identical_tasks_compute_once(prefect_server, cache_env, mixture, standin_options):
    from prefect import flow

    from tasks.stages import PrefectRunner

    options = make_options(standin_options)

    @flow
    def twice():
        runner = PrefectRunner()
        mapping = runner.run("map_query", query="the tone", encoder=options.encoder, params=options.query)
        return runner.run_parallel([("separate", {"recording": mixture, "mapping": mapping,
                                                  "separator": "standin-a", "params": options.separator})] * 3)

    results = within(120, twice)
    assert CALLS["standin-a"] == 1
    assert len({r.key for r in results}) == 1


def test_refuse_flow_returns_the_grid_from_cache(prefect_server, cache_env, wav, standin_options):
    from flows.refuse import refuse_flow

    options = make_options(standin_options)
    separate(wav, cache_env / "out", options)
    calls = dict(CALLS)
    grid = pipeline.grid_product(["hard", "soft"], [0.3, 0.7], ["rate", "band", "progressive"])
    rows = within(120, refuse_flow, wav, "the tone", grid, options, reference_path=wav,
                  output_dir=str(cache_env / "grid"))
    assert len(rows) == 12 and dict(CALLS) == calls
    assert all(Path(r["outputs"]["target"]).exists() for r in rows)
    assert {r["fusion_mode"] for r in rows} == {"rate", "band", "progressive"}


def test_batch_goes_on_past_a_bad_file(prefect_server, cache_env, wav, standin_options):
    from flows.batch import batch_flow

    bad = cache_env / "in" / "broken.wav"
    bad.write_text("not audio")
    rows = within(120, batch_flow, [str(bad), wav, str(cache_env / "missing.flac")], "the tone",
                  str(cache_env / "batch"), make_options(standin_options))
    assert [bool(r.get("error")) for r in rows] == [True, False, True]
    assert "not an audio file" in rows[0]["error"] and "no such file" in rows[2]["error"]
    assert Path(rows[1]["outputs"]["target"]).exists()
    assert not list((cache_env / "batch").glob("broken*"))


def test_result_store_on_an_fsspec_location(prefect_server, cache_env, wav, standin_options, monkeypatch):
    monkeypatch.setenv("EVENTSEP_RESULTS", "memory://eventsep-flow-test")
    options = make_options(standin_options)
    summary, _ = separate(wav, cache_env / "out", options)
    store = ResultStore("memory://eventsep-flow-test")
    assert len(store.keys()) == 6  # map_query, sed, mask, 2 × separate, fuse
    calls = dict(CALLS)
    _, states = separate(wav, cache_env / "out", options)
    assert dict(CALLS) == calls and states["separate"] == ["Cached", "Cached"]
    store.clear()


def test_batch_keeps_inputs_with_one_stem_apart_and_each_report_names_its_input(prefect_server, cache_env, wav,
                                                                                 mixture, standin_options):
    from eventsep.audio import write_audio
    from flows.batch import batch_flow

    other = cache_env / "in" / "tone.flac"
    write_audio(other, mixture.samples * 0.5, mixture.sample_rate)
    rows = within(120, batch_flow, [wav, str(other)], "the tone", str(cache_env / "batch"),
                  make_options(standin_options))
    targets = [Path(row["outputs"]["target"]).name for row in rows]
    assert targets == ["tone.wav.target.wav", "tone.flac.target.wav"]
    for row, source in zip(rows, [wav, str(other)]):
        assert json.loads(Path(row["outputs"]["report"]).read_text())["input"] == source


def test_evaluate_flow_runs_the_stage_tasks_once_and_links_its_report(prefect_server, cache_env, standin_options):
    from prefect.client.orchestration import get_client

    from eventsep.evaluate import GridSpec
    from flows.evaluate import evaluate_flow
    from standins import tone_set

    (cache_env / "set").mkdir()
    manifest = tone_set(cache_env / "set")
    spec = GridSpec(separators=("standin-a", "standin-b"), fusions=("rate",), masks=("off", "hard"), thresholds=(0.5,))
    state = within(180, evaluate_flow, str(manifest), str(cache_env / "eval"), spec, make_options(standin_options),
                   return_state=True)
    summary = state.result()
    assert summary["summary"]["fused rate · hard θ=0.5"]["items"] == 2
    assert task_states(state)["separate"] == ["Completed"] * 4  # two separators, two items
    assert (cache_env / "eval" / "report.html").exists() and CALLS["standin-a"] == 2
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
    assert any("report.html" in str(a.data) for a in artifact)
    again = within(180, evaluate_flow, str(manifest), str(cache_env / "again"), spec, make_options(standin_options),
                   return_state=True)
    assert set(task_states(again)["separate"]) == {"Cached"} and CALLS["standin-a"] == 2


def test_long_recordings_go_in_blocks_on_the_prefect_path(prefect_server, cache_env, monkeypatch):
    """The separate flow and a batch hand a recording longer than STREAM_SECONDS to eventsep.stream (one task)."""
    import numpy as np

    from eventsep import stream
    from flows.batch import batch_flow

    monkeypatch.setattr(stream, "STREAM_SECONDS", 5.0)
    monkeypatch.setattr(stream, "BLOCK_SECONDS", 3.0)
    monkeypatch.setattr(stream, "BEFORE_SECONDS", 2.0)
    monkeypatch.setattr(stream, "AFTER_SECONDS", 1.0)
    t = np.arange(8 * 32000) / 32000
    path = cache_env / "in" / "long.wav"
    write_audio(path, (0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.3 * t) > 0)).astype(np.float32),
                32000)
    options = make_options(encoder="standin-encoder", sed="standin-sed", separators=("standin-a",))
    summary, states = separate(str(path), cache_env / "out", options)
    report = json.loads(Path(summary["outputs"]["report"]).read_text())
    assert report["blocks"].startswith("separated in 3 blocks of 3 s") and "separate_in_blocks" in states
    rows = within(120, batch_flow, [str(path)], "the tone", str(cache_env / "batch"), options)
    assert json.loads(Path(rows[0]["outputs"]["report"]).read_text())["blocks"] == report["blocks"]
