"""The mask stage: SED probabilities of the selected classes (and user spans) become a click-free gain and events.

Frame t of the probability matrix is centred at t / frame_rate seconds. Hard masks gate at θ,
soft masks scale by min(p/θ, 1); either way the per-sample gain is box-filtered over `fade_ms`,
so it never moves by more than 1/(fade samples) from one sample to the next.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass
from typing import IO, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .config import MaskParams

SPAN_LABEL = "span"
EVENT_FIELDS = ("onset", "offset", "label", "peak")


@dataclass
class Event:
    """One active region: onset/offset in seconds, the class name(s) followed (or "span"), the peak probability
    of the selected classes within it (1.0 for a user span)."""

    onset: float
    offset: float
    label: str
    peak: float


@dataclass
class MaskResult:
    """`gain`: float32 per sample at `sample_rate`; `frame_gain`: the gain at each SED frame centre, before fades;
    `note`: why SED was not followed, when it was not."""

    gain: np.ndarray | None
    sample_rate: int
    frame_gain: np.ndarray
    events: list[Event]
    note: str | None = None
    plan: GainPlan | None = None  # what the gain is made of, to make any stretch of it alone (`GainPlan.render`)

    def events_table(self) -> list[dict]:
        return [asdict(event) for event in self.events]

    def to_csv(self, path_or_buffer: str | os.PathLike | IO[str] | None = None) -> str | None:
        """Write the events as CSV to a path or text buffer; with no argument, return the CSV text."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(EVENT_FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.events_table())
        if path_or_buffer is None:
            return buffer.getvalue()
        if hasattr(path_or_buffer, "write"):
            path_or_buffer.write(buffer.getvalue())
        else:
            with open(path_or_buffer, "w", encoding="utf-8", newline="") as handle:
                handle.write(buffer.getvalue())
        return None

    def to_json(self) -> str:
        return json.dumps(self.events_table())


def class_track(probs: np.ndarray, class_indices: Sequence[int]) -> np.ndarray:
    """The probability that any selected class is present: the max over their columns."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (frames, classes), got shape {probs.shape}")
    indices = [int(i) for i in class_indices]
    if not indices:
        raise ValueError("no class selected")
    bad = [i for i in indices if not 0 <= i < probs.shape[1]]
    if bad:
        raise ValueError(f"class index {bad[0]} out of range 0..{probs.shape[1] - 1}")
    return probs[:, indices].max(axis=1)


def median_smooth(track: np.ndarray, frames: int) -> np.ndarray:
    """Running median over `frames` frames (made odd so the window is centred), edges held."""
    if frames <= 1 or len(track) < 2:
        return track
    frames |= 1
    padded = np.pad(track, frames // 2, mode="edge")
    return np.median(sliding_window_view(padded, frames), axis=1).astype(np.float32)


def hysteresis(track: np.ndarray, high: float, low: float) -> np.ndarray:
    """Active from where the track reaches `high` until it falls below `low` (low <= high)."""
    index = np.arange(len(track))
    above_low = track >= low
    run_start = above_low & ~np.concatenate([[False], above_low[:-1]])
    latest_start = np.maximum.accumulate(np.where(run_start, index, -1))
    latest_trigger = np.maximum.accumulate(np.where(track >= high, index, -1))
    # Active when the run of frames above `low` we are in has already reached `high`.
    return above_low & (latest_trigger >= latest_start) & (latest_trigger >= 0)


def runs(active: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return [(int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


# Per-sample work runs in blocks of this many samples, so its float64 temporaries do not grow with length.
BLOCK = 1 << 20


def box_filter(signal: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average (edges held): limits the slope to (max - min) / width."""
    if width <= 1:
        return signal
    signal = np.asarray(signal)
    out = np.empty(len(signal), dtype=np.float32)
    for start in range(0, len(signal), BLOCK):
        stop = min(len(signal), start + BLOCK)
        # samples start - width//2 .. stop - 1 + (width - 1 - width//2), the edges held
        around = np.clip(np.arange(start - width // 2, stop + width - 1 - width // 2), 0, len(signal) - 1)
        cumulative = np.concatenate([[0.0], np.cumsum(signal[around], dtype=np.float64)])
        out[start:stop] = (cumulative[width:] - cumulative[:-width]) / width
    return out


def interpolate(num_samples: int, sample_rate: int, frame_times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` at `frame_times` linearly interpolated to every sample (float32, computed in blocks)."""
    out = np.empty(num_samples, dtype=np.float32)
    for start in range(0, num_samples, BLOCK):
        stop = min(num_samples, start + BLOCK)
        out[start:stop] = np.interp(np.arange(start, stop) / sample_rate, frame_times, values)
    return out


def _checked_probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"probabilities must be (frames, classes) with at least one frame, got shape {probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probabilities contain NaN or infinite values")
    if probs.min() < 0.0 or probs.max() > 1.0 + 1e-6:
        raise ValueError(f"probabilities must lie in 0..1, got {probs.min():.3g}..{probs.max():.3g} "
                         "(logits? SED outputs are already probabilities)")
    return probs


def _drop_short_runs(active: np.ndarray, min_frames: float) -> list[tuple[int, int]]:
    """Clear the runs shorter than `min_frames` in place; return the dropped ones."""
    dropped = [(start, stop) for start, stop in runs(active) if stop - start < min_frames]
    for start, stop in dropped:
        active[start:stop] = False
    return dropped


def _merged(intervals: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, non-overlapping [start, stop) sample intervals covering the same samples: (starts, stops)."""
    merged: list[list[int]] = []
    for start, stop in sorted((int(a), int(b)) for a, b in intervals if b > a):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return (np.array([m[0] for m in merged], np.int64), np.array([m[1] for m in merged], np.int64))


def _inside(indices: np.ndarray, intervals: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """1.0 where a sample index lies in one of the merged intervals, else 0.0 (float32)."""
    starts, stops = intervals
    position = np.searchsorted(starts, indices, side="right") - 1
    inside = (position >= 0) & (indices < stops[np.maximum(position, 0)]) if len(starts) else np.zeros(
        len(indices), bool)
    return inside.astype(np.float32)


@dataclass
class GainPlan:
    """The per-sample gain of a mask kept at frame level, so that any stretch of it can be made alone in the
    memory of that stretch: soft values at frame times (interpolated to the samples), 0/1 `regions` (hard, or
    soft within hysteresis regions), user `spans` added (or in place of SED: `spans_replace`), then the floor,
    then a centred box filter of `fade` samples with the recording's edges held, clipped to 0..1."""

    num_samples: int
    sample_rate: int
    fade: int
    floor: float
    frame_times: np.ndarray | None = None  # soft: the frame times and values to interpolate
    soft: np.ndarray | None = None
    regions: tuple[np.ndarray, np.ndarray] | None = None
    spans: tuple[np.ndarray, np.ndarray] | None = None
    spans_replace: bool = False

    def unfaded(self, indices: np.ndarray) -> np.ndarray:
        """The gain before the fades at these sample indices (float32)."""
        indicator = None  # None: 1 everywhere
        if self.soft is not None:
            indicator = np.interp(indices / self.sample_rate, self.frame_times, self.soft).astype(np.float32)
            if self.regions is not None:
                indicator *= _inside(indices, self.regions)
        elif self.regions is not None:
            indicator = _inside(indices, self.regions)
        if self.spans is not None:
            spans = _inside(indices, self.spans)
            if self.spans_replace:
                indicator = spans
            elif indicator is not None:
                indicator = np.maximum(indicator, spans, out=spans)
        gain = np.ones(len(indices), np.float32) if indicator is None else indicator
        if self.floor:
            gain *= 1.0 - self.floor
            gain += self.floor
        return gain

    def at(self, indices: np.ndarray) -> np.ndarray:
        """The gain at these sample indices alone (float32), each the mean of `fade` samples around it as `render`."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.fade <= 1:
            return np.clip(self.unfaded(indices), 0.0, 1.0)
        around = np.clip(indices[:, None] + np.arange(-(self.fade // 2), self.fade - self.fade // 2), 0,
                         self.num_samples - 1)
        values = self.unfaded(around.reshape(-1)).reshape(around.shape).astype(np.float64)
        return np.clip(values.mean(axis=1), 0.0, 1.0).astype(np.float32)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, part: slice) -> np.ndarray:
        """`plan[start:stop:step]`, as the whole gain's slice would be (a picture of an hour's gain reads 2000)."""
        if not isinstance(part, slice):
            raise TypeError("a GainPlan is sliced, not indexed")
        start, stop, step = part.indices(self.num_samples)
        return self.render(start, stop) if step == 1 else self.at(np.arange(start, stop, step))

    def render(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The gain of samples [start, stop) (float32): equal to the same stretch of the whole gain, made a block of
        BLOCK samples at a time (`box_filter`'s blocks when `start` is 0)."""
        stop = self.num_samples if stop is None else stop
        if not 0 <= start <= stop <= self.num_samples:
            raise ValueError(f"samples {start}..{stop} are outside the recording's 0..{self.num_samples}")
        width, last = self.fade, self.num_samples - 1
        out = np.empty(stop - start, dtype=np.float32)
        for first in range(start, stop, BLOCK):
            end = min(stop, first + BLOCK)
            if width <= 1:
                out[first - start:end - start] = self.unfaded(np.arange(first, end))
                continue
            # samples first - width//2 .. end - 1 + (width - 1 - width//2), the edges held (as box_filter)
            around = np.clip(np.arange(first - width // 2, end + width - 1 - width // 2), 0, last)
            cumulative = np.concatenate([[0.0], np.cumsum(self.unfaded(around), dtype=np.float64)])
            out[first - start:end - start] = (cumulative[width:] - cumulative[:-width]) / width
        np.clip(out, 0.0, 1.0, out=out)
        return out


def compute_mask(probs: np.ndarray, frame_rate: float, class_indices: Sequence[int], params: MaskParams, *,
                 num_samples: int, sample_rate: int, class_names: Sequence[str] = (),
                 whole_gain: bool = True) -> MaskResult:
    """The gain over a recording of `num_samples` at `sample_rate` from SED `probs` (frames, classes).

    hard: 1 in active regions (p >= θ, or hysteresis), `floor` elsewhere. soft with "median"/"none"
    smoothing: floor + (1 - floor)·min(p/θ, 1) everywhere, short excursions above θ (under
    `min_event_seconds`) clipped to the level around them; soft with "hysteresis": that soft gain inside
    the hysteresis regions, `floor` outside. Spans add full-gain regions, or replace SED ("replace").
    Mode "off", or SED never reaching `min_peak` for the classes, passes everything (`note` says which).
    """
    if num_samples <= 0 or sample_rate <= 0 or frame_rate <= 0:
        raise ValueError(f"need num_samples, sample_rate and frame_rate > 0, got {num_samples}, {sample_rate}, "
                         f"{frame_rate}")
    if params.mode == "auto":
        raise ValueError("mask mode 'auto' is chosen by the pipeline from the query's family; give hard, soft or off")
    duration = num_samples / sample_rate
    params.check_duration(duration)
    label = " | ".join(class_names) or "selected classes"
    use_sed = params.mode != "off" and not (params.spans and params.spans_mode == "replace")

    events: list[Event] = []
    note = None
    indicator = None  # 0..1 before the floor is applied; None: 1 everywhere (made only when it is needed)
    frames = None
    if use_sed:
        probs = _checked_probs(probs)
        frames = probs.shape[0]
        raw_track = class_track(probs, class_indices)
        peak = float(raw_track.max())
        if peak < params.min_peak:
            # A detector that never sees the class says nothing about when it sounds: gating on it
            # would silence the separated target, so the mask passes everything and says so.
            use_sed = False
            note = (f"SED never gives {label} more than {peak:.2f} (below min_peak {params.min_peak:g}); "
                    "the mask passes everything")
    plan = GainPlan(num_samples, int(sample_rate), max(1, int(round(params.fade_ms / 1000 * sample_rate))),
                    params.floor)
    if use_sed:
        track = raw_track
        if params.smoothing == "median":
            track = median_smooth(track, int(round(params.median_seconds * frame_rate)))
        theta = params.threshold
        if params.smoothing == "hysteresis":
            low = params.low_threshold if params.low_threshold is not None else theta / 2
            active = hysteresis(track, theta, low)
        else:
            active = track >= theta
        dropped = _drop_short_runs(active, params.min_event_seconds * frame_rate)
        frame_times = np.arange(frames) / frame_rate
        half = 0.5 / frame_rate
        # the 0/1 regions only where the gain uses them (hard, or soft inside hysteresis regions)
        keep_regions = params.mode == "hard" or params.smoothing == "hysteresis"
        regions = []
        for start, stop in runs(active):
            # Frame t stands for [t - ½, t + ½) frames; the first and last frames reach the recording's ends.
            onset = 0.0 if start == 0 else max(0.0, frame_times[start] - half)
            offset = duration if stop == frames else min(duration, frame_times[stop - 1] + half)
            if offset <= onset:
                continue  # pragma: no mutate
            if keep_regions:
                regions.append((int(round(onset * sample_rate)), int(round(offset * sample_rate))))
            events.append(Event(round(onset, 4), round(offset, 4), label, float(raw_track[start:stop].max())))
        if keep_regions:
            plan.regions = _merged(regions)
        if params.mode != "hard":
            soft = np.ones_like(track) if theta <= 0 else np.minimum(track / theta, 1.0)
            if params.smoothing != "hysteresis":
                for start, stop in dropped:
                    around = [soft[i] for i in (start - 1, stop) if 0 <= i < frames]
                    soft[start:stop] = np.minimum(soft[start:stop], max(around, default=0.0))
            plan.frame_times, plan.soft = frame_times, soft

    if params.spans:
        spans = []
        for start, end in params.spans:
            spans.append((int(round(start * sample_rate)), int(round(min(end, duration) * sample_rate))))
            events.append(Event(start, min(end, duration), SPAN_LABEL, 1.0))
        if params.spans_mode == "replace" or use_sed:  # added to SED's gain, or in its place
            plan.spans, plan.spans_replace = _merged(spans), params.spans_mode == "replace"

    if frames is None:
        frames = np.asarray(probs).shape[0] if np.ndim(probs) >= 1 else 0
    frame_samples = np.clip(np.round(np.arange(frames) / frame_rate * sample_rate).astype(np.int64),
                            0, num_samples - 1)
    frame_gain = plan.unfaded(frame_samples)
    events.sort(key=lambda e: (e.onset, e.offset))
    # at an hour of 32 kHz audio the whole gain is 461 MB: `whole_gain` False leaves it to `plan.render` by stretches
    return MaskResult(plan.render() if whole_gain else None, int(sample_rate), frame_gain, events, note, plan)


def apply_gain(audio: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """`audio` (n,) or (n, channels) times the per-sample `gain` (n,), as float32."""
    audio, gain = np.asarray(audio, dtype=np.float32), np.asarray(gain, dtype=np.float32)
    if gain.ndim != 1:
        raise ValueError(f"the gain must be one value per sample (n,), got shape {gain.shape}")
    if audio.ndim not in (1, 2) or len(audio) != len(gain):
        raise ValueError(f"audio has {len(audio) if audio.ndim else 0} samples but the gain has {len(gain)}")
    return audio * (gain if audio.ndim == 1 else gain[:, None])
