"""Long recordings a block at a time: each block, with context either side, goes through the cached stages of
`pipeline`; the detector's frames of the followed classes are joined over the recording for the mask and the
event table, and target and residual are written a block at a time, so memory does not grow with length.

Outputs equal a whole-recording run away from block edges when the block starts fall on the frame grids of the
default stages (AudioSep's 9 s window hop, YAMNet's 0.48 s frames): blocks and context are multiples of 36 s,
and the recurrent DeepFilterNet3 and Silero get 72 s before each block to forget their fresh state.
Decisions over the whole recording (the trust rule's levels, the mask's "the detector never sees it") are made
from sums over the blocks; with two separators their fusion's lag and loudness matching are found per block.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from . import backends
from .audio import Audio, AudioError, RawSamples, audio_writer, energy, _decoding
from .config import gain_applied
from .hashing import stage_key
from .pipeline import (GATED, SEPARATOR, VERSIONS, NoSeparatorAvailable, Progress, Result, RunOptions, Runner,
                       _stage_progress, answered, detector_track, followed_classes, masked_input, notes, per_channel,
                       resolve, selected_classes)
from .store import StageResult
from .trust import (QUIET_DB, detector_gate, energy_level_db, fallback_answer, fallback_described, judge,
                    loudest_second_db, replaces, second_energies)
from .upmix import HOP as UPMIX_HOP

BLOCK_SECONDS = 180.0
# Context read before and after each block's core. DeepFilterNet3 and Silero carry a recurrent state forward: after
# 36 s from a fresh state DeepFilterNet3's answer still differed from the whole run's by 2e-4, after 72 s by 8e-5
# (docs/memory.md); AudioSep's 10 s windows and YAMNet's 0.96 s patches need far less on either side.
BEFORE_SECONDS = 72.0
AFTER_SECONDS = 36.0
# Recordings longer than this are separated in blocks by `eventsep separate` (and the upload deployment).
STREAM_SECONDS = 300.0


def wanted(path: str, reference: str | None = None) -> bool:
    """Whether `path` is long enough to be separated in blocks (not with a reference: metrics need it whole)."""
    if reference is not None:
        return False
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError):
        return False  # the whole-recording path names the problem
    return info.frames > STREAM_SECONDS * info.samplerate


@dataclass(frozen=True)
class Block:
    """Samples [start, stop) of the recording read and processed; [core_start, core_stop) is what it answers."""

    start: int
    stop: int
    core_start: int
    core_stop: int

    @property
    def core(self) -> slice:
        return slice(self.core_start - self.start, self.core_stop - self.start)


def blocks(length: int, rate: int, block_seconds: float | None = None, before_seconds: float | None = None,
           after_seconds: float | None = None) -> list[Block]:
    """The blocks covering `length` samples: cores of `block_seconds` (the last shorter), with context before and
    after (each None: the module's BLOCK_SECONDS, BEFORE_SECONDS, AFTER_SECONDS)."""
    seconds = (BLOCK_SECONDS if block_seconds is None else block_seconds,
               BEFORE_SECONDS if before_seconds is None else before_seconds,
               AFTER_SECONDS if after_seconds is None else after_seconds)
    size, before, after = (int(round(value * rate)) for value in seconds)
    if size <= 0 or before < 0 or after < 0:
        raise ValueError(f"blocks need a positive size and no negative context, got {size}, {before} and {after} "
                         "samples")
    return [Block(max(0, start - before), min(length, start + size + after), start, min(length, start + size))
            for start in range(0, length, size)]


class BlockReader:
    """Reads stretches of an audio file as `Audio` (mono mix, channels kept), checking every sample as
    `load_audio` does; `key` is the whole recording's `hashing.recording_key`, complete once every core was read
    in order."""

    def __init__(self, path: str):
        self.path = str(path)
        with _decoding(self.path):
            info = soundfile.info(self.path)
        self.rate, self.length, self.channels = int(info.samplerate), int(info.frames), int(info.channels)
        self._digest = hashlib.sha256(f"float32le;{(self.length,)};{self.rate};".encode())
        self._hashed = 0

    def read(self, start: int, stop: int) -> Audio:
        with _decoding(self.path), soundfile.SoundFile(self.path) as handle:
            handle.seek(start)
            data = handle.read(stop - start, dtype="float32", always_2d=True)
        if len(data) != stop - start:
            raise AudioError(self.path, f"truncated (decoded {start + len(data)} of {self.length} frames)")
        mono = data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0]
        if not np.isfinite(mono).all():
            raise AudioError(self.path, "contains NaN or Inf samples")
        return Audio(mono, self.rate, self.path, channels=data if data.shape[1] > 1 else None)

    def hash_core(self, audio: Audio, block: Block) -> None:
        if block.core_start == self._hashed:  # each core once, in order
            self._digest.update(memoryview(np.ascontiguousarray(audio.samples[block.core], "<f4")).cast("B"))
            self._hashed = block.core_stop

    @property
    def key(self) -> str:
        if self._hashed != self.length:
            raise RuntimeError("the recording's key is known once every block was read")
        return self._digest.hexdigest()


def _core_frames(probs: np.ndarray, frame_rate: float, rate: int, block: Block, last: bool) -> np.ndarray:
    """The frames of a block's SED output whose centres fall in its core (frame t of a block is centred at
    block.start / rate + t / frame_rate); the last block keeps its frames to the end."""
    offset = block.start / rate * frame_rate
    first = math.ceil(block.core_start / rate * frame_rate - 1e-6) - offset
    stop = len(probs) if last else math.ceil(block.core_stop / rate * frame_rate - 1e-6) - offset
    return probs[int(round(first)):int(round(stop))]


def run(reader: BlockReader, query: str, options: RunOptions, runner: Runner, staging: Path, stem: str,
        progress: Progress | None = None, block_seconds: float | None = None, before_seconds: float | None = None,
        after_seconds: float | None = None) -> Result:
    """The DAG of `pipeline.run` over the blocks of `reader`'s recording; writes `<stem>.target.wav` and
    `<stem>.residual.wav` into `staging` and returns the Result, its audio read from raw files in
    `staging/.stream` (the caller removes them)."""
    from .mask import compute_mask
    from .outputs import audio_names

    duration = reader.length / reader.rate
    options.mask.check_duration(duration)
    _stage_progress(progress, "map_query")
    mapping = runner.run("map_query", query=query, encoder=options.encoder, params=options.query)
    options, passed_over = resolve(options, mapping)
    usable, reasons = backends.available("separator", options.separators)
    reasons = {**passed_over, **reasons}
    classes = selected_classes(mapping, options.mask)
    layout = blocks(reader.length, reader.rate, block_seconds, before_seconds, after_seconds)

    # 1. the detector, block by block: the followed classes' frames of each core, joined
    sed_progress = _stage_progress(progress, "sed")
    cores, frame_rate, model = [], 1.0, options.sed
    for index, block in enumerate(layout):
        audio = reader.read(block.start, block.stop)
        reader.hash_core(audio, block)
        try:
            found = runner.run("sed", recording=audio, model=options.sed, params=options.sed_params)
        except backends.BackendUnavailable as error:
            if usable:
                raise
            raise NoSeparatorAvailable(reasons, [], also=str(error)) from None
        frame_rate, model = float(found.meta["frame_rate"]), found.meta["model"]
        followed = found["probs"][:, [c["index"] for c in classes]] if classes else found["probs"][:, :0]
        cores.append(_core_frames(followed, frame_rate, reader.rate, block, index == len(layout) - 1))
        if sed_progress:
            sed_progress((index + 1) / len(layout))
    probs = np.concatenate(cores)
    _stage_progress(progress, "mask")
    followed_classes(mapping, options.mask)  # a mask that needs classes and has none fails here, as in `pipeline`
    made = compute_mask(probs if classes else np.zeros((len(probs), 1), np.float32), frame_rate,
                        list(range(len(classes))) or [0], options.mask, num_samples=reader.length,
                        sample_rate=reader.rate, class_names=[c["name"] for c in classes], whole_gain=False)
    plan, events = made.plan, made.events_table()
    mask_result = StageResult("mask", "", meta={"sample_rate": reader.rate, "events": events, "classes": classes,
                                                "note": made.note})
    if not usable:
        raise NoSeparatorAvailable(reasons, events)
    remove = bool(mapping.meta.get("remove"))
    floor = options.mask.floor

    # the mask's identity, for the keys of the mixture gated by it (mask_at "input"), a block at a time
    mask_key = stage_key("mask", VERSIONS["mask"], options.mask, inputs={
        "probs": hashlib.sha256(np.ascontiguousarray(probs, "<f4").tobytes()).hexdigest(),
        "frame_rate": repr(frame_rate), "model": model, "map_query": mapping.key})

    def fused_block(block: Block, audio: Audio) -> StageResult:
        separator_input = audio
        if options.mask.mask_at == "input":
            separator_input = masked_input(audio, StageResult("mask", f"{mask_key}:{block.start}:{block.stop}",
                                                              arrays={"gain": plan.render(block.start, block.stop)}))
        estimates = [runner.run("separate", recording=separator_input, mapping=mapping, separator=name,
                                params=options.separator) for name in usable[:2]]
        return runner.run("fuse", first=estimates[0], second=estimates[1] if len(estimates) > 1 else None,
                          params=options.fusion, recording=audio)

    # 2. the separators, block by block, and the sums the trust rule decides on
    separate_progress = _stage_progress(progress, f"separate ({', '.join(usable[:2])})")
    described_energy = mixture_energy = gated_energy = 0.0
    seconds = math.ceil(reader.length / reader.rate)
    described_seconds, mixture_seconds = np.zeros(seconds), np.zeros(seconds)
    gate_min = 1.0
    separators: list[str] = []
    for index, block in enumerate(layout):
        audio = reader.read(block.start, block.stop)
        fused = fused_block(block, audio)
        separators = list(fused.meta["separators"])
        mixture = audio.samples[block.core]
        described_energy += energy(fused["audio"][block.core])
        mixture_energy += energy(mixture)
        for sums, part in ((described_seconds, fused["audio"][block.core]), (mixture_seconds, mixture)):
            first, block_sums = second_energies(part, reader.rate, block.core_start)
            sums[first:first + len(block_sums)] += block_sums
        if options.fallback != "off":
            gate = detector_gate(plan.render(block.core_start, block.core_stop), floor)
            gated_energy += energy(mixture * gate)
            gate_min = min(gate_min, float(gate.min()))
        if separate_progress:
            separate_progress((index + 1) / len(layout))
    level = energy_level_db(described_energy, mixture_energy)
    untrusted, replaceable = judge(level, classes, separators, bool(events), remove,
                                   loudest_second_db(described_seconds, mixture_seconds) if level < -QUIET_DB else None)
    answer = SEPARATOR
    if replaces(untrusted if replaceable else None, options.fallback, remove):
        answer = fallback_answer(remove, energy_level_db(gated_energy, mixture_energy), gate_min)

    # 3. the answer, block by block, written as it is made
    _stage_progress(progress, "write")
    names = audio_names(stem)
    raw = staging / ".stream"
    raw.mkdir()
    shape = (reader.length,) if reader.channels == 1 else (reader.length, reader.channels)
    applied = gain_applied(options.mask.model_dump())
    with audio_writer(staging / names["target"], reader.rate, reader.channels) as write_target, \
            audio_writer(staging / names["residual"], reader.rate, reader.channels) as write_residual, \
            open(raw / "target.f32", "wb") as raw_target, open(raw / "residual.f32", "wb") as raw_residual:
        for block in layout:
            audio = reader.read(block.start, block.stop)
            described = fused_block(block, audio)["audio"]
            gain = plan.render(block.start, block.stop)
            instead = None
            if answer != SEPARATOR:
                gated = audio.samples * detector_gate(gain, floor)
                instead = fallback_described(answer, remove, audio.samples, gated)
            target, rest = answered(described, audio.samples, instead, gain, remove, options.mask.mask_at)
            # upmix's STFT frames on the whole recording's grid (multiples of its hop), so channels match too
            skip = -block.start % UPMIX_HOP if audio.channels is not None else 0
            skip = skip if block.start + skip <= block.core_start else 0
            target, rest = per_channel(None if audio.channels is None else audio.channels[skip:], audio.samples[skip:],
                                       target[skip:], rest[skip:])
            core = slice(block.core.start - skip, block.core.stop - skip)
            for write, handle, part in ((write_target, raw_target, target), (write_residual, raw_residual, rest)):
                write(part[core])
                np.ascontiguousarray(part[core], np.float32).tofile(handle)
    recording_key = reader.key
    target, residual = RawSamples(raw / "target.f32", shape), RawSamples(raw / "residual.f32", shape)
    gain = plan if applied else np.zeros(0, np.float32)  # sliced as an array would be, for the report's picture
    # the recording as `notes` reads it: its name, key and channel count (no samples)
    whole = Audio(np.zeros(0, np.float32), reader.rate, reader.path, key_override=recording_key,
                  channels=np.zeros((0, reader.channels), np.float32))
    fused_meta = StageResult("fuse", "", meta={"separators": separators})
    extra = notes(whole, fused_meta, mask_result, mapping, options, untrusted,
                  GATED if not separators else answer, replaceable)
    extra["unavailable_separators"] = reasons
    first = layout[0]
    extra["blocks"] = (f"separated in {len(layout)} blocks of {(first.core_stop - first.core_start) / reader.rate:g} s "
                       "with context before and after (eventsep/stream.py)")
    sed_whole = StageResult("sed", "", arrays={"probs": probs}, meta={"frame_rate": frame_rate, "model": model})
    track_mask = StageResult("mask", "", meta={"classes": [{"index": i, "name": c["name"]}
                                                           for i, c in enumerate(classes)]})
    return Result(target=target, residual=residual, sample_rate=reader.rate, mapping=mapping.meta, events=events,
                  gain=gain, keys={"recording": recording_key, "map_query": mapping.key}, separators=separators,
                  options=options.model_dump(mode="json"), extra=extra, track=detector_track(sed_whole, track_mask))


def separate_file(path: str, query: str, options: RunOptions, runner: Runner, folder: str | Path, stem: str,
                  html: bool = True, progress: Progress | None = None, **layout) -> tuple[Result, dict[str, str]]:
    """Separate a long recording in blocks and write all its outputs into `folder` as one set (as
    `outputs.write_result` does for a whole one); returns the Result (its audio no longer readable) and the paths."""
    from .atomic import atomic_dir
    from .outputs import write_beside_audio

    folder = Path(folder)
    reader = BlockReader(path)
    with atomic_dir(folder) as staging:
        result = run(reader, query, options, runner, staging, stem, progress, **layout)
        names = write_beside_audio(result, staging, stem, html, path, folder)
        result.target = result.residual = result.gain = None
        shutil.rmtree(staging / ".stream")
    return result, {part: str(folder / name) for part, name in names.items()}

