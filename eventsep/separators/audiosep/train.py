"""Training of the mini AudioSep on the open corpus: resumable, checkpointed, with a held-out validation.

The AudioSep recipe at small scale: random pairs of a corpus target and another item's
interferer, loudness augmentation (interferer gain ±10 dB), L1 on the waveform; plus an L1 on
compressed STFT magnitudes, which converges faster on a CPU. Conditioning is the MiniLM
embedding of one of the item's prompts. Checkpoints are written atomically every few minutes;
`train()` continues from the last one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...metrics import si_sdr_improvement
from ..training import TrainConfig, TrainingData, resumable_loop, sample_batch, training_data
from .network import ResUNet30, ResUNetConfig

# 16 kHz (FlowSep's rate, and half the samples of 32 kHz per second of audio), 32 ms windows with a
# 16 ms hop: a quarter of the official frames per second, which is what makes CPU training feasible.
MINI = ResUNetConfig(widths=(12, 24, 48, 96, 128, 128), condition_size=384, n_fft=512, hop=256,
                     sample_rate=16000)
# the recipe of the packaged weights' last round (from step 22905: half the items recorded, their targets 30 % speech,
# 25 % music, 45 % environment, 0ad-data installed; warm-started at a rate of 5e-4 annealed to 1e-5):
# `eventsep train audiosep-mini` continues with it (docs/audiosep.md)
DEFAULTS = TrainConfig(train_seeds=(0, 2000), mask_weight=1.0, learning_rate=5e-4, final_learning_rate=1e-5,
                       recorded_share=0.5, recorded_families=(0.3, 0.25, 0.45))


def loss_fn(estimate: torch.Tensor, target: torch.Tensor, config: ResUNetConfig, spectral_weight: float,
            snr_weight: float = 0.0):
    wave = (estimate - target).abs().mean()
    if snr_weight:
        # negative SNR in dB: unlike L1 it makes a silent output expensive wherever the target sounds
        error = ((estimate - target) ** 2).sum(dim=-1)
        wave = wave + snr_weight * (-10 * torch.log10((target ** 2).sum(dim=-1) + 1e-3) + 10 * torch.log10(
            error + 1e-3)).mean()
    window = torch.hann_window(config.n_fft, periodic=True)

    def compressed(x):
        spec = torch.stft(x[:, 0], config.n_fft, config.hop, window=window, return_complex=True)
        return (spec.real ** 2 + spec.imag ** 2 + 1e-8) ** 0.15  # |X|^0.3, with a finite gradient at 0

    return wave + spectral_weight * (compressed(estimate) - compressed(target)).abs().mean()


def mask_loss(model: ResUNet30, logits: torch.Tensor, mixtures: torch.Tensor, targets: torch.Tensor
              ) -> torch.Tensor:
    """Cross-entropy between the predicted magnitude mask and the ideal ratio mask min(|T|/|X|, 1), each bin
    weighted by |X|^0.3 relative to its example's mean.

    Waveform and spectrogram losses reach the mask through its sigmoid: where the mask has saturated at
    zero for a prompt their gradient vanishes, and the model keeps answering that prompt with silence (the
    step-7428 weights did so for every xylophone, owl and piano item of the validation). This loss's
    gradient on the logits, weight·(mask − ideal), does not vanish there.
    """
    with torch.no_grad():
        mixture = model.base.spectrogram(mixtures[:, 0]).abs()
        target = model.base.spectrogram(targets[:, 0]).abs()
        ideal = (target / mixture.clamp_min(1e-8)).clamp(0.0, 1.0)
        weight = mixture ** 0.3
        weight = weight / weight.mean(dim=(1, 2), keepdim=True).clamp_min(1e-8)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], ideal, weight=weight)


def recalibrate_batchnorm(model: ResUNet30, batch: Callable[[], tuple], batches: int = 40) -> None:
    """Replace the batch-norm running statistics by plain averages over `batches` training batches.

    The official momentum (0.01) lets the running statistics trail the weights by hundreds of steps,
    which a short training never outlives: evaluated with them, the model returns noise.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            mixtures, conditions = batch()
            model(mixtures, conditions)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def validation_rows(model: ResUNet30, data: TrainingData) -> list[dict]:
    """Per validation item (a 0 dB two-source mixture, prompted with the item's first prompt): the prompt,
    the SI-SDRi and the output's level relative to the target's (dB)."""
    model.eval()
    rows = []
    items = data.valid
    with torch.inference_mode():
        for target, interferer, prompts in zip(items["target"], items["interferer"], items["prompts"]):
            mixture = target + interferer
            condition = torch.from_numpy(data.embeddings[prompts[0]])[None]
            estimate = model(torch.from_numpy(mixture)[None, None], condition)[0, 0].numpy()
            level = 10 * np.log10((np.sum(estimate ** 2) + 1e-20) / (np.sum(target ** 2) + 1e-20))
            rows.append({"prompt": prompts[0], "si_sdri": float(si_sdr_improvement(estimate, target, mixture)),
                         "level_db": float(level)})
    model.train()
    return rows


def validate(model: ResUNet30, data: TrainingData) -> dict[str, float]:
    """Mean and median SI-SDRi over the validation items, and how many of them the model answered with
    (near) silence, 30 dB or more below the target."""
    rows = validation_rows(model, data)
    scores = [row["si_sdri"] for row in rows]
    return {"si_sdri_mean": float(np.mean(scores)), "si_sdri_median": float(np.median(scores)),
            "items": len(scores), "silent": sum(row["level_db"] < -30 for row in rows)}


def train(folder: str | Path, minutes: float, config: TrainConfig = DEFAULTS,
          model_config: ResUNetConfig = MINI, progress: Callable[[dict], None] = print,
          warm_start: str | Path | None = None) -> dict:
    """Train for `minutes` more, continuing from `folder/last.pt` if it exists, else from the exported
    weights `warm_start` (a fresh optimizer; the step count and history carry on); returns the state."""
    folder = Path(folder)
    torch.manual_seed(config.seed)
    data = training_data(folder, config, model_config.sample_rate)
    model = ResUNet30(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    crop = int(config.crop_seconds * model_config.sample_rate)

    def step(rng: np.random.Generator) -> torch.Tensor:
        mixtures, targets, conditions = sample_batch(rng, data, config, crop)
        estimates, logits = model.separate_with_mask_logits(mixtures, conditions)
        loss = loss_fn(estimates, targets, model_config, config.spectral_weight, config.snr_weight)
        if config.mask_weight:
            loss = loss + config.mask_weight * mask_loss(model, logits, mixtures, targets)
        return loss

    def finish(rng: np.random.Generator) -> dict:
        recalibrate_batchnorm(model, lambda: sample_batch(rng, data, config, crop)[::2])
        return validate(model, data)

    return resumable_loop(folder, minutes, model, optimizer, config, model_config.to_dict(), step, finish,
                          progress, warm_start)
