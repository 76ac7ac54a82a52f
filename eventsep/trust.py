"""When a separator's answer cannot be trusted (near-silent while the sound should be there, or the query's class
outside its model card) and what is answered instead: by default the mixture gated by the detector (issues 12, 14)."""

from __future__ import annotations

from typing import Literal

import numpy as np

QUIET_DB = 20.0  # an answer this far below the mixture counts as near-silent
SEPARATOR = "separator"
GATED = "gated mixture"
Fallback = Literal["gated", "off"]


def level_db(estimate: np.ndarray, mixture: np.ndarray) -> float:
    """Energy of `estimate` relative to `mixture`, in dB (-inf for digital silence)."""
    mixture_energy = float(np.sum(np.square(mixture, dtype=np.float64)))
    energy = float(np.sum(np.square(estimate, dtype=np.float64)))
    if mixture_energy <= 0.0:
        return 0.0
    return float("-inf") if energy <= 0.0 else 10.0 * np.log10(energy / mixture_energy)


def card_classes(separator: str) -> set[str] | None:
    """The classes the model card of `separator` lists as trained on; None where it has no card (official weights)."""
    from .cards import separator_card

    card = separator_card(separator)
    if card is None or not card.get("classes"):
        return None
    return set(card["classes"])


def distrust(described: np.ndarray, mixture: np.ndarray, followed: list[dict], separators: list[str],
             detected: bool, remove: bool) -> str | None:
    """Why the separators' estimate of the described sound cannot be trusted, or None.

    `followed`: the classes the mask follows (the query's best class first); `detected`: whether the detector
    found an event of them. The estimate is near-silent (QUIET_DB below the mixture) while the detector finds
    the sound or a keep query asks for it; or the query's best class is outside every separator's card."""
    name = followed[0]["name"] if followed else "the query"
    level = level_db(described, mixture)
    if level < -QUIET_DB and (detected or not remove):
        why = "the detector finds it" if detected else "the query asks for it"
        return f"the separator's answer for {name!r} is {-level:.0f} dB below the mixture while {why}"
    if followed:
        cards = {s: card_classes(s) for s in separators}
        if cards and all(classes is not None and name not in classes for classes in cards.values()):
            return (f"{name!r} is outside the classes the separator was trained on "
                    f"(model card of {', '.join(cards)})")
    return None


def fallback_warning(reason: str, answer: str) -> str:
    """The one warning line of an untrusted answer, saying which answer was given."""
    if answer == GATED:
        return f"{reason}: answering with the mixture gated by the detector instead"
    return f"{reason}: answering with the separator's output anyway (fallback off)"
