"""Batch flow: one query over many recordings; a bad recording fails alone and the batch goes on."""

from __future__ import annotations

from prefect import flow

from eventsep import pipeline
from eventsep.audio import AudioError
from tasks.stages import PrefectRunner, load_recording, write_outputs

from .separate import output_stem


@flow(name="batch", log_prints=True)
def batch_flow(audio_paths: list[str], query: str, output_dir: str,
               options: pipeline.RunOptions | None = None) -> list[dict]:
    """One row per recording: its outputs, or the one-line reason it failed."""
    options = options or pipeline.RunOptions()
    runner = PrefectRunner()
    rows = []
    for path in audio_paths:
        try:
            recording = load_recording(path)
            result = pipeline.run(recording, query, options, runner)
            [outputs] = write_outputs([result], output_dir, [output_stem(path)])
            rows.append({"audio": path, "outputs": outputs, "events": result.events})
        except (AudioError, pipeline.NoSeparatorAvailable, ValueError) as error:
            print(f"{path}: {error}")
            rows.append({"audio": path, "error": str(error)})
    return rows
