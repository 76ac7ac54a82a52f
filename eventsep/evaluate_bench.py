"""`eventsep bench evaluate`: the time of `evaluate` over stand-in items whose separator outputs are planted in a
private cache, so the timed pass masks, fuses and scores cached outputs exactly as a new grid would.

The items are generated here (no corpus tools needed): kinds cycle speech / music / environment, so a third of
them are scored with STOI and ESTOI too. The "speech" is an amplitude-modulated harmonic voice-like signal, the
music a melody of harmonic notes, the environment band-passed noise bursts; each is active once for 30-60 % of
the clip over continuous pink-ish noise at 0 dB. The planted separator outputs are the reference plus a
different share of the interferer per separator, at each separator's own rate.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .evaluate import KINDS, GridSpec, write_manifest

RATE = 32000


def _target(kind: str, rng: np.random.Generator, length: int) -> np.ndarray:
    t = np.arange(length) / RATE
    if kind == "speech":
        pitch = 120 + 80 * rng.random() + 15 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / RATE
        voice = sum(np.sin(k * phase) / k for k in range(1, 20))
        syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.random() * 6), 0, None) ** 2
        return voice * syllables
    if kind == "music":
        notes = 110 * 2 ** (rng.integers(0, 24, size=int(length / RATE / 0.25) + 1) / 12)
        frequency = np.repeat(notes, int(0.25 * RATE))[:length]
        phase = 2 * np.pi * np.cumsum(frequency) / RATE
        return sum(np.sin(k * phase) * 0.6 ** k for k in range(1, 8))
    noise = rng.standard_normal(length)
    smooth = np.convolve(noise, np.hanning(9) / 4, mode="same")
    bursts = (np.sin(2 * np.pi * 1.5 * t + rng.random() * 6) > 0).astype(float)
    return smooth * bursts


def stand_in_set(folder: Path, items: int, seconds: float) -> Path:
    """`items` mixtures with references, spans, kinds and classes, and their manifest."""
    from .audio import write_audio

    length = int(seconds * RATE)
    entries = []
    for index in range(items):
        rng = np.random.default_rng([index, 11])
        kind = KINDS[index % len(KINDS)]
        active = int(rng.uniform(0.3, 0.6) * length)
        start = int(rng.uniform(0.05, 0.95) * (length - active))
        target = np.zeros(length)
        target[start:start + active] = _target(kind, rng, active) * np.hanning(active) ** 0.1
        interferer = np.cumsum(rng.standard_normal(length)) * 0.02
        interferer -= np.convolve(interferer, np.ones(801) / 801, mode="same")
        interferer *= np.sqrt(np.mean(target[start:start + active] ** 2) / np.mean(interferer ** 2))
        scale = 0.9 / np.abs(target + interferer).max()
        name = f"item{index:03d}"
        write_audio(folder / f"{name}.mixture.wav", (target + interferer) * scale, RATE)
        write_audio(folder / f"{name}.reference.wav", target * scale, RATE)
        write_audio(folder / f"{name}.interferer.wav", interferer * scale, RATE)
        entries.append({"id": name, "mixture": str(folder / f"{name}.mixture.wav"),
                        "reference": str(folder / f"{name}.reference.wav"), "query": f"the {kind}",
                        "onset": start / RATE, "offset": (start + active) / RATE, "kind": kind,
                        "class": {"speech": "Speech", "music": "Music", "environment": "Noise"}[kind]})
    return write_manifest(entries, folder / "manifest.json")


def plant_separator_outputs(manifest: Path, options) -> None:
    """Store, under each separator's real cache key, the reference plus a share of the interferer."""
    from . import backends
    from .api import as_audio, local_runner
    from .audio import resample
    from .evaluate import read_manifest
    from .pipeline import separate_key
    from .store import StageResult

    runner = local_runner()
    for item in read_manifest(manifest):
        recording = as_audio(item.mixture)
        reference = as_audio(item.reference).samples
        interferer = recording.samples - reference
        mapping = runner.run("map_query", query=item.query, encoder=options.encoder, params=options.query)
        for share, name in zip((0.2, 0.5), options.separators):
            rate = backends.get("separator", name).sample_rate
            estimate = resample(reference + share * interferer, RATE, rate).astype(np.float32)
            runner.store.save(StageResult("separate", separate_key(recording, mapping, name, options.separator),
                                          arrays={"audio": estimate}, meta={"sample_rate": rate, "separator": name}))


def bench_evaluate(items: int = 40, seconds: float = 10.0, spec: GridSpec | None = None) -> str:
    """A table: the cold pass (SED and the query once per item), the warm evaluation and the report's rendering."""
    from .api import make_options
    from .evaluate import evaluate

    spec = spec or GridSpec(fusions=("band", "band-reversed", "rate", "progressive"))
    options = make_options(separators=spec.separators[:2])
    previous = os.environ.get("EVENTSEP_CACHE")
    with tempfile.TemporaryDirectory(prefix="eventsep-bench-evaluate-") as folder:
        os.environ["EVENTSEP_CACHE"] = str(Path(folder) / "cache")
        try:
            manifest = stand_in_set(Path(folder) / "set", items, seconds)
            plant_separator_outputs(manifest, options)
            cold = timed(evaluate, manifest, Path(folder) / "cold", spec, options, audio_items=3)
            warm = timed(evaluate, manifest, Path(folder) / "warm", spec, options, report=False)
            with_report = timed(evaluate, manifest, Path(folder) / "report", spec, options, audio_items=3)
        finally:
            if previous is None:
                os.environ.pop("EVENTSEP_CACHE", None)
            else:
                os.environ["EVENTSEP_CACHE"] = previous
    doc = warm[2]
    points = len(doc["grid"])
    speech = sum(1 for item in doc["items"] if item["kind"] == "speech")
    rows = [("cold: SED + query once per item, then evaluate with report", *cold[:2]),
            (f"warm: evaluate {items} items x {points} grid points from cached outputs, metrics, no report",
             *warm[:2]),
            ("  per item and grid point", warm[0] / (items * points), warm[1] / (items * points)),
            ("warm: evaluate with report (pictures of all items, audio of 3)", *with_report[:2]),
            ("  of which rendering the report (pictures, audio, HTML), wall", with_report[2]["seconds"]["report"],
             float("nan"))]
    lines = [f"{items} stand-in items of {seconds:g} s ({speech} speech: STOI and ESTOI), {points} grid points, "
             f"separators {', '.join(spec.separators)}, {os.cpu_count()} cores, load average "
             f"{os.getloadavg()[0]:.1f}", "", "| measurement | wall s | CPU s (this process) |", "|---|---:|---:|"]
    return "\n".join(lines + [f"| {what} | {wall:.3f} | {cpu:.3f} |" for what, wall, cpu in rows])


def timed(function, *args, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, the value)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = function(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, value
