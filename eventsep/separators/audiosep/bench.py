"""CPU time and peak memory of the official-size AudioSep network (random weights): chunked vs one pass.

Each case runs in its own process so that its peak resident memory can be read on its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

CASE = """
import json, resource, sys, time, numpy as np, torch
from eventsep.separators.apply import apply_chunked
from eventsep.separators.audiosep.network import OFFICIAL, ResUNet30
seconds, mode, chunk = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
torch.manual_seed(0)
model = ResUNet30(OFFICIAL).eval()
condition = torch.randn(1, OFFICIAL.condition_size)
samples = np.random.default_rng(0).standard_normal(int(seconds * OFFICIAL.sample_rate)).astype(np.float32) * 0.1
started = time.process_time(); wall = time.perf_counter()
with torch.inference_mode():
    if mode == "one pass":
        model(torch.from_numpy(samples)[None, None], condition)
    else:
        rate = OFFICIAL.sample_rate
        apply_chunked(lambda x: model(x, condition.expand(len(x), -1)), samples, int(chunk * rate),
                      int(1.0 * rate), batch_size=1)
print(json.dumps({"cpu_s": time.process_time() - started, "wall_s": time.perf_counter() - wall,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_case(seconds: float, mode: str, chunk: float = 10.0) -> dict:
    done = subprocess.run([sys.executable, "-c", CASE, str(seconds), mode, str(chunk)], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(lengths=(10.0, 60.0), chunk: float = 10.0) -> str:
    rows = ["| input | mode | CPU s | wall s | peak MB | chunked ÷ one pass (CPU) |", "|---|---|---:|---:|---:|---:|"]
    for seconds in lengths:
        single = run_case(seconds, "one pass")
        chunked = run_case(seconds, "chunked", chunk)
        for mode, row in (("one pass", single), (f"chunked {chunk:g} s, 1 s overlap", chunked)):
            ratio = row["cpu_s"] / single["cpu_s"]
            rows.append(f"| {seconds:g} s | {mode} | {row['cpu_s']:.1f} | {row['wall_s']:.1f} | "
                        f"{row['peak_mb']:.0f} | {ratio:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    started = time.perf_counter()
    print(bench(tuple(float(a) for a in sys.argv[1:]) or (10.0, 60.0)))
    print(f"({time.perf_counter() - started:.0f} s)")
