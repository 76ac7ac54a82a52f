"""`eventsep bench cache`: a full run against re-fusion from the cache, through Prefect and without it."""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager

from eventsep import pipeline
from eventsep.audio import Audio, load_audio, write_audio


@contextmanager
def private_cache():
    """A fresh, empty cache folder for the duration, so the first run is a cold one."""
    previous = os.environ.get("EVENTSEP_CACHE")
    with tempfile.TemporaryDirectory(prefix="eventsep-bench-") as folder:
        os.environ["EVENTSEP_CACHE"] = folder
        try:
            yield folder
        finally:
            if previous is None:
                os.environ.pop("EVENTSEP_CACHE", None)
            else:
                os.environ["EVENTSEP_CACHE"] = previous


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


def bench_cache(recording: Audio, query: str, options: pipeline.RunOptions,
                grid: list[pipeline.GridPoint], repeats: int = 3) -> list[tuple[str, float, float]]:
    """Rows of (what, seconds, ratio to the full run through Prefect)."""
    import eventsep
    from flows.refuse import refuse_flow
    from flows.separate import separate_flow

    with private_cache() as folder:
        path = os.path.join(folder, "clip.wav")
        write_audio(path, recording.samples, recording.sample_rate, subtype="FLOAT")
        out = os.path.join(folder, "out")
        full_flow, _ = timed(separate_flow, path, query, out, options)
        warm_flow, _ = timed(separate_flow, path, query, out, options)
        refuse_flow_time = min(timed(refuse_flow, path, query, grid, options)[0] for _ in range(repeats))
        refuse_lib = min(timed(eventsep.refuse, path, query, grid, options=options)[0] for _ in range(repeats))
    with private_cache():
        full_lib, _ = timed(eventsep.separate, recording, query, options=options)
    n = len(grid)
    rows = [
        ("full run, cold cache, Prefect flow", full_flow),
        ("full run, warm cache, Prefect flow", warm_flow),
        ("full run, cold cache, eventsep.separate", full_lib),
        (f"re-fuse {n} grid points, Prefect flow", refuse_flow_time),
        ("  per grid point, Prefect flow", refuse_flow_time / n),
        (f"re-fuse {n} grid points, eventsep.refuse", refuse_lib),
        ("  per grid point, eventsep.refuse", refuse_lib / n),
    ]
    return [(what, seconds, seconds / full_flow) for what, seconds in rows]


def format_table(rows: list[tuple[str, float, float]], title: str) -> str:
    lines = [title, "", "| measurement | seconds | ÷ full run (flow, cold) |", "|---|---:|---:|"]
    lines += [f"| {what} | {seconds:.4f} | {ratio:.4f} |" for what, seconds, ratio in rows]
    return "\n".join(lines)


def main(audio_path: str, query: str, options: pipeline.RunOptions, seconds: float = 10.0) -> str:
    recording = load_audio(audio_path)
    samples = recording.samples[: int(seconds * recording.sample_rate)]
    clip = Audio(samples, recording.sample_rate, recording.source)
    grid = pipeline.grid_product(["hard", "soft"], [0.3, 0.5, 0.7], ["rate", "band"])
    rows = bench_cache(clip, query, options, grid)
    return format_table(rows, f"{clip.duration:.1f} s clip, separators {', '.join(options.separators)}, "
                              f"{len(grid)} grid points, {os.cpu_count()} cores")


def long_input(audio_path: str, minutes: float, folder: str) -> str:
    """`audio_path` repeated to `minutes` of audio, each repetition at its own level (0.8 to 1.0), written to a
    FLAC file in `folder`. The levels keep the stretches of a long recording apart: tiles alike to the sample would
    let the stage cache answer most blocks of a run in blocks (eventsep.stream) without any work."""
    import numpy as np

    recording = load_audio(audio_path)
    count = int(round(minutes * 60 * recording.sample_rate))
    samples = np.resize(recording.samples, count)  # tiles the recording
    tile = len(recording.samples)
    for index, start in enumerate(range(0, count, tile)):
        samples[start:start + tile] *= np.float32(0.8 + 0.2 * ((index * 37) % 101) / 100)
    path = os.path.join(folder, f"long_{minutes:g}min.flac")
    write_audio(path, samples, recording.sample_rate, subtype="PCM_16")
    return path


# Starts argv[2:] and writes its ru_maxrss (KiB) to argv[1]. Linux counts in a child's ru_maxrss the memory
# of the process it was forked from (until exec): started from this small launcher instead of a large
# parent, the command's figure is its own.
_LAUNCHER = ("import os, subprocess, sys\n"
             "child = subprocess.Popen(sys.argv[2:])\n"
             "_, status, usage = os.wait4(child.pid, 0)\n"
             "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
             "sys.exit(os.waitstatus_to_exitcode(status))\n")


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run `command` as a child process: (wall seconds, peak RSS in MB of that child alone, exit status)."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="eventsep-rss-") as folder:
        report = os.path.join(folder, "maxrss")
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", _LAUNCHER, report, *command], env=env,
                               stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        with open(report) as handle:
            return wall, int(handle.read()) / 1024, code  # ru_maxrss: KiB (Linux)


def bench_long(audio_path: str, query: str, minutes: list[float]) -> str:
    """`eventsep bench long`: wall time and peak RSS of `separate --local` (default separators, cold cache)
    on `audio_path` tiled to each length in `minutes`; one table row per length."""
    import sys
    from pathlib import Path

    from eventsep.settings import settings

    root = str(Path(__file__).resolve().parent.parent)
    models = str(settings().models_dir)
    rows = ["| audio | wall s | × real time | peak RSS MB | exit |", "|---:|---:|---:|---:|---:|"]
    for length in minutes:
        with tempfile.TemporaryDirectory(prefix="eventsep-long-") as folder:
            path = long_input(audio_path, length, folder)
            env = {**os.environ, "EVENTSEP_CACHE": os.path.join(folder, "cache"), "EVENTSEP_MODELS": models,
                   "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
            env.pop("EVENTSEP_RESULTS", None)
            command = [sys.executable, "-m", "flows.cli", "separate", "--local", "--quiet", path, query,
                       "-o", os.path.join(folder, "out")]
            wall, peak, code = run_measured(command, env)
        rows.append(f"| {length:g} min | {wall:.1f} | {wall / (length * 60):.3f} | {peak:.0f} | {code} |")
        print(rows[-1], file=sys.stderr, flush=True)  # a long bench shows each row as it comes
    return "\n".join([f"`separate --local` on {Path(audio_path).name} tiled, query {query!r}, "
                      f"{os.cpu_count()} cores", "", *rows])
