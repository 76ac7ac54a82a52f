"""The level of the mixtures a training folder's model learnt on: RMS in dBFS of training mixtures drawn by
`training.sample_batch` itself (2 s crops, the interferer at ±gain_db, turned down only where it would clip).
The mini AudioSep's level cap (separators/audiosep/backend.py) is the median.

    python3 scripts/training_levels.py cache/training/audiosep-r11 [PAIRS]
"""
import sys
from pathlib import Path

import numpy as np

from eventsep.separators.training import TrainConfig, TrainingData, sample_batch


def levels(folder: Path, pairs: int = 4000, seed: int = 0, crop_seconds: float = 2.0,
           sample_rate: int = 16000) -> np.ndarray:
    stored = np.load(folder / "data.npz")
    arrays = {"target": stored["target"], "interferer": stored["interferer"],
              "embeddings": np.zeros((1, 1), np.float32)}  # prompts do not change a mixture's level
    data = TrainingData(arrays, {}, [[0]] * len(arrays["target"]), {})
    config, rng, found = TrainConfig(batch_size=100), np.random.default_rng(seed), []
    for _ in range(pairs // config.batch_size):
        mixtures, _, _ = sample_batch(rng, data, config, int(crop_seconds * sample_rate))
        found.append(10 * np.log10(mixtures.double().pow(2).mean(dim=-1).flatten().numpy() + 1e-20))
    return np.concatenate(found)


if __name__ == "__main__":
    found = levels(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4000)
    quartiles = np.percentile(found, [25, 50, 75])
    print(f"{sys.argv[1]}: training mixtures' RMS, dBFS: median {quartiles[1]:.1f}, quartiles {quartiles[0]:.1f} "
          f"and {quartiles[2]:.1f}, 5-95 % {np.percentile(found, 5):.1f} to {np.percentile(found, 95):.1f}")
