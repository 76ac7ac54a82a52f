"""The evaluation manifest of a development set: `{"items": [...]}` in OUT/manifest.json, one item per mixture."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text

KINDS = ("speech", "music", "environment")
REQUIRED = ("id", "mixture", "reference", "query", "onset", "offset", "kind", "class")


def write_manifest(items: list[dict], path: str | Path) -> Path:
    """Check each item has the fields the evaluation reads (paths relative to the manifest's folder; onset and
    offset in seconds of the described sound; `remove: true` when the reference is the rest of the mix) and
    publish the manifest atomically."""
    for item in items:
        missing = [name for name in REQUIRED if name not in item]
        if missing:
            raise ValueError(f"manifest item {item.get('id', '?')}: missing {', '.join(missing)}")
        if item["kind"] not in KINDS:
            raise ValueError(f"manifest item {item['id']}: kind must be one of {', '.join(KINDS)}")
    return write_text(path, json.dumps({"items": items}, indent=1, ensure_ascii=False) + "\n")
