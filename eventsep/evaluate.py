"""`eventsep evaluate`: a labelled set (a manifest) through the cached stages and over a grid of separators,
fusions and masks; metrics per item and setting, aggregates with paired-bootstrap intervals, and
results.json, results.csv and report.html in one folder.

Manifest: `{"items": [...]}` (or a bare list); each item `{"id", "mixture", "reference", "query",
"onset"?, "offset"?, "kind"?, "class"?}`, paths relative to the manifest's folder (docs/evaluate.md).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import numpy as np
from pydantic import Field

from .config import FusionMode, MaskMode, StageParams, gain_applied
from .pipeline import AUTO, MASK_BY_FAMILY, MIXTURE, GridPoint, Runner, RunOptions

KINDS = ("speech", "music", "environment")
GAIN_METRICS = ("si_sdri", "outside_db")
METRICS = ("si_sdr", "si_sdri", "sdr", "sdri", "stoi", "estoi", "outside_db", "silent")
BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED = 2000, 0
# The setting that is what `eventsep separate MIXTURE QUERY` answers with no option given ("auto" resolved per
# query: separators, SED, mask; the trust fallback): GridSpec.defaults adds it beside the grid.
DEFAULTS_LABEL = "separate defaults"
SDR_NOTE = ("SDR/SDRi are the SNR-style SDR of the LASS papers, 10 log10(|s|²/|s-ŝ|²): they reward turning the "
            "volume down (a silent answer scores SDRi > 0 where the mixture is louder than the wanted sound). "
            "Judge by SI-SDRi.")


class ManifestError(ValueError):
    """The manifest cannot be used; the message is one line naming the file and the item."""


@dataclass(frozen=True)
class Item:
    id: str
    mixture: str
    reference: str
    query: str
    onset: float | None = None
    offset: float | None = None
    kind: str | None = None
    cls: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "mixture": self.mixture, "reference": self.reference, "query": self.query,
                "onset": self.onset, "offset": self.offset, "kind": self.kind, "class": self.cls}


# ---------------------------------------------------------------- the manifest

def _entries(data: Any, where: str) -> list:
    entries = data.get("items") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ManifestError(f"manifest {where}: expected {{\"items\": [...]}} or a list of items")
    if not entries:
        raise ManifestError(f"manifest {where}: no items")
    return entries


def _item(entry: Any, index: int, folder: Path, where: str, seen: set[str]) -> Item:
    name = entry.get("id") if isinstance(entry, dict) else None
    prefix = f"manifest {where}: item {index}" + (f" ({name!r})" if isinstance(name, str) else "")
    if not isinstance(entry, dict):
        raise ManifestError(f"{prefix}: an item is a JSON object, not {type(entry).__name__}")
    for field_name in ("id", "mixture", "reference", "query"):
        if not isinstance(entry.get(field_name), str) or not entry[field_name].strip():
            raise ManifestError(f"{prefix}: needs {field_name!r} as a non-empty string")
    if name in seen:
        raise ManifestError(f"{prefix}: the id is used twice")
    seen.add(name)
    paths = {}
    for field_name in ("mixture", "reference"):
        path = Path(entry[field_name]).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise ManifestError(f"{prefix}: {field_name} {path} does not exist")
        paths[field_name] = str(path)
    span = []
    for field_name in ("onset", "offset"):
        value = entry.get(field_name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ManifestError(f"{prefix}: {field_name} must be a number of seconds >= 0, not {value!r}")
        span.append(None if value is None else float(value))
    if (span[0] is None) != (span[1] is None):
        raise ManifestError(f"{prefix}: give both onset and offset, or neither")
    if span[0] is not None and span[1] <= span[0]:
        raise ManifestError(f"{prefix}: offset {span[1]:g} is not after onset {span[0]:g}")
    kind = entry.get("kind")
    if kind is not None and kind not in KINDS:
        raise ManifestError(f"{prefix}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    cls = entry.get("class")
    if cls is not None:
        from .ontology import by_name

        try:
            cls = by_name(cls).name
        except KeyError:
            raise ManifestError(f"{prefix}: class {cls!r} is not an AudioSet display name") from None
    return Item(name, paths["mixture"], paths["reference"], entry["query"].strip(), span[0], span[1], kind, cls)


def read_manifest(path: str | os.PathLike) -> list[Item]:
    """The items of a manifest, every field checked and every file found; ManifestError otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"manifest {path}: cannot be read ({error})") from None
    except json.JSONDecodeError as error:
        raise ManifestError(f"manifest {path}: not JSON ({error.msg} at line {error.lineno})") from None
    seen: set[str] = set()
    return [_item(entry, index, path.resolve().parent, str(path), seen)
            for index, entry in enumerate(_entries(data, str(path)))]


def write_manifest(items: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write `{"items": [...]}` atomically; paths inside the manifest's folder are stored relative to it (a
    relative path given is taken as relative to that folder).

    Each item is a dict with the manifest's fields (None values are left out); extra fields are kept."""
    from .atomic import write_text

    path = Path(path)
    folder = path.resolve().parent
    out = []
    for item in items:
        entry = {k: v for k, v in dict(item).items() if v is not None}
        for field_name in ("mixture", "reference"):
            location = (folder / entry[field_name]).resolve()  # a relative path is relative to the manifest
            if location.is_relative_to(folder):
                entry[field_name] = location.relative_to(folder).as_posix()
            else:
                entry[field_name] = str(location)
        out.append(entry)
    return write_text(path, json.dumps({"items": out}, indent=1) + "\n")


# ---------------------------------------------------------------- the grid

class GridSpec(StageParams):
    """Which settings to compare: each separator alone and fused in each mode, each with each mask setting
    (off, and soft/hard at each θ); `baseline` adds the mixture gated by each mask (no separator)."""

    separators: tuple[str, ...] = ("audiosep", "flowsep")
    fusions: tuple[FusionMode, ...] = ("band", "rate")
    # "oracle": each source gated by the item's true span (its onset to offset), the bound of what a mask can add
    masks: tuple[MaskMode | Literal["oracle"], ...] = ("off", "soft", "hard")
    thresholds: tuple[float, ...] = Field((0.3, 0.5), min_length=1)
    baseline: bool = True
    # also score what `eventsep separate` answers with its defaults (DEFAULTS_LABEL): it runs the separators
    # "auto" picks per query (e.g. DeepFilterNet3 for speech), so it costs one more run per item
    defaults: bool = False

    def mask_settings(self) -> list[tuple[MaskMode, float]]:
        settings = [(m, 0.5) for m in ("off", "oracle") if m in self.masks]  # no θ
        return settings + [(m, float(t)) for m in self.masks if m not in ("off", "oracle") for t in self.thresholds]

    def points(self) -> list[GridPoint]:
        sources: list[tuple[str | None, str]] = [(name, "band") for name in self.separators]
        if len(self.separators) >= 2:
            sources += [(None, mode) for mode in self.fusions]
        points = [GridPoint(separator=separator, fusion_mode=mode, mask_mode=m, threshold=t)
                  for separator, mode in sources for m, t in self.mask_settings()]
        if self.baseline:
            points += [GridPoint(separator=MIXTURE, mask_mode=m, threshold=t)
                       for m, t in self.mask_settings() if m != "off"]
        if not points:
            raise ValueError("the evaluation grid is empty: name at least one separator and one mask mode")
        return points


def run_default_separators() -> tuple[str, ...]:
    """The separators `eventsep separate` runs by default for a query that is not speech ("auto" resolved)."""
    from .pipeline import SEPARATORS_BY_FAMILY

    chosen = tuple(RunOptions().separators)
    return tuple(SEPARATORS_BY_FAMILY["other"]()) if chosen == (AUTO,) else chosen


def default_point(grid: list[GridPoint], options: RunOptions, run_separators: tuple[str, ...]) -> GridPoint:
    """The setting whose audio and pictures the report shows: what `eventsep separate` answers by default
    (`run_separators`: their fusion, or the one separator alone, with the options' mask), else the first point."""
    fused = len(run_separators) >= 2 and tuple(run_separators[:2]) == tuple(options.separators[:2])
    auto = MASK_BY_FAMILY["other"]
    mode = (auto["mode"] if gain_applied(auto) else "off") if options.mask.mode == AUTO else options.mask.mode
    wanted = GridPoint(mask_mode=mode, threshold=options.mask.threshold,
                       fusion_mode=options.fusion.mode, separator=None if fused else run_separators[0])
    return next((point for point in grid if point.label() == wanted.label()), grid[0])


# ---------------------------------------------------------------- statistics

def _floats(values) -> np.ndarray:
    """float64 values with None as NaN."""
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def summarise(values) -> dict:
    """mean over the finite values (n_finite of n), median over every value that is not NaN (±inf included:
    a silent answer's SI-SDR of -inf counts in the median)."""
    values = _floats(values)
    finite, known = values[np.isfinite(values)], values[~np.isnan(values)]
    return {"mean": float(finite.mean()) if finite.size else None,
            "median": float(np.median(known)) if known.size else None,
            "n_finite": int(finite.size), "n": int(known.size)}


def paired_bootstrap(gains, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """Mean and median of paired differences (finite pairs only) and the bootstrap 95 % interval of the mean;
    `worst` and `lost_1db` (pairs more than 1 dB worse) count every pair, a silent answer's -inf included:
    the mask rule of docs/mask.md is judged by them."""
    values = _floats(gains)
    known = values[~np.isnan(values)]
    extremes = {"worst": float(known.min()) if known.size else None, "lost_1db": int((known < -1.0).sum())}
    gains = known[np.isfinite(known)]
    if gains.size == 0:
        return {"n": 0, "mean": None, "median": None, "ci95": [None, None], "better": 0, **extremes}
    rng = np.random.default_rng(seed)
    means = gains[rng.integers(0, gains.size, size=(samples, gains.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"n": int(gains.size), "mean": float(gains.mean()), "median": float(np.median(gains)),
            "ci95": [float(low), float(high)], "better": int((gains > 0).sum()), **extremes}


def setting_summary(rows: list[dict]) -> dict:
    """Aggregates of one setting over the items: every metric, silent answers, SI-SDRi per kind and class."""
    out = {metric: summarise([r[metric] for r in rows]) for metric in METRICS if metric != "silent"}
    out["silent"] = int(sum(bool(r["silent"]) for r in rows))
    out["items"] = len(rows)
    for group in ("kind", "class"):
        names = sorted({r[group] for r in rows if r[group]})
        out[f"by_{group}"] = {name: summarise([r["si_sdri"] for r in rows if r[group] == name]) for name in names}
    return out


def gain_pairs(grid: list[GridPoint]) -> list[tuple[str, str, str]]:
    """(kind, setting, base): each mask setting over the same source unmasked, each fusion over each separator
    alone with the same mask."""
    labels = {p.label() for p in grid}
    pairs = []
    for point in grid:
        if point.mask_mode != "off" and point.separator != MIXTURE:
            base = point.model_copy(update={"mask_mode": "off", "threshold": 0.5}).label()
            if base in labels:
                pairs.append(("mask", point.label(), base))
    for point in grid:
        if point.separator is None:
            for other in grid:
                if (other.separator not in (None, MIXTURE) and other.mask_mode == point.mask_mode
                        and (other.mask_mode == "off" or other.threshold == point.threshold)):
                    pairs.append(("fusion", point.label(), other.label()))
    return pairs


def gains(rows: list[dict], grid: list[GridPoint]) -> list[dict]:
    """Paired gains of `gain_pairs`, and where the rows hold the defaults' answer, of it over every grid point
    (the default must not be worse than its parts)."""
    by = {(r["item"], r["setting"]): r for r in rows}
    items = list(dict.fromkeys(r["item"] for r in rows))
    pairs = gain_pairs(grid)
    if any(r["setting"] == DEFAULTS_LABEL for r in rows):
        pairs += [("defaults", DEFAULTS_LABEL, point.label()) for point in grid]
    out = []
    for kind, setting, base in pairs:
        entry = {"kind": kind, "setting": setting, "over": base}
        for metric in GAIN_METRICS:
            entry[metric] = paired_bootstrap([_number(by[i, setting][metric]) - _number(by[i, base][metric])
                                              for i in items if (i, setting) in by and (i, base) in by])
        out.append(entry)
    return out


def _number(value) -> float:
    return float("nan") if value is None else float(value)


# ---------------------------------------------------------------- running it

@dataclass
class ItemOutcome:
    item: Item
    rows: list[dict]
    default: Any  # the default setting's pipeline.Result
    mixture: np.ndarray
    reference: np.ndarray
    sample_rate: int
    shown: Any = None  # the answer the report draws and plays: the defaults' when scored, else `default`
    shown_label: str = ""


def defaults_options(options: RunOptions) -> RunOptions:
    """What `eventsep separate` runs with no option given, keeping only the evaluation's choice of SED and
    encoder (each "auto" unless named)."""
    return RunOptions(sed=options.sed, encoder=options.encoder)


def evaluate_item(item: Item, grid: list[GridPoint], options: RunOptions, runner: Runner,
                  default: GridPoint, with_defaults: bool = False) -> ItemOutcome:
    """Run the item once through the cached stages (filling the separator cache), then mask and fuse its
    cached outputs for every grid point and score each answer; `with_defaults`: also score what
    `eventsep separate` answers with its defaults (a row labelled DEFAULTS_LABEL)."""
    from .api import _reference, as_audio
    from .metrics import mixture_scores
    from .pipeline import load_cached, refuse_grid, run

    recording = as_audio(item.mixture)
    reference = _reference(item.reference, recording)
    run(recording, item.query, options, runner)
    store = getattr(runner, "store", None)
    if store is None:
        from .settings import settings
        from .store import ResultStore

        store = ResultStore(settings().results_url)
    mapping, sed_result, estimates = load_cached(store, recording, item.query, options)
    answer = run(recording, item.query, defaults_options(options), runner) if with_defaults else None
    with single_threaded_blas():
        span = (item.onset, item.offset) if item.onset is not None and item.offset is not None else None
        results = refuse_grid(recording, mapping, sed_result, estimates, grid, options, span=span)
        baseline = mixture_scores(recording.samples, reference)
        outcome = _scored(item, grid, results, reference, recording, baseline, default)
        if answer is not None:
            mask = answer.options["mask"]
            outcome.rows.append(_row(item, answer, reference, recording, baseline, DEFAULTS_LABEL,
                                     separator="+".join(answer.separators), fusion_mode="",
                                     mask_mode=mask["mode"] if gain_applied(mask) else "off",
                                     threshold=mask["threshold"]))
            outcome.shown, outcome.shown_label = answer, DEFAULTS_LABEL
        return outcome


def single_threaded_blas():
    """BLAS on one thread while fusing and scoring: with OpenBLAS's thread pool on a loaded 2-core machine
    (load 15-18) pystoi's small matrix products made 3 items x 29 settings take 24 s instead of 7.2 s."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _scored(item: Item, grid: list[GridPoint], results: list, reference: np.ndarray, recording,
            baseline: dict, default: GridPoint) -> ItemOutcome:
    rows, chosen = [], None
    for point, result in zip(grid, results):
        rows.append(_row(item, result, reference, recording, baseline, point.label(),
                         separator=point.separator or "fused",
                         fusion_mode=point.fusion_mode if point.separator is None else "",
                         mask_mode=point.mask_mode, threshold=point.threshold))
        if point is default:
            chosen = result
    return ItemOutcome(item, rows, chosen, recording.samples, reference, recording.sample_rate, chosen,
                       default.label())


def _row(item: Item, result, reference: np.ndarray, recording, baseline: dict, setting: str, *, separator: str,
         fusion_mode: str, mask_mode: str, threshold: float) -> dict:
    from .metrics import score

    metrics = score(result.target, reference, recording.samples, recording.sample_rate,
                    speech=item.kind == "speech", span=(item.onset, item.offset), baseline=baseline)
    return {"item": item.id, "kind": item.kind, "class": item.cls, "query": item.query, "setting": setting,
            "separator": separator, "fusion_mode": fusion_mode, "mask_mode": mask_mode,
            "threshold": threshold if mask_mode != "off" else None, "answer": result.extra.get("answer"),
            **metrics}


def select_kinds(items: list[Item], kinds: Iterable[str] | None, where: str) -> list[Item]:
    """The items of `kinds` (all when None or empty); an unknown kind or an empty selection is a ManifestError."""
    kinds = tuple(kinds or ())
    if not kinds:
        return items
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ManifestError(f"unknown kind(s) {', '.join(unknown)}; kinds: {', '.join(KINDS)}")
    chosen = [item for item in items if item.kind in kinds]
    if not chosen:
        raise ManifestError(f"manifest {where}: no item of kind {', '.join(kinds)}")
    return chosen


def evaluate(manifest: str | os.PathLike, out_dir: str | os.PathLike, spec: GridSpec | None = None,
             options: RunOptions | None = None, runner: Runner | None = None, audio_items: int | None = None,
             report: bool = True, log: Callable[[str], None] | None = None,
             kinds: Iterable[str] | None = None) -> dict:
    """Evaluate every manifest item (of `kinds`, when given) over the grid; writes results.json, results.csv and
    report.html into `out_dir` and returns what results.json holds. `runner` runs the stages (default: in this
    process); `audio_items` limits how many items get audio players (None: all)."""
    from . import backends
    from .api import local_runner, make_options
    from .report import ItemAssets, write_item_assets

    spec = spec or GridSpec()
    items = select_kinds(read_manifest(manifest), kinds, str(manifest))
    usable, reasons = backends.available("separator", spec.separators)
    if reasons:
        raise backends.BackendUnavailable("; ".join(f"{name}: {why}" for name, why in reasons.items()))
    options = make_options(options, separators=tuple(spec.separators[:2]))
    grid = spec.points()
    if any(point.mask_mode == "oracle" for point in grid):
        if unspanned := [item.id for item in items if item.onset is None or item.offset is None]:
            raise ManifestError(f"{manifest}: the oracle mask needs each item's onset and offset; "
                                f"{', '.join(unspanned[:3])}{' ...' if len(unspanned) > 3 else ''} lack them")
    default = default_point(grid, options, run_default_separators())
    runner = runner or local_runner()
    out_dir = Path(out_dir)
    started = time.perf_counter()
    rows, assets, render_seconds = [], [], 0.0
    for index, item in enumerate(items):
        outcome = evaluate_item(item, grid, options, runner, default, spec.defaults)
        rows += outcome.rows
        if report:
            begun = time.perf_counter()
            assets.append(write_item_assets(out_dir, outcome, with_audio=audio_items is None
                                            or index < audio_items))
            render_seconds += time.perf_counter() - begun
        else:
            assets.append(ItemAssets(item.id))
        if log:
            best = next(r for r in outcome.rows if r["setting"] == default.label())
            log(f"{index + 1}/{len(items)} {item.id}: SI-SDRi {best['si_sdri']:.2f} dB ({default.label()})")
    settings_labels = [p.label() for p in grid] + ([DEFAULTS_LABEL] if spec.defaults else [])
    doc = {
        "manifest": str(manifest), "items": [i.to_dict() for i in items], "note": SDR_NOTE,
        "grid": [{"setting": p.label(), **p.model_dump()} for p in grid], "default": default.label(),
        # what the report's pictures, players and items table show: what `separate` answers, when it was scored
        "shown": DEFAULTS_LABEL if spec.defaults else default.label(),
        "options": options.model_dump(mode="json"),
        "summary": {s: setting_summary([r for r in rows if r["setting"] == s]) for s in settings_labels},
        "gains": gains(rows, grid), "rows": rows,
        "bootstrap": {"samples": BOOTSTRAP_SAMPLES, "seed": BOOTSTRAP_SEED, "interval": "percentile 95 %"},
        "seconds": {"evaluate": round(time.perf_counter() - started - render_seconds, 2)},
    }
    write_results(doc, out_dir)
    if report:
        from .report import evaluation_report

        begun = time.perf_counter()
        evaluation_report(doc, assets, out_dir)
        doc["seconds"]["report"] = round(render_seconds + time.perf_counter() - begun, 2)
    return doc


# ---------------------------------------------------------------- writing it

def jsonable(value):
    """Floats as JSON allows: NaN becomes null, ±inf the strings "inf"/"-inf"; numpy scalars become Python's."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, np.integer):
        return int(value)
    return value


CSV_COLUMNS = ("item", "kind", "class", "query", "setting", "separator", "fusion_mode", "mask_mode",
               "threshold", "answer", *METRICS)
# The CSV says in its header which SDR it is (results.json says it in "note").
CSV_HEADER = {"sdr": "sdr_snr_style", "sdri": "sdri_snr_style"}


def results_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    columns = [CSV_HEADER.get(c, c) for c in CSV_COLUMNS]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({CSV_HEADER.get(k, k): ("" if v is None else f"{v:.4f}" if isinstance(v, float) else v)
                         for k, v in jsonable(row).items()})
    return buffer.getvalue()


def write_results(doc: dict, out_dir: Path) -> None:
    from .atomic import write_text

    write_text(out_dir / "results.csv", results_csv(doc["rows"]))
    write_text(out_dir / "results.json", json.dumps(jsonable(doc), indent=1, allow_nan=False))
