"""Writes a run's outputs: target and residual stems, the event table (CSV, JSON), a JSON report and the
HTML report (`eventsep.report`)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .audio import write_audio
from .atomic import write_text
from .pipeline import Result

EVENT_COLUMNS = ("onset", "offset", "label", "peak")


def events_csv(events: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EVENT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for event in events:
        writer.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in event.items()})
    return buffer.getvalue()


def canonical_events(events: list[dict]) -> list[dict]:
    """Each event's fields in one order (EVENT_COLUMNS, then the rest sorted), whether the mask was computed
    now or read from the result store (whose metadata comes back with sorted keys)."""
    return [{**{k: e[k] for k in EVENT_COLUMNS if k in e}, **{k: e[k] for k in sorted(e) if k not in EVENT_COLUMNS}}
            for e in events]


def report(result: Result) -> dict:
    return {"mapping": result.mapping, "events": result.events, "metrics": result.metrics,
            "separators": result.separators, "keys": result.keys, "options": result.options,
            "sample_rate": result.sample_rate, **result.extra}


def write_result(result: Result, folder: str | os.PathLike, stem: str, html: bool = True,
                 audio_path: str | None = None) -> dict[str, str]:
    """Write all outputs of `result` into `folder` as `<stem>.<part>.<ext>`; returns {part: path}.
    `html`: also `<stem>.report.html` and its picture (its mixture player links to `audio_path`)."""
    folder = Path(folder)
    paths = {"target": folder / f"{stem}.target.wav", "residual": folder / f"{stem}.residual.wav",
             "events_csv": folder / f"{stem}.events.csv", "events_json": folder / f"{stem}.events.json",
             "report": folder / f"{stem}.report.json"}
    write_audio(paths["target"], result.target, result.sample_rate)
    write_audio(paths["residual"], result.residual, result.sample_rate)
    write_text(paths["events_csv"], events_csv(result.events))
    # Same bytes for the same result, whichever of its stages came from the cache.
    write_text(paths["events_json"], json.dumps(canonical_events(result.events), indent=1))
    write_text(paths["report"], json.dumps(report(result), indent=1, default=str, sort_keys=True))
    written = {part: str(path) for part, path in paths.items()}
    if html:
        from .report import separation_report

        written.update(separation_report(result, folder, stem, audio_path))
    return written
