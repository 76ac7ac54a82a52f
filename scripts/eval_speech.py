"""Speech queries on recorded speech over recorded noise: SI-SDRi of pipelines, and speech-activity frame F1.

Speech: the human-spoken stamp descriptions of tuxpaint-stamps-default (`*_desc_<lang>.ogg`, recorded per
language); noise: lugaru-data ambiences and music and tuxpaint sound effects, looped to 10 s. Each
mixture is 10 s at 32 kHz, at -5/0/+5 dB over the speech's active samples; in 3 of every 4 mixtures
the speech is active for only part of the clip. Tuning set (`dev`) and held-out set (`held`) share no
language and no noise file.

    nice -n 10 python3 scripts/eval_speech.py sisdr [--systems a,b] [--split dev|held|all]
    nice -n 10 python3 scripts/eval_speech.py masks [--sed silero] [--attenuation-limit 100]
    nice -n 10 python3 scripts/eval_speech.py f1
    nice -n 10 python3 scripts/eval_speech.py write DIR    # the mixtures as WAV files

Needs: apt-get install tuxpaint-stamps-default lugaru-data (not part of the project's install).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("EVENTSEP_CACHE", str(Path(__file__).resolve().parents[1] / "cache" / "eval-speech"))

RATE = 32000
SECONDS = 10.0
STAMPS = "/usr/share/tuxpaint/stamps"
LUGARU = "/usr/share/games/lugaru/Sounds"
SPLITS = {
    "dev": {"languages": ["fr", "ru", "es", "ca"],
            "noises": [f"{LUGARU}/Wind.ogg", f"{LUGARU}/Fire.ogg", f"{LUGARU}/Music2.ogg",
                       f"{STAMPS}/vehicles/emergency/firetruck.ogg", f"{STAMPS}/animals/insects/bee.ogg",
                       f"{STAMPS}/hobbies/music/percussion/drumkit.ogg"],
            "queries": ["speech", "keep the person talking", "only the voice", "the narration"]},
    "held": {"languages": ["ro", "bg", "el", "be"],
             "noises": [f"{LUGARU}/DesertAmbient.ogg", f"{LUGARU}/Music3.ogg", f"{LUGARU}/Music1Grass.ogg",
                        f"{STAMPS}/animals/birds/blackbird.ogg", f"{STAMPS}/animals/insects/mosquito.ogg",
                        f"{STAMPS}/naturalforces/lightningbolt.ogg"],
             "queries": ["someone talking", "the announcer", "keep the voices", "speech"]},
}
PER_SPLIT = 12


@dataclass
class Item:
    name: str
    split: str
    mixture: np.ndarray
    speech: np.ndarray
    noise: np.ndarray
    query: str
    partial: bool  # speech active for only part of the clip
    snr_db: float


def read(path: str) -> np.ndarray:
    from eventsep.audio import load_audio, resample

    audio = load_audio(path)
    samples = audio.samples if audio.samples.ndim == 1 else audio.samples.mean(axis=1)
    return resample(np.asarray(samples, np.float32), audio.sample_rate, RATE)


def utterances(language: str) -> list[str]:
    return sorted(glob.glob(f"{STAMPS}/**/*_desc_{language}.ogg", recursive=True))


def speech_track(files: list[str], rng: np.random.Generator, length: int, partial: bool) -> np.ndarray:
    """Utterances of one language with 0.2-0.6 s pauses: 25-60 % of the clip (partial) or nearly all of it."""
    wanted = rng.uniform(0.25, 0.6) * length if partial else 0.9 * length
    pieces, total = [], 0
    import soundfile

    for path in rng.permutation(files):
        if not 1.5 <= soundfile.info(str(path)).duration <= 6.0:
            continue
        clip = read(str(path))
        clip = clip / (np.abs(clip).max() + 1e-9)
        gap = np.zeros(int(rng.uniform(0.2, 0.6) * RATE), np.float32)
        if total + len(clip) > length:
            continue
        pieces += [clip, gap]
        total += len(clip) + len(gap)
        if total >= wanted:
            break
    block = np.concatenate(pieces)[:length]
    track = np.zeros(length, np.float32)
    start = int(rng.integers(0, length - len(block) + 1))
    track[start:start + len(block)] = block
    return track


def looped(path: str, length: int, rng: np.random.Generator) -> np.ndarray:
    clip = read(path)
    clip = np.tile(clip, -(-length // len(clip)) + 1)
    start = int(rng.integers(0, len(clip) - length + 1))
    return clip[start:start + length]


def build(split: str) -> list[Item]:
    spec = SPLITS[split]
    length = int(SECONDS * RATE)
    items = []
    for i in range(PER_SPLIT):
        rng = np.random.default_rng([13, i, len(split)])
        language = spec["languages"][i % len(spec["languages"])]
        noise_path = spec["noises"][i % len(spec["noises"])]
        partial = i % 4 != 3
        snr = (-5.0, 0.0, 5.0)[i % 3]
        speech = speech_track(utterances(language), rng, length, partial)
        noise = looped(noise_path, length, rng)
        active = np.abs(speech) > 1e-4
        gain = np.sqrt(np.mean(speech[active] ** 2) / (np.mean(noise[active] ** 2) + 1e-12) / 10 ** (snr / 10))
        noise = noise * gain
        peak = max(np.abs(speech + noise).max(), 1e-9) / 0.9
        speech, noise = speech / peak, noise / peak
        items.append(Item(f"{split}{i:02d}-{language}-{Path(noise_path).stem}", split, (speech + noise).astype(np.float32),
                          speech.astype(np.float32), noise.astype(np.float32),
                          spec["queries"][i % len(spec["queries"])], partial, snr))
    return items


# ------------------------------------------------------------------ SI-SDRi of pipelines

SYSTEMS = {
    "default (auto)": {},
    "dfn3 alone": {"separators": ("dfn3",), "mask": {"mode": "off"}},
    "old default": {"separators": ("audiosep", "flowsep"), "sed": "yamnet"},
    "dfn3+yamnet": {"separators": ("dfn3",), "sed": "yamnet"},
    "dfn3+silero": {"separators": ("dfn3",), "sed": "silero"},
    "dfn3+silero hard": {"separators": ("dfn3",), "sed": "silero", "mask": {"mode": "hard"}},
    "fuse band": {"separators": ("dfn3", "audiosep"), "sed": "silero"},
    "fuse rate 0.5": {"separators": ("dfn3", "audiosep"), "sed": "silero",
                                            "fusion": {"mode": "rate", "alpha": 0.5}},
    "fuse rate 0.75": {"separators": ("dfn3", "audiosep"), "sed": "silero",
                                             "fusion": {"mode": "rate", "alpha": 0.75}},
    "dfn3 30 dB+silero": {"separators": ("dfn3",), "sed": "silero",
                                       "separator": {"attenuation_limit_db": 30.0}},
    "audiosep alone": {"separators": ("audiosep",), "mask": {"mode": "off"}},
}


def summarise(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    finite = v[np.isfinite(v)]
    mean = finite.mean() if len(finite) else float("nan")
    return f"{mean:+.2f} | {np.median(v):+.2f} | {v.min():+.2f}" + (f" ({len(v) - len(finite)} silent)" if len(finite) < len(v) else "")


def cmd_sisdr(args) -> None:
    import eventsep
    from eventsep.metrics import si_sdr_improvement

    items = [item for split in (["dev", "held"] if args.split == "all" else [args.split])
             for item in build(split)[:args.limit]]
    names = [n.strip() for n in args.systems.split(",")] if args.systems else list(SYSTEMS)
    scores = {name: {} for name in names}
    for item in items:
        line = []
        for name in names:
            result = eventsep.separate((item.mixture, RATE), item.query, **SYSTEMS[name])
            value = si_sdr_improvement(result.target, item.speech, item.mixture)
            scores[name][item.name] = value
            line.append(f"{value:+.1f}")
        removal = ""
        if args.removal:
            result = eventsep.separate((item.mixture, RATE), "remove the speech")
            removal = f" remove: {si_sdr_improvement(result.target, item.noise, item.mixture):+.1f}"
            scores.setdefault("'remove the speech' (target = noise)", {})[item.name] = \
                si_sdr_improvement(result.target, item.noise, item.mixture)
        print(item.name, item.query, f"{item.snr_db:+.0f} dB", "partial" if item.partial else "full",
              " ".join(line) + removal, flush=True)
    print("\n| system | split | items | mean SI-SDRi dB | median | min |\n|---|---|---:|---:|---:|---:|")
    groups = {"dev": lambda it: it.split == "dev", "held": lambda it: it.split == "held",
              "all, speech partial": lambda it: it.partial, "all": lambda it: True}
    for name, values in scores.items():
        for label, keep in groups.items():
            chosen = [values[it.name] for it in items if keep(it) and it.name in values]
            if chosen:
                print(f"| {name} | {label} | {len(chosen)} | {summarise(chosen)} |")


MASKS = {
    "no mask": {"mode": "off"},
    "soft θ0.5 (default)": {},
    "soft θ0.3": {"threshold": 0.3},
    "soft θ0.2": {"threshold": 0.2},
    "hard θ0.5": {"mode": "hard"},
    "hard θ0.3": {"mode": "hard", "threshold": 0.3},
    "soft hysteresis 0.5/0.2": {"smoothing": "hysteresis", "low_threshold": 0.2},
    "hard hysteresis 0.5/0.15": {"mode": "hard", "smoothing": "hysteresis", "low_threshold": 0.15},
    "hard hysteresis 0.3/0.1": {"mode": "hard", "threshold": 0.3, "smoothing": "hysteresis", "low_threshold": 0.1},
    "soft θ0.3 median 0.5 s": {"threshold": 0.3, "median_seconds": 0.5},
    "soft θ0.3 floor 0.05": {"threshold": 0.3, "floor": 0.05},
    "hard θ0.3 fade 50 ms": {"mode": "hard", "threshold": 0.3, "fade_ms": 50.0},
}


def cmd_masks(args) -> None:
    """The gain of dfn3 at an attenuation limit with SED mask settings over dfn3 alone at its default limit
    (100 dB) with no mask, on the items where speech is active for part of the clip."""
    import eventsep
    from eventsep.metrics import si_sdr_improvement

    base = {"separators": ("dfn3",), "sed": args.sed,
            "separator": {"attenuation_limit_db": args.attenuation_limit}}
    gains = {name: {"dev": [], "held": []} for name in MASKS}
    for split in ("dev", "held"):
        for item in build(split):
            if not item.partial:
                continue
            alone = eventsep.separate((item.mixture, RATE), item.query, separators=("dfn3",), mask={"mode": "off"})
            reference = si_sdr_improvement(alone.target, item.speech, item.mixture)
            line = []
            for name, mask in MASKS.items():
                result = eventsep.separate((item.mixture, RATE), item.query, **{**base, "mask": mask})
                gains[name][split].append(si_sdr_improvement(result.target, item.speech, item.mixture) - reference)
                line.append(f"{gains[name][split][-1]:+.1f}")
            print(item.name, f"dfn3 alone {reference:+.1f}", " ".join(line), flush=True)
    print(f"\nSED {args.sed}, dfn3 attenuation limit {args.attenuation_limit:g} dB; speech-partial items only\n")
    print("| mask | dev: mean gain over dfn3 alone dB | median | held: mean | median |\n|---|---:|---:|---:|---:|")
    for name, values in gains.items():
        dev, held = np.array(values["dev"]), np.array(values["held"])
        print(f"| {name} | {dev.mean():+.2f} | {np.median(dev):+.2f} | {held.mean():+.2f} | {np.median(held):+.2f} |")


# ------------------------------------------------------------------ speech-activity frame F1

def reference_activity(speech: np.ndarray, hop: int) -> np.ndarray:
    """Speech active in a 10 ms frame: its energy within 40 dB of the loudest frame, pauses under 0.2 s bridged."""
    frames = len(speech) // hop
    energy = (speech[:frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    active = energy > energy.max() * 1e-4
    gap = int(0.2 * RATE / hop)
    indices = np.flatnonzero(active)
    for a, b in zip(indices[:-1], indices[1:]):
        if 1 < b - a <= gap:
            active[a:b] = True
    return active


def cmd_f1(args) -> None:
    from eventsep import backends
    from eventsep.config import MaskParams
    from eventsep.ontology import by_name

    theta = MaskParams().threshold
    hop = RATE // 100
    speech_column = by_name("Speech").index
    detectors = ["silero", "yamnet", "yamnet-raw"]
    counts = {(d, s): np.zeros(3) for d in detectors for s in ("dev", "held")}
    for split in ("dev", "held"):
        for item in build(split):
            truth = reference_activity(item.speech, hop)
            centres = (np.arange(len(truth)) + 0.5) * hop / RATE
            line = []
            for name in detectors:
                output = backends.get("sed", name).detect(item.mixture, RATE)
                frame = np.clip(np.round(centres * output.frame_rate).astype(int), 0, len(output.probs) - 1)
                predicted = output.probs[frame, speech_column] >= theta
                tp, fp, fn = (np.sum(predicted & truth), np.sum(predicted & ~truth), np.sum(~predicted & truth))
                counts[(name, split)] += (tp, fp, fn)
                line.append(f"{name} {2 * tp / max(2 * tp + fp + fn, 1):.2f}")
            print(item.name, f"{item.snr_db:+.0f} dB", ", ".join(line), flush=True)
    print(f"\n| detector | split | frame F1 at θ = {theta} | precision | recall |\n|---|---|---:|---:|---:|")
    for (name, split), (tp, fp, fn) in counts.items():
        print(f"| {name} | {split} | {2 * tp / (2 * tp + fp + fn):.3f} | {tp / max(tp + fp, 1):.3f} | "
              f"{tp / max(tp + fn, 1):.3f} |")


def cmd_write(args) -> None:
    from eventsep.audio import write_audio

    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("dev", "held"):
        for item in build(split):
            for part in ("mixture", "speech", "noise"):
                write_audio(str(folder / f"{item.name}.{part}.wav"), getattr(item, part), RATE, subtype="FLOAT")
            print(item.name, item.query)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sisdr = commands.add_parser("sisdr")
    sisdr.add_argument("--systems", help="comma-separated names from SYSTEMS (default all)")
    sisdr.add_argument("--split", choices=["dev", "held", "all"], default="all")
    sisdr.add_argument("--removal", action="store_true", help="also 'remove the speech' against the noise")
    sisdr.add_argument("--limit", type=int, help="only the first N items of each split")
    sisdr.set_defaults(run=cmd_sisdr)
    masks = commands.add_parser("masks")
    masks.add_argument("--sed", default="silero")
    masks.add_argument("--attenuation-limit", type=float, default=100.0)
    masks.set_defaults(run=cmd_masks)
    f1 = commands.add_parser("f1")
    f1.set_defaults(run=cmd_f1)
    write = commands.add_parser("write")
    write.add_argument("folder")
    write.set_defaults(run=cmd_write)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
