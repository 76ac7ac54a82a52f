"""Procedural sounds for classes that no packaged recording or synthesiser covers (alarms, sirens, glass clinks):
numpy recipes with random parameters, rendered into training items only (issue 12)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ProceduralKind:
    name: str                    # what prompts call it
    label: str                   # AudioSet display name
    words: tuple[str, ...]       # other ways people name it in a prompt
    recipe: Callable[[np.random.Generator, int, int], np.ndarray]  # (rng, samples, rate) -> samples


def _tone(rng: np.random.Generator, frequency: np.ndarray | float, length: int, rate: int) -> np.ndarray:
    """A tone of (possibly time-varying) `frequency`, sine or buzzy (odd harmonics below Nyquist)."""
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(np.asarray(frequency, float), (length,))) / rate
    top = float(np.max(frequency))
    harmonics = [1] if rng.random() < 0.5 else [h for h in (1, 3, 5, 7) if h * top < 0.45 * rate]
    return sum(np.sin(h * phase) / h for h in harmonics)


def _envelope(length: int, rate: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(length)
    a, r = min(int(attack * rate), length // 2), min(int(release * rate), length // 2)
    env[:a] = np.linspace(0, 1, a)
    if r:
        env[length - r:] = np.linspace(1, 0, r)
    return env


def alarm(rng: np.random.Generator, length: int, rate: int) -> np.ndarray:
    """Beeps of 1.8-4.2 kHz (sometimes two alternating pitches) in groups of 1-4, as alarm clocks and
    appliance alarms sound."""
    pitches = rng.uniform(1800, 4200, size=2 if rng.random() < 0.3 else 1)
    beep, gap, pause = rng.uniform(0.05, 0.25), rng.uniform(0.05, 0.2), rng.uniform(0.2, 0.8)
    group = int(rng.integers(1, 5))
    out, position, count = np.zeros(length), 0, 0
    while position < length:
        n = min(int(beep * rate), length - position)
        out[position:position + n] = _tone(rng, pitches[count % len(pitches)], n, rate) * _envelope(n, rate, 0.003,
                                                                                                   0.003)
        count += 1
        position += n + int((pause if count % group == 0 else gap) * rate)
    return out


def siren(rng: np.random.Generator, length: int, rate: int) -> np.ndarray:
    """A pitch sweeping up and down between about 500 and 1700 Hz, slowly (a wail) or fast (a yelp)."""
    low = rng.uniform(500, 900)
    high = low + rng.uniform(300, 800)
    speed = rng.uniform(0.2, 0.6) if rng.random() < 0.5 else rng.uniform(2.0, 5.0)
    t = np.arange(length) / rate
    sweep = 0.5 - 0.5 * np.cos(2 * np.pi * speed * t + rng.uniform(0, 2 * np.pi))
    return _tone(rng, low + (high - low) * sweep, length, rate) * _envelope(length, rate, 0.05, 0.05)


def glass(rng: np.random.Generator, length: int, rate: int) -> np.ndarray:
    """Clinks: many inharmonic partials of 1.5-10 kHz (below Nyquist) that ring briefly and die away, with a click at the strike."""
    out = np.zeros(length)
    strikes = np.sort(rng.uniform(0, max(length - rate // 10, 1), size=int(rng.integers(1, 6)))).astype(int)
    for start in strikes:
        n = min(int(rng.uniform(0.2, 0.8) * rate), length - start)
        t = np.arange(n) / rate
        ring = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                   * np.exp(-t / rng.uniform(0.02, 0.3)) for f in rng.uniform(1500, min(10000, 0.45 * rate), size=int(rng.integers(6, 13))))
        click = rng.standard_normal(n) * np.exp(-t / 0.002)
        out[start:start + n] += (ring + click) * rng.uniform(0.5, 1.0)
    return out


KINDS = {kind.name: kind for kind in (
    ProceduralKind("alarm", "Alarm", ("alarm clock", "beeping alarm", "beeper"), alarm),
    ProceduralKind("siren", "Siren", ("police siren", "ambulance siren"), siren),
    ProceduralKind("clinking glass", "Glass", ("glasses", "glass clinking", "glass bottle"), glass),
)}


def render(kind: ProceduralKind, seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """`seconds` of `kind`, a fixed draw per seed, peak-normalised to 0.5 (float32)."""
    samples = kind.recipe(np.random.default_rng([seed, 41]), int(seconds * sample_rate), sample_rate)
    peak = float(np.max(np.abs(samples)))
    return (0.5 * samples / peak if peak > 0 else samples).astype(np.float32)


def _draw_kind(rng: np.random.Generator) -> ProceduralKind:
    return list(KINDS.values())[int(rng.integers(len(KINDS)))]


def procedural_target(seed: int, seconds: float, sample_rate: int) -> tuple[np.ndarray, str, list[str]]:
    """(target track, kind name, prompts) of procedural training item `seed`: a kind drawn per seed, active once
    for 30-60 % of `seconds`, like the synthetic corpus's targets (mixtures.make_mixture)."""
    from .mixtures import TARGET_PROMPTS, _fade, _placed, _prompts

    rng = np.random.default_rng([seed, 40])
    kind = _draw_kind(rng)
    source = _fade(render(kind, seed, rng.uniform(0.3, 0.6) * seconds, sample_rate), sample_rate)
    track, _ = _placed(source, int(seconds * sample_rate), rng)
    return track, kind.name, _prompts(kind, TARGET_PROMPTS, rng, 4)


# Procedural training item i is drawn from seed PROCEDURAL_SEEDS + i: a range no other corpus item uses.
PROCEDURAL_SEEDS = 500_000


def procedural_classes(count: int) -> dict[str, int]:
    """Target items per AudioSet display name among the first `count` procedural items (for a model card)."""
    from collections import Counter

    return dict(Counter(_draw_kind(np.random.default_rng([PROCEDURAL_SEEDS + i, 40])).label for i in range(count)))
