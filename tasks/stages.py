"""The tasks of a run: load, one cached task per stage (`tasks.caching`), re-fusion and output writing."""

from __future__ import annotations

from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from eventsep import pipeline
from eventsep.audio import Audio
from eventsep.outputs import write_result
from eventsep.settings import settings
from eventsep.store import ResultStore, StageResult

from .caching import stage_tasks


@task(name="load", cache_policy=NO_CACHE)
def load_recording(path: str) -> Audio:
    from eventsep.api import as_audio

    return as_audio(path)


@task(name="load_reference", cache_policy=NO_CACHE)
def load_reference(path: str | None, recording: Audio) -> np.ndarray | None:
    from eventsep.api import _reference

    return _reference(path, recording)


@task(name="write_outputs", cache_policy=NO_CACHE)
def write_outputs(results: list[pipeline.Result], folder: str, stems: list[str], report: bool = True,
                  audio_path: str | None = None) -> list[dict[str, str]]:
    return [write_result(result, folder, stem, report, audio_path) for result, stem in zip(results, stems, strict=True)]


@task(name="separate_in_blocks", cache_policy=NO_CACHE)
def separate_in_blocks(path: str, query: str, options: pipeline.RunOptions, folder: str, stem: str,
                       report: bool = True, progress: pipeline.Progress | None = None
                       ) -> tuple[pipeline.Result, dict[str, str]]:
    """A long recording a block at a time (eventsep.stream): its stages cached in the same result store by this
    process's own runner (a task per block stage would keep every block's arrays in the flow's results), its
    outputs written as one set."""
    from eventsep import stream
    from eventsep.api import local_runner

    return stream.separate_file(path, query, options, local_runner(), folder, stem, report, progress)


@task(name="load_cached", cache_policy=NO_CACHE)
def load_cached(recording: Audio, query: str, options: pipeline.RunOptions
                ) -> tuple[StageResult, StageResult, list[StageResult]]:
    return pipeline.load_cached(ResultStore(settings().results_url), recording, query, options)


@task(name="refuse_grid", cache_policy=NO_CACHE)
def refuse_grid(recording: Audio, cached: tuple, grid: list[pipeline.GridPoint],
                options: pipeline.RunOptions, reference: np.ndarray | None) -> list[pipeline.Result]:
    mapping, sed_result, estimates = cached
    return pipeline.refuse_grid(recording, mapping, sed_result, estimates, grid, options, reference)


class PrefectRunner:
    """Runs each stage as its cached Prefect task; parallel stages are submitted together."""

    def __init__(self) -> None:
        self.tasks = stage_tasks(settings())

    def run(self, stage: str, **inputs: Any) -> StageResult:
        return self.tasks[stage](**inputs)

    def run_parallel(self, calls: list[tuple[str, dict[str, Any]]]) -> list[StageResult]:
        futures = [self.tasks[stage].submit(**inputs) for stage, inputs in calls]
        return [future.result() for future in futures]
