"""Stand-in backends for tests only: cheap, deterministic, counting their calls, never used by the CLI."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from eventsep import backends
from eventsep.hashing import file_sha256
from eventsep.ontology import NUM_CLASSES
from eventsep.sed import SedOutput

CALLS: Counter = Counter()
# separator name -> the texts it was asked for, in order
ASKED: dict[str, list[str]] = {}


class HashEncoder:
    """Embeds text as a normalised bag of hashed character trigrams."""

    name = "standin-encoder"
    dim = 256

    def identity(self) -> str:
        return "standin-encoder-v1"

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text.lower()}  "
            for i in range(len(padded) - 2):
                out[row, int(hashlib.md5(padded[i:i + 3].encode()).hexdigest(), 16) % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class EnergySed:
    """Every class's probability follows the frame energy (100 frames/s at 32 kHz, frames = N//320 + 1)."""

    name = "standin-sed"
    sample_rate = 32000

    def identity(self) -> str:
        return "standin-sed-v1"

    def detect(self, samples: np.ndarray, sample_rate: int) -> SedOutput:
        CALLS["sed"] += 1
        hop = sample_rate // 100
        frames = len(samples) // hop + 1
        padded = np.pad(samples, (0, frames * hop - len(samples)))
        energy = np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1))
        probs = np.clip(energy / (energy.max() + 1e-9), 0, 1).astype(np.float32)
        return SedOutput(np.repeat(probs[:, None], NUM_CLASSES, axis=1), 100.0, self.name)


class GainSeparator:
    """"Separates" by scaling the input; its identity is the sha256 of a weight file the test may edit."""

    param_fields = ("chunk_seconds", "text")

    def __init__(self, name: str, sample_rate: int, gain: float, weights: Path):
        self.name, self.sample_rate, self.gain, self.weights = name, sample_rate, gain, weights

    def identity(self) -> str:
        return file_sha256(self.weights)

    def separate(self, samples, query, params):
        CALLS[self.name] += 1
        ASKED.setdefault(self.name, []).append(query)
        return (samples * self.gain).astype(np.float32)


class LowPassSeparator:
    """"Separates" whatever is asked for as the input below 1 kHz (a brick wall in the FFT): on a mixture of a
    low and a high tone it answers with the low one, so keeping and removing give different answers."""

    name = "standin-lowpass"
    sample_rate = 32000
    param_fields = ()
    cutoff_hz = 1000.0

    def identity(self) -> str:
        return "standin-lowpass-v1"

    def separate(self, samples, query, params):
        spectrum = np.fft.rfft(samples)
        spectrum[np.fft.rfftfreq(len(samples), 1 / self.sample_rate) >= self.cutoff_hz] = 0
        return np.fft.irfft(spectrum, len(samples)).astype(np.float32)


def register_all(weights_folder: Path) -> None:
    weights_folder.mkdir(parents=True, exist_ok=True)
    for name in ("standin-a", "standin-b"):
        weights = weights_folder / f"{name}.bin"
        if not weights.exists():
            weights.write_bytes(name.encode() * 100)
    backends.register("text_encoder", "standin-encoder", HashEncoder)
    backends.register("sed", "standin-sed", EnergySed)
    backends.register("separator", "standin-a",
                      lambda: GainSeparator("standin-a", 32000, 0.5, weights_folder / "standin-a.bin"))
    backends.register("separator", "standin-b",
                      lambda: GainSeparator("standin-b", 16000, 0.25, weights_folder / "standin-b.bin"))
    backends.register("separator", "standin-lowpass", LowPassSeparator)


STANDIN_OPTIONS = {"encoder": "standin-encoder", "sed": "standin-sed",
                   "separators": ("standin-a", "standin-b")}


def tone_set(folder: Path, kinds=("speech", "music"), seconds: float = 3.0, rate: int = 32000) -> Path:
    """A manifest of tone-over-noise items (tone from 1 s to 2 s, the reference is the tone alone)."""
    from eventsep.audio import write_audio
    from eventsep.evaluate import write_manifest

    items = []
    for index, kind in enumerate(kinds):
        rng = np.random.default_rng(index)
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.5 * np.sin(2 * np.pi * (300 + 150 * index) * t) * ((t >= 1.0) & (t < 2.0))).astype(np.float32)
        noise = (0.02 * rng.standard_normal(len(t))).astype(np.float32)
        write_audio(folder / f"tone{index}.mixture.wav", tone + noise, rate)
        write_audio(folder / f"tone{index}.reference.wav", tone, rate)
        items.append({"id": f"tone{index}", "mixture": str(folder / f"tone{index}.mixture.wav"),
                      "reference": str(folder / f"tone{index}.reference.wav"), "query": "the tone",
                      "onset": 1.0, "offset": 2.0, "kind": kind, "class": "Sine wave"})
    return write_manifest(items, folder / "manifest.json")
