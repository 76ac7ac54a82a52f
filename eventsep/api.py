"""The small public surface for notebooks and scripts: `separate` and `refuse`, with no Prefect needed."""

from __future__ import annotations

import os
from typing import Any, Iterable

import numpy as np

from .audio import Audio, audio_from_array, load_audio, resample
from .locks import OwnedFileLockManager
from .pipeline import (GridPoint, LocalRunner, Progress, Result, RunOptions, grid_product, load_cached,
                       refuse_grid, run)
from .settings import settings
from .store import ResultStore


def as_audio(audio: Audio | str | os.PathLike | tuple[np.ndarray, int]) -> Audio:
    if isinstance(audio, Audio):
        return audio
    if isinstance(audio, tuple):
        return audio_from_array(*audio)
    return load_audio(audio)


def make_options(options: RunOptions | dict | None = None, **overrides: Any) -> RunOptions:
    """RunOptions from a base plus overrides; `mask=` and `fusion=` may be partial dicts."""
    base = options.model_dump() if isinstance(options, RunOptions) else dict(options or {})
    for name, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(name), dict):
            base[name] = {**base[name], **value}
        elif value is not None:
            base[name] = value.model_dump() if hasattr(value, "model_dump") else value
    return RunOptions.model_validate(base)


def _reference(reference, recording: Audio) -> np.ndarray | None:
    if reference is None:
        return None
    ref = as_audio(reference)
    samples = resample(ref.samples, ref.sample_rate, recording.sample_rate)
    return np.pad(samples, (0, max(0, len(recording.samples) - len(samples))))[: len(recording.samples)]


def local_runner() -> LocalRunner:
    config = settings()
    return LocalRunner(ResultStore(config.results_url, config.cache_max_bytes), OwnedFileLockManager(config.locks_dir))


def separate(audio, query: str, *, options: RunOptions | dict | None = None, reference=None,
             progress: Progress | None = None, **overrides: Any) -> Result:
    """Separate what `query` describes from `audio` (a path, an Audio, or (samples, rate)).

    Every stage is cached in the result store (EVENTSEP_RESULTS), shared with the Prefect flows.
    `progress(stage, fraction)`, when given, hears each stage start (fraction None) and the long
    ones go through the recording (0 to 1).
    """
    recording = as_audio(audio)
    return run(recording, query, make_options(options, **overrides), local_runner(),
               _reference(reference, recording), progress)


def refuse(audio, query: str, grid: Iterable[GridPoint | dict] | None = None, *,
           mask_modes: Iterable[str] = ("hard", "soft"), thresholds: Iterable[float] = (0.3, 0.5),
           fusion_modes: Iterable[str] = ("rate", "band"), options: RunOptions | dict | None = None,
           reference=None, **overrides: Any) -> list[Result]:
    """Re-run mask and fusion over a grid from cached stage outputs alone (milliseconds a point).

    Raises `NotCached` when `separate` has not run on this recording and query with these backends.
    """
    recording = as_audio(audio)
    run_options = make_options(options, **overrides)
    points = ([p if isinstance(p, GridPoint) else GridPoint.model_validate(p) for p in grid]
              if grid is not None else grid_product(mask_modes, thresholds, fusion_modes))
    mapping, sed_result, estimates = load_cached(local_runner().store, recording, query, run_options)
    return refuse_grid(recording, mapping, sed_result, estimates, points, run_options,
                       _reference(reference, recording))
