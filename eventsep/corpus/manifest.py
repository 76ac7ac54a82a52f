"""The synthetic corpus as an `eventsep evaluate` manifest: mixture, clean target as reference, span, kind, class."""

from __future__ import annotations

import json
from pathlib import Path

from .sources import ALL_KINDS

# The corpus's source families as the evaluation's kinds.
KIND_OF_FAMILY = {"voice": "speech", "instrument": "music", "drums": "music", "effect": "environment",
                  "animal": "environment"}


def synthetic_item(paths: dict[str, Path]) -> dict:
    """The manifest item of one mixture written by `write_mixture`: its first prompt is the query."""
    meta = json.loads(Path(paths["meta"]).read_text())
    return {"id": Path(paths["meta"]).stem, "mixture": str(paths["mixture"]), "reference": str(paths["target"]),
            "query": meta["prompts"][0], "onset": meta["onset"], "offset": meta["offset"],
            "kind": KIND_OF_FAMILY[ALL_KINDS[meta["target_kind"]].family], "class": meta["target_label"]}


def write_corpus_manifest(folder: str | Path, written: list[dict[str, Path]]) -> Path:
    """`folder/manifest.json` listing the mixtures of `make_corpus(folder, ...)`."""
    from ..evaluate import write_manifest

    return write_manifest([synthetic_item(paths) for paths in written], Path(folder) / "manifest.json")
