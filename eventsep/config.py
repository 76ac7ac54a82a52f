"""Parameters of every stage as pydantic models: defaults, validation and readable one-line errors.

A stage's parameter model, serialised canonically (``eventsep.hashing.params_key``), is part of its
cache key, so only fields that change the stage's output belong here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ParamError(ValueError):
    """A parameter is out of range or malformed; the message is one readable line."""


class StageParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_SPAN_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*[-–:]\s*(\d+(?:\.\d*)?|\.\d+)\s*$")


def parse_span(text: str) -> tuple[float, float]:
    """Parse "2.0-4.5" (also "2–4.5", "2:4.5") into (start, end) seconds."""
    match = _SPAN_RE.match(str(text))
    if not match:
        raise ParamError(f"span {text!r} is not START-END in seconds, e.g. 2.0-4.5")
    start, end = float(match.group(1)), float(match.group(2))
    if end <= start:
        raise ParamError(f"span {text!r} ends before it starts")
    return start, end


MaskMode = Literal["auto", "hard", "soft", "off"]
SeparatorText = Literal["auto", "words", "class", "class+words"]  # SeparatorParams.text


def gain_applied(mask: dict) -> bool:
    """Whether a mask setting (MaskParams' fields as a dict, e.g. a Result's options["mask"]) shapes the answer:
    not where its gain is only computed (mask_at "none": events and the fallback's gate)."""
    return mask.get("mask_at", "output") != "none"


class MaskParams(StageParams):
    """How SED probabilities (and user spans) become a gain over time."""

    mode: MaskMode = Field("auto", description='"auto": chosen by the query\'s family once it is mapped '
                           '(eventsep.pipeline.MASK_BY_FAMILY)')
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="θ: probability at which the gain is 1")
    low_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="hysteresis release level; default θ/2")
    smoothing: Literal["median", "hysteresis", "none"] = "median"
    median_seconds: float = Field(0.25, ge=0.0, le=10.0)
    min_event_seconds: float = Field(0.1, ge=0.0, le=60.0)
    fade_ms: float = Field(10.0, ge=5.0, le=1000.0, description="gain ramps; at least 5 ms")
    floor: float = Field(0.0, ge=0.0, le=1.0, description="gain outside events")
    min_peak: float = Field(0.1, ge=0.0, le=1.0,
                            description="if SED never reaches this for the classes, do not gate on it")
    spans: tuple[tuple[float, float], ...] = ()
    spans_mode: Literal["add", "replace"] = "add"
    mask_at: Literal["output", "input", "none"] = Field(
        "output", description='where the gain is applied: to the answer ("output"), to the separators\' input, or '
        '"none": events found and the gain kept (for the report and the fallback), the answer left as separated')
    classes: tuple[str, ...] = Field((), description="AudioSet names to follow instead of the query's")
    class_margin: float = Field(0.05, ge=0.0, le=2.0,
                                description="also follow classes scoring within this of the best")

    @field_validator("spans", mode="before")
    @classmethod
    def _parse_spans(cls, value):
        if value is None:
            return ()
        if isinstance(value, str):
            value = [part for part in re.split(r"[,;\s]+", value) if part]
        spans = []
        for item in value:
            if isinstance(item, str):
                spans.append(parse_span(item))
            else:
                start, end = (float(v) for v in item)
                if start < 0 or end <= start:
                    raise ParamError(f"span {start:g}-{end:g} must have 0 <= start < end")
                spans.append((start, end))
        return tuple(sorted(spans))

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value):
        from .ontology import check_class_names

        check_class_names(value)
        return value

    @model_validator(mode="after")
    def _check_levels(self):
        if self.low_threshold is not None and self.low_threshold > self.threshold:
            raise ParamError(
                f"low_threshold {self.low_threshold} must not exceed threshold {self.threshold}")
        return self

    def check_duration(self, duration: float) -> None:
        """Raise ParamError when a span lies outside a recording of `duration` seconds."""
        for start, end in self.spans:
            if start >= duration or end > duration + 1e-6:
                raise ParamError(
                    f"span {start:g}-{end:g} s lies outside the recording ({duration:.2f} s)")


FusionMode = Literal["rate", "band", "band-reversed", "progressive", "progressive-reversed"]


class FusionParams(StageParams):
    """How the first (AudioSep) and second (FlowSep) estimates are combined; the first gives the phase."""

    mode: FusionMode = "band"
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the first estimate in `rate`")
    split_hz: float = Field(4000.0, gt=0.0, description="crossover of `band` modes")
    max_lag_ms: float = Field(50.0, ge=0.0, le=500.0)
    rms_match: bool = True
    n_fft: int = Field(2048, ge=64, le=16384)
    hop: int = Field(512, ge=16, le=8192)

    @model_validator(mode="after")
    def _check_hop(self):
        if self.hop > self.n_fft:
            raise ParamError(f"hop {self.hop} must not exceed n_fft {self.n_fft}")
        return self

    def effective_split(self, sample_rate: int) -> float:
        """The crossover at `sample_rate`: `split_hz`, or infinity when that is not below the Nyquist frequency
        (the whole band of an 8 kHz recording lies below the default 4000 Hz)."""
        return self.split_hz if self.split_hz < sample_rate / 2 else float("inf")

    def rate_note(self, sample_rate: int) -> str | None:
        """One line when a `band` mode's split is moved by the recording's rate (see effective_split), else None."""
        if not self.mode.startswith("band") or self.effective_split(sample_rate) == self.split_hz:
            return None
        alone = "first separator's (AudioSep's)" if self.mode == "band" else "second separator's (FlowSep's)"
        return (f"split_hz {self.split_hz:g} Hz is not below the Nyquist frequency of this {sample_rate} Hz "
                f"recording ({sample_rate / 2:g} Hz): `{self.mode}` fusion uses the {alone} estimate alone")


class QueryParams(StageParams):
    top_k: int = Field(3, ge=1, le=20)
    min_score: float = Field(0.0, ge=-1.0, le=1.0)


class SedParams(StageParams):
    chunk_seconds: float = Field(60.0, gt=1.0, le=3600.0)


class SeparatorParams(StageParams):
    chunk_seconds: float = Field(10.0, gt=0.5, le=600.0)
    overlap_seconds: float = Field(1.0, ge=0.0, le=30.0)
    steps: int = Field(20, ge=1, le=1000, description="ODE steps (flow separators)")
    seed: int = 0
    attenuation_limit_db: float = Field(
        100.0, ge=1.0, le=100.0,
        description="dfn3: most the denoiser may lower the noise, in dB; 100 = no limit (DeepFilterNet's own "
                    "default). Lower keeps some background under the speech")
    text: SeparatorText = Field(
        "auto", description="what a text-conditioned separator is asked for: auto, the query's words with a class "
                            "the mini AudioSep knows by another name put its way (pipeline.SEPARATOR_TEXT); words, the "
                            "query's words; class, the best class's AudioSet name; class+words, both (docs/audiosep.md)")

    @model_validator(mode="after")
    def _check_overlap(self):
        if self.overlap_seconds >= self.chunk_seconds:
            raise ParamError("overlap_seconds must be shorter than chunk_seconds")
        return self


def one_line(error: Exception) -> str:
    """A pydantic ValidationError (or any error) as one readable line."""
    if isinstance(error, ValidationError):
        parts = []
        for item in error.errors():
            where = ".".join(str(p) for p in item.get("loc", ())) or "value"
            message = item.get("msg", "invalid").removeprefix("Value error, ")
            parts.append(f"{where}: {message}")
        return f"invalid {error.title}: " + "; ".join(parts)
    return str(error).splitlines()[0] if str(error) else type(error).__name__
