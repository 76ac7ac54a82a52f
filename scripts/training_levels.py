"""The level of the mixtures a training folder's model learnt on: RMS in dBFS of random training pairs as
`training.sample_batch` draws them (a 2 s crop mostly centred on the target, the interferer at ±gain_db,
turned down only where it would clip). The mini AudioSep's level cap (separators/audiosep/backend.py) is the
median.

    python3 scripts/training_levels.py cache/training/audiosep-r11 [PAIRS]
"""
import sys
from pathlib import Path

import numpy as np

from eventsep.separators.training import TrainConfig, _crop_offset


def levels(folder: Path, pairs: int = 4000, seed: int = 0, crop_seconds: float = 2.0,
           sample_rate: int = 16000) -> np.ndarray:
    data = np.load(folder / "data.npz")
    targets, interferers = data["target"], data["interferer"]
    config, crop = TrainConfig(), int(crop_seconds * sample_rate)
    rng = np.random.default_rng(seed)
    out = np.empty(pairs)
    for n in range(pairs):
        first, second = rng.integers(len(targets)), rng.integers(len(targets))
        offset = _crop_offset(rng, targets[first], crop, config.target_crop_share)
        gain = 10 ** (rng.uniform(-config.gain_db, config.gain_db) / 20)
        mixture = (targets[first, offset:offset + crop] + interferers[second, offset:offset + crop] * gain
                   ).astype(np.float64)
        mixture /= max(np.abs(mixture).max(), 1.0)
        out[n] = 10 * np.log10(np.mean(mixture ** 2) + 1e-20)
    return out


if __name__ == "__main__":
    found = levels(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4000)
    quartiles = np.percentile(found, [25, 50, 75])
    print(f"{sys.argv[1]}: training mixtures' RMS, dBFS: median {quartiles[1]:.1f}, quartiles {quartiles[0]:.1f} "
          f"and {quartiles[2]:.1f}, 5-95 % {np.percentile(found, 5):.1f} to {np.percentile(found, 95):.1f}")
