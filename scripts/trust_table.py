"""Per-family SI-SDRi mean / median (markdown rows) from the OUT folders of scripts/trust_eval.py."""
import json
import sys

import numpy as np

SETTINGS = [("separator alone, mask off", "off", " · mask off"),
            ("separator alone, soft θ=0.5", "off", " · soft θ=0.5"),
            ("gated mixture alone (soft θ=0.5)", "off", "mixture · soft θ=0.5"),
            ("rule: default (soft θ=0.5, fallback gated)", "gated", " · soft θ=0.5")]
rows = {fallback: [r for out in sys.argv[1:] for r in json.load(open(f"{out}/{fallback}/results.json"))["rows"]]
        for fallback in ("off", "gated")}
kinds = sorted({r["kind"] for r in rows["off"]}) + ["all"]
print("| answer | " + " | ".join(f"{k} mean / median (n)" for k in kinds) + " |")
print("|---|" + "---:|" * len(kinds))
for name, fallback, setting in SETTINGS:
    chosen = [r for r in rows[fallback] if r["setting"].endswith(setting) and
              (setting.startswith("mixture") or not r["setting"].startswith("mixture"))]
    cells = []
    for kind in kinds:
        values = np.array([r["si_sdri"] for r in chosen if kind == "all" or r["kind"] == kind], dtype=float)
        cells.append(f"{values.mean():+.2f} / {np.median(values):+.2f} ({len(values)})")
    print(f"| {name} | " + " | ".join(cells) + " |")
gated = {(r["item"], r["setting"]): r["si_sdri"] for r in rows["gated"]}
fired = sorted({r["item"] for r in rows["off"] if r["setting"].endswith(" · soft θ=0.5")
                and not r["setting"].startswith("mixture") and abs(gated[(r["item"], r["setting"])] - r["si_sdri"]) > 1e-6})
print(f"\nthe rule changed the answer on {len(fired)} items: {', '.join(fired)}")
