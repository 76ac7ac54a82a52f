"""The model cards' class counts: target clips per AudioSet class of the mini AudioSep's training seeds (the
cards' validation figures come from `eventsep evaluate` on the development sets: docs/cards.md).

    python scripts/card_classes.py
"""
import json

from eventsep.separators.audiosep.train import DEFAULTS
from eventsep.separators.training import target_classes

if __name__ == "__main__":
    seeds = range(*DEFAULTS.train_seeds)
    print(json.dumps({f"classes seeds {seeds.start}-{seeds.stop - 1}, recorded share {DEFAULTS.recorded_share}":
                      target_classes(seeds, DEFAULTS.recorded_share, families=DEFAULTS.recorded_families,
                                     procedural=DEFAULTS.procedural_items)}, indent=1))
