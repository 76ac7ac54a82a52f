"""The table of docs/corpus.md: per AudioSet class of the recorded corpus, its family, and how many clips
(files kept after the silence floor) and seconds it has in training and held out; drum kits, SoundFont and
patch-set instruments are counted as units (they are rendered on demand, so they have no fixed length).

    PYTHONPATH=. python3 scripts/corpus_classes.py > table.md     (decodes every file once: minutes; cached afterwards)
    PYTHONPATH=. python3 scripts/corpus_classes.py training-only   (the optional TRAINING_ONLY packages' clips alone)
"""

import sys

from collections import defaultdict

from eventsep.corpus import ALL_KINDS, recorded
from eventsep.corpus.mixtures import FAMILY_OF

RATE = 32000


def training_only() -> None:
    """Clips and seconds per class of the packages only training uses (0ad-data), when installed."""
    table = defaultdict(lambda: [0, 0.0, 0])
    for unit in recorded.catalogue():
        if unit.key.startswith(recorded.TRAINING_ONLY):
            samples = recorded.clip(unit, RATE)
            row = table[(unit.family, unit.label)]
            row[0 if len(samples) else 2] += 1
            row[1] += len(samples) / RATE
    print("| class | family | clips | s | dropped (silent) |\n|---|---|---:|---:|---:|")
    for (family, label), (clips, seconds, dropped) in sorted(table.items()):
        print(f"| {label} | {family} | {clips} | {seconds:.0f} | {dropped} |")
    print(f"| **all {len(table)} classes** | | {sum(r[0] for r in table.values())} | "
          f"{sum(r[1] for r in table.values()):.0f} | {sum(r[2] for r in table.values())} |")


def main() -> None:
    table = defaultdict(lambda: {"family": "", "train": [0, 0.0, 0], "held_out": [0, 0.0, 0], "dropped": 0})
    for unit in recorded.catalogue():
        if unit.key.startswith(recorded.TRAINING_ONLY):  # optional, training only: `training-only` lists them
            continue
        row = table[unit.label]
        row["family"] = unit.family
        side = row["held_out" if recorded.held_out(unit.key) else "train"]
        if recorded.is_generated(unit):
            side[2] += 1
            continue
        samples = recorded.clip(unit, RATE)
        if len(samples) == 0:
            row["dropped"] += 1
            continue
        side[0] += 1
        side[1] += len(samples) / RATE
    print("| class | family | training clips | training s | held-out clips | held-out s | generated units "
          "(train / held out) | dropped (silent) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label in sorted(table, key=lambda k: (table[k]["family"], k)):
        row = table[label]
        train, held = row["train"], row["held_out"]
        print(f"| {label} | {row['family']} | {train[0]} | {train[1]:.0f} | {held[0]} | {held[1]:.0f} | "
              f"{train[2]} / {held[2]} | {row['dropped']} |")
    totals = {side: [sum(table[k][side][i] for k in table) for i in range(3)] for side in ("train", "held_out")}
    print(f"| **all {len(table)} classes** | | {totals['train'][0]} | {totals['train'][1]:.0f} | "
          f"{totals['held_out'][0]} | {totals['held_out'][1]:.0f} | {totals['train'][2]} / {totals['held_out'][2]} | "
          f"{sum(table[k]['dropped'] for k in table)} |")
    print("\nSynthetic sources (rendered on demand from a seed, so no clip count):\n")
    print("| class | family | synthetic kinds | also recorded |\n|---|---|---|---|")
    kinds = defaultdict(list)
    for kind in ALL_KINDS.values():
        kinds[kind.label].append(kind)
    for label in sorted(kinds, key=lambda k: (FAMILY_OF[kinds[k][0].family], k)):
        names = ", ".join(f"{k.name} ({k.family})" for k in kinds[label])
        print(f"| {label} | {FAMILY_OF[kinds[label][0].family]} | {names} | {'yes' if label in table else 'no'} |")


if __name__ == "__main__":
    training_only() if sys.argv[1:] == ["training-only"] else main()
