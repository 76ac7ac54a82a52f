"""Recorded sources from Debian packages (sound effects, spoken words, drum kits, sampled instruments), labelled
by the package-data table `recorded_labels.csv`, split into training and held-out units by a fixed hash.

A *unit* is what the split holds out as a whole: one audio file, one Hydrogen drum kit (its beats are made
from its own samples), one SoundFont or patch-set instrument (its melodies come from that instrument alone).
Its key is the package name and the path inside the package's sound folder, plus `#program` for a
SoundFont instrument.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from ..audio import AudioError, load_audio
from .sources import SourceKind, cached_array, render_music, render_patches

FAMILIES = ("speech", "music", "environment")
HELD_OUT_PERCENT = 20
# Fixed once and never changed: the first salt (of 0-39) under which every package of generated units
# (drum kits, SoundFonts, patch sets) put units on both sides and 2-4 of the 12 drum kits were held out.
SPLIT_SALT = "27"
RMS_FLOOR = 1e-3           # -60 dBFS: clips quieter than this (digital silence) are dropped
TRIM_BELOW_PEAK_DB = 45.0  # leading and trailing samples this far below the clip's peak are cut
LOUDNESS_LUFS = -23.0
CLIP_VERSION = 1

# where each package keeps its sounds: the keys are paths relative to these
ROOTS = {
    "tuxpaint-stamps-default": Path("/usr/share/tuxpaint/stamps"),
    "ktuberling-data": Path("/usr/share/ktuberling/sounds"),
    "lugaru-data": Path("/usr/share/games/lugaru/Sounds"),
    "hydrogen-drumkits": Path("/usr/share/hydrogen/data/drumkits"),
    "hydrogen-drumkits-effects": Path("/usr/share/hydrogen/data/drumkits"),
    "avldrums.lv2-soundfont": Path("/usr/share/sounds/sf2"),
    "timgm6mb-soundfont": Path("/usr/share/sounds/sf2"),
    "freepats": Path("/usr/share/midi/freepats"),
    "0ad-data": Path("/usr/share/games/0ad/public/audio"),
}
AUDIO_SUFFIXES = (".ogg", ".wav", ".flac", ".mp3")
FREEPATS_CONFIG = Path("/etc/timidity/freepats.cfg")


@dataclass(frozen=True)
class LabelRule:
    package: str
    pattern: str
    unit: str    # file | kit | program | drums
    family: str  # speech | music | environment
    label: str   # AudioSet display name
    mid: str


@dataclass(frozen=True)
class Unit:
    key: str     # "package/relative/path" (+ "#program"): what the split hashes
    path: Path
    rule: LabelRule
    program: int | None = None

    @property
    def label(self) -> str:
        return self.rule.label

    @property
    def family(self) -> str:
        return self.rule.family


@lru_cache(maxsize=1)
def label_rules() -> tuple[LabelRule, ...]:
    """The label table, in order: the first rule whose pattern matches a path labels it."""
    text = resources.files("eventsep.data").joinpath("recorded_labels.csv").read_text("utf-8")
    return tuple(LabelRule(r["package"], r["pattern"], r["unit"], r["family"], r["display_name"], r["mid"])
                 for r in csv.DictReader(text.splitlines()))


@lru_cache(maxsize=1)
def prompt_phrases() -> dict[str, list[str]]:
    """Everyday names per AudioSet class ("the dog barking"), from which the prompts are made."""
    return json.loads(resources.files("eventsep.data").joinpath("recorded_prompts.json").read_text("utf-8"))


TRAINING_ONLY = ("0ad-data/",)  # installed by hand (scripts/setup_0ad.sh): never part of a development set


def held_out(key: str) -> bool:
    """Whether the unit `key` belongs to the development sets (never to training): a fixed hash of the key."""
    if key.startswith(TRAINING_ONLY):
        return False
    digest = hashlib.sha256(f"{SPLIT_SALT}:{key}".encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % 100 < HELD_OUT_PERCENT


@lru_cache(maxsize=None)
def _candidates(package: str, unit: str) -> tuple[str, ...]:
    """Paths (relative to the package's root) that a rule of this unit type can match."""
    root = ROOTS[package]
    if not root.is_dir():
        return ()
    if unit == "kit":
        return tuple(sorted(p.name for p in root.iterdir() if (p / "drumkit.xml").is_file()))
    if unit in ("program", "drums"):
        suffix = ".pat" if package == "freepats" else ".sf2"
        return tuple(sorted(str(p.relative_to(root)) for p in root.rglob(f"*{suffix}")))
    return tuple(sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES))


@lru_cache(maxsize=1)
def catalogue() -> tuple[Unit, ...]:
    """Every labelled unit of the installed packages (absent packages contribute nothing)."""
    units: dict[str, Unit] = {}
    claimed: set[tuple[Path, str]] = set()
    for rule in label_rules():
        root = ROOTS[rule.package]
        pattern, _, program = rule.pattern.partition("#")
        for relative in _candidates(rule.package, rule.unit):
            where = (root / relative, program)
            if where in claimed or not fnmatch.fnmatchcase(relative, pattern):
                continue
            claimed.add(where)
            key = f"{rule.package}/{relative}" + (f"#{program}" if program else "")
            # a freepats patch file is one instrument: its GM program opens its name
            number = int(Path(relative).name[:3]) if rule.package == "freepats" else int(program or 0)
            units[key] = Unit(key, root / relative, rule, number if rule.unit == "program" else None)
    return tuple(units.values())


def units(split: str, training_only: bool = True) -> list[Unit]:
    """The units of `split`: "train", "held_out" or "all"; without the TRAINING_ONLY packages' units when
    `training_only` is False (what training drew from before they were installed)."""
    if split not in ("train", "held_out", "all"):
        raise ValueError(f"split must be train, held_out or all, got {split!r}")
    return [u for u in catalogue() if (split == "all" or held_out(u.key) == (split == "held_out"))
            and (training_only or not u.key.startswith(TRAINING_ONLY))]


# --- clips of file units: decoded, resampled (soxr), silence trimmed, loudness normalised ---

def _loudness_gain(samples: np.ndarray, sample_rate: int) -> float:
    import pyloudnorm

    # BS.1770 integrates 400 ms blocks: a shorter clip is measured repeated up to that length
    measured = samples if len(samples) >= 0.5 * sample_rate else np.tile(
        samples, int(np.ceil(0.5 * sample_rate / max(len(samples), 1))))
    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(measured.astype(np.float64))
    if not np.isfinite(loudness):
        return 0.0
    gain = 10 ** ((LOUDNESS_LUFS - loudness) / 20)
    return float(min(gain, 0.99 / max(float(np.abs(samples).max()), 1e-9)))


def process_clip(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Trim leading and trailing silence and normalise to -23 LUFS; an empty array when the clip is
    (near) digital silence."""
    if len(samples) == 0 or float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) < RMS_FLOOR:
        return np.zeros(0, np.float32)
    level = float(np.abs(samples).max()) * 10 ** (-TRIM_BELOW_PEAK_DB / 20)
    loud = np.flatnonzero(np.abs(samples) > level)
    samples = samples[loud[0]:loud[-1] + 1]
    return (samples * _loudness_gain(samples, sample_rate)).astype(np.float32)


def clip(unit: Unit, sample_rate: int) -> np.ndarray:
    """The processed samples of a file unit (cached on disk); empty when the file is silence or unreadable."""

    def compute() -> np.ndarray:
        try:
            samples = load_audio(unit.path, sample_rate, min_seconds=0.0).samples
        except AudioError:
            return np.zeros(0, np.float32)
        return process_clip(samples, sample_rate)

    return cached_array(f"clip|v{CLIP_VERSION}|{unit.key}", sample_rate, compute)


# --- generated units: beats from a drum kit's samples, melodies through an instrument ---

KIT_PARTS = {"kick": re.compile(r"kick|bass ?drum|bassdrum", re.I), "snare": re.compile(r"snare(?! roll)", re.I),
             "hat": re.compile(r"h(i-?)? ?h(at)?\b.*(cl|closed)|closed ?hh|hat.*closed|hat ?\d ?cl", re.I)}


def kit_samples(folder: Path) -> list[tuple[str, Path]]:
    """(instrument name, sample file) of each instrument of a Hydrogen drum kit, first layer only."""
    def tag(element) -> str:  # without the XML namespace
        return element.tag.rsplit("}", 1)[-1]

    tree = ElementTree.parse(folder / "drumkit.xml")
    found = []
    for instrument in tree.iter():
        if tag(instrument) != "instrument":
            continue
        name = next((c.text or "" for c in instrument if tag(c) == "name"), "")
        files = [e.text for e in instrument.iter() if tag(e) == "filename" and e.text]
        if files and (folder / files[0]).is_file():
            found.append((name, folder / files[0]))
    return found


def _hit(path: Path, sample_rate: int) -> np.ndarray:
    return cached_array(f"hit|{path}", sample_rate, lambda: load_audio(path, sample_rate, min_seconds=0.0).samples)


def render_kit(unit: Unit, seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """`seconds` of a seeded rhythm played with the kit's own samples: kick, snare and closed hi-hat in a
    rock beat where the kit has them, else random hits of its instruments on a beat grid."""
    rng = np.random.default_rng([seed, 11])
    instruments = kit_samples(unit.path)
    parts = {part: [p for n, p in instruments if rule.search(n)] for part, rule in KIT_PARTS.items()}
    length = int(seconds * sample_rate)
    out = np.zeros(length + 4 * sample_rate, np.float32)
    beat = float(rng.uniform(0.4, 0.75))
    if all(parts.values()):
        chosen = {part: paths[int(rng.integers(len(paths)))] for part, paths in parts.items()}
        step, pattern = beat / 2, [("kick", "hat"), ("hat",), ("snare", "hat"), ("hat",)]
    else:
        pool = [p for _, p in instruments]
        chosen = {str(i): pool[int(i)] for i in rng.choice(len(pool), size=min(4, len(pool)), replace=False)}
        step = beat * (2 if unit.label == "Acoustic guitar" else 0.5)
        pattern = [(str(rng.choice(list(chosen))),) if rng.random() < 0.8 else () for _ in range(8)]
    hits = {part: _hit(path, sample_rate) for part, path in chosen.items()}
    for index in range(int(np.ceil(seconds / step))):
        at = int(index * step * sample_rate)
        for part in pattern[index % len(pattern)]:
            sound = hits[part] * float(rng.uniform(0.6, 1.0))
            out[at:at + len(sound)] += sound[: len(out) - at]
    return process_clip(out[:length], sample_rate)


def _instrument(unit: Unit) -> SourceKind:
    # the AVL kits are melodic presets (bank 0, program 0) played with General MIDI drum notes
    family = "drum preset" if unit.rule.unit == "drums" else "instrument"
    return SourceKind(unit.label.lower(), unit.label, family, unit.program or 0)


def render_generated(unit: Unit, seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """`seconds` (about) of a seeded rhythm or melody from a kit, SoundFont or patch-set unit, processed as
    clips are."""
    if unit.rule.unit == "kit":
        return cached_array(f"kit|v{CLIP_VERSION}|{unit.key}|{seed}|{seconds}", sample_rate,
                            lambda: render_kit(unit, seed, seconds, sample_rate))
    if unit.rule.package == "freepats":
        raw = render_patches(_instrument(unit), seed, seconds, sample_rate, FREEPATS_CONFIG)
    else:
        raw = render_music(_instrument(unit), seed, seconds, sample_rate, unit.path, unit.rule.package)
    return process_clip(raw, sample_rate)


def is_generated(unit: Unit) -> bool:
    return unit.rule.unit != "file"
