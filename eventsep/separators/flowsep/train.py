"""Training of the mini FlowSep on the open corpus: FlowSep's rectified-flow objective in the log-mel domain.

For each pair, t ~ U(0, 1) and noise ε give x_t = (1 − (1 − σmin)·t)·ε + t·x₁ (x₁ the target's
normalised log-mel); the UNet, fed cat[x_t, mixture log-mel] and the MiniLM prompt embedding,
regresses the velocity x₁ − (1 − σmin)·ε with an MSE, as the official model does on VAE latents.
Random pairs, loudness augmentation and held-out validation are the mini AudioSep's (`..training`).
As FlowSep does, an exponential moving average of the weights is kept; it is what is validated and
exported (single checkpoints of a flow model sample much less steadily than their average).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...metrics import si_sdr_improvement
from ..training import TrainConfig, TrainingData, resumable_loop, sample_batch, training_data
from .model import MINI, SIGMA_MIN, FlowSep, FlowSepConfig

# 2.56 s crops: 256 frames, a multiple of the UNet's 8× down-sampling
DEFAULTS = TrainConfig(crop_seconds=2.56, batch_size=8, learning_rate=5e-4)
VALIDATION_STEPS = 10
EMA_DECAY = 0.995  # a time constant of 200 steps: CPU runs are thousands of steps, not FlowSep's 100 k


class WithEma(torch.nn.Module):
    """The trained model and its moving average, checkpointed together (`model.*`, `ema.*`)."""

    def __init__(self, config: FlowSepConfig):
        super().__init__()
        self.model = FlowSep(config)
        self.ema = FlowSep(config)
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False)

    def update(self, decay: float = EMA_DECAY) -> None:
        with torch.no_grad():
            for average, current in zip(self.ema.parameters(), self.model.parameters()):
                average.lerp_(current, 1 - decay)


def flow_loss(model: FlowSep, mixtures: torch.Tensor, targets: torch.Tensor, conditions: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """mixtures, targets: (batch, 1, samples); conditions: (batch, 384)."""
    gain = 0.5 / torch.clamp(mixtures.abs().amax(dim=-1, keepdim=True), min=1e-8)
    with torch.no_grad():
        mixture = model.encode(model.frontend.log_mel((mixtures * gain)[:, 0])[:, None])
        target = model.encode(model.frontend.log_mel((targets * gain)[:, 0])[:, None])
    t = torch.rand(len(target), generator=generator)
    noise = torch.randn(target.shape, generator=generator)
    shape = (-1, 1, 1, 1)
    x_t = (1 - (1 - SIGMA_MIN) * t.view(shape)) * noise + t.view(shape) * target
    velocity = model.velocity(x_t, t, mixture, conditions[:, None, :])
    return torch.nn.functional.mse_loss(velocity, target - (1 - SIGMA_MIN) * noise)


def validate(model: FlowSep, data: TrainingData, steps: int = VALIDATION_STEPS, seed: int = 0) -> dict[str, float]:
    """Mean and median SI-SDRi over 0 dB two-source mixtures, prompted with each item's first prompt."""
    model.eval()
    scores = []
    block = model.frontend.hop * 8
    items = data.valid
    with torch.inference_mode():
        for target, interferer, prompts in zip(items["target"], items["interferer"], items["prompts"]):
            mixture = target + interferer
            padded = np.pad(mixture, (0, -len(mixture) % block)).astype(np.float32)
            context = torch.from_numpy(data.embeddings[prompts[0]])[None, None]
            estimate = model.separate(torch.from_numpy(padded)[None], context, steps=steps,
                                      generator=torch.Generator().manual_seed(seed))[0, : len(mixture)].numpy()
            scores.append(si_sdr_improvement(estimate, target, mixture))
    model.train()
    return {"si_sdri_mean": float(np.mean(scores)), "si_sdri_median": float(np.median(scores)),
            "items": len(scores), "steps": steps}


def train(folder: str | Path, minutes: float, config: TrainConfig = DEFAULTS,
          model_config: FlowSepConfig = MINI, progress: Callable[[dict], None] = print,
          warm_start: str | Path | None = None) -> dict:
    """Train for `minutes` more, continuing from `folder/last.pt` (or `warm_start`); returns the state."""
    folder = Path(folder)
    torch.manual_seed(config.seed)
    data = training_data(folder, config, model_config.sample_rate)
    pair = WithEma(model_config)
    model = pair.model
    optimizer = torch.optim.AdamW(model.unet.parameters(), lr=config.learning_rate)
    crop = int(config.crop_seconds * model_config.sample_rate)

    def step(rng: np.random.Generator) -> torch.Tensor:
        mixtures, targets, conditions = sample_batch(rng, data, config, crop)
        generator = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
        return flow_loss(model, mixtures, targets, conditions, generator)

    def both(exported: dict) -> dict:
        return {f"{part}.{key}": value for part in ("model", "ema") for key, value in exported.items()}

    return resumable_loop(folder, minutes, pair, optimizer, config, model_config.to_dict(), step,
                          lambda rng: validate(pair.ema, data), progress, warm_start, after_step=pair.update,
                          exported_to_model=both)
