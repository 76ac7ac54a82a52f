"""ResUNet30 with FiLM text conditioning, module for module as AudioSep's separator (same state-dict keys).

The network sees the STFT magnitude (torch.stft, periodic Hann, centred, reflect padding) and
predicts, per bin, a sigmoid magnitude mask and a phase rotation: |Y| = relu(|X| · mask),
∠Y = ∠X + ∠(tanh r, tanh i). Every convolution block's batch-norm output is shifted by a
`beta` computed from the condition vector (FiLM). Widths, depth of the time pooling, STFT size
and condition size are parameters, so the same class builds the official model and the mini one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.01
MASK_CHANNELS = 3  # magnitude mask, real and imaginary parts of the phase rotation
POWER_FLOOR = 1e-10  # the official floor of re² + im² before the square root (AudioSep's base.py)


@dataclass(frozen=True)
class ResUNetConfig:
    widths: tuple[int, ...] = (32, 64, 128, 256, 384, 384)
    # (time, frequency) pooling after each encoder block; the decoder mirrors it.
    pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 2), (2, 2), (2, 2), (1, 2))
    condition_size: int = 512
    n_fft: int = 2048
    hop: int = 320
    sample_rate: int = 32000
    input_channels: int = 1
    output_channels: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def time_multiple(self) -> int:
        return math.prod(p[0] for p in self.pools)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ResUNetConfig":
        data = dict(data)
        data["widths"] = tuple(data["widths"])
        data["pools"] = tuple(tuple(p) for p in data["pools"])
        return cls(**data)


OFFICIAL = ResUNetConfig()


class ConvBlockRes(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.film_sizes = {"beta1": in_channels, "beta2": out_channels}

    def forward(self, x: torch.Tensor, film: dict) -> torch.Tensor:
        origin = x
        x = self.conv1(F.leaky_relu(self.bn1(x) + film["beta1"], 0.01))
        x = self.conv2(F.leaky_relu(self.bn2(x) + film["beta2"], 0.01))
        return (self.shortcut(origin) if self.shortcut is not None else origin) + x


class EncoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, pool: tuple[int, int]):
        super().__init__()
        self.conv_block1 = ConvBlockRes(in_channels, out_channels)
        self.pool = pool

    def film_sizes(self) -> dict:
        return {"conv_block1": self.conv_block1.film_sizes}

    def forward(self, x: torch.Tensor, film: dict) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.conv_block1(x, film["conv_block1"])
        return F.avg_pool2d(encoded, kernel_size=self.pool), encoded


class DecoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, pool: tuple[int, int]):
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=pool, stride=pool, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=BN_MOMENTUM)
        self.conv_block2 = ConvBlockRes(out_channels * 2, out_channels)
        # Present in the official model (and its checkpoint) but unused in its forward pass.
        self.bn2 = nn.BatchNorm2d(in_channels, momentum=BN_MOMENTUM)

    def film_sizes(self) -> dict:
        return {"beta1": self.bn1.num_features, "beta2": self.bn2.num_features,
                "conv_block2": self.conv_block2.film_sizes}

    def forward(self, x: torch.Tensor, skip: torch.Tensor, film: dict) -> torch.Tensor:
        x = self.conv1(F.leaky_relu(self.bn1(x) + film["beta1"], 0.01))
        return self.conv_block2(torch.cat((x, skip), dim=1), film["conv_block2"])


class ResUNetBase(nn.Module):
    def __init__(self, config: ResUNetConfig):
        super().__init__()
        self.config = config
        bins = config.n_fft // 2 + 1
        widths = config.widths
        self.bn0 = nn.BatchNorm2d(bins, momentum=BN_MOMENTUM)
        self.pre_conv = nn.Conv2d(config.input_channels, widths[0], 1)
        self.encoder_names = [f"encoder_block{i + 1}" for i in range(len(widths))]
        self.decoder_names = [f"decoder_block{i + 1}" for i in range(len(widths))]
        ins = (widths[0], *widths[:-1])
        for name, cin, cout, pool in zip(self.encoder_names, ins, widths, config.pools):
            self.add_module(name, EncoderBlock(cin, cout, pool))
        self.conv_block7a = EncoderBlock(widths[-1], widths[-1], (1, 1))
        outs = list(reversed(widths))  # each decoder block ends with its skip connection's width
        for name, cin, cout, pool in zip(self.decoder_names, (widths[-1], *outs[:-1]), outs,
                                         reversed(config.pools)):
            self.add_module(name, DecoderBlock(cin, cout, pool))
        self.after_conv = nn.Conv2d(widths[0], config.output_channels * MASK_CHANNELS, 1)
        with torch.no_grad():
            # Start from "keep the phase": a rotation of about (1, 0) per bin. From a random rotation
            # a short training spends its first thousand steps only learning to leave the phase alone.
            self.after_conv.weight.mul_(0.1)
            self.after_conv.bias.view(config.output_channels, MASK_CHANNELS)[:, 1] = 2.0
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True), persistent=False)

    def film_sizes(self) -> dict:
        names = [*self.encoder_names, "conv_block7a", *self.decoder_names]
        return {name: getattr(self, name).film_sizes() for name in names}

    def spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → complex (batch, frames, bins)."""
        return torch.stft(waveform, self.config.n_fft, self.config.hop, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True).transpose(1, 2)

    def forward(self, mixture: torch.Tensor, film: dict) -> torch.Tensor:
        """mixture (batch, 1, samples) → separated (batch, 1, samples)."""
        return self.separate(mixture, film)[0]

    def separate(self, mixture: torch.Tensor, film: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The separated waveform (batch, 1, samples) and the magnitude mask's logits (batch, 1, frames, bins),
        for losses that must not vanish where the sigmoid saturates."""
        batch, _, length = mixture.shape
        spec = self.spectrogram(mixture[:, 0])
        # as the official code: sqrt(max(re² + im², 1e-10)), so a silent bin reads 1e-5 and its phase 0
        magnitude = (spec.real ** 2 + spec.imag ** 2).clamp_min(POWER_FLOOR).sqrt()[:, None]  # (B, 1, T, F)
        phase = spec[:, None] / magnitude
        x = self.bn0(magnitude.transpose(1, 3)).transpose(1, 3)
        frames = x.shape[2]
        multiple = self.config.time_multiple
        x = F.pad(x, (0, 0, 0, int(math.ceil(frames / multiple)) * multiple - frames))
        x = self.pre_conv(x[..., :-1])  # the Nyquist bin is dropped so the frequency axis halves evenly
        skips = []
        for name in self.encoder_names:
            x, skip = getattr(self, name)(x, film[name])
            skips.append(skip)
        x, _ = self.conv_block7a(x, film["conv_block7a"])
        for name, skip in zip(self.decoder_names, reversed(skips)):
            x = getattr(self, name)(x, skip, film[name])
        x = F.pad(self.after_conv(x), (0, 1))[:, :, :frames]
        x = x.reshape(batch, self.config.output_channels, MASK_CHANNELS, frames, -1)
        mask = torch.sigmoid(x[:, :, 0])
        rotation = torch.complex(torch.tanh(x[:, :, 1]), torch.tanh(x[:, :, 2]))
        rotation = rotation / torch.sqrt(rotation.real ** 2 + rotation.imag ** 2 + 1e-20)  # finite gradient at 0
        out = F.relu(magnitude * mask) * phase * rotation  # (B, C, T, F)
        waveform = torch.istft(out[:, 0].transpose(1, 2), self.config.n_fft, self.config.hop,
                               window=self.window, center=True, length=length)
        return waveform[:, None], x[:, :, 0]


class FiLM(nn.Module):
    """One Linear(condition → channels) per conditioned batch-norm, named by its '->'-joined module path."""

    def __init__(self, sizes: dict, condition_size: int):
        super().__init__()
        self.sizes = sizes
        for path, channels in self._leaves(sizes, ()):
            self.add_module("->".join(path), nn.Linear(condition_size, channels))

    def _leaves(self, tree: dict, prefix: tuple):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from self._leaves(value, (*prefix, key))
            else:
                yield (*prefix, key), value

    def forward(self, condition: torch.Tensor) -> dict:
        def build(tree: dict, prefix: tuple) -> dict:
            out = {}
            for key, value in tree.items():
                path = (*prefix, key)
                out[key] = build(value, path) if isinstance(value, dict) else \
                    getattr(self, "->".join(path))(condition)[:, :, None, None]
            return out

        return build(self.sizes, ())


class ResUNet30(nn.Module):
    """`base` + `film`; forward(mixture (B, 1, N), condition (B, condition_size)) → (B, 1, N)."""

    def __init__(self, config: ResUNetConfig = OFFICIAL):
        super().__init__()
        self.config = config
        self.base = ResUNetBase(config)
        self.film = FiLM(self.base.film_sizes(), config.condition_size)

    def forward(self, mixture: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.base(mixture, self.film(condition))

    def separate_with_mask_logits(self, mixture: torch.Tensor, condition: torch.Tensor
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.separate(mixture, self.film(condition))
