"""Flows for deployments: separate one upload into its results folder (published as a set); re-run a
manifest on a schedule. Both publish artifacts, with a metrics table wherever a reference is given."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
from prefect import flow, get_run_logger
from prefect.states import Failed

from eventsep import pipeline
from eventsep.atomic import atomic_dir
from eventsep.config import ParamError, one_line
from eventsep.sidecar import parse_sidecar, resolve_reference
from tasks.batch import RECORDING_FAILURES

from .artifacts import publish, publish_failure, publish_manifest
from .separate import output_stem, separate_summary


def separate_into(audio_path: str, query: str, folder: str, options: pipeline.RunOptions | None = None,
                  reference_path: str | None = None) -> dict:
    """Write the outputs into a fresh hidden folder beside `folder`, then swap it in whole: `folder` holds
    the previous set or the complete new one, never a mix or a part."""
    final = Path(folder)
    with atomic_dir(final, replace=True) as staging:
        summary = separate_summary(audio_path, query, str(staging), options, reference_path)
    summary["outputs"] = {part: str(final / Path(path).name) for part, path in summary["outputs"].items()}
    summary["folder"] = str(final)
    return summary


def _fail(audio_path: str, reason: str):
    """One line in the run's log and in an artifact; the run ends Failed without a traceback."""
    line = f"{audio_path}: {reason}"
    get_run_logger().error(line)
    publish_failure(audio_path, line)
    return Failed(message=line)


@flow(name="separate-upload", log_prints=True)
def separate_upload(audio_path: str, results_dir: str, sidecar: str | None = None, default_query: str = "speech",
                    problem: str | None = None, query: str | None = None):
    """An upload's outputs go to `<results_dir>/<name>/`, with the query, reference and stage parameters of
    its sidecar's text (`query` overrides the sidecar's query); a bad upload or sidecar fails this run alone."""
    if problem:
        return _fail(audio_path, problem)
    try:
        settings = parse_sidecar(sidecar, default_query)
        options = pipeline.RunOptions.model_validate(settings["options"])
    except ParamError as error:
        return _fail(audio_path, str(error))
    reference = resolve_reference(settings["reference"], audio_path)
    try:
        summary = separate_into(audio_path, query or settings["query"],
                                str(Path(results_dir) / output_stem(audio_path)), options, reference)
    except RECORDING_FAILURES as error:
        return _fail(audio_path, one_line(error))
    publish(summary)
    return summary


@flow(name="rerun-manifest", log_prints=True)
def rerun_manifest(manifest: str, results_dir: str, options: pipeline.RunOptions | None = None) -> list[dict]:
    """Re-run every {"audio", "query"[, "reference"]} of a JSON manifest into `<results_dir>/<name>/`;
    unchanged stages come from the cache, a bad item fails alone."""
    with fsspec.open(manifest, "r") as handle:
        items = json.load(handle)
    rows = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("audio"), str) or not isinstance(item.get("query"), str):
            print(f"{manifest}: an item without \"audio\" and \"query\" strings: {item!r}")
            rows.append({"audio": str(item), "query": "", "error": "item needs \"audio\" and \"query\""})
            continue
        try:
            summary = separate_into(item["audio"], item["query"], str(Path(results_dir) / output_stem(item["audio"])),
                                    options, item.get("reference"))
            publish(summary)
            rows.append(summary)
        except RECORDING_FAILURES as error:
            print(f"{item['audio']}: {one_line(error)}")
            rows.append({"audio": item["audio"], "query": item["query"], "error": one_line(error)})
    publish_manifest(rows, manifest)
    failed = [row for row in rows if row.get("error")]
    print(f"{len(rows) - len(failed)} of {len(rows)} recordings done")
    return rows
