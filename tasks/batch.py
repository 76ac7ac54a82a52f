"""One recording of a batch: in the flow's own process (sequential) or as one task on a Dask worker.

On a worker every stage still runs as its cached Prefect task (`tasks.stages`), one after another:
a `submit` from inside a worker task would queue on the cluster and wait for a slot that its own
worker holds.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from eventsep import pipeline, stream
from eventsep.audio import AudioError
from eventsep.settings import settings

from .stages import PrefectRunner, load_recording, separate_in_blocks, write_outputs

# What fails one recording alone; anything else is a fault of the program and fails the batch.
RECORDING_FAILURES = (AudioError, pipeline.NoSeparatorAvailable, ValueError)


def where() -> str:
    """host:pid of the process that did the work (reported in each row of a batch)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class InlineRunner(PrefectRunner):
    """Each stage as its cached task, the parallel ones too run one after another (for worker tasks)."""

    def run_parallel(self, calls: list[tuple[str, dict[str, Any]]]):
        return [self.run(stage, **inputs) for stage, inputs in calls]


def separate_one(path: str, stem: str, query: str, output_dir: str, options: pipeline.RunOptions,
                 runner: pipeline.Runner, progress: pipeline.Progress | None = None, report: bool = True) -> dict:
    """A batch row: the outputs of one recording, or the one-line reason it failed. `progress` hears its
    stages (see `pipeline.run`); `report`: also its HTML report."""
    try:
        if stream.wanted(path):
            result, outputs = separate_in_blocks(path, query, options, output_dir, stem, report, progress)
        else:
            recording = load_recording(path)
            result = pipeline.run(recording, query, options, runner, progress=progress)
            [outputs] = write_outputs([result], output_dir, [stem], report, path)
        row = {"audio": path, "outputs": outputs, "events": result.events,
               "warnings": result.extra.get("warnings", [])}
    except RECORDING_FAILURES as error:
        print(f"{path}: {error}")
        row = {"audio": path, "error": str(error)}
    row["worker"] = where()
    return row


class WorkerMismatch(RuntimeError):
    """A Dask worker would read other weights or write another result store than the batch's process."""


def check_worker(results_url: str, models_dir: str) -> None:
    here = settings()
    for what, variable, theirs, ours in (("result store", "EVENTSEP_RESULTS", results_url, here.results_url),
                                         ("model folder", "EVENTSEP_MODELS", models_dir, str(here.models_dir))):
        if theirs != ours:
            raise WorkerMismatch(f"Dask worker {where()} uses the {what} {ours}, the batch uses {theirs}: "
                                 f"start the workers with {variable}={theirs}")


@task(name="separate_recording", cache_policy=NO_CACHE, log_prints=True)
def separate_recording(path: str, stem: str, query: str, output_dir: str, options: pipeline.RunOptions,
                       results_url: str, models_dir: str, report: bool = True) -> dict:
    """One recording on a Dask worker, after checking that the worker shares the batch's store and models."""
    check_worker(results_url, models_dir)
    return separate_one(path, stem, query, output_dir, options, InlineRunner(), report=report)
