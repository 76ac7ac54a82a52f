"""SI-SDRi of `eventsep.separate` (default settings) over a rendered development set (OUT/manifest.json):
mean and median overall and per family, and the silent answers (estimate 20 dB or more below the reference).

    PYTHONPATH=. python3 scripts/baseline_devset.py OUT [--items 0-23] [--rows rows.jsonl]
    PYTHONPATH=. python3 scripts/baseline_devset.py --summarise rows.jsonl [more.jsonl ...]

Each scored item is printed (and appended to --rows) as one JSON line as soon as it is done.
"""

import argparse
import json
from pathlib import Path

import numpy as np

SILENT_DB = -20.0


def score(folder: Path, item: dict) -> dict:
    import eventsep
    from eventsep.audio import load_audio
    from eventsep.metrics import si_sdr_improvement

    mixture = load_audio(folder / item["mixture"]).samples
    reference = load_audio(folder / item["reference"]).samples
    result = eventsep.separate(str(folder / item["mixture"]), item["query"], reference=str(folder / item["reference"]))
    level = 10 * np.log10((np.sum(result.target ** 2) + 1e-20) / (np.sum(reference ** 2) + 1e-20))
    return {"id": item["id"], "kind": item["kind"], "class": item["class"], "query": item["query"],
            "remove": bool(item.get("remove")), "si_sdri": float(si_sdr_improvement(result.target, reference, mixture)),
            "level_db": float(level)}


def summary(rows: list[dict]) -> str:
    lines = ["| set | items | mean SI-SDRi dB | median | below 0 dB | silent answers (≤ −20 dB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in ("all", "speech", "music", "environment"):
        chosen = [r for r in rows if name in ("all", r["kind"])]
        if not chosen:
            continue
        scores = np.array([r["si_sdri"] for r in chosen])
        finite = scores[np.isfinite(scores)]
        silent = sum(r["level_db"] <= SILENT_DB for r in chosen)
        lines.append(f"| {name} | {len(chosen)} | {finite.mean():+.2f} | {np.median(scores):+.2f} | "
                     f"{int(np.sum(scores < 0))} | {silent} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--items", default=None, help="first-last item positions (inclusive), e.g. 0-23")
    parser.add_argument("--rows", default=None, help="append each item's JSON line to this file")
    parser.add_argument("--summarise", nargs="+", default=None, help="only summarise these JSON-lines files")
    args = parser.parse_args()
    if args.summarise:
        rows = [json.loads(line) for path in args.summarise for line in Path(path).read_text().splitlines()
                if line.startswith("{")]
        print(summary(rows))
        return
    folder = Path(args.folder)
    items = json.loads((folder / "manifest.json").read_text())["items"]
    if args.items:
        first, _, last = args.items.partition("-")
        items = items[int(first):int(last or first) + 1]
    rows = []
    for item in items:
        rows.append(score(folder, item))
        line = json.dumps(rows[-1])
        print(line, flush=True)
        if args.rows:
            with open(args.rows, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
    print(summary(rows))


if __name__ == "__main__":
    main()
