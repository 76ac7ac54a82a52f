"""Peak RSS through a run in blocks (eventsep.stream), in this process, at each stage: the bench's long input of
MINUTES, separated with the defaults; HTML=0 leaves out the report (its pictures).

    PYTHONPATH=. python3 scripts/memory_stream.py MINUTES
"""
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

folder = Path(tempfile.mkdtemp())
os.environ["EVENTSEP_CACHE"] = str(folder / "cache")

from eventsep import stream  # noqa: E402
from eventsep.api import local_runner, make_options  # noqa: E402
from flows.bench import long_input  # noqa: E402


def rss() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


path = long_input("examples/accordion_and_speech.flac", float(sys.argv[1]), str(folder))
last = [None]


def progress(stage, fraction):
    if stage != last[0] or fraction in (None, 1.0):
        print(f"{stage:25s} {fraction} rss {rss():.0f} MB, peak {peak():.0f} MB", flush=True)
    last[0] = stage


print(f"start: rss {rss():.0f} MB, peak {peak():.0f} MB (writing the input)")
started = time.time()
stream.separate_file(path, "only the accordion", make_options(), local_runner(), folder / "out", "x",
                     os.environ.get("HTML", "1") == "1", progress)
print(f"done in {time.time() - started:.0f} s: rss {rss():.0f} MB, peak {peak():.0f} MB")
