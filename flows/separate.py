"""Flows that separate: one recording and a query, or a batch of them (a bad file fails alone)."""

from __future__ import annotations

from typing import Callable

from prefect import flow

from eventsep import pipeline, stream
from eventsep.outputs import output_stems
from flows.artifacts import publish
from tasks.stages import PrefectRunner, load_recording, load_reference, separate_in_blocks, write_outputs


def output_stem(audio_path: str) -> str:
    return output_stems([audio_path])[0]


def separate_summary(audio_path: str, query: str, output_dir: str, options: pipeline.RunOptions | None = None,
                     reference_path: str | None = None, progress: Callable | None = None,
                     report: bool = True) -> dict:
    """Separate, write the outputs (the HTML report too unless `report` is False) into `output_dir` and return
    the summary (no artifacts).
    `progress(stage, fraction)` (in-process callers, e.g. the command line's display) hears how it goes."""
    options = options or pipeline.RunOptions()
    if progress is not None:
        progress("load", None)
    if stream.wanted(audio_path, reference_path):
        result, paths = separate_in_blocks(audio_path, query, options, output_dir, output_stem(audio_path), report,
                                           progress)
        return summary_of(result, paths, audio_path, query, reference_path)
    recording = load_recording(audio_path)
    reference = load_reference(reference_path, recording) if reference_path else None
    result = pipeline.run(recording, query, options, PrefectRunner(), reference, progress)
    if progress is not None:
        progress("write", None)
    [paths] = write_outputs([result], output_dir, [output_stem(audio_path)], report, audio_path)
    return summary_of(result, paths, audio_path, query, reference_path)


def summary_of(result: pipeline.Result, paths: dict[str, str], audio_path: str, query: str,
               reference_path: str | None) -> dict:
    return {"audio": audio_path, "query": query, "outputs": paths, "metrics": result.metrics,
            "events": result.events, "separators": result.separators, "note": result.extra.get("mask_note"),
            "warnings": result.extra.get("warnings", []), "answer": result.extra.get("answer"),
            "classes": [c["name"] for c in result.mapping.get("classes", [])][:3], "reference": reference_path}


@flow(name="separate", log_prints=True)
def separate_flow(audio_path: str, query: str, output_dir: str,
                  options: pipeline.RunOptions | None = None,
                  reference_path: str | None = None, progress: Callable | None = None,
                  report: bool = True) -> dict:
    """Separate what `query` describes from `audio_path`; writes target, residual, events, the JSON report and
    (unless `report` is False) the HTML report."""
    summary = separate_summary(audio_path, query, output_dir, options, reference_path, progress, report)
    publish(summary)
    return summary
