"""When a separator's answer cannot be trusted (near-silent while the sound should be there, or the query's class
outside its model card) and what is answered instead: by default the mixture gated by the detector (issues 12, 14)."""

from __future__ import annotations

from typing import Literal

import numpy as np

QUIET_DB = 20.0  # an answer this far below the mixture counts as near-silent
# ... unless in some second it comes within this many dB of the mixture: then it is a quiet sound that is loud
# where it happens (a horse between gunshots), not silence. Near-silent failures on the development sets reach
# -13 dB at best in any second, the horse -0.1 dB (docs/trust.md, session 12).
LOUD_SECOND_DB = 10.0
# A class a card lists with fewer training clips than this does not count as trained on: a separator that heard a
# sound twice has not learnt it (fixed before any figure was measured with it, not tuned).
CARD_MIN_CLIPS = 10
SEPARATOR = "separator"
GATED = "gated mixture"
MIXTURE = "mixture"
# "gated": keep queries are answered by the gated mixture, removals keep the separator's answer (measured in
# docs/trust.md: gating a removal silences the rest of the mix wherever the sound is detected, -12 dB on the one
# real item where it fired); "gated-all": removals too (the mixture gated by 1 - gain); "off": never.
Fallback = Literal["gated", "gated-all", "off"]


def level_db(estimate: np.ndarray, mixture: np.ndarray) -> float:
    """Energy of `estimate` relative to `mixture`, in dB (-inf for digital silence)."""
    from .audio import energy as sum_of_squares

    return energy_level_db(sum_of_squares(estimate), sum_of_squares(mixture))


def second_energies(samples: np.ndarray, rate: int, start: int = 0) -> tuple[int, np.ndarray]:
    """Sums of squares of `samples` (which begin at sample `start` of the recording) per second of the recording:
    (the index of the first second touched, the sums); a second the samples only partly cover gets their part."""
    from .audio import energy

    first = start // rate
    edges = np.arange((first + 1) * rate, start + len(samples), rate) - start
    return first, np.array([energy(piece) for piece in np.split(np.asarray(samples), edges)])


def loudest_second_db(described_seconds: np.ndarray, mixture_seconds: np.ndarray) -> float:
    """The estimate's level relative to the mixture in the second where it is highest (dB), from the two's sums of
    squares per second (`second_energies`); the mixture's level in a second is read no lower than QUIET_DB under
    its mean second, so that a near-silent stretch of the mixture cannot make a faint answer look loud."""
    described, mixture = np.asarray(described_seconds, np.float64), np.asarray(mixture_seconds, np.float64)
    if not len(mixture) or mixture.sum() <= 0.0:
        return 0.0
    floor = mixture.mean() * 10 ** (-QUIET_DB / 10)
    ratio = float(np.max(described / np.maximum(mixture, floor)))
    return float("-inf") if ratio <= 0.0 else 10.0 * np.log10(ratio)


def energy_level_db(energy: float, mixture_energy: float) -> float:
    """`level_db` from the two energies (summed over a long recording's blocks, eventsep.stream)."""
    if mixture_energy <= 0.0:
        return 0.0
    return float("-inf") if energy <= 0.0 else 10.0 * np.log10(energy / mixture_energy)


def kin(name: str) -> set[str]:
    """`name` with its ancestors and descendants in the ontology: a card that lists "Male speech" covers a query
    for "Speech", and one that lists "Dog" a query for "Bark"."""
    from .ontology import family_tree, related

    children, parents = family_tree()
    return related(name, children) | related(name, parents)


def card_classes(separator: str) -> set[str] | None:
    """The classes the model card of `separator` lists as trained on, with at least CARD_MIN_CLIPS training clips
    where it counts them; None where it has no card (official weights)."""
    from .cards import separator_card

    card = separator_card(separator)
    if card is None or not card.get("classes"):
        return None
    classes = card["classes"]
    if isinstance(classes, dict):  # {name: training clips}; None where the card gives no count
        return {name for name, clips in classes.items() if clips is None or clips >= CARD_MIN_CLIPS}
    return set(classes)


def distrust(described: np.ndarray, mixture: np.ndarray, followed: list[dict], separators: list[str],
             detected: bool, remove: bool, rate: int) -> tuple[str | None, bool]:
    """(why the separators' estimate of the described sound cannot be trusted, or None; whether the fallback
    replaces it).

    `followed`: the classes the mask follows (the query's best class first); `detected`: whether the detector
    found an event of them. The estimate is near-silent (QUIET_DB below the mixture) while the detector finds
    the sound or a keep query asks for it: replaced. Or the query's best class (with its ancestors and
    descendants in the ontology) is outside every separator's card: announced only, the answer stays the
    separator's (docs/trust.md: since the mini AudioSep has heard recordings, replacing those answers by the
    gated mixture lost 3 to 17 dB on most such real items). An estimate that comes within LOUD_SECOND_DB of the
    mixture in some second (`rate` samples) is not near-silent, however quiet over the whole."""
    level = level_db(described, mixture)
    loudest = None
    if level < -QUIET_DB:  # the per-second sums are only needed then
        loudest = loudest_second_db(second_energies(described, rate)[1], second_energies(mixture, rate)[1])
    return judge(level, followed, separators, detected, remove, loudest)


def judge(level: float, followed: list[dict], separators: list[str], detected: bool, remove: bool,
          loudest: float | None = None) -> tuple[str | None, bool]:
    """`distrust` from the estimate's `level` relative to the mixture (dB; summed over a long recording's blocks)
    and its level in its loudest second (`loudest_second_db`; None: not read)."""
    name = followed[0]["name"] if followed else "the query"
    near_silent = level < -QUIET_DB and (loudest is None or loudest < -LOUD_SECOND_DB)
    if near_silent and (detected or not remove):
        why = "the detector finds it" if detected else "the query asks for it"
        return f"the separator's answer for {name!r} is {-level:.0f} dB below the mixture while {why}", True
    if followed:
        cards = {s: card_classes(s) for s in separators}
        if cards and all(classes is not None and not kin(name) & classes for classes in cards.values()):
            return (f"{name!r} is outside the classes the separator was trained on "
                    f"(model card of {', '.join(cards)})"), False
    return None, False


def detector_gate(gain: np.ndarray, floor: float) -> np.ndarray:
    """The mask's gain without its floor (gain = floor + (1 - floor)·gate): the detector's own gate, 0 where it
    finds nothing. A floor of 1 (no gating) leaves the gain as it is."""
    if floor >= 1.0:
        return gain
    return np.clip((gain - floor) / (1.0 - floor), 0.0, 1.0).astype(np.float32)


def choose(untrusted: str | None, fallback: str, remove: bool, mixture: np.ndarray, mask_gain: np.ndarray,
           floor: float) -> tuple[str, np.ndarray | None]:
    """Which answer replaces an untrusted separator's (SEPARATOR: none, with None) and the described sound it
    stands for: GATED, the mixture gated by the detector's gate (`detector_gate(mask_gain, floor)`; a removal's
    answer is then the mixture gated by 1 - gate); MIXTURE where that gated answer would say nothing (a keep answer
    QUIET_DB below the mixture, a removal where the gate is open everywhere and nothing would remain): the mixture
    kept whole (a removal removes nothing). The gate, a whole-length array, is only made when it is used."""
    if not replaces(untrusted, fallback, remove):
        return SEPARATOR, None
    from .mask import apply_gain

    gain = detector_gate(mask_gain, floor)
    gated = apply_gain(mixture, gain)
    answer = fallback_answer(remove, level_db(gated, mixture), float(np.min(gain)))
    return answer, fallback_described(answer, remove, mixture, gated)


def replaces(untrusted: str | None, fallback: str, remove: bool) -> bool:
    """Whether the fallback replaces an untrusted answer: keep queries unless "off", removals only with "gated-all"."""
    return bool(untrusted) and fallback != "off" and (not remove or fallback == "gated-all")


def fallback_answer(remove: bool, gated_level: float, gate_min: float) -> str:
    """GATED, or MIXTURE where the gated answer would say nothing: a keep answer whose gated mixture is QUIET_DB
    below the mixture (`gated_level`, dB), a removal whose gate is open everywhere (`gate_min` 1)."""
    # a keep answer this quiet says nothing; a quiet removal can be right (a loud sound removed), an empty one not
    return MIXTURE if ((gate_min >= 1.0) if remove else gated_level < -QUIET_DB) else GATED


def fallback_described(answer: str, remove: bool, mixture: np.ndarray, gated: np.ndarray) -> np.ndarray:
    """The described sound the fallback's `answer` stands for, over `mixture` (or a stretch of it): the gated
    mixture, or for MIXTURE the whole mixture (a keep) or nothing (a removal removes nothing)."""
    if answer == MIXTURE:
        return np.zeros_like(mixture) if remove else mixture
    return gated


def fallback_warning(reason: str, answer: str, fallback: str, replaceable: bool = True) -> str:
    """The one warning line of an untrusted answer, saying which answer was given."""
    if not replaceable:
        return f"{reason}: answering with the separator's output, which may miss or mistake the sound"
    if answer == GATED:
        return f"{reason}: answering with the mixture gated by the detector instead"
    if answer == MIXTURE:
        return f"{reason}: answering with the mixture itself (the detector's gate would leave almost nothing)"
    if fallback == "off":
        return f"{reason}: answering with the separator's output anyway (fallback off)"
    return (f"{reason}: answering with the separator's output anyway (a removal is not answered by the detector's "
            "gate, which would silence the rest of the mix wherever the sound is detected)")
