"""FlowSep's audio front-end: 16 kHz log-mel spectrograms (n_fft 1024, hop 160, 64 Slaney mels from
0 to 8 kHz, natural log of clamp(·, 1e-5)), and the STFT the mini model's mask vocoder works in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch


@dataclass(frozen=True)
class MelFrontend:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0

    @cached_property
    def filterbank(self) -> torch.Tensor:
        """(n_mels, n_fft // 2 + 1) Slaney-normalised triangles on the Slaney mel scale, as librosa's default."""
        from transformers.audio_utils import mel_filter_bank

        bank = mel_filter_bank(num_frequency_bins=self.n_fft // 2 + 1, num_mel_filters=self.n_mels,
                               min_frequency=self.fmin, max_frequency=self.fmax, sampling_rate=self.sample_rate,
                               norm="slaney", mel_scale="slaney")
        return torch.from_numpy(bank.T.astype(np.float32))

    @cached_property
    def window(self) -> torch.Tensor:
        return torch.hann_window(self.n_fft, periodic=True)

    def frames(self, samples: int) -> int:
        return samples // self.hop

    def stft(self, wave: torch.Tensor, all_frames: bool = False) -> torch.Tensor:
        """(batch, samples) -> complex (batch, frames, bins) with frames = samples // hop: the centred STFT's
        one extra frame is dropped, as the official front-end keeps 1024 frames per 10.24 s; `all_frames`
        keeps it (for `istft`)."""
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window.to(wave.device), center=True,
                          pad_mode="reflect", return_complex=True).transpose(-1, -2)
        return spec if all_frames else spec[..., : self.frames(wave.shape[-1]), :]

    def istft(self, spec: torch.Tensor, samples: int) -> torch.Tensor:
        """Inverse of `stft(..., all_frames=True)` for `samples` samples."""
        return torch.istft(spec.transpose(-1, -2), self.n_fft, self.hop, window=self.window.to(spec.device),
                           center=True, length=samples)

    def mel(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(..., frames, bins) magnitude -> (..., frames, n_mels) mel magnitude."""
        return magnitude @ self.filterbank.to(magnitude.device).T

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, frames, n_mels)."""
        return torch.log(torch.clamp(self.mel(self.stft(wave).abs()), min=1e-5))

    def mel_gain_to_bins(self, gain: torch.Tensor) -> torch.Tensor:
        """(..., frames, n_mels) per-band gains -> (..., frames, bins): each STFT bin takes the average of
        the bands that cover it, weighted by their triangles; the bins no band covers (0 Hz and the
        Nyquist bin) take their nearest covered neighbour's."""
        bank = self.filterbank.to(gain.device)
        coverage = bank.sum(dim=0)
        covered = torch.nonzero(coverage > 0).flatten()
        nearest = covered[(torch.arange(len(coverage))[:, None] - covered[None]).abs().argmin(dim=1)]
        return ((gain @ bank) / torch.clamp(coverage, min=1e-12))[..., nearest.to(gain.device)]
