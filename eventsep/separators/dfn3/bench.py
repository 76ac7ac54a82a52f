"""`eventsep bench dfn3`: the real-time factor of the dfn3 stage (resampling to 48 kHz and back included)."""

from __future__ import annotations

import os
import time

import numpy as np


def _timed(function, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, value


def bench(samples: np.ndarray, sample_rate: int, lengths=(10.0, 60.0), repeats: int = 2) -> str:
    """Rows per input length: the stage's wall and CPU seconds (best of `repeats` by wall), the library's
    fresh-state creation inside it, and wall and CPU ÷ audio length (on a busy machine the CPU figure is
    the steadier one). Longer lengths loop the recording."""
    from ... import backends
    from ...audio import resample
    from ...config import SeparatorParams
    from .backend import SAMPLE_RATE

    backend = backends.get("separator", "dfn3")
    params = SeparatorParams()

    def stage(clip):
        estimate = backend.separate(resample(clip, sample_rate, SAMPLE_RATE), "speech", params)
        return resample(estimate, SAMPLE_RATE, sample_rate)

    create = min(_timed(lambda: backend._lib.df_free(backend._create(100.0)))[0] for _ in range(repeats))
    rows = [f"dfn3 stage, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; "
            f"fresh library state: {create:.2f} s wall (part of every call)", "",
            "| input | wall s | CPU s | real-time factor (wall ÷ length) | without the state's creation | "
            "CPU ÷ length |", "|---|---:|---:|---:|---:|---:|"]
    for seconds in lengths:
        count = int(seconds * sample_rate)
        clip = np.tile(samples, -(-count // len(samples)))[:count].astype(np.float32)
        wall, cpu, _ = min((_timed(stage, clip) for _ in range(repeats)), key=lambda row: row[0])
        rows.append(f"| {seconds:g} s | {wall:.2f} | {cpu:.2f} | {wall / seconds:.3f} | "
                    f"{max(wall - create, 0.0) / seconds:.3f} | {cpu / seconds:.3f} |")
    return "\n".join(rows)
