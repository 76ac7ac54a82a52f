"""python -m eventsep.corpus --out DIR --seeds 0-19: write corpus mixtures."""

import argparse

from . import make_corpus
from .manifest import write_corpus_manifest

parser = argparse.ArgumentParser(prog="python -m eventsep.corpus")
parser.add_argument("output", nargs="?", help="folder to write to (or --out)")
parser.add_argument("--out", dest="out", help="folder to write to")
parser.add_argument("--seeds", default="0-9", help="one seed or an inclusive range, e.g. 0-19")
parser.add_argument("--seconds", type=float, default=10.0)
parser.add_argument("--snr", type=float, default=0.0)
args = parser.parse_args()
folder = args.out or args.output
if not folder:
    parser.error("give the output folder: --out DIR")
first, _, last = args.seeds.partition("-")
if not first.isdigit() or not (last or first).isdigit():
    parser.error(f"--seeds must be N or N-M, got {args.seeds!r}")
seeds = range(int(first), int(last or first) + 1)
written = make_corpus(folder, seeds, seconds=args.seconds, snr_db=args.snr)
print(f"wrote {len(seeds)} mixtures and {write_corpus_manifest(folder, written)}")
