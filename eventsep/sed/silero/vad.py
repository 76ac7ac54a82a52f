"""Silero VAD's speech probability every 32 ms, written into the speech columns of the 527 classes.

The network takes 512 new samples at 16 kHz plus the previous 64 as context, and carries a (2, 1, 128)
state from frame to frame; it gives one probability that the frame holds speech. The recording is
streamed through one fresh state (memory does not grow with length) after 256 zeros, so that frame t
is centred at t × 32 ms, as SedOutput requires. Every speech class (eventsep.ontology.speech_indices)
gets that probability; every other class gets 0, so this detector is only meant for speech queries.
The wheel is located, never imported (its package imports torch and its metadata pins torchaudio).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from ...audio import resample
from ...ontology import NUM_CLASSES, speech_indices
from .. import SedOutput

SAMPLE_RATE = 16000
FRAME, CONTEXT = 512, 64


class SileroSed:
    """Satisfies `eventsep.sed.SedModel`. One onnxruntime session; the recurrent state is passed in and out
    of every call, so concurrent `detect` calls share nothing but the (thread-safe) session."""

    name = "silero"
    sample_rate = SAMPLE_RATE
    frame_rate = SAMPLE_RATE / FRAME  # 31.25 frames a second

    def __init__(self, model: Path, identity: str):
        self.model = model
        self._identity = identity

    def identity(self) -> str:
        return self._identity

    @cached_property
    def _session(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return onnxruntime.InferenceSession(str(self.model), options, providers=["CPUExecutionProvider"])

    def speech_probability(self, samples_16k: np.ndarray) -> np.ndarray:
        """One probability per 512-sample frame; frame t covers samples [512 t - 256, 512 t + 256)."""
        count = len(samples_16k) // FRAME + 1  # as many frames as centres t × 32 ms within the recording
        audio = np.zeros(CONTEXT + count * FRAME, np.float32)  # context, then 256 zeros, then the samples
        head = CONTEXT + FRAME // 2
        part = np.asarray(samples_16k, np.float32)[: len(audio) - head]
        audio[head:head + len(part)] = part
        session = self._session
        state = np.zeros((2, 1, 128), dtype=np.float32)
        rate = np.array(SAMPLE_RATE, dtype=np.int64)
        probs = np.empty(count, dtype=np.float32)
        for t in range(count):
            window = audio[t * FRAME:t * FRAME + CONTEXT + FRAME][None]
            output, state = session.run(None, {"input": window, "state": state, "sr": rate})
            probs[t] = output.reshape(-1)[0]
        return probs

    def detect(self, samples: np.ndarray, sample_rate: int) -> SedOutput:
        track = self.speech_probability(resample(np.asarray(samples, np.float32), sample_rate, SAMPLE_RATE))
        probs = np.zeros((len(track), NUM_CLASSES), dtype=np.float32)
        probs[:, list(speech_indices())] = track[:, None]
        return SedOutput(probs, self.frame_rate, self.name)


def silero_model() -> SileroSed:
    """Silero VAD from the silero-vad wheel; BackendUnavailable (one line) when it is not installed or damaged."""
    from ... import pretrained

    model = pretrained.locate("silero-vad")  # MissingWeights, or CorruptWeights on a sha256 mismatch
    return SileroSed(model, pretrained.REGISTRY["silero-vad"].sha256)

