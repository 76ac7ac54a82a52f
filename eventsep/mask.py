"""The mask stage: SED probabilities of the selected classes (and user spans) become a click-free gain and events.

Frame t of the probability matrix is centred at t / frame_rate seconds. Hard masks gate at θ,
soft masks scale by min(p/θ, 1); either way the per-sample gain is box-filtered over `fade_ms`,
so it never moves by more than 1/(fade samples) from one sample to the next.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .config import MaskParams

SPAN_LABEL = "span"


@dataclass
class Event:
    onset: float
    offset: float
    label: str
    peak: float


@dataclass
class MaskResult:
    gain: np.ndarray
    sample_rate: int
    frame_gain: np.ndarray
    events: list[Event]
    note: str | None = None

    def events_table(self) -> list[dict]:
        return [asdict(event) for event in self.events]

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["onset", "offset", "label", "peak"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.events_table())
        return buffer.getvalue()

    def to_json(self) -> str:
        return json.dumps(self.events_table())


def class_track(probs: np.ndarray, class_indices: Sequence[int]) -> np.ndarray:
    """The probability that any selected class is present: the max over their columns."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (frames, classes), got shape {probs.shape}")
    indices = list(class_indices)
    if not indices:
        raise ValueError("no class selected")
    bad = [i for i in indices if not 0 <= int(i) < probs.shape[1]]
    if bad:
        raise ValueError(f"class index {bad[0]} out of range 0..{probs.shape[1] - 1}")
    return probs[:, indices].max(axis=1)


def median_smooth(track: np.ndarray, frames: int) -> np.ndarray:
    if frames <= 1 or len(track) < 2:
        return track
    frames |= 1  # odd, so the window is centred
    padded = np.pad(track, frames // 2, mode="edge")
    return np.median(sliding_window_view(padded, frames), axis=1).astype(np.float32)


def hysteresis(track: np.ndarray, high: float, low: float) -> np.ndarray:
    """Active from where the track reaches `high` until it falls below `low`."""
    active = np.zeros(len(track), dtype=bool)
    on = False
    for i, p in enumerate(track):
        on = p >= high if not on else p >= low
        active[i] = on
    return active


def runs(active: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def box_filter(signal: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average (edges held): limits the slope to (max - min) / width."""
    if width <= 1:
        return signal
    padded = np.pad(signal.astype(np.float64), (width // 2, width - 1 - width // 2), mode="edge")
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    return ((cumulative[width:] - cumulative[:-width]) / width).astype(np.float32)


def compute_mask(probs: np.ndarray, frame_rate: float, class_indices: Sequence[int], params: MaskParams, *,
                 num_samples: int, sample_rate: int, class_names: Sequence[str] = ()) -> MaskResult:
    duration = num_samples / sample_rate
    params.check_duration(duration)
    probs = np.asarray(probs, dtype=np.float32)
    frames = probs.shape[0]
    frame_times = np.arange(frames) / frame_rate
    label = " | ".join(class_names) or "selected classes"
    use_sed = params.mode != "off" and not (params.spans and params.spans_mode == "replace")

    events: list[Event] = []
    note = None
    sample_times = np.arange(num_samples) / sample_rate
    if use_sed:
        peak = float(class_track(probs, class_indices).max())
        if peak < params.min_peak:
            # A detector that never sees the class says nothing about when it sounds: gating on it
            # would silence the separated target, so the mask passes everything and says so.
            use_sed = False
            note = (f"SED never gives {label} more than {peak:.2f} (below min_peak {params.min_peak:g}); "
                    "the mask passes everything")
    if use_sed:
        track = class_track(probs, class_indices)
        if params.smoothing == "median":
            track = median_smooth(track, int(round(params.median_seconds * frame_rate)))
        theta = params.threshold
        if params.smoothing == "hysteresis":
            low = params.low_threshold if params.low_threshold is not None else theta / 2
            active = hysteresis(track, theta, low)
        else:
            active = track >= theta
        min_frames = params.min_event_seconds * frame_rate
        for start, stop in runs(active):
            if stop - start < min_frames:
                active[start:stop] = False
        soft = np.ones_like(track) if theta <= 0 else np.minimum(track / theta, 1.0)
        frame_gain = np.where(active, 1.0, soft if params.mode == "soft" else 0.0).astype(np.float32)
        half = 0.5 / frame_rate
        indicator = np.zeros(num_samples, dtype=np.float32)
        for start, stop in runs(active):
            onset, offset = max(0.0, frame_times[start] - half), min(duration, frame_times[stop - 1] + half)
            indicator[int(round(onset * sample_rate)):int(round(offset * sample_rate))] = 1.0
            events.append(Event(round(onset, 4), round(offset, 4), label, float(track[start:stop].max())))
        if params.mode == "soft":
            indicator = np.maximum(indicator, np.interp(sample_times, frame_times, soft).astype(np.float32))
    else:
        frame_gain = np.full(frames, 1.0 if params.mode == "off" else 0.0, dtype=np.float32)
        indicator = np.ones(num_samples, dtype=np.float32)

    if params.spans:
        spans = np.zeros(num_samples, dtype=np.float32)
        for start, end in params.spans:
            spans[int(round(start * sample_rate)):int(round(min(end, duration) * sample_rate))] = 1.0
            events.append(Event(start, min(end, duration), SPAN_LABEL, 1.0))
        if params.spans_mode == "replace":
            indicator = spans
        elif use_sed:
            indicator = np.maximum(indicator, spans)

    gain = params.floor + (1.0 - params.floor) * indicator
    fade = max(1, int(round(params.fade_ms / 1000 * sample_rate)))
    gain = np.clip(box_filter(gain, fade), 0.0, 1.0)
    events.sort(key=lambda e: (e.onset, e.offset))
    return MaskResult(gain.astype(np.float32), int(sample_rate), frame_gain, events, note)


def apply_gain(audio: np.ndarray, gain: np.ndarray) -> np.ndarray:
    if len(audio) != len(gain):
        raise ValueError(f"audio has {len(audio)} samples but the gain has {len(gain)}")
    return (np.asarray(audio, dtype=np.float32) * gain).astype(np.float32)
