"""Writes a run's outputs: target and residual stems, the event table (CSV, JSON), a JSON report and the
HTML report (`eventsep.report`), staged in a temporary folder and moved in as a set; output names that keep
a batch's inputs apart."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .audio import write_audio
from .atomic import atomic_dir, write_text
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
    `html`: also `<stem>.report.html` and its picture (its mixture player links to `audio_path`).

    The files are written into a temporary folder first and moved in together once all are complete,
    so a failure while writing leaves the previous run's set as it was."""
    folder = Path(folder)
    with atomic_dir(folder) as staging:
        write_audio(staging / audio_names(stem)["target"], result.target, result.sample_rate)
        write_audio(staging / audio_names(stem)["residual"], result.residual, result.sample_rate)
        names = write_beside_audio(result, staging, stem, html, audio_path, folder)
    return {part: str(folder / name) for part, name in names.items()}


def audio_names(stem: str) -> dict[str, str]:
    return {"target": f"{stem}.target.wav", "residual": f"{stem}.residual.wav"}


def write_beside_audio(result: Result, staging: Path, stem: str, html: bool, audio_path: str | None,
                       folder: Path) -> dict[str, str]:
    """Into `staging`, beside the target and residual already there: the event tables, the JSON report and (with
    `html`) the HTML report and its picture, which read the audio from `result`; returns every output's name."""
    names = {**audio_names(stem), "events_csv": f"{stem}.events.csv", "events_json": f"{stem}.events.json",
             "report": f"{stem}.report.json"}
    write_text(staging / names["events_csv"], events_csv(result.events))
    # Same bytes for the same result, whichever of its stages came from the cache.
    write_text(staging / names["events_json"], json.dumps(canonical_events(result.events), indent=1))
    write_text(staging / names["report"], json.dumps(report(result), indent=1, default=str, sort_keys=True))
    if html:
        from .report import separation_report

        names.update(separation_report(result, staging, stem, audio_path, links_from=folder))
    return names


def output_stems(paths: list[str]) -> list[str]:
    """The output stem of each input: its name without the extension ("ex.mp3" -> "ex"); inputs whose
    stems collide keep their whole name ("ex.mp3", "ex.ogg"), and names that still collide (one name in
    two folders) get their position in the list ("ex.mp3.2")."""
    stems = [Path(path).name.rsplit(".", 1)[0] or Path(path).name for path in paths]
    names = [Path(path).name for path in paths]
    chosen = [name if stems.count(stem) > 1 else stem for stem, name in zip(stems, names)]
    return [f"{stem}.{index + 1}" if chosen.count(stem) > 1 else stem for index, stem in enumerate(chosen)]
