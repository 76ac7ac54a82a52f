"""Development-set manifests for `eventsep evaluate`: items checked for the fields it reads, the synthetic
corpus's items (mixture, clean target as reference, span, kind, class), written as OUT/manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

from .sources import ALL_KINDS

KINDS = ("speech", "music", "environment")
REQUIRED = ("id", "mixture", "reference", "query", "onset", "offset", "kind", "class")
# The corpus's source families as the evaluation's kinds.
KIND_OF_FAMILY = {"voice": "speech", "instrument": "music", "drums": "music", "effect": "environment",
                  "animal": "environment"}


def write_manifest(items: list[dict], path: str | Path) -> Path:
    """Check each item has the fields the evaluation reads (paths relative to the manifest's folder; onset and
    offset in seconds of the described sound; `remove: true` when the reference is the rest of the mix) and
    publish the manifest atomically (eventsep.evaluate.write_manifest)."""
    from ..evaluate import write_manifest as publish

    for item in items:
        missing = [name for name in REQUIRED if name not in item]
        if missing:
            raise ValueError(f"manifest item {item.get('id', '?')}: missing {', '.join(missing)}")
        if item["kind"] not in KINDS:
            raise ValueError(f"manifest item {item['id']}: kind must be one of {', '.join(KINDS)}")
    return publish(items, path)


def synthetic_item(paths: dict[str, Path]) -> dict:
    """The manifest item of one mixture written by `write_mixture`: its first prompt is the query."""
    meta = json.loads(Path(paths["meta"]).read_text())
    # absolute here: the manifest writer makes them relative to the manifest's folder, whatever the working folder
    return {"id": Path(paths["meta"]).stem, "mixture": str(Path(paths["mixture"]).resolve()),
            "reference": str(Path(paths["target"]).resolve()),
            "query": meta["prompts"][0], "onset": meta["onset"], "offset": meta["offset"],
            "kind": KIND_OF_FAMILY[ALL_KINDS[meta["target_kind"]].family], "class": meta["target_label"]}


def write_corpus_manifest(folder: str | Path, written: list[dict[str, Path]]) -> Path:
    """`folder/manifest.json` listing the mixtures of `make_corpus(folder, ...)`."""
    return write_manifest([synthetic_item(paths) for paths in written], Path(folder) / "manifest.json")
