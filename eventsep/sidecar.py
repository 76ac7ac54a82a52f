"""An upload's sidecar `<name>.json`: its text query, an optional clean reference and stage parameters,
checked strictly so that a misspelt key fails the upload instead of being ignored."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from pydantic import ValidationError

from .config import ParamError, one_line
from .pipeline import RunOptions

# "query" is the text query; the stage parameters are RunOptions' fields, whose own `query` field
# (the query mapping's parameters) is spelt `query_params` here.
STAGE_KEYS = tuple(name for name in RunOptions.model_fields if name != "query") + ("query_params",)
KEYS = ("query", "reference") + STAGE_KEYS


def parse_sidecar(text: str | bytes | None, default_query: str) -> dict:
    """{"query", "reference", "options"} from a sidecar's text (None: no sidecar); ParamError, one line,
    for invalid JSON, a non-object, an unknown key or a bad stage parameter."""
    if text is None:
        return {"query": default_query, "reference": None, "options": {}}
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise ParamError(f"sidecar is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ParamError(f"sidecar must be a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ParamError(f"sidecar has unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"supported: {', '.join(KEYS)}")
    query = data.get("query", default_query)
    if not isinstance(query, str) or not query.strip():
        raise ParamError("sidecar 'query' must be a non-empty string")
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ParamError("sidecar 'reference' must be a file name or path (a string)")
    options = {("query" if k == "query_params" else k): v for k, v in data.items() if k in STAGE_KEYS}
    try:
        RunOptions.model_validate(options)
    except ValidationError as error:
        raise ParamError(f"sidecar stage parameters: {one_line(error)}") from None
    return {"query": query, "reference": reference, "options": options}


def resolve_reference(reference: str | None, audio_path: str) -> str | None:
    """A relative reference names a file beside the upload."""
    if reference is None or reference.startswith("/") or "://" in reference:
        return reference
    return str(PurePosixPath(audio_path).parent / reference)
