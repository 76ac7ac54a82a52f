"""The 527 AudioSet classes in PANNs' output order (index, MID, display name), read from package data."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache

NUM_CLASSES = 527


@dataclass(frozen=True)
class AudioSetClass:
    index: int
    mid: str
    name: str


@lru_cache(maxsize=1)
def ontology_entries() -> tuple[dict, ...]:
    """Every entry of the AudioSet ontology (eventsep/data/ontology.json, CC BY-SA 4.0): id, name, description,
    child_ids, ..."""
    from .data import read_json

    return tuple(read_json("ontology.json"))


@lru_cache(maxsize=1)
def family_tree() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The ontology as {name: child names} and {name: parent names}."""
    entries = ontology_entries()
    name_of = {entry["id"]: entry["name"] for entry in entries}
    children = {entry["name"]: [name_of[c] for c in entry["child_ids"] if c in name_of] for entry in entries}
    parents: dict[str, list[str]] = {}
    for parent, names in children.items():
        for child in names:
            parents.setdefault(child, []).append(parent)
    return children, parents


def related(name: str, links: dict[str, list[str]]) -> set[str]:
    """`name` and every name reached from it through `links` (family_tree's children: its descendants;
    parents: its ancestors)."""
    found, todo = {name}, [name]
    while todo:
        for other in links.get(todo.pop(), []):
            if other not in found:
                found.add(other)
                todo.append(other)
    return found


@lru_cache(maxsize=1)
def classes() -> tuple[AudioSetClass, ...]:
    """All 527 classes; position i holds the class of output column i."""
    from .data import read_text

    text = read_text("audioset_classes.csv")
    rows = list(csv.DictReader(text.splitlines()))
    table = tuple(AudioSetClass(int(r["index"]), r["mid"], r["display_name"]) for r in rows)
    if len(table) != NUM_CLASSES or any(c.index != i for i, c in enumerate(table)):
        raise RuntimeError("eventsep/data/audioset_classes.csv is damaged: expected 527 ordered rows")
    return table


@lru_cache(maxsize=1)
def _by_mid() -> dict[str, AudioSetClass]:
    return {c.mid: c for c in classes()}


@lru_cache(maxsize=1)
def _by_name() -> dict[str, AudioSetClass]:
    return {c.name.lower(): c for c in classes()}


def by_mid(mid: str) -> AudioSetClass:
    try:
        return _by_mid()[mid]
    except KeyError:
        raise KeyError(f"no AudioSet class with MID {mid!r}") from None


def by_name(name: str) -> AudioSetClass:
    """Look a class up by its exact display name (case-insensitive)."""
    try:
        return _by_name()[name.strip().lower()]
    except KeyError:
        raise KeyError(f"no AudioSet class named {name!r}") from None


def check_class_names(names) -> None:
    """ValueError naming the first name that is no AudioSet display name, with the closest ones."""
    import difflib

    for name in names:
        if str(name).strip().lower() not in _by_name():
            close = difflib.get_close_matches(str(name).strip(), [c.name for c in classes()], n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
                "; names are AudioSet display names such as 'Speech' or 'Dog'"
            raise ValueError(f"no AudioSet class named {name!r}{hint}")


# The AudioSet ontology's Speech subtree (Speech and its seven children) plus Whispering (a sibling
# under Human voice): the classes the speech models (separator dfn3, detector silero) serve. Crowd
# babble ("Hubbub, speech noise, speech babble", "Chatter") is left out: to a denoiser it is noise.
SPEECH_MIDS = frozenset({
    "/m/09x0r",   # Speech
    "/m/05zppz",  # Male speech, man speaking
    "/m/02zsn",   # Female speech, woman speaking
    "/m/0ytgt",   # Child speech, kid speaking
    "/m/01h8n0",  # Conversation
    "/m/02qldy",  # Narration, monologue
    "/m/0261r1",  # Babbling
    "/m/0brhx",   # Speech synthesizer
    "/m/02rtxlg",  # Whispering
})


@lru_cache(maxsize=1)
def speech_indices() -> tuple[int, ...]:
    """Columns (PANNs order) of the speech classes."""
    return tuple(sorted(by_mid(mid).index for mid in SPEECH_MIDS))
