"""Per-item validation of a mini AudioSep training: the checkpoint FOLDER/last.pt (batch-norm statistics
recalibrated first, as at the end of a round) or, when given, exported WEIGHTS, on FOLDER's validation items.

    python scripts/validate_checkpoint.py FOLDER [WEIGHTS.safetensors]
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from eventsep.separators.audiosep.network import ResUNet30, ResUNetConfig
from eventsep.separators.audiosep.train import recalibrate_batchnorm, validation_rows
from eventsep.separators.training import TrainConfig, config_with, sample_batch, training_data


def main(folder: Path, weights: Path | None) -> None:
    if weights is None:
        checkpoint = torch.load(folder / "last.pt", weights_only=True)
        state, model_config = checkpoint["model"], json.loads(checkpoint["model_config"])
        train_config, progress = json.loads(checkpoint["train_config"]), json.loads(checkpoint["state"])
    else:
        from safetensors import safe_open
        from safetensors.torch import load_file

        state = load_file(weights)
        with safe_open(weights, "pt") as handle:
            meta = handle.metadata()
        model_config, train_config = json.loads(meta["model_config"]), json.loads(meta["train_config"])
        progress = json.loads(meta["state"])
    config = config_with(TrainConfig(), {k: v for k, v in train_config.items() if hasattr(TrainConfig, k)})
    model = ResUNet30(ResUNetConfig.from_dict(model_config))
    model.load_state_dict(state)
    data = training_data(folder, config, model.config.sample_rate)
    if weights is None:
        rng = np.random.default_rng([config.seed, progress["step"], 1])
        crop = int(config.crop_seconds * model.config.sample_rate)
        recalibrate_batchnorm(model, lambda: sample_batch(rng, data, config, crop)[::2])
    rows = validation_rows(model, data)
    print(f"step {progress['step']}, {progress['seconds'] / 60:.0f} min of training steps")
    print("| prompt | SI-SDRi dB | output level re target dB |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row['prompt']} | {row['si_sdri']:.1f} | {row['level_db']:.1f} |")
    scores = np.array([row["si_sdri"] for row in rows])
    silent = sum(row["level_db"] < -30 for row in rows)
    print(f"mean {scores.mean():.2f} dB, median {np.median(scores):.2f} dB, {silent} of {len(rows)} silent")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
