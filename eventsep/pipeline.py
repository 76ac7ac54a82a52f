"""The stages of EventSep and their order: each stage is a pure function plus the content key of its output.

`run` walks the DAG of DESIGN.md through a *runner*, which decides how a stage is executed and
cached: `LocalRunner` (plain Python, the result store, a file lock) here, a Prefect runner in
`tasks/`. Both write the same files under the same keys, so either can read what the other computed.
"""

from __future__ import annotations

import inspect
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol

import numpy as np
from pydantic import Field

from . import backends
from .audio import Audio, resample
from .cards import default_separators
from .config import FusionMode, FusionParams, MaskMode, MaskParams, QueryParams, SedParams, SeparatorParams, StageParams
from .hashing import stage_key
from .locks import OwnedFileLockManager
from .store import ResultStore, StageResult
from .trust import GATED, SEPARATOR, Fallback

# Bump a stage's version when its code changes what it computes: its results and everything
# downstream of it are then recomputed, and nothing upstream is.
VERSIONS = {"map_query": 2, "sed": 2, "mask": 2, "masked_input": 1, "separate": 3, "fuse": 2}


class NoSeparatorAvailable(RuntimeError):
    """No separator backend can run here; `events` holds what SED and the mask found anyway."""

    def __init__(self, reasons: dict[str, str], events: list[dict], also: str | None = None):
        detail = "; ".join(f"{name}: {why}" for name, why in reasons.items()) or "none registered"
        super().__init__(f"no separator is available ({detail})" + (f"; and {also}" if also else ""))
        self.reasons = reasons
        self.events = events


AUTO = "auto"

# What "auto" becomes for each family of query (the family of its best mapped class). The first
# separator gives the phase; the second, if any, is fused with it. docs/speech.md has the measurements
# behind the speech row: DeepFilterNet3 alone beat its fusion with the mini AudioSep.
# "other" is AudioSep, fused with FlowSep only where FlowSep's model card shows it within 3 dB of AudioSep
# (eventsep/cards.py: with the packaged mini models, AudioSep alone).
SEPARATORS_BY_FAMILY: dict[str, Callable[[], tuple[str, ...]]] = {
    "speech": lambda: ("dfn3",), "other": default_separators}
SED_BY_FAMILY: dict[str, str] = {"speech": "silero", "other": "yamnet"}
# What mask "auto" becomes (docs/mask.md): no mask setting earned its place on the development sets, so the
# detector finds the events and the answer is left as separated. Others: the soft gain (floor 0) is computed
# but not applied (mask_at "none"; it stays the fallback's gate); with the mini AudioSep at step 30775 every
# floored soft mask lost more than 1 dB on some development item (floor 0.5: -6.8 dB) for at most +0.08 dB
# mean. Speech: the gain is held at 1 (floor 1.0; docs/speech.md: no mask gained over DeepFilterNet3).
MASK_BY_FAMILY: dict[str, dict[str, Any]] = {"speech": {"mode": "soft", "floor": 1.0},
                                             "other": {"mode": "soft", "floor": 0.0, "mask_at": "none"}}


class RunOptions(StageParams):
    """Everything a run needs besides the audio and the query: backend names and stage parameters.
    `sed` and `separators` "auto" are chosen by the query's family once it is mapped (`resolve`)."""

    encoder: str = "minilm"
    sed: str = AUTO
    separators: tuple[str, ...] = (AUTO,)
    query: QueryParams = Field(default_factory=QueryParams)
    sed_params: SedParams = Field(default_factory=SedParams)
    separator: SeparatorParams = Field(default_factory=SeparatorParams)
    mask: MaskParams = Field(default_factory=MaskParams)
    fusion: FusionParams = Field(default_factory=FusionParams)
    # What is answered when the separators cannot be trusted (eventsep/trust.py): "gated", the mixture gated
    # by the mask for keep queries; "gated-all", for removals too; "off", their output anyway. A warning says
    # which, either way. docs/trust.md.
    fallback: Fallback = "gated"


# Progress callbacks: `progress(stage, fraction)` with fraction None when a stage starts, then 0..1 as
# a long stage (SED, each separator) gets through the recording. Stage inputs may carry one; keys
# ignore it.
Progress = Callable[[str, "float | None"], None]


def _with_progress(method: Callable, *args: Any, progress: Callable[[float], None] | None) -> Any:
    """Call a backend method with `progress` when it takes one (backends may leave it out)."""
    if progress is not None and "progress" in inspect.signature(method).parameters:
        return method(*args, progress=progress)
    return method(*args)


# ---------------------------------------------------------------- choosing backends by the query

def query_family(mapping: StageResult, params: MaskParams) -> str:
    """"speech" when the first class the mask follows is speech (eventsep.ontology.SPEECH_MIDS), else "other"."""
    from .ontology import speech_indices

    classes = selected_classes(mapping, params)
    return "speech" if classes and classes[0]["index"] in speech_indices() else "other"


def resolve(options: RunOptions, mapping: StageResult) -> tuple[RunOptions, dict[str, str]]:
    """`options` with "auto" replaced by the family's SED model, separators and mask; explicit choices are kept.
    When the family's first separator cannot be built here, "auto" falls back to the other family's
    choice; the second value holds {name: reason} for what was passed over."""
    family = query_family(mapping, options.mask)
    update, passed_over = {}, {}
    if options.sed == AUTO:
        update["sed"] = SED_BY_FAMILY[family]
    if tuple(options.separators) == (AUTO,):
        chosen = SEPARATORS_BY_FAMILY[family]()
        usable, passed_over = backends.available("separator", chosen[:1])
        if not usable and family != "other":
            chosen = SEPARATORS_BY_FAMILY["other"]()
        update["separators"] = chosen
    if options.mask.mode == AUTO:
        update["mask"] = options.mask.model_copy(update=MASK_BY_FAMILY[family])
    return options.model_copy(update=update), passed_over


# ---------------------------------------------------------------- the stages

def map_query_key(query: str, encoder: str, params: QueryParams) -> str:
    identity = backends.get("text_encoder", encoder).identity()
    return stage_key("map_query", VERSIONS["map_query"], params, inputs={"query": query.strip()},
                     weights={encoder: identity})


def map_query(query: str, encoder: str, params: QueryParams) -> StageResult:
    from .query import map_query as mapper

    mapping = mapper(query, backends.get("text_encoder", encoder), params)
    return StageResult("map_query", map_query_key(query, encoder, params),
                       meta={"query": query, **mapping.to_dict()})


def sed_key(recording: Audio, model: str, params: SedParams, progress: Any = None) -> str:
    identity = backends.get("sed", model).identity()
    return stage_key("sed", VERSIONS["sed"], params, inputs={"recording": recording.key},
                     weights={model: identity})


def sed(recording: Audio, model: str, params: SedParams,
        progress: Callable[[float], None] | None = None) -> StageResult:
    output = _with_progress(backends.get("sed", model).detect, recording.samples, recording.sample_rate,
                            progress=progress)
    return StageResult("sed", sed_key(recording, model, params),
                       arrays={"probs": np.asarray(output.probs, dtype=np.float32)},
                       meta={"frame_rate": float(output.frame_rate), "model": output.model})


def selected_classes(mapping: StageResult, params: MaskParams) -> list[dict]:
    """The classes the mask follows: those named in params, else the best match and any within the margin."""
    if params.classes:
        from .ontology import by_name

        return [{"index": c.index, "name": c.name} for c in map(by_name, params.classes)]
    classes = mapping.meta["classes"]
    if not classes:
        return []
    best = classes[0]["score"]
    return [c for c in classes if c["score"] >= best - params.class_margin]


def followed_classes(mapping: StageResult, params: MaskParams) -> list[dict]:
    """`selected_classes`, and a ValueError when there are none but the mask needs some."""
    classes = selected_classes(mapping, params)
    if not classes and params.mode != "off" and params.spans_mode != "replace":
        raise ValueError("the query matched no sound class to follow; give --classes or --mask off")
    return classes


def mask_key(sed_result: StageResult, mapping: StageResult, params: MaskParams, recording: Audio) -> str:
    return stage_key("mask", VERSIONS["mask"], params, inputs={
        "sed": sed_result.key, "map_query": mapping.key, "recording": recording.key})


def mask(sed_result: StageResult, mapping: StageResult, params: MaskParams, recording: Audio) -> StageResult:
    from .mask import compute_mask

    classes = followed_classes(mapping, params)
    result = compute_mask(sed_result["probs"], sed_result.meta["frame_rate"], [c["index"] for c in classes],
                          params, num_samples=len(recording.samples), sample_rate=recording.sample_rate,
                          class_names=[c["name"] for c in classes])
    return StageResult("mask", mask_key(sed_result, mapping, params, recording),
                       arrays={"gain": result.gain.astype(np.float32), "frame_gain": result.frame_gain},
                       meta={"sample_rate": result.sample_rate, "events": result.events_table(),
                             "classes": classes, "note": result.note})


def masked_input(recording: Audio, mask_result: StageResult) -> Audio:
    """The mixture gated by the mask (mask_at="input"); its key follows the mask's."""
    from .mask import apply_gain

    samples = apply_gain(recording.samples, mask_result["gain"]).astype(np.float32)
    key = stage_key("masked_input", VERSIONS["masked_input"], None,
                    inputs={"recording": recording.key, "mask": mask_result.key})
    return Audio(samples, recording.sample_rate, recording.source, key_override=key)


def separate_key(recording: Audio, mapping: StageResult, separator: str, params: SeparatorParams,
                 progress: Any = None) -> str:
    backend = backends.get("separator", separator)
    relevant = params.model_dump(include=set(backend.param_fields))
    if relevant.get("text") == "auto":
        del relevant["text"]  # the default text: keys made before the option existed stay valid
    return stage_key("separate", VERSIONS["separate"], relevant,
                     inputs={"recording": recording.key, "map_query": mapping.key, "separator": separator},
                     weights={separator: backend.identity()})


# What a separator is asked for instead of the user's words when the query was mapped to a class whose
# everyday name the mini AudioSep never heard in training (its prompts name a man or a woman speaking).
# Measured (docs/audiosep.md, "What the separator is asked for"): mean SI-SDRi keep / remove on 8 held-out
# voice mixtures, "speech" -3.43 / -0.08 dB, "a person speaking" +11.88 / +5.29; AudioSet's names as the
# text ("Speech", "Cattle, bovinae"), alone or with the user's words, did worse than the words elsewhere.
SEPARATOR_TEXT = {"Speech": "a person speaking"}


def target_text(mapping: StageResult, how: str = "auto") -> str:
    """What the separators are asked for, for keep and removal alike: the query's phrases without negations
    and filler ("remove the dog" -> "dog"), each phrase whose best class is in SEPARATOR_TEXT replaced by
    that text ("remove the speech" -> "a person speaking"). `how` (SeparatorParams.text) asks instead for the
    phrases as typed ("words"), each phrase's best class by its AudioSet name ("class"), or both ("class+words":
    "Dog, dog"; the name alone where the two are the same)."""
    words = mapping.meta.get("target_text") or mapping.meta["query"]
    parts = words.split(" and ")
    best = mapping.meta.get("classes", [])[:len(parts)]  # each phrase's best class comes first, in order
    if len(best) == len(parts) and how != "words":
        parts = [_asked_for(part, entry["name"], how) for part, entry in zip(parts, best)]
    return " and ".join(parts)


def _asked_for(phrase: str, name: str, how: str) -> str:
    if how == "class":
        return name
    if how == "class+words":
        return name if name.lower() == phrase.lower() else f"{name}, {phrase}"
    return SEPARATOR_TEXT.get(name, phrase)


def separate(recording: Audio, mapping: StageResult, separator: str, params: SeparatorParams,
             progress: Callable[[float], None] | None = None) -> StageResult:
    backend = backends.get("separator", separator)
    samples = resample(recording.samples, recording.sample_rate, backend.sample_rate)
    estimate = np.asarray(_with_progress(backend.separate, samples, target_text(mapping, params.text), params,
                                         progress=progress), dtype=np.float32)
    return StageResult("separate", separate_key(recording, mapping, separator, params),
                       arrays={"audio": estimate},
                       meta={"sample_rate": backend.sample_rate, "separator": separator})


def fuse_key(first: StageResult, second: StageResult | None, params: FusionParams, recording: Audio) -> str:
    return stage_key("fuse", VERSIONS["fuse"], params, inputs={
        "first": first.key, "second": second.key if second is not None else "",
        "rate": str(recording.sample_rate), "length": str(len(recording.samples))})


def fuse(first: StageResult, second: StageResult | None, params: FusionParams, recording: Audio) -> StageResult:
    from .fusion import fuse as fuse_estimates

    fused = fuse_estimates(first["audio"], first.meta["sample_rate"],
                           None if second is None else second["audio"],
                           None if second is None else second.meta["sample_rate"],
                           params, out_rate=recording.sample_rate, out_length=len(recording.samples))
    return StageResult("fuse", fuse_key(first, second, params, recording),
                       arrays={"audio": fused.astype(np.float32, copy=False)},
                       meta={"sample_rate": recording.sample_rate,
                             "separators": [first.meta["separator"]]
                             + ([second.meta["separator"]] if second is not None else [])})


@dataclass(frozen=True)
class Stage:
    name: str
    compute: Callable[..., StageResult]
    key: Callable[..., str]


STAGES: dict[str, Stage] = {
    "map_query": Stage("map_query", map_query, map_query_key),
    "sed": Stage("sed", sed, sed_key),
    "mask": Stage("mask", mask, mask_key),
    "separate": Stage("separate", separate, separate_key),
    "fuse": Stage("fuse", fuse, fuse_key),
}


# ---------------------------------------------------------------- running them

class Runner(Protocol):
    def run(self, stage: str, **inputs: Any) -> StageResult: ...

    def run_parallel(self, calls: list[tuple[str, dict[str, Any]]]) -> list[StageResult]: ...


class LocalRunner:
    """Runs stages in this process: load the result by key, else compute it under a lock and store it."""

    # a result is written to the store before run() returns it and kept nowhere else, so the caller may free its
    # arrays once used (`finish(consume=True)`); a Prefect runner's task results may be persisted or reused later
    releases_results = True

    def __init__(self, store: ResultStore, locks: OwnedFileLockManager):
        self.store = store
        self.locks = locks
        self.computed: list[str] = []

    def run(self, stage: str, **inputs: Any) -> StageResult:
        key = STAGES[stage].key(**inputs)
        if (found := self.store.load(key)) is not None:
            return found
        holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.locks.acquire_lock(key, holder)
        try:
            if (found := self.store.load(key)) is not None:
                return found
            result = STAGES[stage].compute(**inputs)
            self.store.save(result)
            self.computed.append(stage)
            return result
        finally:
            self.locks.release_lock(key, holder)

    def run_parallel(self, calls: list[tuple[str, dict[str, Any]]]) -> list[StageResult]:
        return [self.run(stage, **inputs) for stage, inputs in calls]


@dataclass
class Result:
    """What a run produced, at the recording's rate. `target` is the answer to the query (the residual
    of the described sound for a removal request such as "remove the dog"); (n,), or (n, c) for a
    multichannel input (see `upmix`)."""

    target: np.ndarray
    residual: np.ndarray
    sample_rate: int
    mapping: dict
    events: list[dict]
    gain: np.ndarray
    keys: dict[str, str]
    separators: list[str]
    options: dict
    metrics: dict | None = None
    extra: dict = field(default_factory=dict)
    # The detector's probability of the followed classes (max over them) for reports: {"probs", "frame_rate",
    # "classes"}; None when no class was followed. Not written to report.json.
    track: dict | None = None


def detector_track(sed_result: StageResult, mask_result: StageResult) -> dict | None:
    from .mask import class_track

    classes = mask_result.meta.get("classes") or []
    if not classes:
        return None
    return {"probs": class_track(sed_result["probs"], [c["index"] for c in classes]),
            "frame_rate": float(sed_result.meta["frame_rate"]), "classes": [c["name"] for c in classes]}


def finish(recording: Audio, fused: StageResult, mask_result: StageResult, mapping: StageResult,
           options: RunOptions, reference: np.ndarray | None = None, consume: bool = False) -> Result:
    """Apply the mask to the fused estimate (unless it gated the input), then target, residual, metrics.

    `consume`: `fused` is not used again (one run), so its audio is taken out of it and freed once the masked
    answer is made: one whole-length array less at the run's peak (461 MB for an hour at 32 kHz)."""
    from .trust import choose, distrust

    described = fused.arrays.pop("audio") if consume else fused["audio"]
    remove = bool(mapping.meta.get("remove"))
    untrusted, replaceable = distrust(described, recording.samples, mask_result.meta.get("classes") or [],
                                      list(fused.meta["separators"]), bool(mask_result.meta["events"]),
                                      remove, recording.sample_rate) if fused.meta["separators"] else (None, False)
    answer, instead = choose(untrusted if replaceable else None, options.fallback, remove, recording.samples,
                             mask_result["gain"], options.mask.floor)
    if not fused.meta["separators"]:
        answer = GATED  # the detector-only baseline of refuse_grid: the mixture, gated by the mask
    target, rest = answered(described, recording.samples, instead, mask_result["gain"], remove, options.mask.mask_at)
    metrics = None
    if reference is not None:
        from .metrics import evaluate

        metrics = evaluate(target, reference, recording.samples)
    target, rest = per_channel(recording.channels, recording.samples, target, rest)
    return Result(target=target, residual=rest,
                  sample_rate=recording.sample_rate, mapping=mapping.meta,
                  events=mask_result.meta["events"], gain=mask_result["gain"],
                  keys={"recording": recording.key, "map_query": mapping.key, "mask": mask_result.key,
                        "fuse": fused.key},
                  separators=list(fused.meta["separators"]), options=options.model_dump(mode="json"),
                  metrics=metrics, extra=notes(recording, fused, mask_result, mapping, options,
                                               untrusted, answer, replaceable))


def answered(described: np.ndarray, mixture: np.ndarray, instead: np.ndarray | None, gain: np.ndarray | None,
             remove: bool, mask_at: str) -> tuple[np.ndarray, np.ndarray]:
    """(target, residual), mono, of the whole recording or a stretch of it: the separators' estimate of the described
    sound, or the fallback's `instead`, gated by the mask's `gain` where it applies at the output; the residual is
    the rest of the mixture, and a removal swaps the two."""
    from .fusion import residual as subtract
    from .mask import apply_gain

    if instead is not None:
        described = instead
    elif mask_at == "output":
        described = apply_gain(described, gain)
    remainder = subtract(mixture, described)
    return (remainder, described) if remove else (described, remainder)


def per_channel(channels: np.ndarray | None, mixture: np.ndarray, target: np.ndarray, rest: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Target and residual as float32, per channel of a multichannel input (separated on the mono mix, the answer's
    time-frequency ratio to it applied to each channel: `upmix`)."""
    if channels is not None:
        from .upmix import upmix

        target = upmix(channels, mixture, target)
        rest = channels - target
    return target.astype(np.float32, copy=False), rest.astype(np.float32, copy=False)


def notes(recording: Audio, fused: StageResult, mask_result: StageResult, mapping: StageResult,
          options: RunOptions, untrusted: str | None = None, answer: str = SEPARATOR, replaceable: bool = True
          ) -> dict:
    """What a run's report adds: the input's name, the mask's note, `answer` ("separator" or "gated mixture"),
    `untrusted` (why the separator was not trusted, when it was not) and `warnings`, one line each for what
    the user should know (a weak or non-English query, a band split moved by the rate, an untrusted answer)."""
    from .query_warnings import query_warnings
    from .trust import fallback_warning

    extra: dict[str, Any] = {"input": recording.source} if recording.source else {}
    if recording.channels is not None:
        extra["channels"] = (f"{recording.channels.shape[1]} channels: separated on their mean, the answer's "
                             "time-frequency ratio to it applied to each channel")
    extra["answer"] = answer
    mask_notes = [mask_result.meta.get("note")]
    if options.mask.mask_at == "none":
        mask_notes.append("events found; their gain is not applied to the answer (no mask earned its place on the "
                          "development sets: docs/mask.md)")
    if note := "; ".join(n for n in mask_notes if n):
        extra["mask_note"] = note
    warnings = query_warnings(mapping.meta)
    if len(fused.meta["separators"]) > 1 and (moved := options.fusion.rate_note(recording.sample_rate)):
        warnings.append(moved)
    if untrusted:
        extra["untrusted"] = untrusted
        warnings.append(fallback_warning(untrusted, answer, options.fallback, replaceable))
    if warnings:
        extra["warnings"] = warnings
    return extra


def _stage_progress(progress: Progress | None, stage: str) -> Callable[[float], None] | None:
    """Tell `progress` that `stage` starts; the per-fraction callback for it (None without `progress`)."""
    if progress is None:
        return None
    progress(stage, None)
    return lambda fraction: progress(stage, fraction)


def run(recording: Audio, query: str, options: RunOptions, runner: Runner,
        reference: np.ndarray | None = None, progress: Progress | None = None) -> Result:
    """The whole DAG for one recording and one query; `progress(stage, fraction)` hears how it goes."""
    options.mask.check_duration(recording.duration)
    _stage_progress(progress, "map_query")
    mapping = runner.run("map_query", query=query, encoder=options.encoder, params=options.query)
    options, passed_over = resolve(options, mapping)
    usable, reasons = backends.available("separator", options.separators)
    reasons = {**passed_over, **reasons}
    try:
        sed_progress = _stage_progress(progress, "sed")
        sed_result = runner.run("sed", recording=recording, model=options.sed, params=options.sed_params,
                                **({"progress": sed_progress} if sed_progress else {}))
        _stage_progress(progress, "mask")
        mask_result = runner.run("mask", sed_result=sed_result, mapping=mapping, params=options.mask,
                                 recording=recording)
    except backends.BackendUnavailable as error:
        if usable:
            raise
        raise NoSeparatorAvailable(reasons, [], also=str(error)) from None
    if not usable:
        raise NoSeparatorAvailable(reasons, mask_result.meta["events"])
    separator_input = masked_input(recording, mask_result) if options.mask.mask_at == "input" else recording
    calls = []
    for name in usable[:2]:
        inputs = {"recording": separator_input, "mapping": mapping, "separator": name, "params": options.separator}
        if (separator_progress := _stage_progress(progress, f"separate ({name})")) is not None:
            inputs["progress"] = separator_progress
        calls.append(("separate", inputs))
    estimates = runner.run_parallel(calls)
    _stage_progress(progress, "fuse")
    fused = runner.run("fuse", first=estimates[0], second=estimates[1] if len(estimates) > 1 else None,
                       params=options.fusion, recording=recording)
    separate_keys = {f"separate:{e.meta['separator']}": e.key for e in estimates}
    del estimates  # the separators' own outputs are not needed past fusion: freed before finish's arrays
    result = finish(recording, fused, mask_result, mapping, options, reference,
                    consume=getattr(runner, "releases_results", False))
    result.keys.update({"sed": sed_result.key, **separate_keys})
    result.extra["unavailable_separators"] = reasons
    result.track = detector_track(sed_result, mask_result)
    return result


# ---------------------------------------------------------------- re-fusing from the cache

class NotCached(LookupError):
    """A stage output that re-fusion needs is not in the result store."""


MIXTURE = "mixture"  # GridPoint.separator of the no-separator baseline: the mixture, gated by the mask


class GridPoint(StageParams):
    """One setting of the cheap stages to try on cached separator outputs.

    `separator` None: the fusion (`fusion_mode`) of the run's first two separators; a separator's name:
    that separator's output alone (`fusion_mode` is then ignored); MIXTURE: no separator at all, the mixture
    itself, so that the mask alone does the work (the detector-only baseline).
    """

    # "oracle": not a detector's mask but the wanted sound's true span (an evaluation item's onset to offset), hard,
    # floor 0: what a perfect detector's mask could add (refuse_grid's `span`)
    mask_mode: MaskMode | Literal["oracle"] = "soft"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    fusion_mode: FusionMode = "band"
    separator: str | None = None

    def label(self) -> str:
        source = f"fused {self.fusion_mode}" if self.separator is None else self.separator
        mask_text = {"off": "mask off", "oracle": "oracle span"}.get(self.mask_mode,
                                                                      f"{self.mask_mode} θ={self.threshold:g}")
        return f"{source} · {mask_text}"


def grid_product(mask_modes, thresholds, fusion_modes) -> list[GridPoint]:
    return [GridPoint(mask_mode=m, threshold=t, fusion_mode=f)
            for m in mask_modes for t in thresholds for f in fusion_modes]


def load_cached(store: ResultStore, recording: Audio, query: str, options: RunOptions
                ) -> tuple[StageResult, StageResult, list[StageResult]]:
    """The mapping, SED and separator outputs of an earlier run, by key, without computing anything."""

    def need(stage: str, key: str) -> StageResult:
        found = store.load(key)
        if found is None:
            raise NotCached(f"no cached {stage} output for this recording and query in {store.root}; "
                            "run `eventsep separate` on it first")
        return found

    mapping = need("map_query", map_query_key(query, options.encoder, options.query))
    options, _ = resolve(options, mapping)
    sed_result = need("sed", sed_key(recording, options.sed, options.sed_params))
    estimates = []
    for name in options.separators:
        try:
            key = separate_key(recording, mapping, name, options.separator)
        except backends.BackendUnavailable:
            continue
        if (found := store.load(key)) is not None:
            estimates.append(found)
    if not estimates:
        raise NotCached(f"no cached separator output for this recording and query in {store.root}; "
                        "run `eventsep separate` on it first")
    return mapping, sed_result, estimates[:2]


def _point_mask(point: GridPoint, options: RunOptions, span: tuple[float, float] | None) -> MaskParams:
    """The mask of a grid point: the options' with the point's mode and θ; for "oracle", a hard gate on `span`
    (seconds) replacing the detector, floor 0."""
    update: dict[str, Any] = {"mode": point.mask_mode, "threshold": point.threshold}
    if point.mask_mode == "oracle":
        if span is None:
            raise ValueError("the oracle mask needs the wanted sound's onset and offset (an evaluation item's)")
        update = {"mode": "hard", "spans": [span], "spans_mode": "replace", "floor": 0.0}
    return MaskParams.model_validate({**options.mask.model_dump(), **update})


def refuse_grid(recording: Audio, mapping: StageResult, sed_result: StageResult,
                estimates: list[StageResult], grid: list[GridPoint], options: RunOptions,
                reference: np.ndarray | None = None, span: tuple[float, float] | None = None) -> list[Result]:
    """Mask and fuse cached outputs for every grid point; masks and fusions shared by points run once. `span`: the
    wanted sound's (onset, offset) in seconds, which "oracle" points gate by."""
    if options.mask.mask_at == "input":
        raise ValueError("re-fusion needs mask_at 'output' or 'none': a mask on the input changes the separators' input")
    masks: dict[MaskParams, StageResult] = {}
    sources: dict[tuple, StageResult] = {}
    second = estimates[1] if len(estimates) > 1 else None
    by_name = {e.meta["separator"]: e for e in estimates}
    results = []
    for point in grid:
        mask_params = _point_mask(point, options, span)
        fusion_params = FusionParams.model_validate({**options.fusion.model_dump(), "mode": point.fusion_mode})
        if mask_params not in masks:
            masks[mask_params] = mask(sed_result, mapping, mask_params, recording)
        source = (point.separator, None if point.separator else fusion_params)
        if source not in sources:
            sources[source] = grid_source(point.separator, estimates[0], second, by_name, fusion_params, recording)
        point_options = options.model_copy(update={"mask": mask_params, "fusion": fusion_params})
        result = finish(recording, sources[source], masks[mask_params], mapping, point_options, reference)
        result.extra["grid_point"] = point.model_dump()
        result.track = detector_track(sed_result, masks[mask_params])
        results.append(result)
    return results


def grid_source(separator: str | None, first: StageResult, second: StageResult | None,
                by_name: dict[str, StageResult], params: FusionParams, recording: Audio) -> StageResult:
    """What a grid point masks: the fusion, one separator's output at the recording's rate, or the mixture."""
    if separator is None:
        return fuse(first, second, params, recording)
    if separator == MIXTURE:
        return StageResult("fuse", stage_key("fuse", VERSIONS["fuse"], None, inputs={"mixture": recording.key}),
                           arrays={"audio": recording.samples}, meta={"separators": []})
    if separator not in by_name:
        raise NotCached(f"no cached output of separator {separator!r} for this recording and query "
                        f"(cached: {', '.join(by_name) or 'none'})")
    return fuse(by_name[separator], None, FusionParams(), recording)
