"""Where does a weak class match start? Scores of the best class on the prompt sets
(tests/data/query_prompts.json): when the top-1 is right, and when no class fits — the best score
left once the prompt's acceptable classes are taken out of the candidates (what a query for a sound
AudioSet lacks would get) — and of the wrong top-1 matches.

    python scripts/measure_weak_match.py [THRESHOLD]

Pick the threshold on the dev split; the other splits are held out.
"""
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("EVENTSEP_CACHE", tempfile.mkdtemp(prefix="eventsep-weak-"))
from eventsep import backends  # noqa: E402
from eventsep.config import QueryParams  # noqa: E402
from eventsep.query import map_query  # noqa: E402

PROMPTS = Path(__file__).resolve().parent.parent / "tests" / "data" / "query_prompts.json"
encoder = backends.get("text_encoder", "minilm")
rows = {}  # split -> {"right": [...], "wrong": [...], "no fit": [...]}
for item in json.loads(PROMPTS.read_text("utf-8")):
    found = map_query(item["query"], encoder, QueryParams(top_k=20)).classes
    groups = rows.setdefault(item["split"], {"right": [], "wrong": [], "no fit": []})
    groups["right" if found[0].name in item["accept"] else "wrong"].append(found[0].score)
    groups["no fit"].append(next(c.score for c in found if c.name not in item["accept"]))


def share(values, threshold):
    return f"{np.mean(np.array(values) < threshold):.3f}" if values else "-"


dev = rows["dev"]
if len(sys.argv) > 1:
    threshold = float(sys.argv[1])
else:  # the midpoint that best separates right top-1 scores from no-fit scores on dev
    candidates = np.arange(0.30, 0.95, 0.01)
    errors = [np.mean(np.array(dev["right"]) < t) + np.mean(np.array(dev["no fit"]) >= t) for t in candidates]
    threshold = float(round(candidates[int(np.argmin(errors))], 2))
print(f"threshold {threshold:.2f}\n")
print("| split | right top-1 (n) | right flagged weak | wrong top-1 (n) | wrong flagged | no fit (n) | no fit flagged |"
      "\n|---|---:|---:|---:|---:|---:|---:|")
for split, groups in rows.items():
    print(f"| {split} | {len(groups['right'])} | {share(groups['right'], threshold)} | {len(groups['wrong'])} | "
          f"{share(groups['wrong'], threshold)} | {len(groups['no fit'])} | {share(groups['no fit'], threshold)} |")
for name in ("right", "wrong", "no fit"):
    values = np.concatenate([g[name] for g in rows.values()]) if any(g[name] for g in rows.values()) else []
    if len(values):
        print(f"{name}: quantiles 5/25/50/75/95 % =", np.round(np.percentile(values, [5, 25, 50, 75, 95]), 3))
