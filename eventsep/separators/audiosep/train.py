"""Training of the mini AudioSep on the open corpus: resumable, checkpointed, with a held-out validation.

The AudioSep recipe at small scale: random pairs of a corpus target and another item's
interferer, loudness augmentation (interferer gain ±10 dB), L1 on the waveform; plus an L1 on
compressed STFT magnitudes, which converges faster on a CPU. Conditioning is the MiniLM
embedding of one of the item's prompts. Checkpoints are written atomically every few minutes;
`train()` continues from the last one.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...metrics import si_sdr_improvement
from .network import ResUNet30, ResUNetConfig

# 16 kHz (FlowSep's rate, and half the samples of 32 kHz per second of audio), 32 ms windows with a
# 16 ms hop: a quarter of the official frames per second, which is what makes CPU training feasible.
MINI = ResUNetConfig(widths=(12, 24, 48, 96, 128, 128), condition_size=384, n_fft=512, hop=256,
                     sample_rate=16000)


@dataclass
class TrainConfig:
    train_seeds: tuple[int, int] = (0, 400)          # corpus seeds [start, stop) for training
    validation_seeds: tuple[int, int] = (100_000, 100_020)  # never used in training
    item_seconds: float = 4.0
    crop_seconds: float = 2.0
    batch_size: int = 8
    learning_rate: float = 1e-3
    gain_db: float = 10.0
    spectral_weight: float = 1.0
    snr_weight: float = 0.05
    target_crop_share: float = 0.8
    checkpoint_minutes: float = 3.0
    seed: int = 0


def corpus_items(seeds: range, seconds: float, sample_rate: int) -> dict[str, np.ndarray | list]:
    from ...corpus import make_mixture

    targets, interferers, prompts, kinds = [], [], [], []
    for seed in seeds:
        item = make_mixture(seed, sample_rate=sample_rate, seconds=seconds)
        targets.append(item.target)
        interferers.append(item.interferer)
        prompts.append(item.prompts)
        kinds.append(item.target_kind)
    return {"target": np.stack(targets), "interferer": np.stack(interferers), "prompts": prompts,
            "kinds": kinds}


def embed_prompts(prompts: list[list[str]]) -> tuple[list[str], np.ndarray]:
    from ... import backends

    texts = sorted({p for group in prompts for p in group})
    return texts, backends.get("text_encoder", "minilm").encode(texts)


def _save_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    torch.save(payload, temporary)
    os.replace(temporary, path)


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


def sample_batch(rng: np.random.Generator, data: dict, prompt_index: list[list[int]], config: TrainConfig,
                 crop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random pairs: the target of one item, the interferer of another at ±gain_db, a random prompt of the first."""
    count = len(data["target"])
    first, second = rng.integers(count, size=config.batch_size), rng.integers(count, size=config.batch_size)
    offsets = np.array([_crop_offset(rng, data["target"][i], crop, config.target_crop_share) for i in first])
    gains = 10 ** (rng.uniform(-config.gain_db, config.gain_db, size=config.batch_size) / 20)
    targets = np.stack([data["target"][i, o:o + crop] for i, o in zip(first, offsets)])
    interferers = np.stack([data["interferer"][j, o:o + crop] * g for j, o, g in zip(second, offsets, gains)])
    mixtures = targets + interferers
    peak = np.maximum(np.abs(mixtures).max(axis=1, keepdims=True), 1.0)
    conditions = np.stack([data["embeddings"][prompt_index[i][rng.integers(len(prompt_index[i]))]] for i in first])
    return (torch.from_numpy((mixtures / peak)[:, None].astype(np.float32)),
            torch.from_numpy((targets / peak)[:, None].astype(np.float32)), torch.from_numpy(conditions))


def _crop_offset(rng: np.random.Generator, target: np.ndarray, crop: int, share: float) -> int:
    """Mostly a crop centred inside the target's active part: a crop without the target teaches only
    silence, and with the corpus' part-time targets half of all random crops would be such."""
    latest = len(target) - crop
    active = np.flatnonzero(np.abs(target) > 1e-4)
    if rng.random() >= share or len(active) == 0:
        return int(rng.integers(0, latest + 1))
    centre = int(rng.integers(active[0], active[-1] + 1))
    return int(np.clip(centre - crop // 2, 0, latest))


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


def validate(model: ResUNet30, items: dict, embeddings: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean and median SI-SDRi over 0 dB two-source mixtures, prompted with each item's first prompt."""
    model.eval()
    scores = []
    with torch.inference_mode():
        for target, interferer, prompts in zip(items["target"], items["interferer"], items["prompts"]):
            mixture = target + interferer
            condition = torch.from_numpy(embeddings[prompts[0]])[None]
            estimate = model(torch.from_numpy(mixture)[None, None], condition)[0, 0].numpy()
            scores.append(si_sdr_improvement(estimate, target, mixture))
    model.train()
    return {"si_sdri_mean": float(np.mean(scores)), "si_sdri_median": float(np.median(scores)),
            "items": len(scores)}


def train(folder: str | Path, minutes: float, config: TrainConfig = TrainConfig(),
          model_config: ResUNetConfig = MINI, progress: Callable[[dict], None] = print,
          warm_start: str | Path | None = None) -> dict:
    """Train for `minutes` more, continuing from `folder/last.pt` if it exists, else from the exported
    weights `warm_start` (a fresh optimizer; the step count and history carry on); returns the state."""
    folder = Path(folder)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    data_path = folder / "data.npz"
    if data_path.exists():
        data = dict(np.load(data_path, allow_pickle=False))
        meta = json.loads((folder / "data.json").read_text())
    else:
        train_items = corpus_items(range(*config.train_seeds), config.item_seconds, model_config.sample_rate)
        valid_items = corpus_items(range(*config.validation_seeds), config.item_seconds,
                                   model_config.sample_rate)
        texts, vectors = embed_prompts(train_items["prompts"] + valid_items["prompts"])
        data = {"target": train_items["target"], "interferer": train_items["interferer"],
                "valid_target": valid_items["target"], "valid_interferer": valid_items["interferer"],
                "embeddings": vectors}
        meta = {"texts": texts, "prompts": train_items["prompts"], "valid_prompts": valid_items["prompts"],
                "kinds": train_items["kinds"]}
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(data_path.with_suffix(".partial.npz"), **data)
        os.replace(data_path.with_suffix(".partial.npz"), data_path)
        (folder / "data.json").write_text(json.dumps(meta))
    embeddings = {t: data["embeddings"][i] for i, t in enumerate(meta["texts"])}
    prompt_index = [[meta["texts"].index(p) for p in group] for group in meta["prompts"]]
    valid = {"target": data["valid_target"], "interferer": data["valid_interferer"],
             "prompts": meta["valid_prompts"]}

    model = ResUNet30(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    state = {"step": 0, "seconds": 0.0, "history": []}
    last = folder / "last.pt"
    if last.exists():
        checkpoint = torch.load(last, weights_only=True)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = json.loads(checkpoint["state"])
        rng = np.random.default_rng([config.seed, state["step"]])
    elif warm_start is not None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        model.load_state_dict(load_file(warm_start), strict=True)
        with safe_open(warm_start, "pt") as exported:
            state = json.loads(exported.metadata()["state"])
        rng = np.random.default_rng([config.seed, state["step"]])

    def checkpoint() -> None:
        _save_atomic(last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "state": json.dumps(state), "model_config": json.dumps(model_config.to_dict()),
                            "train_config": json.dumps(asdict(config))})

    crop = int(config.crop_seconds * model_config.sample_rate)
    started, saved = time.monotonic(), time.monotonic()
    model.train()
    while time.monotonic() - started < minutes * 60:
        step_start = time.monotonic()
        mixtures, targets, conditions = sample_batch(rng, data, prompt_index, config, crop)
        loss = loss_fn(model(mixtures, conditions), targets, model_config, config.spectral_weight,
                       config.snr_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        state["step"] += 1
        state["seconds"] += time.monotonic() - step_start
        if state["step"] % 50 == 0:
            progress({"step": state["step"], "loss": round(float(loss), 4),
                      "steps_per_second": round(1 / (time.monotonic() - step_start), 2)})
        if time.monotonic() - saved > config.checkpoint_minutes * 60:
            checkpoint()
            saved = time.monotonic()
    recalibrate_batchnorm(model, lambda: sample_batch(rng, data, prompt_index, config, crop)[::2])
    scores = validate(model, valid, embeddings)
    state["history"].append({"step": state["step"], "train_seconds": round(state["seconds"]), **scores})
    progress(state["history"][-1])
    checkpoint()
    return state


def warm_start_weights(fresh: bool = False) -> Path | None:
    """The packaged mini weights to continue from when a training folder has no checkpoint yet."""
    from ...pretrained import path_of

    path = path_of("audiosep-mini")
    return None if fresh or not path.is_file() else path


def export(folder: str | Path, destination: str | Path) -> Path:
    """Write the trained weights (no optimizer) as safetensors with their configs and validation figures."""
    from safetensors.torch import save_file

    checkpoint = torch.load(Path(folder) / "last.pt", weights_only=True)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint["model"].items()}, destination,
              metadata={"model_config": checkpoint["model_config"], "train_config": checkpoint["train_config"],
                        "state": checkpoint["state"]})
    return destination
