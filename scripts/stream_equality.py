"""How far a run in blocks (eventsep.stream) is from the whole recording's run: the example tiled to REPS x 10 s,
separated both ways with the defaults, the largest difference of the target (and per 4 s after the first block).

    PYTHONPATH=. python3 scripts/stream_equality.py QUERY [REPS] [BEFORE_SECONDS]   # 36 s blocks, 36 s after
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

folder = Path(tempfile.mkdtemp())
os.environ["EVENTSEP_CACHE"] = str(folder / "cache")

from eventsep import stream  # noqa: E402
from eventsep.api import local_runner, make_options, separate  # noqa: E402
from eventsep.audio import load_audio, write_audio  # noqa: E402

query = sys.argv[1] if len(sys.argv) > 1 else "only the accordion"
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 8
before = float(sys.argv[3]) if len(sys.argv) > 3 else 36.0
example = load_audio("examples/accordion_and_speech.flac")
path = folder / "long.flac"
write_audio(path, np.tile(example.samples, reps), example.sample_rate, subtype="PCM_16")
whole = separate(str(path), query)
result, paths = stream.separate_file(str(path), query, make_options(), local_runner(), folder / "out", "long",
                                     html=False, block_seconds=36.0, before_seconds=before, after_seconds=36.0)
target, rate = soundfile.read(paths["target"], dtype="float32")
difference = np.abs(target - whole.target)
print(f"{query!r}, {reps * 10} s, {before:g} s before: {result.extra['blocks']}")
print(f"largest difference {difference.max():.3g} (target peak {np.abs(whole.target).max():.3g}) at "
      f"{np.argmax(difference) / rate:.2f} s")
for start in range(36, len(difference) // rate, 4):
    print(f"  {start}-{start + 4} s: {difference[start * rate:(start + 4) * rate].max():.3g}")
print("event peaks that differ:", [(a["onset"], a["peak"], b["peak"]) for a, b in zip(whole.events, result.events)
                                   if abs(a["peak"] - b["peak"]) > 1e-7])
