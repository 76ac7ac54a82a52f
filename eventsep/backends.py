"""The registry of named model backends: text encoders, SED models and separators.

A stage asks for a backend by name ("minilm", "yamnet", "audiosep", ...); the registry builds it
once, lazily. The built-in backends import their modules only when first asked for. Tests register
their stand-ins here from `tests/`; nothing in the command line registers any.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, Callable, Protocol

import numpy as np

from .config import SeparatorParams

KINDS = ("text_encoder", "sed", "separator")


class BackendUnavailable(RuntimeError):
    """A backend cannot be built here (weights missing, package absent); the message says what to do."""


class Separator(Protocol):
    """Separates the sound `query` describes. Works at its own `sample_rate`; `identity()` is the
    sha256 of its weights (cheap after the first call). `param_fields` names the SeparatorParams
    fields that change its output, so that only those are part of its cache key. `progress` is
    optional: a backend that takes it calls it with the fraction done (0 to 1) as it goes."""

    name: str
    sample_rate: int
    param_fields: tuple[str, ...]

    def identity(self) -> str: ...

    def separate(self, samples: np.ndarray, query: str, params: SeparatorParams,
                 progress: Callable[[float], None] | None = None) -> np.ndarray: ...


# name -> "module:callable" for the backends that ship with EventSep.
_BUILTIN: dict[str, dict[str, str]] = {
    "text_encoder": {"minilm": "eventsep.query:minilm_encoder", "clap": "eventsep.query:clap_encoder"},
    "sed": {"yamnet": "eventsep.sed:yamnet_model", "yamnet-raw": "eventsep.sed:yamnet_raw_model",
            "panns": "eventsep.sed:panns_model", "silero": "eventsep.sed.silero.vad:silero_model"},
    "separator": {"audiosep": "eventsep.separators.audiosep.backend:audiosep_backend",
                  "flowsep": "eventsep.separators.flowsep.backend:flowsep_backend",
                  "dfn3": "eventsep.separators.dfn3.backend:dfn3_backend"},
}

_factories: dict[str, dict[str, Callable[[], Any]]] = {kind: {} for kind in KINDS}
_instances: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown backend kind {kind!r}; kinds are {', '.join(KINDS)}")


def register(kind: str, name: str, factory: Callable[[], Any]) -> None:
    """Make `name` available for `kind`; a later registration under the same name replaces it."""
    _check_kind(kind)
    with _lock:
        _factories[kind][name] = factory
        _instances.pop((kind, name), None)


def unregister(kind: str, name: str) -> None:
    _check_kind(kind)
    with _lock:
        _factories[kind].pop(name, None)
        _instances.pop((kind, name), None)


def names(kind: str) -> list[str]:
    _check_kind(kind)
    return sorted(set(_BUILTIN[kind]) | set(_factories[kind]))


def _factory(kind: str, name: str) -> Callable[[], Any]:
    if name in _factories[kind]:
        return _factories[kind][name]
    if name in _BUILTIN[kind]:
        module_name, attribute = _BUILTIN[kind][name].split(":")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise BackendUnavailable(f"{kind} {name!r} is not installed here ({error})") from None
    known = ", ".join(names(kind)) or "none"
    raise BackendUnavailable(f"no {kind.replace('_', ' ')} named {name!r} (known: {known})")


def get(kind: str, name: str) -> Any:
    """The backend instance, built on first use; raises BackendUnavailable with the reason."""
    _check_kind(kind)
    with _lock:
        if (kind, name) in _instances:
            return _instances[(kind, name)]
    instance = _factory(kind, name)()
    with _lock:
        return _instances.setdefault((kind, name), instance)


def available(kind: str, wanted: list[str] | tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """Split `wanted` names into those that can be built and {name: reason} for those that cannot."""
    usable, reasons = [], {}
    for name in wanted:
        try:
            get(kind, name)
            usable.append(name)
        except BackendUnavailable as error:
            reasons[name] = str(error)
    return usable, reasons
