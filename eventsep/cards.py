"""Model cards (eventsep/data/cards/<name>.json): what each packaged model was trained on and how it measured,
rendered for `eventsep models card NAME`, and the policy that fuses a second separator only where it helps."""

from __future__ import annotations

import json
from importlib import resources

# The corpus families (eventsep/corpus/sources.py) behind the validation families of a card.
FAMILIES = {"voice": "speech", "instrument": "music", "drums": "music", "effect": "environment",
            "animal": "environment"}
VALIDATION_FAMILIES = ("speech", "music", "environment", "all")
VALIDATION_SETS = ("synthetic", "real")
FUSION_MARGIN_DB = 3.0  # a second separator joins the default only within this of the first (issue 14)
# separator backend -> "module:function" naming the card of the model that backend builds here (None: official)
SEPARATOR_CARDS = {"audiosep": "eventsep.separators.audiosep.backend:card_name",
                   "flowsep": "eventsep.separators.flowsep.backend:card_name",
                   "dfn3": "eventsep.separators.dfn3.backend:card_name"}
FIELDS = ("name", "kind", "source_package", "licence", "trained_by", "trained_on", "intended_use",
          "limitations", "classes", "training", "validation")


def card_names() -> list[str]:
    folder = resources.files("eventsep.data") / "cards"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_card(name: str) -> dict:
    """The card of model `name`; an unknown name is a ValueError naming the known ones."""
    path = resources.files("eventsep.data") / "cards" / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"no model card named {name!r} (cards: {', '.join(card_names())})")
    return json.loads(path.read_text())


def measured(card: dict | None, dataset: str, family: str = "all") -> float | None:
    """The card's mean figure on `dataset` ("synthetic" | "real") for `family`, or None where not measured."""
    stats = (((card or {}).get("validation") or {}).get(dataset) or {}).get(family) or {}
    value = stats.get("mean")
    return None if value is None else float(value)


def fuse_second(first: dict | None, second: dict | None, margin_db: float = FUSION_MARGIN_DB) -> bool:
    """Whether the default fuses `second` with `first`, from their cards (None: official weights, no card).

    Official weights of the second are the method's own pairing: fused. A carded second joins only when its
    card shows it within `margin_db` of the first on every development set both cards measured, and on at
    least one: a model that has not shown it helps is run only when asked."""
    if second is None:
        return True
    common = [d for d in VALIDATION_SETS if measured(first, d) is not None and measured(second, d) is not None]
    return bool(common) and all(measured(second, d) >= measured(first, d) - margin_db for d in common)


def separator_card(name: str) -> dict | None:
    """The card of the model separator backend `name` would run here: None for official weights and for
    backends without cards."""
    import importlib

    if name not in SEPARATOR_CARDS:
        return None
    module, function = SEPARATOR_CARDS[name].split(":")
    card = getattr(importlib.import_module(module), function)()
    return None if card is None else load_card(card)


def default_separators(first: str = "audiosep", second: str = "flowsep") -> tuple[str, ...]:
    """The method's pair where the second's card shows it helps (or it runs official weights), else the first
    alone: with the packaged mini models, AudioSep alone."""
    return (first, second) if fuse_second(separator_card(first), separator_card(second)) else (first,)


def _number(value, unit: str = "") -> str:
    return "not measured" if value is None else f"{value:+.2f}{unit}" if unit == " dB" else f"{value}{unit}"


def _validation_lines(validation: dict) -> list[str]:
    """The validation figures per development set and family; null figures read "not measured"."""
    lines = []
    unit = validation.get("unit", "dB")
    lines.append(f"validation ({validation.get('metric', 'SI-SDRi')}, mean / median, n):")
    for dataset in VALIDATION_SETS:
        figures = validation.get(dataset)
        if not figures:
            lines.append(f"  {dataset}: not measured")
            continue
        for family in VALIDATION_FAMILIES:
            stats = figures.get(family) or {}
            mean, median, n = stats.get("mean"), stats.get("median"), stats.get("n")
            if mean is None and median is None:
                text = "not measured"
            elif unit == "dB":
                text = f"{_number(mean, ' dB')} / {_number(median, ' dB')}, n = {n}"
            else:
                text = f"{_number(mean)} / {_number(median)}, n = {n}"
            lines.append(f"  {dataset:9s} {family:11s} {text}")
            extra = {k: v for k, v in stats.items() if k not in ("mean", "median", "n")}
            for key, value in extra.items():
                lines.append(f"  {'':9s} {'':11s} {key.replace('_', ' ')}: {value}")
        if figures.get("set"):
            lines.append(f"  {dataset} set: {figures['set']}")
    for key, value in validation.items():  # anything else the card says about its figures, e.g. a note
        if key not in ("metric", "unit", *VALIDATION_SETS):
            lines.append(f"  {key}: {value}")
    return lines


def render(card: dict) -> str:
    """The card as text: the fixed fields in order, then any others; null figures read "not measured"."""
    lines = [f"model card: {card['name']}"]
    for key in ("kind", "source_package", "licence", "trained_by", "trained_on", "intended_use", "limitations"):
        lines.append(f"{key.replace('_', ' ')}: {card.get(key) or 'not stated'}")
    classes = card.get("classes") or {}
    if not isinstance(classes, dict):  # a pretrained model's card lists the classes it serves, uncounted
        classes = dict.fromkeys(classes)
    counted = [n for n in classes.values() if n is not None]
    lines.append(f"classes ({len(classes)}" + (f", {sum(counted)} training clips" if counted else "") + "):")
    for name, count in classes.items():
        lines.append(f"  {name}: {'clip count not known' if count is None else f'{count} clips'}")
    lines.append("training:")
    for key, value in (card.get("training") or {}).items():
        lines.append(f"  {key.replace('_', ' ')}: {'not measured' if value is None else value}")
    validation = card.get("validation") or {}
    if isinstance(validation, dict):
        lines += _validation_lines(validation)
    else:  # a pretrained model's card may state its figures in words
        lines.append(f"validation: {validation}")
    for key, value in card.items():
        if key not in FIELDS:
            lines.append(f"{key.replace('_', ' ')}: {value}")
    return "\n".join(lines)
