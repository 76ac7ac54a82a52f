"""Which text should the separator be asked for? SI-SDRi of the mini AudioSep (mask off) per candidate
text, for keep and removal queries, on 6 s two-source corpus mixtures at 16 kHz.

    PYTHONPATH=. python scripts/eval_target_text.py dev|held-out

dev: seeds 200000-200011 (random pairs) and 210000-210007 (a voice as target, queried as "speech");
held-out: seeds 300000-300011 and 310000-310007. Neither range was used in training (0-1999) or
in the validation of the committed weights (100000-100019).
"""
import os
import sys
import tempfile

import numpy as np
import torch

os.environ.setdefault("EVENTSEP_CACHE", tempfile.mkdtemp(prefix="eventsep-eval-"))
from eventsep import backends  # noqa: E402
from eventsep.config import QueryParams, SeparatorParams  # noqa: E402
from eventsep.corpus import make_mixture  # noqa: E402
from eventsep.corpus.sources import VOICES  # noqa: E402
from eventsep.metrics import si_sdr_improvement  # noqa: E402
from eventsep.pipeline import target_text  # noqa: E402
from eventsep.query import map_query  # noqa: E402
from eventsep.store import StageResult  # noqa: E402



def _words(m):
    return m["target_text"] or m["query"]


def _class(m):
    return m["classes"][0]["name"] if m["classes"] else _words(m)


def _both(first, second):
    return first if first.lower() == second.lower() else f"{first}, {second}"


def _speech_as(text):
    """The user's words, but `text` for a query whose best class is Speech (pipeline.SEPARATOR_TEXT's form)."""
    return lambda m: text if m["classes"] and m["classes"][0]["name"] == "Speech" else _words(m)


TEXT_CHOICES = {
    "pipeline (words; Speech as 'a person speaking')": lambda m: target_text(StageResult("map_query", "", meta=m)),
    "words": _words,
    "words; Speech as 'speech, a person speaking'": _speech_as("speech, a person speaking"),
    "words; Speech as 'a person speaking, speech'": _speech_as("a person speaking, speech"),
    "class": _class,
    "class+words": lambda m: _both(_class(m), _words(m)),
    "keep the words": lambda m: f"keep the {_words(m)}",
    "keep the class+words": lambda m: "keep the " + _both(_class(m), _words(m)),
}
torch.set_num_threads(1)  # a shared 2-core machine: one thread each ran faster
RANGES = {"dev": (200_000, 210_000), "held-out": (300_000, 310_000)}
first, voiced = RANGES[sys.argv[1] if len(sys.argv) > 1 else "dev"]
encoder = backends.get("text_encoder", "minilm")
separator = backends.get("separator", "audiosep")
params = SeparatorParams()


def cases():
    """(mixture, query, reference) triples: keep the target, remove the interferer, and for voices "speech"."""
    for seed in range(first, first + 12):
        m = make_mixture(seed, sample_rate=16000, seconds=6.0)
        yield "keep", m, m.prompts[0], m.target
        yield "remove", m, m.removal_prompts[0], m.target
    for seed in range(voiced, voiced + 8):
        voice = VOICES[seed % 2].name
        m = make_mixture(seed, sample_rate=16000, seconds=6.0, target=voice)
        yield "keep speech", m, "keep the speech", m.target
        yield "remove speech", m, "remove the speech", m.interferer
        yield "remove voice word", m, f"remove the {voice.split()[0]}", m.interferer


scores: dict[tuple[str, str], list[float]] = {}
for group, m, query, reference in cases():
    mapping = {"query": query, **map_query(query, encoder, QueryParams()).to_dict()}
    cache: dict[str, np.ndarray] = {}
    row = []
    for name, make in TEXT_CHOICES.items():
        text = make(mapping)
        if text not in cache:
            cache[text] = separator.separate(m.mixture, text, params)
        described = cache[text]
        answer = m.mixture - described if mapping["remove"] else described
        value = float(si_sdr_improvement(answer, reference, m.mixture))
        scores.setdefault((group, name), []).append(value)
        row.append(f"{name}={value:+.1f}")
    print(m.seed, f"{m.target_kind} | {m.interferer_kind}", repr(query), " ".join(row), flush=True)

groups = list(dict.fromkeys(g for g, _ in scores))
print(f"\n| text | {' | '.join(groups)} | all |\n|---|" + "---:|" * (len(groups) + 1))
for name in TEXT_CHOICES:
    cells, everything = [], []
    for group in groups:
        values = np.array(scores[(group, name)])
        everything += list(values)
        cells.append(f"{values.mean():+.2f} / {np.median(values):+.2f}")
    cells.append(f"{np.mean(everything):+.2f} / {np.median(everything):+.2f}")
    print(f"| {name} | " + " | ".join(cells) + " |")
