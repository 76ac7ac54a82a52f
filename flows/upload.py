"""Flows for deployments: separate one upload into the results folder; re-run a manifest on a schedule."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
from prefect import flow

from eventsep import pipeline

from .batch import batch_flow
from .separate import output_stem, separate_flow


@flow(name="separate-upload", log_prints=True)
def separate_upload(audio_path: str, query: str, results_dir: str,
                    options: pipeline.RunOptions | None = None, report: bool = True) -> dict:
    """An upload's outputs (HTML report included) go to `<results_dir>/<name>/`; a bad upload fails alone."""
    return separate_flow(audio_path, query, str(Path(results_dir) / output_stem(audio_path)), options,
                         report=report)


@flow(name="rerun-manifest", log_prints=True)
def rerun_manifest(manifest: str, results_dir: str, options: pipeline.RunOptions | None = None) -> list[dict]:
    """Re-run every {"audio": ..., "query": ...} of a JSON manifest; unchanged stages come from the cache."""
    with fsspec.open(manifest, "r") as handle:
        items = json.load(handle)
    rows = []
    for query in sorted({item["query"] for item in items}):
        paths = [item["audio"] for item in items if item["query"] == query]
        rows += batch_flow(paths, query, results_dir, options)
    failed = [row for row in rows if row.get("error")]
    print(f"{len(rows) - len(failed)} of {len(rows)} recordings done")
    return rows
