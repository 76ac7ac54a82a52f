"""SI-SDRi of `eventsep.separate` (default settings) over a rendered development set (OUT/manifest.json):
mean and median overall and per family, and the silent answers (estimate 20 dB or more below the reference).

    python3 scripts/baseline_devset.py OUT [rows.json]
"""

import json
import sys
from pathlib import Path

import numpy as np

import eventsep
from eventsep.audio import load_audio
from eventsep.metrics import si_sdr_improvement

SILENT_DB = -20.0


def main(folder: str, rows_path: str | None = None) -> None:
    folder = Path(folder)
    items = json.loads((folder / "manifest.json").read_text())["items"]
    rows = []
    for item in items:
        mixture = load_audio(folder / item["mixture"]).samples
        reference = load_audio(folder / item["reference"]).samples
        result = eventsep.separate(str(folder / item["mixture"]), item["query"], reference=str(folder / item["reference"]))
        level = 10 * np.log10((np.sum(result.target ** 2) + 1e-20) / (np.sum(reference ** 2) + 1e-20))
        rows.append({"id": item["id"], "kind": item["kind"], "class": item["class"], "query": item["query"],
                     "remove": bool(item.get("remove")),
                     "si_sdri": float(si_sdr_improvement(result.target, reference, mixture)),
                     "level_db": float(level)})
        print(json.dumps(rows[-1]), flush=True)
    if rows_path:
        Path(rows_path).write_text(json.dumps(rows, indent=1) + "\n")
    print("| set | items | mean SI-SDRi dB | median | below 0 dB | silent answers |\n|---|---:|---:|---:|---:|---:|")
    for name in ("all", "speech", "music", "environment"):
        chosen = [r for r in rows if name in ("all", r["kind"])]
        scores = np.array([r["si_sdri"] for r in chosen])
        silent = sum(r["level_db"] <= SILENT_DB for r in chosen)
        finite = scores[np.isfinite(scores)]
        print(f"| {name} | {len(chosen)} | {finite.mean():+.2f} | {np.median(scores):+.2f} | "
              f"{int(np.sum(scores < 0))} | {silent} |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
