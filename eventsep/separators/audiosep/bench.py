"""Benchmarks of the official-size AudioSep (random weights): CPU time and peak memory of the network,
chunked vs one pass (each case in its own process, so that its peak resident memory can be read on its
own); and the time of one CLAP text query, padded to its own length vs to 512 tokens as the official code does.
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


def bench_text_query(token_counts=(8, 16, 77, 512), repeats: int = 5) -> str:
    """Median wall time of one query through CLAP's text branch at each padded length. Token ids are random:
    the cost depends only on the length, and the tokenizer's files are not needed."""
    import statistics

    import torch

    from .clap_text import ClapText

    torch.manual_seed(0)
    model = ClapText().eval()
    rows = ["| query padded to | median s per query | threads |", "|---:|---:|---:|"]
    with torch.inference_mode():
        for count in token_counts:
            ids = torch.randint(3, 50_000, (1, count))
            mask = torch.ones_like(ids)
            model(ids, mask)  # warm-up
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                model(ids, mask)
                times.append(time.perf_counter() - started)
            rows.append(f"| {count} tokens | {statistics.median(times):.3f} | {torch.get_num_threads()} |")
    return "\n".join(rows)


if __name__ == "__main__":
    started = time.perf_counter()
    print(bench(tuple(float(a) for a in sys.argv[1:]) or (10.0, 60.0)))
    print(f"({time.perf_counter() - started:.0f} s)")
