"""Re-fusion from the cache: mask and fusion over a grid of settings for a recording already separated."""

from __future__ import annotations

from prefect import flow

from eventsep import pipeline
from tasks.stages import load_cached, load_recording, load_reference, refuse_grid, write_outputs

from .separate import output_stem


@flow(name="refuse", log_prints=True, persist_result=True, result_serializer="json")
def refuse_flow(audio_path: str, query: str, grid: list[pipeline.GridPoint],
                options: pipeline.RunOptions | None = None, reference_path: str | None = None,
                output_dir: str | None = None) -> list[dict]:
    """Each grid point's settings, metrics and events (and output files when `output_dir` is given)."""
    options = options or pipeline.RunOptions()
    recording = load_recording(audio_path)
    reference = load_reference(reference_path, recording) if reference_path else None
    cached = load_cached(recording, query, options)
    results = refuse_grid(recording, cached, grid, options, reference)
    rows = [{**r.extra["grid_point"], "metrics": r.metrics, "events": len(r.events), "answer": r.extra.get("answer")}
            for r in results]
    if output_dir:
        stems = [f"{output_stem(audio_path)}.{i:03d}-{row['mask_mode']}-{row['threshold']:g}-{row['fusion_mode']}"
                 for i, row in enumerate(rows)]
        for row, paths in zip(rows, write_outputs(results, output_dir, stems, True, audio_path)):
            row["outputs"] = paths
    return rows
