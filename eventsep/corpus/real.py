"""Two-source mixtures of recorded sounds only: planned from a seed (which units, where, how loud), rendered
from the plan alone, so that a committed plan (`eventsep/data/dev_real.json`) reproduces the real development set.

Held-out units make the development set; training draws from the other units (`split="train"`). The
wanted sound is active for 20-60 % of the item in most items (2-6 s of 10 s), the SNR over its active part
is -5, 0 or +5 dB, and every fourth item is a removal request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import write_audio
from ..data import read_json
from .manifest import write_manifest
from .mixtures import FADE_SECONDS, Mixture, interferer_gain
from .recorded import FAMILIES, Unit, catalogue, clip, is_generated, prompt_phrases, render_generated, units

PLAN_VERSION = 1
TARGET_TEMPLATES = ["only {}", "keep {}", "isolate {}", "I want to hear {}", "just {}, please", "extract {}",
                    "{} alone", "separate {} from the rest"]
REMOVAL_TEMPLATES = ["remove {}", "without {}", "get rid of {}", "mute {}", "everything but {}"]
SNRS = (-5.0, 0.0, 5.0)
MIN_PIECE_SECONDS = 0.3


def _fade(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    n = min(int(FADE_SECONDS * sample_rate), len(samples) // 2)
    out = samples.astype(np.float64).copy()
    if n:
        ramp = np.linspace(0.0, 1.0, n)
        out[:n] *= ramp
        out[len(out) - n:] *= ramp[::-1]
    return out


def _by_key() -> dict[str, Unit]:
    return {unit.key: unit for unit in catalogue()}


def _piece_audio(unit: Unit, piece: dict, sample_rate: int) -> np.ndarray:
    if is_generated(unit):
        return render_generated(unit, piece["seed"], piece["render_seconds"], sample_rate)
    return clip(unit, sample_rate)


def _fill(pool: list[Unit], start: int, span: int, rng: np.random.Generator, sample_rate: int) -> list[dict]:
    """Pieces (clips or renders of units from `pool`, one after another with short gaps) covering
    [start, start + span) samples; a unit whose clip is silence is dropped from the pool."""
    pool = list(pool)
    pieces, position, end, attempts = [], start, start + span, 0
    first = pool[int(rng.integers(len(pool)))]
    # one speaker, kit or folder where it can be: the files of one directory
    same = [u for u in pool if u.path.parent == first.path.parent]
    pool = same if len(same) > 1 else pool
    while end - position >= MIN_PIECE_SECONDS * sample_rate and pool and attempts < 200:
        attempts += 1
        unit = first if not pieces and first in pool else pool[int(rng.integers(len(pool)))]
        remaining = end - position
        piece = {"source": unit.key, "at": int(position)}
        if is_generated(unit):
            piece.update(seed=int(rng.integers(2 ** 31)), render_seconds=float(np.ceil(remaining / sample_rate) + 1))
        audio = _piece_audio(unit, piece, sample_rate)
        if len(audio) < 0.05 * sample_rate:
            pool.remove(unit)
            continue
        skip = int(rng.integers(0, len(audio) - remaining)) if len(audio) > remaining else 0
        piece.update(skip=skip, length=int(min(len(audio) - skip, remaining)))
        pieces.append(piece)
        position += piece["length"] + int(rng.uniform(0.1, 0.4) * sample_rate)
    return pieces


def render_track(pieces: list[dict], length: int, sample_rate: int) -> np.ndarray:
    """The pieces, faded in and out, at their places in a silent track of `length` samples (float64)."""
    lookup = _by_key()
    track = np.zeros(length, np.float64)
    for piece in pieces:
        if piece["source"] not in lookup:
            raise FileNotFoundError(f"the corpus source {piece['source']} is not installed "
                                    "(scripts/setup_corpus.sh installs the recorded sources)")
        audio = _piece_audio(lookup[piece["source"]], piece, sample_rate)
        part = audio[piece["skip"]:piece["skip"] + piece["length"]]
        track[piece["at"]:piece["at"] + len(part)] += _fade(part, sample_rate)
    return track


def _quantised(samples: np.ndarray) -> np.ndarray:
    """On the 16-bit grid, so that target, interferer and their sum are stored exactly in 16-bit PCM."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767) / 32768.0


def render_plan(plan: dict, sample_rate: int, seconds: float) -> Mixture:
    """The mixture a plan describes; mixture == target + interferer exactly."""
    length = int(round(seconds * sample_rate))
    target = _quantised(render_track(plan["target"]["pieces"], length, sample_rate) * plan["target"]["gain"])
    interferer = _quantised(render_track(plan["interferer"]["pieces"], length, sample_rate)
                            * plan["interferer"]["gain"])
    return Mixture(mixture=(target + interferer).astype(np.float32), target=target.astype(np.float32),
                   interferer=interferer.astype(np.float32), sample_rate=sample_rate, seed=plan["seed"],
                   target_kind=plan["kind"], interferer_kind=plan["interferer_kind"], target_label=plan["class"],
                   interferer_label=plan["interferer_class"], onset=plan["onset"], offset=plan["offset"],
                   snr_db=plan["snr_db"], prompts=plan["prompts"], removal_prompts=plan["removal_prompts"])


def _prompts(label: str, templates: list[str], rng: np.random.Generator, count: int) -> list[str]:
    phrases = prompt_phrases()[label]
    chosen = rng.choice(len(templates), size=min(count, len(templates)), replace=False)
    return [templates[int(i)].format(phrases[int(rng.integers(len(phrases)))]) for i in chosen]


def _target_choice(seed: int, split: str, family: str | None, training_only: bool = True
                   ) -> tuple[np.random.Generator, list, str, str]:
    """The seeded draw that starts an item: (its generator, the units of `split`, the family, the target class)."""
    rng = np.random.default_rng([seed, 12])
    pool = units(split, training_only)
    family = family or FAMILIES[seed % len(FAMILIES)]
    classes = sorted({u.label for u in pool if u.family == family})
    if not classes:
        raise FileNotFoundError(f"no installed recorded {family} sources of split {split}: "
                                "run scripts/setup_corpus.sh")
    return rng, pool, family, classes[int(rng.integers(len(classes)))]


def target_class(seed: int, split: str, family: str | None = None, training_only: bool = True) -> str:
    """The AudioSet class of the target of `plan_item(seed, split, family=family)`, without rendering anything."""
    return _target_choice(seed, split, family, training_only)[3]


def plan_item(seed: int, split: str, *, sample_rate: int = 32000, seconds: float = 10.0,
              family: str | None = None) -> dict:
    """Choose a seeded mixture of recorded units of `split` ("held_out" or "train"): the target's family is
    `family`, or speech, music, environment in turn by seed; its class uniform among that family's classes."""
    rng, pool, family, label = _target_choice(seed, split, family)
    others = [u for u in pool if u.label != label]
    same_family = [u for u in others if u.family == family]
    # another family in three items of four (always for speech: it has one class)
    interferers = [u for u in others if u.family != family] if rng.random() < 0.75 or not same_family else same_family
    interferer_labels = sorted({u.label for u in interferers})
    interferer_label = interferer_labels[int(rng.integers(len(interferer_labels)))]

    length = int(round(seconds * sample_rate))
    fraction = rng.uniform(0.2, 0.6) if rng.random() < 0.9 else rng.uniform(0.6, 0.8)
    wanted = int(fraction * length)
    start = int(rng.uniform(0, length - wanted))
    target_pieces = _fill([u for u in pool if u.label == label], start, wanted, rng, sample_rate)
    interferer_pieces = _fill([u for u in interferers if u.label == interferer_label], 0, length, rng, sample_rate)
    if not target_pieces or not interferer_pieces:
        raise ValueError(f"seed {seed}: the sources of {label} or {interferer_label} are all silent")
    onset, offset = target_pieces[0]["at"], max(p["at"] + p["length"] for p in target_pieces)

    target = render_track(target_pieces, length, sample_rate)
    interferer = render_track(interferer_pieces, length, sample_rate)
    snr = SNRS[(seed // len(FAMILIES)) % len(SNRS)]
    gain = interferer_gain(target, interferer, slice(onset, offset), snr)
    peak = float(np.abs(target + gain * interferer).max())
    scale = 0.9 / peak if peak > 0.9 else 1.0
    remove = seed % 4 == 3
    prompts = _prompts(label, TARGET_TEMPLATES, rng, 4)
    removal = _prompts(label, REMOVAL_TEMPLATES, rng, 2)
    return {"id": f"real{seed:04d}", "seed": seed, "kind": family, "class": label,
            "interferer_kind": next(u.family for u in interferers if u.label == interferer_label),
            "interferer_class": interferer_label,
            "snr_db": snr, "onset": round(onset / sample_rate, 4), "offset": round(offset / sample_rate, 4),
            "remove": remove, "query": removal[0] if remove else prompts[0], "prompts": prompts,
            "removal_prompts": removal,
            "target": {"gain": float(scale), "pieces": target_pieces},
            "interferer": {"gain": float(gain * scale), "pieces": interferer_pieces}}


def recorded_mixture(seed: int, *, split: str = "train", sample_rate: int = 32000, seconds: float = 10.0,
                     family: str | None = None) -> Mixture:
    """A training (or validation) mixture of recorded sources: planned and rendered."""
    plan = plan_item(seed, split, sample_rate=sample_rate, seconds=seconds, family=family)
    return render_plan(plan, sample_rate, seconds)


def plan_set(seeds, *, sample_rate: int = 32000, seconds: float = 10.0) -> dict:
    """The plan of a real development set: one held-out item per seed."""
    return {"version": PLAN_VERSION, "sample_rate": sample_rate, "seconds": seconds,
            "items": [plan_item(seed, "held_out", sample_rate=sample_rate, seconds=seconds) for seed in seeds]}


def committed_plan() -> dict:
    """The plan of the committed real development set (`eventsep/data/dev_real.json`)."""
    return read_json("dev_real.json")


def write_set(plan: dict, folder: str | Path) -> Path:
    """Render every item of `plan` into `folder` (16-bit WAV: mixture, target, interferer) and write
    `folder/manifest.json`; the reference is the target, or the interferer for a removal request."""
    folder = Path(folder)
    rate, seconds = plan["sample_rate"], plan["seconds"]
    entries = []
    for item in plan["items"]:
        mixture = render_plan(item, rate, seconds)
        for part in ("mixture", "target", "interferer"):
            write_audio(folder / f"{item['id']}.{part}.wav", getattr(mixture, part), rate, subtype="PCM_16")
        entry = {"id": item["id"], "mixture": f"{item['id']}.mixture.wav",
                 "reference": f"{item['id']}.{'interferer' if item['remove'] else 'target'}.wav",
                 "query": item["query"], "onset": item["onset"], "offset": item["offset"], "kind": item["kind"],
                 "class": item["class"]}
        if item["remove"]:
            entry["remove"] = True
        entries.append(entry)
    return write_manifest(entries, folder / "manifest.json")
