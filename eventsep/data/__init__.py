"""The package's data files (class lists, ontology, aliases, labels, development-set plans, model cards) and how
to read them."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def read_text(name: str) -> str:
    """The text of data file `name` (a path inside eventsep/data)."""
    return resources.files(__name__).joinpath(name).read_text("utf-8")


def read_json(name: str) -> Any:
    return json.loads(read_text(name))
