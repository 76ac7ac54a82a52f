"""Mask settings (mode, θ, floor) against mask off, from AudioSep's cached outputs on a corpus manifest.

    python scripts/eval_mask_floor.py MANIFEST OUT.json      # separates each item once (mask off), then re-masks
    python scripts/eval_mask_floor.py --summary OUT.json ...  # gain over mask off: mean [paired bootstrap 95 %], worst
"""

import json
import os
import sys

import numpy as np

BASE = "off θ0.5 floor0.0"
SETTINGS = [("off", 0.5, 0.0)] + [(m, t, f) for m in ("soft", "hard") for t in (0.3, 0.5) for f in (0.0, 0.25, 0.5)]


def sweep(manifest_path: str, out_path: str) -> None:
    import eventsep
    from eventsep.audio import load_audio
    from eventsep.metrics import si_sdr_improvement

    manifest = json.load(open(manifest_path))
    base = os.path.dirname(manifest_path)
    results = {}
    for item in manifest["items"] if isinstance(manifest, dict) else manifest:
        mixture = os.path.join(base, item["mixture"])
        reference, samples = load_audio(os.path.join(base, item["reference"])).samples, load_audio(mixture).samples
        eventsep.separate(mixture, item["query"], separators=("audiosep",), sed="yamnet", mask={"mode": "off"})
        row = {}
        for mode, threshold, floor in SETTINGS:
            [result] = eventsep.refuse(mixture, item["query"], grid=[{"mask_mode": mode, "threshold": threshold}],
                                       separators=("audiosep",), sed="yamnet", mask={"floor": floor})
            n = len(result.target)
            row[f"{mode} θ{threshold} floor{floor}"] = si_sdr_improvement(result.target, reference[:n], samples[:n])
        results[item["id"]] = row
        print(item["id"], item.get("kind"), " ".join(f"{k}:{v:+.1f}" for k, v in row.items()), flush=True)
    with open(out_path, "w") as handle:
        json.dump(results, handle, indent=1)


def summary(path: str) -> None:
    results = json.load(open(path))
    print(f"{path}: {len(results)} items")
    for key in next(iter(results.values())):
        gain = np.array([row[key] - row[BASE] for row in results.values()], float)
        gain = np.where(np.isfinite(gain), gain, -100.0)  # a silent answer counts as -100 dB
        boots = np.random.default_rng(0).choice(gain, (10000, len(gain))).mean(axis=1)
        low, high = np.percentile(boots, [2.5, 97.5])
        print(f"  {key:22s} mean {gain.mean():+.2f} [{low:+.2f}, {high:+.2f}]  median {np.median(gain):+.2f}  "
              f"worst {gain.min():+.2f}  items losing > 1 dB: {(gain < -1).sum()}")


if __name__ == "__main__":
    if sys.argv[1] == "--summary":
        for path in sys.argv[2:]:
            summary(path)
    else:
        sweep(sys.argv[1], sys.argv[2])
