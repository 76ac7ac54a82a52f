"""Two-source mixtures with ground truth: a target active part of the time over an interferer, at a chosen SNR.

`make_mixture(seed)` is deterministic: the same seed gives the same samples, labels and prompts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import write_audio
from .sources import ALL_KINDS, SourceKind, render

TARGET_PROMPTS = ["only the {}", "keep the {}", "isolate the {}", "the {}", "extract the {}",
                  "I want to hear the {}", "just the {}, please", "separate the {}"]
REMOVAL_PROMPTS = ["remove the {}", "without the {}", "get rid of the {}"]
FADE_SECONDS = 0.02
# An interferer's level is read inside the target's span, but never below this many dB under its level over the
# whole track: an interferer nearly silent inside the span would otherwise be raised until the mixture is its
# outside part, the wanted sound tens of dB below it (synthetic item syn100002, the horse, was 44 dB below).
SPAN_LEVEL_FLOOR_DB = 10.0


@dataclass
class Mixture:
    mixture: np.ndarray
    target: np.ndarray
    interferer: np.ndarray
    sample_rate: int
    seed: int
    target_kind: str
    interferer_kind: str
    target_label: str
    interferer_label: str
    onset: float
    offset: float
    snr_db: float
    prompts: list[str] = field(default_factory=list)
    removal_prompts: list[str] = field(default_factory=list)

    def meta(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not isinstance(v, np.ndarray)}


def _trim(samples: np.ndarray, level: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > level)
    return samples[loud[0]:loud[-1] + 1] if len(loud) else samples


def _fade(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    n = min(int(FADE_SECONDS * sample_rate), len(samples) // 2)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    out = samples.astype(np.float32).copy()
    out[:n] *= ramp
    out[len(out) - n:] *= ramp[::-1]
    return out


def _cover(kind: SourceKind, seed: int, length: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A continuous interferer of `length` samples (short clips repeat with short gaps)."""
    out = np.zeros(length, dtype=np.float32)
    position, repeat = 0, 0
    while position < length:
        piece = _fade(_trim(render(kind, seed + 1000 * repeat, length / sample_rate + 1.0, sample_rate)),
                      sample_rate)
        piece = piece[: length - position]
        out[position:position + len(piece)] = piece
        position += len(piece) + int(rng.uniform(0.1, 0.6) * sample_rate)
        repeat += 1
    return out


def _pick(rng: np.random.Generator, exclude_family: str | None = None, exclude: str | None = None) -> SourceKind:
    pool = [k for k in ALL_KINDS.values() if k.name != exclude and k.family != exclude_family]
    return pool[int(rng.integers(len(pool)))]


def _prompts(kind: SourceKind, templates: list[str], rng: np.random.Generator, count: int) -> list[str]:
    names = [kind.name, *kind.words]
    chosen = rng.choice(len(templates), size=min(count, len(templates)), replace=False)
    return [templates[int(i)].format(names[int(j) % len(names)]) for j, i in enumerate(chosen)]


def _placed(source: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A silent track of `length` samples with `source` once at a random start (not at its very ends), and the
    start."""
    start = int(rng.uniform(0.05, 0.95) * (length - len(source)))
    track = np.zeros(length, dtype=np.float32)
    track[start:start + len(source)] = source
    return track, start


def interferer_gain(target: np.ndarray, interferer: np.ndarray, active: slice, snr_db: float) -> np.float64:
    """The gain that puts `interferer` `snr_db` below `target` inside the target's `active` span, the interferer's
    span level read no lower than `SPAN_LEVEL_FLOOR_DB` under its whole-track level."""
    target_power = float(np.mean(target[active] ** 2))
    floor = float(np.mean(interferer ** 2)) * 10 ** (-SPAN_LEVEL_FLOOR_DB / 10)
    interferer_power = max(float(np.mean(interferer[active] ** 2)), floor, 1e-12)
    # a NumPy float, not a Python one: scaling a float32 track by it rounds as the corpus always has
    return np.sqrt(target_power / interferer_power / 10 ** (snr_db / 10))


def target_kind_of(seed: int) -> str:
    """The target kind `make_mixture(seed)` draws (its first draw), without rendering anything."""
    return _pick(np.random.default_rng([seed, 0])).name


def make_mixture(seed: int, *, sample_rate: int = 32000, seconds: float = 10.0, snr_db: float = 0.0,
                 target: str | None = None, interferer: str | None = None) -> Mixture:
    """A `seconds` long mixture: the target active once, for 30-60 % of the time, over a continuous interferer."""
    rng = np.random.default_rng([seed, 0])
    target_kind = ALL_KINDS[target] if target else _pick(rng)
    interferer_kind = ALL_KINDS[interferer] if interferer else _pick(
        rng, exclude_family="voice" if target_kind.family == "voice" else None, exclude=target_kind.name)
    length = int(seconds * sample_rate)

    wanted = rng.uniform(0.3, 0.6) * seconds
    source = _trim(render(target_kind, seed, wanted + 1.0, sample_rate))[: int(wanted * sample_rate)]
    target_track, start = _placed(_fade(source, sample_rate), length, rng)
    interferer_track = _cover(interferer_kind, seed + 1, length, sample_rate, rng)

    interferer_track *= interferer_gain(target_track, interferer_track, slice(start, start + len(source)), snr_db)
    peak = float(np.abs(target_track + interferer_track).max())
    scale = 0.9 / peak if peak > 0.9 else 1.0
    target_track, interferer_track = (target_track * scale).astype(np.float32), (
        interferer_track * scale).astype(np.float32)
    return Mixture(
        mixture=target_track + interferer_track, target=target_track, interferer=interferer_track,
        sample_rate=sample_rate, seed=seed, target_kind=target_kind.name, interferer_kind=interferer_kind.name,
        target_label=target_kind.label, interferer_label=interferer_kind.label,
        onset=round(start / sample_rate, 4), offset=round((start + len(source)) / sample_rate, 4), snr_db=snr_db,
        prompts=_prompts(target_kind, TARGET_PROMPTS, rng, 4),
        removal_prompts=_prompts(interferer_kind, REMOVAL_PROMPTS, rng, 2))


def write_mixture(mixture: Mixture, folder: str | Path, stem: str | None = None) -> dict[str, Path]:
    """mixture, target and interferer as 16-bit FLAC plus the metadata as JSON; each file written atomically."""
    from ..outputs import write_text

    folder = Path(folder)
    stem = stem or f"mix{mixture.seed:05d}"
    paths = {part: folder / f"{stem}.{part}.flac" for part in ("mixture", "target", "interferer")}
    for part, path in paths.items():
        write_audio(path, getattr(mixture, part), mixture.sample_rate, subtype="PCM_16")
    paths["meta"] = folder / f"{stem}.json"
    write_text(paths["meta"], json.dumps(mixture.meta(), indent=1))
    return paths


def make_corpus(folder: str | Path, seeds, **options) -> list[dict[str, Path]]:
    return [write_mixture(make_mixture(seed, **options), folder) for seed in seeds]


# --- the synthetic development set: seeds above every training range (training uses 0-1999) ---

FAMILY_OF = {"voice": "speech", "instrument": "music", "drums": "music", "effect": "environment",
             "animal": "environment"}
DEV_FIRST_SEED = 100_000  # where TrainConfig.validation_seeds start: never a training seed


def synthetic_plan(count: int = 48) -> dict:
    """A balanced synthetic development set: item i has a speech, music or environment target in turn, an SNR
    of -5, 0, +5 dB in turn per family, and every fourth item asks to remove its target."""
    from ..ontology import by_name

    items = []
    for i in range(count):
        seed = DEV_FIRST_SEED + i
        rng = np.random.default_rng([seed, 40])
        family = ("speech", "music", "environment")[i % 3]
        kinds = sorted(k.name for k in ALL_KINDS.values() if FAMILY_OF[k.family] == family)
        kind = ALL_KINDS[kinds[int(rng.integers(len(kinds)))]]
        remove = i % 4 == 3
        names = [kind.name, *kind.words]
        templates = REMOVAL_PROMPTS if remove else TARGET_PROMPTS
        query = templates[int(rng.integers(len(templates)))].format(names[int(rng.integers(len(names)))])
        items.append({"id": f"syn{seed}", "seed": seed, "target": kind.name, "kind": family, "class": kind.label,
                      "mid": by_name(kind.label).mid, "snr_db": (-5.0, 0.0, 5.0)[(i // 3) % 3], "remove": remove,
                      "query": query})
    return {"sample_rate": 32000, "seconds": 10.0, "items": items}


def committed_synthetic_plan() -> dict:
    """The plan of the committed synthetic development set (`eventsep/data/dev_synthetic.json`)."""
    from ..data import read_json

    return read_json("dev_synthetic.json")


def write_synthetic_set(plan: dict, folder: str | Path) -> Path:
    """Render a synthetic development-set plan into `folder` with its evaluation manifest."""
    from .manifest import write_manifest

    folder, entries = Path(folder), []
    for item in plan["items"]:
        m = make_mixture(item["seed"], sample_rate=plan["sample_rate"], seconds=plan["seconds"],
                         snr_db=item["snr_db"], target=item["target"])
        write_mixture(m, folder, item["id"])
        entry = {"id": item["id"], "mixture": f"{item['id']}.mixture.flac",
                 "reference": f"{item['id']}.{'interferer' if item['remove'] else 'target'}.flac",
                 "query": item["query"], "onset": m.onset, "offset": m.offset, "kind": item["kind"],
                 "class": item["class"]}
        entries.append({**entry, "remove": True} if item["remove"] else entry)
    return write_manifest(entries, folder / "manifest.json")
