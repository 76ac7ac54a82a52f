"""The tables of docs/quality.md from `eventsep evaluate` results (results.json): per family and per class,
before / after, and the paired change of one results file's `separate defaults` against another's on the even-
and odd-numbered items. Reads only what evaluate wrote; measures nothing itself.

    python3 scripts/quality_tables.py families BEFORE.json AFTER.json
    python3 scripts/quality_tables.py classes BEFORE.json AFTER.json
    python3 scripts/quality_tables.py halves OLD_RULE.json NEW_RULE.json
    python3 scripts/quality_tables.py gains RESULTS.json [MORE.json ...]   # every paired gain evaluate wrote
    python3 scripts/quality_tables.py pair SETTING BASE.json OTHER.json [MORE.json ...]
        # SETTING in each OTHER against BASE, item by item: all and per family, mean / median, paired gain
"""
import json
import sys

import numpy as np

SETTINGS = ("separate defaults", "audiosep · mask off", "audiosep · soft θ=0.5", "dfn3 · mask off",
            "mixture · soft θ=0.5")
KINDS = ("speech", "music", "environment")
DEFAULTS = "separate defaults"


def cell(stats: dict) -> str:
    return "–" if stats.get("mean") is None else f"{stats['mean']:+.2f} / {stats['median']:+.2f}"


def families(before: dict, after: dict) -> None:
    print("| setting | results | all | speech | music | environment | silent |\n|---|---|---:|---:|---:|---:|---:|")
    for setting in SETTINGS:
        for label, doc in (("before", before), ("after", after)):
            if setting in doc["summary"]:
                v = doc["summary"][setting]
                print(f"| {setting} | {label} | {cell(v['si_sdri'])} | "
                      + " | ".join(cell(v["by_kind"].get(k, {})) for k in KINDS) + f" | {v['silent']}/{v['items']} |")


def classes(before: dict, after: dict) -> None:
    def mean(doc, setting, name):
        value = doc["summary"][setting]["by_class"][name]["mean"]
        return "–" if value is None else f"{value:+.2f}"

    by_class = after["summary"][DEFAULTS]["by_class"]
    print("| class | n | defaults, before | defaults, after | AudioSep alone, before | after |\n|---|---:|---:|---:|---:|---:|")
    for name in sorted(by_class, key=lambda c: -by_class[c]["n"]):
        print(f"| {name} | {by_class[name]['n']} | {mean(before, DEFAULTS, name)} | {mean(after, DEFAULTS, name)} | "
              f"{mean(before, 'audiosep · mask off', name)} | {mean(after, 'audiosep · mask off', name)} |")


def halves(old: dict, new: dict) -> None:
    rows = [{r["item"]: r for r in doc["rows"] if r["setting"] == DEFAULTS} for doc in (old, new)]
    print("| items | old | new | change | better / worse |\n|---|---:|---:|---:|---:|")
    for name, parity in (("even-numbered", 0), ("odd-numbered", 1), ("all", None)):
        ids = [i for i in rows[1] if parity is None or int(i[-4:]) % 2 == parity]
        a, b = (np.array([r[i]["si_sdri"] for i in ids]) for r in rows)
        print(f"| {name} {len(ids)} | {a.mean():+.2f} | {b.mean():+.2f} | {np.mean(b - a):+.2f} | "
              f"{int((b - a > 0.01).sum())} / {int((b - a < -0.01).sum())} |")


def gains(*docs: dict) -> None:
    """Each file's paired SI-SDRi gains: mean [95 % CI], worst item, items more than 1 dB worse, better / n."""
    print("| results | setting | over | mean [95 % CI] | worst | > 1 dB worse | better / n |\n|---|---|---|---|---:|---:|---:|")
    for doc in docs:
        for g in doc["gains"]:
            v = g["si_sdri"]
            worst = v["worst"] if isinstance(v["worst"], str) else f"{v['worst']:+.2f}"
            print(f"| {doc['_path']} | {g['setting']} | {g['over']} | {v['mean']:+.2f} [{v['ci95'][0]:+.2f}, "
                  f"{v['ci95'][1]:+.2f}] | {worst} | {v['lost_1db']} | {v['better']}/{v['n']} |")


def pair(setting: str, base: dict, *others: dict) -> None:
    """`setting`'s SI-SDRi in each of `others` against `base` on the same items (runs of evaluate that differ in
    an option, e.g. --separator-text): mean / median per family, and the paired gain with its 95 % interval."""
    from eventsep.evaluate import paired_bootstrap

    def by_item(doc):
        return {r["item"]: r for r in doc["rows"] if r["setting"] == setting}

    reference = by_item(base)
    print("| results | all | " + " | ".join(KINDS) + " | over the first: mean [95 % CI], worst, > 1 dB worse |\n"
          + "|---|---:|" + "---:|" * len(KINDS) + "---|")
    for doc in (base, *others):
        rows = by_item(doc)
        if set(rows) != set(reference):
            raise SystemExit(f"{doc['_path']}: not the same items as {base['_path']}")
        summary = doc["summary"][setting]
        g = paired_bootstrap([rows[i]["si_sdri"] - reference[i]["si_sdri"] for i in reference])
        worst = "–" if g["worst"] is None else f"{g['worst']:+.2f}"
        gain = ("–" if doc is base else f"{g['mean']:+.2f} [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}], {worst}, "
                f"{g['lost_1db']}")
        print(f"| {doc['_path']} | {cell(summary['si_sdri'])} | "
              + " | ".join(cell(summary["by_kind"].get(k, {})) for k in KINDS) + f" | {gain} |")


def load(path: str) -> dict:
    with open(path) as f:
        return {**json.load(f), "_path": path}


if __name__ == "__main__":
    if sys.argv[1] == "gains":
        gains(*(load(p) for p in sys.argv[2:]))
        sys.exit()
    if sys.argv[1] == "pair":
        pair(sys.argv[2], *(load(p) for p in sys.argv[3:]))
        sys.exit()
    what, first, second = sys.argv[1:4]
    {"families": families, "classes": classes, "halves": halves}[what](*(json.load(open(p)) for p in (first, second)))
