"""python -m eventsep.corpus OUT --seeds 0-19: write corpus mixtures."""

import argparse

from . import make_corpus

parser = argparse.ArgumentParser(prog="python -m eventsep.corpus")
parser.add_argument("output")
parser.add_argument("--seeds", default="0-9")
parser.add_argument("--seconds", type=float, default=10.0)
parser.add_argument("--snr", type=float, default=0.0)
args = parser.parse_args()
first, _, last = args.seeds.partition("-")
seeds = range(int(first), int(last or first) + 1)
make_corpus(args.output, seeds, seconds=args.seconds, snr_db=args.snr)
print(f"wrote {len(seeds)} mixtures to {args.output}")
