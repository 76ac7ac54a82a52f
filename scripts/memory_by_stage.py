"""Peak RSS (MB) in each stage of eventsep.separate on the bundled example tiled to N minutes, in this
process: `python3 scripts/memory_by_stage.py 6` (models from cache/models, a private cache)."""

import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.getcwd())

import eventsep  # noqa: E402
from eventsep.api import as_audio  # noqa: E402
from eventsep.outputs import write_result  # noqa: E402
from flows.bench import long_input  # noqa: E402
from flows.cli import EXAMPLE, EXAMPLE_QUERY  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


def main(minutes: float) -> None:
    stage, peaks = ["start"], {}

    def sample():
        while True:
            peaks[stage[0]] = max(peaks.get(stage[0], 0), rss_mb())
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    folder = tempfile.mkdtemp(prefix="eventsep-memory-")
    try:
        os.environ["EVENTSEP_CACHE"] = os.path.join(folder, "cache")
        os.environ["EVENTSEP_MODELS"] = os.path.abspath("cache/models")
        path = long_input(str(EXAMPLE), minutes, folder)
        stage[0] = "load"
        recording = as_audio(path)
        started = time.time()
        result = eventsep.separate(recording, EXAMPLE_QUERY, progress=lambda name, _: stage.__setitem__(0, name))
        stage[0] = "write"
        write_result(result, os.path.join(folder, "out"), "x")
        stage[0] = "end"
        time.sleep(0.2)
        print(f"{minutes:g} min, {time.time() - started:.0f} s:", {k: round(v) for k, v in peaks.items()})
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main(float(sys.argv[1]))
