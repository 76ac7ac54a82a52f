"""The batch flow mapped over Dask workers: the same outputs, bit for bit, as a sequential run.

The stand-in backends reach the worker processes through a Dask worker preload (tests/dask_standins.py)
named in this test's Dask configuration; the library and the command line never register them.
"""

import json
import os
import socket
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import soundfile

from conftest import tone_mixture
from eventsep.api import make_options
from eventsep.audio import write_audio
from eventsep.settings import settings
from eventsep.store import ResultStore
from standins import CALLS
from test_flows import within

from dask_standins import WEIGHTS_VARIABLE

RECORDINGS = 24
HERE = f"{socket.gethostname()}:{os.getpid()}"


@pytest.fixture
def dask_standins(cache_env, monkeypatch):
    """Every Dask worker process started under this fixture registers the stand-ins on start."""
    import distributed  # noqa: F401 - its defaults must be in dask's config before the set below, whose
    # exit would otherwise remove the whole "distributed" section it did not see

    monkeypatch.setenv(WEIGHTS_VARIABLE, str(cache_env / "weights"))
    with dask.config.set({"distributed.worker.preload": ["dask_standins"]}):
        yield cache_env


def write_recordings(folder: Path, count: int) -> list[str]:
    paths = []
    for seed in range(count):
        mixture = tone_mixture(seconds=2.5, seed=seed)
        path = folder / f"rec{seed:02d}.wav"
        write_audio(path, mixture.samples, mixture.sample_rate, subtype="FLOAT")
        paths.append(str(path))
    return paths


def flow_task_runs(flow_state, expected: int, seconds: float = 120) -> dict[str, list[str]]:
    """Task run states by task name, once the server has recorded `expected` finished task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + seconds
    while True:
        runs = []
        with get_client(sync_client=True) as client:  # the server records task run states a little later
            while page := client.read_task_runs(flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id])), limit=200, offset=len(runs)):
                runs += page
        if sum(bool(run.state and run.state.is_final()) for run in runs) >= expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    states: dict[str, list[str]] = {}
    for run in runs:
        states.setdefault(run.name.rsplit("-", 1)[0], []).append(run.state.name if run.state else "-")
    return states


def store_files(cache: Path) -> dict[str, bytes]:
    store = ResultStore(str(cache / "results"))
    return {key: store.read_bytes(key) for key in store.keys()}


@pytest.mark.slow
def test_dask_batch_equals_the_sequential_batch_bit_for_bit(prefect_server, dask_standins, standin_options,
                                                           monkeypatch):
    from flows.batch import batch_flow, dask_task_runner

    root = dask_standins
    paths = write_recordings(root / "in", RECORDINGS)
    options = make_options(standin_options)

    def run(name, task_runner=None):
        monkeypatch.setenv("EVENTSEP_CACHE", str(root / name / "cache"))  # each run computes every stage
        flow = batch_flow if task_runner is None else batch_flow.with_options(task_runner=task_runner())
        started = time.perf_counter()
        state = within(600, flow, paths, "the tone", str(root / name / "out"), options, return_state=True)
        print(f"{name}: {RECORDINGS} recordings in {time.perf_counter() - started:.1f} s")  # shown by pytest -s
        return state.result(), state

    sequential, _ = run("sequential")
    assert CALLS["sed"] == RECORDINGS
    calls = dict(CALLS)
    distributed, state = run("dask", lambda: dask_task_runner("local", 2))  # made once the settings are

    assert [r.get("error") for r in sequential + distributed] == [None] * (2 * RECORDINGS)
    assert {r["worker"] for r in sequential} == {HERE}
    workers = {r["worker"] for r in distributed}
    assert len(workers) == 2 and HERE not in workers, workers  # two worker processes did the work ...
    assert dict(CALLS) == calls  # ... and none of it happened in this process

    for seq, dist in zip(sequential, distributed, strict=True):
        assert seq["audio"] == dist["audio"] and seq["events"] == dist["events"]
        assert seq["outputs"].keys() == dist["outputs"].keys()
        for part in seq["outputs"]:
            assert Path(seq["outputs"][part]).read_bytes() == Path(dist["outputs"][part]).read_bytes(), part
        for part in ("target", "residual"):
            a, _ = soundfile.read(seq["outputs"][part], dtype="float32")
            b, _ = soundfile.read(dist["outputs"][part], dtype="float32")
            assert a.dtype == b.dtype and np.array_equal(a, b)
    expected = store_files(root / "sequential" / "cache")
    assert len(expected) == 1 + 5 * RECORDINGS  # map_query once; sed, mask, 2 × separate, fuse per recording
    assert store_files(root / "dask" / "cache") == expected

    # Every task run of the workers, the stages nested in them included, reached the flow's server.
    # each recording: separate_recording, with load, map_query, sed, mask, 2 × separate, fuse, write_outputs in it
    runs = flow_task_runs(state, expected=9 * RECORDINGS)
    assert runs["separate_recording"] == ["Completed"] * RECORDINGS
    for name in ("load", "sed", "mask", "fuse", "write_outputs"):
        assert len(runs[name]) == RECORDINGS, name
    assert len(runs["separate"]) == 2 * RECORDINGS


@pytest.mark.slow
def test_batch_on_a_scheduler_by_address(prefect_server, cache_env, standin_options):
    """Any running scheduler: here an in-process cluster, whose worker threads see this process's stand-ins."""
    from distributed import LocalCluster

    from flows.batch import run_batch

    paths = write_recordings(cache_env / "in", 2)
    bad = cache_env / "in" / "broken.wav"
    bad.write_text("not audio")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        rows = within(300, run_batch, [paths[0], str(bad), paths[1]], "the tone", str(cache_env / "out"),
                      make_options(standin_options), dask=cluster.scheduler_address)
    assert [bool(r.get("error")) for r in rows] == [False, True, False]
    assert "not an audio file" in rows[1]["error"]
    assert all(Path(r["outputs"]["target"]).exists() for r in rows if not r.get("error"))


@pytest.mark.slow
def test_command_line_batch_on_a_local_cluster(prefect_server, dask_standins, capsys):
    from flows.cli import EXIT_BAD_INPUT, main

    root = dask_standins
    paths = write_recordings(root / "in", 3)
    bad = root / "in" / "broken.wav"
    bad.write_text("not audio")
    args = ["--json", "batch", *paths, str(bad), "--query", "the tone", "-o", str(root / "out"),
            "--dask", "local", "--workers", "2", "--encoder", "standin-encoder", "--sed", "standin-sed",
            "--separators", "standin-a,standin-b"]
    assert within(600, main, args) == EXIT_BAD_INPUT  # the broken file fails alone
    rows = json.loads(capsys.readouterr().out)
    assert [bool(r.get("error")) for r in rows] == [False, False, False, True]
    assert all(Path(r["outputs"]["target"]).exists() for r in rows[:3])
    assert HERE not in {r["worker"] for r in rows}


@pytest.mark.parametrize("extra, problem", [
    (["--dask", "local", "--workers", "0"], "at least 1"),
    (["--workers", "2"], "--workers needs --dask local"),
    (["--dask", "local", "--local"], "drop --local"),
    (["--dask", "tcp://127.0.0.1:9", "--workers", "2"], "--workers applies to --dask local"),
    (["--dask", "tcp://127.0.0.1:9"], "no Dask scheduler answers at 'tcp://127.0.0.1:9'"),
])
def test_command_line_dask_arguments_fail_in_one_line(cache_env, capsys, extra, problem):
    from flows.cli import EXIT_BAD_INPUT, main

    assert main(["batch", str(cache_env / "a.wav"), "--query", "x", *extra]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and problem in err


def test_a_worker_with_another_result_store_or_model_folder_is_refused(cache_env, monkeypatch):
    from tasks.batch import WorkerMismatch, check_worker

    ours = settings()
    check_worker(ours.results_url, str(ours.models_dir))
    with pytest.raises(WorkerMismatch, match="EVENTSEP_RESULTS=s3://team/eventsep"):
        check_worker("s3://team/eventsep", str(ours.models_dir))
    monkeypatch.setenv("EVENTSEP_MODELS", str(cache_env / "elsewhere"))
    with pytest.raises(WorkerMismatch, match=f"EVENTSEP_MODELS={ours.models_dir}"):
        check_worker(ours.results_url, str(ours.models_dir))
