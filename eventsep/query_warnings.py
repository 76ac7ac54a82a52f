"""Warnings about what a query was mapped to: a best class match too weak to trust, and a query that is
not English (the text encoders are English-only). One line each, for stderr and the report."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

# Below this score the best class is flagged as a weak match. Measured on tests/data/query_prompts.json
# (python scripts/measure_weak_match.py; docs/query.md, "Weak matches"): picked on the dev split.
WEAK_MATCH = 0.7
# Debian's wamerican (scripts/setup.sh); without it the language check is skipped.
WORD_LIST = Path("/usr/share/dict/american-english")
# A query is taken for English when at least this share of its words are English words or label words.
ENGLISH_SHARE = 0.5
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Lower-case words of the system's English word list (empty when it is not installed)."""
    try:
        text = WORD_LIST.read_text("utf-8", errors="ignore")
    except OSError:
        return frozenset()
    return frozenset(word.lower() for word in text.split())


def looks_english(query: str) -> bool:
    """True unless most words of `query` are neither English words nor words of the class labels and aliases.
    A one-word query counts after the mapper's spelling correction ("saxaphone"); longer ones as typed, so
    that a foreign word corrected to its English cousin ("guitarra" -> "guitar") does not count. True when
    no word list is installed."""
    from .query import _label_words, correct_spelling

    vocabulary = english_words()
    words = _WORD.findall(query.lower())
    if len(words) == 1:
        words = _WORD.findall(correct_spelling(query).lower()) or words
    if not vocabulary or not words:
        return True
    labels = _label_words()
    known = sum(word in vocabulary or word in labels or word.removesuffix("'s") in vocabulary for word in words)
    return known / len(words) >= ENGLISH_SHARE


def query_warnings(mapping: dict) -> list[str]:
    """The warning lines for a query mapping (the map_query stage's metadata: query, classes with scores)."""
    lines = []
    query = mapping.get("query", "")
    if not looks_english(query):
        lines.append(f"the query {query.strip()!r} does not look like English: the text encoder is English-only, "
                     "so the classes it maps to may be unrelated; write the query in English")
    classes = mapping.get("classes") or []
    if classes and classes[0]["score"] < WEAK_MATCH:
        best = classes[0]
        lines.append(f"no sound class fits the query well: the best, {best['name']!r}, scores {best['score']:.2f} "
                     f"(a weak match is below {WEAK_MATCH:g}); describe the sound differently or name classes "
                     "with --classes")
    return lines
