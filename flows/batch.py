"""Batch flow: one query over many recordings; a bad recording fails alone and the batch goes on.

Sequential by default: the recordings one after another in the flow's process. `run_batch(...,
dask="local", workers=N)` maps the recordings over a Dask LocalCluster of N worker processes on
this machine, `dask="tcp://host:8786"` over the workers of any running Dask scheduler; each
recording is then one task on a worker (`tasks.batch`), whose stages are the same cached tasks.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from prefect import flow, unmapped
from prefect.context import FlowRunContext

from eventsep import pipeline
from eventsep.config import one_line
from eventsep.outputs import output_stems
from eventsep.settings import settings
from tasks.batch import separate_one, separate_recording
from tasks.stages import PrefectRunner


def _on_dask() -> bool:
    """Is this flow run's task runner prefect-dask's? (prefect_dask is imported only when a batch asks for Dask.)"""
    module = sys.modules.get("prefect_dask.task_runners")
    context = FlowRunContext.get()
    return module is not None and context is not None and isinstance(context.task_runner, module.DaskTaskRunner)


@flow(name="batch", log_prints=True)
def batch_flow(audio_paths: list[str], query: str, output_dir: str,
               options: pipeline.RunOptions | None = None, progress: Callable | None = None,
               report: bool = True) -> list[dict]:
    """One row per recording: its outputs, or the one-line reason it failed; `worker` says which process.
    `progress(stage, fraction)` (in this process, not on Dask) hears "i/n name: stage" for each recording.
    `report`: also each recording's HTML report."""
    options = options or pipeline.RunOptions()
    stems = output_stems(audio_paths)  # inputs with one stem (ex.mp3, ex.ogg) keep their whole names
    if not _on_dask():
        runner = PrefectRunner()
        return [separate_one(path, stem, query, output_dir, options, runner,
                             _labelled(progress, f"{number}/{len(audio_paths)} {os.path.basename(path)}"), report)
                for number, (path, stem) in enumerate(zip(audio_paths, stems), start=1)]
    here = settings()
    # Absolute paths: a worker started elsewhere (dask worker ADDRESS) has its own working directory.
    located = [os.path.abspath(path) for path in audio_paths]
    futures = separate_recording.map(located, stems, unmapped(query), unmapped(os.path.abspath(output_dir)),
                                     unmapped(options), unmapped(here.results_url), unmapped(str(here.models_dir)),
                                     unmapped(report))
    rows = []
    for path, future in zip(audio_paths, futures):
        try:  # a lost worker or a worker that shares nothing with this process fails its rows alone
            outcome = future.result(raise_on_failure=False)
        except Exception as error:  # noqa: BLE001 - reported in the row
            outcome = error
        if isinstance(outcome, BaseException):
            print(f"{path}: {one_line(outcome)}")
            outcome = {"audio": path, "error": one_line(outcome)}
        rows.append({**outcome, "audio": path})
    return rows


def worker_environment() -> dict[str, str]:
    """What a local worker process must share with this one: result store, model folder, cache, Prefect API."""
    from prefect.settings import PREFECT_API_URL

    here = settings()
    environment = {"EVENTSEP_CACHE": str(here.cache_dir), "EVENTSEP_RESULTS": here.results_url,
                   "EVENTSEP_MODELS": str(here.models_dir)}
    if here.cache_max:
        environment["EVENTSEP_CACHE_MAX"] = here.cache_max
    if PREFECT_API_URL.value():
        environment["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return environment


def _check_scheduler(address: str) -> None:
    """Fail at once, in one line, when nothing listens at a tcp:// scheduler address."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        protocol, location = parse_address(address)
        if protocol != "tcp":
            return
        host, port = parse_host_port(location, 8786)
        socket.create_connection((host, port), timeout=10).close()
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"no Dask scheduler answers at {address!r} ({error})") from None


def check_dask_arguments(dask: str, workers: int | None) -> int | None:
    """The number of local workers (None for a scheduler address); ValueError for what cannot work."""
    if dask == "local":
        workers = workers if workers is not None else os.cpu_count() or 1
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, not {workers}")
        return workers
    if workers is not None:
        raise ValueError("--workers applies to --dask local; a running scheduler has the workers started for it")
    _check_scheduler(dask)
    return None


def dask_task_runner(dask: str, workers: int | None = None) -> Any:
    """A LocalCluster of `workers` processes (default: one per core) for "local", else the scheduler at `dask`."""
    from prefect_dask import DaskTaskRunner

    workers = check_dask_arguments(dask, workers)
    if dask != "local":
        return DaskTaskRunner(address=dask)
    # One thread per worker: numpy and torch use the cores themselves. Everything on loopback; the
    # scheduler's HTTP endpoint has no dashboard (dashboard_address=None).
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
        "dashboard_address": None, "env": worker_environment()})


@contextmanager
def prefect_api_for_workers() -> Iterator[None]:
    """Workers report their task runs to the flow's Prefect server. Without PREFECT_API_URL the flow
    would use a temporary server known to its own process only (each worker would start another), so
    start that server here and name it in the settings that Prefect hands to the workers."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's own client would start and use
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


def _labelled(progress: Callable | None, label: str) -> Callable | None:
    return None if progress is None else (lambda stage, fraction: progress(f"{label}: {stage}", fraction))


def run_batch(audio_paths: list[str], query: str, output_dir: str, options: pipeline.RunOptions | None = None,
              dask: str | None = None, workers: int | None = None, progress: Callable | None = None,
              report: bool = True) -> list[dict]:
    """The batch flow, sequential (dask=None) or mapped over Dask workers ("local" or a scheduler address);
    `progress` is heard on the sequential path."""
    if dask is None:
        if workers is not None:
            raise ValueError("--workers needs --dask local")
        return batch_flow(audio_paths, query, output_dir, options, progress, report)
    check_dask_arguments(dask, workers)  # before a temporary Prefect server is started for nothing
    with prefect_api_for_workers():
        runner = dask_task_runner(dask, workers)
        return batch_flow.with_options(task_runner=runner)(audio_paths, query, output_dir, options, report=report)
