"""The evaluation flow: every manifest item through the cached stage tasks, then the grid, metrics and report."""

from __future__ import annotations

from prefect import flow

from eventsep import pipeline
from eventsep.evaluate import GridSpec, evaluate
from flows.artifacts import publish_evaluation
from tasks.stages import PrefectRunner


@flow(name="evaluate", log_prints=True)
def evaluate_flow(manifest: str, output_dir: str, spec: GridSpec | None = None,
                  options: pipeline.RunOptions | None = None, audio_items: int | None = None,
                  report: bool = True, kinds: tuple[str, ...] = ()) -> dict:
    """results.json, results.csv and report.html of `manifest` (its items of `kinds`, when given) in
    `output_dir`; returns the summary."""
    doc = evaluate(manifest, output_dir, spec, options, PrefectRunner(), audio_items, report, log=print, kinds=kinds)
    publish_evaluation(doc, output_dir)
    return {"summary": doc["summary"], "gains": doc["gains"], "default": doc["default"], "note": doc["note"],
            "seconds": doc["seconds"]}
