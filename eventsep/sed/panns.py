"""PANNs Cnn14_DecisionLevelMax built directly (panns_inference is set aside), with the official key names.

32 kHz, window 1024, hop 320, 64 mels 50–14000 Hz. The STFT is a pair of fixed convolutions and
the mel bank a fixed matrix, as in the official checkpoint (`spectrogram_extractor.stft.conv_*`,
`logmel_extractor.melW`), so the checkpoint's own transforms are used when it is loaded. The
output `framewise_output` (frames × 527, frames = ⌊N/320⌋ + 1) is already a probability: the
sigmoid is inside the model and nothing applies another one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import resample
from ..ontology import NUM_CLASSES
from . import SedOutput

SAMPLE_RATE, WINDOW, HOP, MELS, FMIN, FMAX = 32000, 1024, 320, 64, 50.0, 14000.0
SEGMENT_RATIO = 32  # frames per output segment after five 2× poolings in time
# Context each side of a chunk, in segments. The receptive field of one segment reaches about 5 segments
# (two 3×3 convolutions per block at scales 1..32 frames, the 2× poolings, the 3-segment time pooling,
# the 1024-sample window); 8 leaves margin. tests/test_sed_panns.py checks chunked == one pass.
CONTEXT_SEGMENTS = 8


def slaney_mel_bank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters on the Slaney mel scale, area-normalised (librosa's default)."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        linear = f / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log, linear)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))

    frequencies = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower = (frequencies[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - frequencies[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T.astype(np.float32)


class ConvStft(nn.Module):
    """Power spectrogram by two fixed 1-D convolutions (real and imaginary DFT rows times a periodic Hann)."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.hop, self.n_fft = hop, n_fft
        bins = n_fft // 2 + 1
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        angle = 2 * np.pi * torch.outer(torch.arange(bins, dtype=torch.float64), torch.arange(n_fft, dtype=torch.float64)) / n_fft
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_((torch.cos(angle) * window)[:, None].float())
            self.conv_imag.weight.copy_((-torch.sin(angle) * window)[:, None].float())
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → (batch, 1, frames, bins), centred with reflect padding."""
        x = F.pad(waveform[:, None], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return (self.conv_real(x) ** 2 + self.conv_imag(x) ** 2).transpose(1, 2)[:, None]


class Spectrogram(nn.Module):
    def __init__(self):
        super().__init__()
        self.stft = ConvStft(WINDOW, HOP)

    def forward(self, waveform):
        return self.stft(waveform)


class LogMel(nn.Module):
    def __init__(self):
        super().__init__()
        self.melW = nn.Parameter(torch.from_numpy(slaney_mel_bank(SAMPLE_RATE, WINDOW, MELS, FMIN, FMAX)),
                                 requires_grad=False)

    def forward(self, power):
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x, pool):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14DecisionLevelMax(nn.Module):
    def __init__(self, widths=(64, 128, 256, 512, 1024, 2048), classes: int = NUM_CLASSES):
        super().__init__()
        self.spectrogram_extractor = Spectrogram()
        self.logmel_extractor = LogMel()
        self.bn0 = nn.BatchNorm2d(MELS)
        ins = (1, *widths[:-1])
        for index, (cin, cout) in enumerate(zip(ins, widths), start=1):
            self.add_module(f"conv_block{index}", ConvBlock(cin, cout))
        self.fc1 = nn.Linear(widths[-1], widths[-1])
        self.fc_audioset = nn.Linear(widths[-1], classes)
        self.blocks = len(widths)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) at 32 kHz → framewise probabilities (batch, ⌊N/320⌋ + 1, classes)."""
        x = self.logmel_extractor(self.spectrogram_extractor(waveform))  # (B, 1, T, mels)
        frames = x.shape[2]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for index in range(1, self.blocks + 1):
            x = getattr(self, f"conv_block{index}")(x, (2, 2) if index < self.blocks else (1, 1))
        x = x.mean(dim=3)
        x = F.max_pool1d(x, 3, stride=1, padding=1) + F.avg_pool1d(x, 3, stride=1, padding=1)
        x = F.relu(self.fc1(x.transpose(1, 2)))
        segments = torch.sigmoid(self.fc_audioset(x))  # (B, T/32, classes): probabilities from here on
        framewise = segments.repeat_interleave(SEGMENT_RATIO, dim=1)[:, :frames]
        if framewise.shape[1] < frames:  # the last segment's value carries to the end
            framewise = torch.cat([framewise, framewise[:, -1:].expand(-1, frames - framewise.shape[1], -1)], 1)
        return framewise


class PannsSed:
    """The SED backend: the model loaded strictly from `Cnn14_DecisionLevelMax_mAP=0.385.pth`."""

    name = "panns"
    sample_rate = SAMPLE_RATE
    chunk_seconds = 60.0

    def __init__(self, model: Cnn14DecisionLevelMax, identity: str):
        self.model = model.eval()
        self._identity = identity

    def identity(self) -> str:
        return self._identity

    def detect(self, samples: np.ndarray, sample_rate: int) -> SedOutput:
        """One pass per chunk of about `chunk_seconds`, to keep memory bounded. Chunks start on the
        32-frame decision segments and each sees CONTEXT_SEGMENTS more segments on either side (more than
        the network's receptive field), so the output equals one pass over the whole file."""
        audio = resample(np.asarray(samples, np.float32), sample_rate, SAMPLE_RATE)
        total = len(audio) // HOP + 1
        segment = SEGMENT_RATIO * HOP  # samples per decision segment
        core = max(1, int(self.chunk_seconds * SAMPLE_RATE) // segment) * segment
        context = CONTEXT_SEGMENTS * segment
        parts = []
        with torch.inference_mode():
            for start in range(0, len(audio), core):
                first = max(0, start - context)
                last = start + core + context
                piece = audio[first:last]
                if len(piece) < segment:  # five 2× poolings need 32 frames; pad, then drop
                    piece = np.pad(piece, (0, segment - len(piece)))
                frames = self.model(torch.from_numpy(piece)[None])[0].numpy()
                offset = (start - first) // HOP
                parts.append(frames[offset:] if last >= len(audio) else frames[offset:offset + core // HOP])
                if last >= len(audio):
                    break
        probs = np.concatenate(parts)[:total]
        if len(probs) < total:
            probs = np.concatenate([probs, np.repeat(probs[-1:], total - len(probs), axis=0)])
        return SedOutput(probs.astype(np.float32), SAMPLE_RATE / HOP, self.name)


def load_panns(path, expected_sha256: str | None = None) -> Cnn14DecisionLevelMax:
    """Strict: the checkpoint's `model` dict must match key for key and shape for shape."""
    from pathlib import Path

    from ..hashing import file_sha256
    from ..pretrained import checkpoint_tensors, load_strict

    if expected_sha256 and file_sha256(path) != expected_sha256:
        raise ValueError(f"{path}: sha256 {file_sha256(path)} differs from the expected {expected_sha256}")
    return load_strict(Cnn14DecisionLevelMax(), checkpoint_tensors(Path(path)), str(path))
