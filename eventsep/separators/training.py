"""What the mini separators' trainings share: the corpus data, random pairs, and a resumable loop.

A training folder holds `data.npz`/`data.json` (corpus items rendered once) and `last.pt` (model,
optimizer, step count and validation history, written atomically every few minutes). `resumable_loop`
continues from `last.pt`, or, on a machine without it, from exported weights (`warm_start`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..atomic import atomic_file


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
    mask_weight: float = 0.0  # AudioSep: weight of the cross-entropy between its mask and the ideal ratio mask
    target_crop_share: float = 0.8
    checkpoint_minutes: float = 3.0
    seed: int = 0
    # when set, the rate falls from learning_rate to this along a half cosine over each round's minutes
    final_learning_rate: float | None = None
    # share of the items made of recorded sources (eventsep/corpus/real.py): training items from the units
    # of the training split, validation items from held-out units; the rest are synthetic corpus items
    recorded_share: float = 0.0
    # how often recorded items take a speech, music or environment target; None: whatever makes all the items
    # (synthetic and recorded) a third of each family (recorded_family_weights)
    recorded_families: tuple[float, float, float] | None = None
    # procedural items added to the training items (eventsep/corpus/procedural.py: alarms, sirens, glass clinks,
    # classes no packaged recording covers); validation items are never procedural
    procedural_items: int = 0
    # each training pair (mixture and target alike) at a random level within ± this many dB, before the guard
    # against clipping: the mini AudioSep trained without it answers the same mixture worse when it is louder
    # (docs/audiosep.md, session 12); 0 draws nothing, so earlier runs repeat exactly
    level_db: float = 0.0


# registry name of the packaged weights -> the module whose train(folder, minutes, config, ...) and
# DEFAULTS make them
TRAINERS = {"audiosep-mini": "eventsep.separators.audiosep.train",
            "flowsep-mini": "eventsep.separators.flowsep.train"}


def trainer(model: str):
    """The training module of packaged model `model`."""
    import importlib

    if model not in TRAINERS:
        raise ValueError(f"unknown model {model!r}; trainable: {', '.join(TRAINERS)}")
    return importlib.import_module(TRAINERS[model])


def config_with(defaults: TrainConfig, overrides: dict) -> TrainConfig:
    """`defaults` with `overrides` ({field: value}); an unknown field is refused by name."""
    from dataclasses import fields, replace

    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    tuples = {k: tuple(v) for k, v in overrides.items() if isinstance(v, list)}
    return replace(defaults, **{**overrides, **tuples})


def learning_rate_at(config: TrainConfig, fraction: float) -> float:
    """The rate `fraction` (0..1) of the way through a round."""
    if config.final_learning_rate is None:
        return config.learning_rate
    fraction = min(max(fraction, 0.0), 1.0)
    # a Python float: a numpy scalar in the optimizer's state would make the checkpoint unreadable with
    # torch.load(weights_only=True)
    return float(config.final_learning_rate + (config.learning_rate - config.final_learning_rate) * 0.5 * (
        1 + np.cos(np.pi * fraction)))


def is_recorded(seed: int, recorded_share: float) -> bool:
    """Whether corpus item `seed` is made of recorded sources (a fixed draw per seed)."""
    return recorded_share > 0 and np.random.default_rng([seed, 31]).random() < recorded_share


def recorded_family_weights(recorded_share: float) -> np.ndarray:
    """How often recorded items take a speech, music or environment target so that, with the synthetic items'
    own mix (a uniform draw over the synthetic kinds), all the items are a third of each as far as it can be."""
    from ..corpus import ALL_KINDS
    from ..corpus.recorded import FAMILIES

    family_of = {"voice": "speech", "instrument": "music", "drums": "music", "effect": "environment",
                 "animal": "environment"}
    synthetic = np.array([sum(family_of[k.family] == f for k in ALL_KINDS.values()) for f in FAMILIES],
                         float) / len(ALL_KINDS)
    wanted = np.clip((1 / 3 - (1 - recorded_share) * synthetic) / recorded_share, 0.0, None)
    return wanted / wanted.sum() if wanted.sum() > 0 else np.full(3, 1 / 3)


def recorded_family(seed: int, recorded_share: float, families: tuple[float, float, float] | None = None) -> str:
    """The family of the target of recorded training item `seed` (a fixed draw per seed), drawn with the weights
    `families` (speech, music, environment) or, when None, with `recorded_family_weights(recorded_share)`."""
    from ..corpus.recorded import FAMILIES

    weights = (np.asarray(families, float) / sum(families) if families is not None
               else recorded_family_weights(recorded_share))
    return FAMILIES[int(np.random.default_rng([seed, 32]).choice(len(FAMILIES), p=weights))]


def target_classes(seeds: range, recorded_share: float = 0.0, split: str = "train",
                   families: tuple[float, float, float] | None = None, training_only: bool = True,
                   procedural: int = 0) -> dict[str, int]:
    """Target clips per AudioSet display name over corpus items `seeds` (what a model card lists), counted
    without rendering: the synthetic item's first draw, or the recorded item's target class (`training_only`
    False: as drawn without the TRAINING_ONLY packages, e.g. for a round trained before 0ad-data was installed),
    and the kinds of the first `procedural` procedural items."""
    from collections import Counter

    from ..corpus import ALL_KINDS
    from ..corpus.mixtures import target_kind_of
    from ..corpus.real import target_class

    counts = Counter(target_class(seed, split, recorded_family(seed, recorded_share, families), training_only)
                     if is_recorded(seed, recorded_share) else ALL_KINDS[target_kind_of(seed)].label for seed in seeds)
    if procedural:
        from ..corpus.procedural import procedural_classes

        counts.update(procedural_classes(procedural))
    return dict(sorted(counts.items()))


def corpus_item(seed: int, seconds: float, sample_rate: int, recorded_share: float = 0.0, split: str = "train",
                families: tuple[float, float, float] | None = None):
    """Corpus item `seed` (a `Mixture`): synthetic, or recorded sources of `split` when the seed is drawn recorded."""
    from ..corpus import make_mixture
    from ..corpus.real import recorded_mixture

    if is_recorded(seed, recorded_share):
        return recorded_mixture(seed, split=split, sample_rate=sample_rate, seconds=seconds,
                                family=recorded_family(seed, recorded_share, families))
    return make_mixture(seed, sample_rate=sample_rate, seconds=seconds)


def corpus_items(seeds: range, seconds: float, sample_rate: int, recorded_share: float = 0.0,
                 split: str = "train", families: tuple[float, float, float] | None = None
                 ) -> dict[str, np.ndarray | list]:
    """Corpus items of `seeds`: synthetic, or, for a `recorded_share` of the seeds, recorded sources of `split`."""
    targets, interferers, prompts, kinds = [], [], [], []
    for seed in seeds:
        item = corpus_item(seed, seconds, sample_rate, recorded_share, split, families)
        targets.append(item.target)
        interferers.append(item.interferer)
        prompts.append(item.prompts)
        kinds.append(item.target_kind)
    return {"target": np.stack(targets), "interferer": np.stack(interferers), "prompts": prompts,
            "kinds": kinds}


def write_validation_set(folder: str | Path, config: TrainConfig, sample_rate: int) -> Path:
    """The validation items a training with `config` reads (0 dB two-source mixtures of held-out sources, each
    asked for with its first prompt) as an `eventsep evaluate` manifest, `folder/manifest.json`: a round's
    validation figures are then made by evaluate, for any weights (`--weights`). Mixture and target are 32-bit
    float WAV at `sample_rate`, so the mixture is the training's target + interferer exactly."""
    from ..audio import write_audio
    from ..corpus import ALL_KINDS
    from ..corpus.manifest import KIND_OF_FAMILY, write_manifest

    folder = Path(folder)
    entries = []
    for seed in range(*config.validation_seeds):
        item = corpus_item(seed, config.item_seconds, sample_rate, config.recorded_share, "held_out",
                           config.recorded_families)
        stem = f"valid{seed}"
        write_audio(folder / f"{stem}.mixture.wav", item.target + item.interferer, sample_rate, subtype="FLOAT")
        write_audio(folder / f"{stem}.target.wav", item.target, sample_rate, subtype="FLOAT")
        kind = (KIND_OF_FAMILY[ALL_KINDS[item.target_kind].family] if item.target_kind in ALL_KINDS
                else item.target_kind)  # a recorded item's kind is its family already
        entries.append({"id": stem, "mixture": f"{stem}.mixture.wav", "reference": f"{stem}.target.wav",
                        "query": item.prompts[0], "onset": item.onset, "offset": item.offset, "kind": kind,
                        "class": item.target_label})
    return write_manifest(entries, folder / "manifest.json")


def with_procedural(items: dict, count: int, seconds: float, sample_rate: int) -> dict:
    """`items` (corpus_items' dict) and `count` procedural items after them; each procedural item's interferer is
    a copy of a corpus item's (a fixed draw per item), since a training batch pairs targets with other items'
    interferers anyway."""
    from ..corpus.procedural import PROCEDURAL_SEEDS, procedural_target

    made = [procedural_target(PROCEDURAL_SEEDS + i, seconds, sample_rate) for i in range(count)]
    copies = [int(np.random.default_rng([PROCEDURAL_SEEDS + i, 43]).integers(len(items["interferer"])))
              for i in range(count)]
    return {"target": np.concatenate([items["target"], np.stack([m[0] for m in made])]),
            "interferer": np.concatenate([items["interferer"], items["interferer"][copies]]),
            "prompts": items["prompts"] + [m[2] for m in made], "kinds": items["kinds"] + [m[1] for m in made]}


def embed_prompts(prompts: list[list[str]]) -> tuple[list[str], np.ndarray]:
    from .. import backends

    texts = sorted({p for group in prompts for p in group})
    return texts, backends.get("text_encoder", "minilm").encode(texts)


@dataclass
class TrainingData:
    arrays: dict[str, np.ndarray]      # target, interferer, valid_target, valid_interferer, embeddings
    embeddings: dict[str, np.ndarray]  # prompt text -> MiniLM vector
    prompt_index: list[list[int]]      # per training item: rows of arrays["embeddings"]
    valid: dict                        # target, interferer, prompts of the validation items


def training_data(folder: Path, config: TrainConfig, sample_rate: int) -> TrainingData:
    """The corpus items of `config` at `sample_rate`, rendered once into `folder` and read back after."""
    data_path = folder / "data.npz"
    spec = {"train_seeds": list(config.train_seeds), "validation_seeds": list(config.validation_seeds),
            "item_seconds": config.item_seconds, "sample_rate": sample_rate}
    if config.recorded_share:  # absent at 0, so that folders rendered before recorded sources stay valid
        from ..corpus.recorded import units

        spec["recorded_share"] = config.recorded_share
        # the training split grows when an optional package is installed (0ad-data): render again then
        spec["recorded_units"] = len(units("train"))
    if config.recorded_families is not None:
        spec["recorded_families"] = list(config.recorded_families)
    if config.procedural_items:  # absent at 0, as above
        spec["procedural_items"] = config.procedural_items
    meta = json.loads((folder / "data.json").read_text()) if data_path.exists() else {}
    if meta.get("spec") == spec:
        arrays = dict(np.load(data_path, allow_pickle=False))
    else:  # absent, or rendered for other seeds, lengths, rate or share: render again
        train_items = corpus_items(range(*config.train_seeds), config.item_seconds, sample_rate,
                                   config.recorded_share, "train", config.recorded_families)
        if config.procedural_items:
            train_items = with_procedural(train_items, config.procedural_items, config.item_seconds, sample_rate)
        valid_items = corpus_items(range(*config.validation_seeds), config.item_seconds, sample_rate,
                                   config.recorded_share, "held_out", config.recorded_families)
        texts, vectors = embed_prompts(train_items["prompts"] + valid_items["prompts"])
        arrays = {"target": train_items["target"], "interferer": train_items["interferer"],
                  "valid_target": valid_items["target"], "valid_interferer": valid_items["interferer"],
                  "embeddings": vectors}
        meta = {"spec": spec, "texts": texts, "prompts": train_items["prompts"], "valid_prompts": valid_items["prompts"],
                "kinds": train_items["kinds"]}
        folder.mkdir(parents=True, exist_ok=True)
        # data.npz, published last and atomically, is what marks the pair complete: an older one goes first
        data_path.unlink(missing_ok=True)
        (folder / "data.json").write_text(json.dumps(meta))
        with atomic_file(data_path, suffix=".npz") as temporary:
            np.savez(temporary, **arrays)
    embeddings = {t: arrays["embeddings"][i] for i, t in enumerate(meta["texts"])}
    prompt_index = [[meta["texts"].index(p) for p in group] for group in meta["prompts"]]
    valid = {"target": arrays["valid_target"], "interferer": arrays["valid_interferer"],
             "prompts": meta["valid_prompts"]}
    return TrainingData(arrays, embeddings, prompt_index, valid)


def sample_batch(rng: np.random.Generator, data: TrainingData, config: TrainConfig,
                 crop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random pairs: the target of one item, the interferer of another at ±gain_db, a random prompt of the
    first. Returns (mixtures, targets) as (batch, 1, crop) and the conditions as (batch, 384)."""
    arrays = data.arrays
    count = len(arrays["target"])
    first, second = rng.integers(count, size=config.batch_size), rng.integers(count, size=config.batch_size)
    offsets = np.array([_crop_offset(rng, arrays["target"][i], crop, config.target_crop_share) for i in first])
    gains = 10 ** (rng.uniform(-config.gain_db, config.gain_db, size=config.batch_size) / 20)
    targets = np.stack([arrays["target"][i, o:o + crop] for i, o in zip(first, offsets)])
    interferers = np.stack([arrays["interferer"][j, o:o + crop] * g for j, o, g in zip(second, offsets, gains)])
    mixtures = targets + interferers
    if config.level_db:
        levels = 10 ** (rng.uniform(-config.level_db, config.level_db, size=(config.batch_size, 1)) / 20)
        mixtures, targets = mixtures * levels, targets * levels
    peak = np.maximum(np.abs(mixtures).max(axis=1, keepdims=True), 1.0)
    conditions = np.stack([arrays["embeddings"][data.prompt_index[i][rng.integers(len(data.prompt_index[i]))]]
                           for i in first])
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


def resumable_loop(folder: Path, minutes: float, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   config: TrainConfig, model_config: dict, step: Callable[[np.random.Generator], torch.Tensor],
                   finish: Callable[[np.random.Generator], dict], progress: Callable[[dict], None],
                   warm_start: str | Path | None = None, after_step: Callable[[], None] | None = None,
                   exported_to_model: Callable[[dict], dict] = lambda state: state) -> dict:
    """Run `step(rng)` (returns the loss; the loop does the backward pass and then calls `after_step`) for
    `minutes`, then `finish(rng)` (validation figures, appended to the history). Resumes from
    `folder/last.pt`, else from `warm_start` (exported weights, renamed by `exported_to_model`: a fresh
    optimizer, the step count and history carry on)."""
    rng = np.random.default_rng(config.seed)
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

        model.load_state_dict(exported_to_model(load_file(warm_start)), strict=True)
        with safe_open(warm_start, "pt") as exported:
            state = json.loads(exported.metadata()["state"])
        rng = np.random.default_rng([config.seed, state["step"]])

    def checkpoint() -> None:
        with atomic_file(last) as temporary:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "state": json.dumps(state), "model_config": json.dumps(model_config),
                        "train_config": json.dumps(asdict(config))}, temporary)

    started = saved = time.monotonic()
    model.train()
    while time.monotonic() - started < minutes * 60:
        step_start = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(config, (step_start - started) / (minutes * 60))
        loss = step(rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        state["step"] += 1
        state["seconds"] += time.monotonic() - step_start
        if state["step"] % 50 == 0:
            progress({"step": state["step"], "loss": round(float(loss.detach()), 4),
                      "learning_rate": float(f"{optimizer.param_groups[0]['lr']:.3g}"),
                      "steps_per_second": round(1 / (time.monotonic() - step_start), 2)})
        if time.monotonic() - saved > config.checkpoint_minutes * 60:
            checkpoint()
            saved = time.monotonic()
    scores = finish(rng)
    state["history"].append({"step": state["step"], "train_seconds": round(state["seconds"]), **scores})
    progress(state["history"][-1])
    checkpoint()
    return state


def export(source: str | Path, destination: str | Path) -> Path:
    """Write the trained weights (no optimizer) of a training folder's `last.pt`, or of a checkpoint file
    `source`, as safetensors with their configs and validation figures. A checkpoint that holds an EMA copy
    (keys `ema.*`) exports that copy."""
    from safetensors.torch import save_file

    source = Path(source)
    path = source / "last.pt" if source.is_dir() else source
    if not path.is_file():
        raise ValueError(f"{path} not found: give a training folder holding last.pt, or a checkpoint file")
    checkpoint = torch.load(path, weights_only=True)
    weights = checkpoint["model"]
    if any(key.startswith("ema.") for key in weights):
        weights = {key[len("ema."):]: value for key, value in weights.items() if key.startswith("ema.")}
    with atomic_file(destination) as temporary:
        save_file({k: v.contiguous() for k, v in weights.items()}, temporary,
                  metadata={"model_config": checkpoint["model_config"], "train_config": checkpoint["train_config"],
                            "state": checkpoint["state"]})
    return Path(destination)


def warm_start_weights(name: str, fresh: bool = False) -> Path | None:
    """The packaged weights of registry entry `name` to continue from when a training folder has no checkpoint."""
    from ..pretrained import path_of

    path = path_of(name)
    return None if fresh or not path.is_file() else path
