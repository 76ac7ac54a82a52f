"""FlowSep: a rectified flow from noise to the target's latent, conditioned on the mixture's latent
(channel concatenation) and on text (cross-attention), then decoded to a mel spectrogram and a waveform.

The official model is latent (KL-VAE, 8 channels, 4× down in time and frequency), FLAN-T5-large text
context and a BigVGAN vocoder; the mini model flows directly in the (normalised) log-mel domain, takes
the MiniLM query embedding as a one-token context, and turns its mel estimate into a waveform with the
mixture's own STFT (see `mask_vocoder`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .frontend import MelFrontend

SIGMA_MIN = 1e-4


@dataclass(frozen=True)
class UNetConfig:
    """The diffusers AudioLDM2 UNet arguments FlowSep uses. `attention_heads` is per level (a level's
    head width is its channels / heads); levels without cross-attention blocks ignore it."""

    in_channels: int = 16
    out_channels: int = 16
    block_out_channels: tuple[int, ...] = (128, 256, 384, 640)
    attention_levels: tuple[bool, ...] = (False, True, True, True)
    attention_heads: tuple[int, ...] = (4, 8, 12, 20)   # num_head_channels = 32, as the official config
    layers_per_block: int = 2
    context_dim: int = 1024
    norm_num_groups: int = 32

    def build(self) -> nn.Module:
        from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

        levels = len(self.block_out_channels)
        return AudioLDM2UNet2DConditionModel(
            in_channels=self.in_channels, out_channels=self.out_channels,
            block_out_channels=self.block_out_channels, layers_per_block=self.layers_per_block,
            down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in self.attention_levels),
            up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(self.attention_levels)),
            # [None, context]: AudioLDM2's extra self-attention transformer, then the cross-attention one
            cross_attention_dim=[[None, self.context_dim]] * levels, attention_head_dim=self.attention_heads,
            norm_num_groups=self.norm_num_groups, flip_sin_to_cos=True, freq_shift=0)


@dataclass(frozen=True)
class VAEConfig:
    latent_channels: int = 8
    block_out_channels: tuple[int, ...] = (128, 256, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32

    def build(self) -> nn.Module:
        from diffusers import AutoencoderKL

        levels = len(self.block_out_channels)
        return AutoencoderKL(in_channels=1, out_channels=1, latent_channels=self.latent_channels,
                             down_block_types=("DownEncoderBlock2D",) * levels,
                             up_block_types=("UpDecoderBlock2D",) * levels,
                             block_out_channels=self.block_out_channels, layers_per_block=self.layers_per_block,
                             norm_num_groups=self.norm_num_groups)

    def diffusers_config(self) -> dict:
        levels = len(self.block_out_channels)
        return {"down_block_types": ("DownEncoderBlock2D",) * levels,
                "up_block_types": ("UpDecoderBlock2D",) * levels, "layers_per_block": self.layers_per_block}


def flan_t5_large_config():
    """google/flan-t5-large's encoder, written here so that nothing is fetched from a hub."""
    from transformers import T5Config

    return T5Config(vocab_size=32128, d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_heads=16,
                    relative_attention_num_buckets=32, relative_attention_max_distance=128,
                    feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
                    tie_word_embeddings=False, is_encoder_decoder=False, use_cache=False)


@dataclass(frozen=True)
class FlowSepConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig | None = field(default_factory=VAEConfig)   # None: flow in the log-mel domain
    vocoder: bool = True                                        # False: the mixture-STFT mask vocoder
    window_seconds: float = 10.24
    sample_rate: int = 16000
    # the mel-domain model's normalisation of natural-log mels (≈ their mean and spread on the corpus)
    mel_mean: float = -5.0
    mel_std: float = 3.0
    # space-to-depth factor around the UNet (the mini model's stride-2 stem: a quarter of the positions)
    fold: int = 1

    @property
    def latent_channels(self) -> int:
        return self.vae.latent_channels if self.vae else 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FlowSepConfig":
        values = dict(values)
        unet = UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.pop("unet").items()})
        vae = values.pop("vae")
        vae = VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in vae.items()}) if vae else None
        return cls(unet=unet, vae=vae, **values)


OFFICIAL = FlowSepConfig()
# Measured on one core: about 1 s per training step of 8 × 2.56 s; the 2× fold and a single attention
# level (32 × 8 tokens per 2.56 s) are what make that possible. 6.6 M parameters, 26 MB in float32.
MINI = FlowSepConfig(
    unet=UNetConfig(in_channels=8, out_channels=4, block_out_channels=(32, 64, 96, 128),
                    attention_levels=(False, False, False, True), attention_heads=(1, 2, 3, 4),
                    layers_per_block=1, context_dim=384, norm_num_groups=16),
    vae=None, vocoder=False, fold=2)


class FlowSep(nn.Module):
    """`separate(wave, context, context_mask, steps, generator)`: (batch, samples) at 16 kHz -> (batch, samples)."""

    def __init__(self, config: FlowSepConfig = OFFICIAL):
        super().__init__()
        from .bigvgan import BigVGAN

        self.config = config
        self.frontend = MelFrontend(sample_rate=config.sample_rate)
        self.unet = config.unet.build()
        self.vae = config.vae.build() if config.vae else None
        self.vocoder = BigVGAN() if config.vocoder else None
        self.register_buffer("scale_factor", torch.tensor(1.0))

    def encode(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(batch, 1, frames, mels) -> latent. The posterior's mean, not a sample (the official code samples):
        the same input gives the same latent, which content-addressed caching relies on."""
        if self.vae is None:
            return (log_mel - self.config.mel_mean) / self.config.mel_std
        return self.vae.encode(log_mel).latent_dist.mode() * self.scale_factor

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return latent * self.config.mel_std + self.config.mel_mean
        return self.vae.decode(latent / self.scale_factor).sample

    def velocity(self, x: torch.Tensor, t: torch.Tensor, mixture: torch.Tensor, context: torch.Tensor,
                 context_mask: torch.Tensor | None = None) -> torch.Tensor:
        fold = self.config.fold
        inputs = torch.cat([x, mixture], dim=1)
        if fold > 1:
            inputs = torch.nn.functional.pixel_unshuffle(inputs, fold)
        # t in [0, 1] goes straight into the sinusoidal embedding, as in FlowSep (not scaled to 1000)
        out = self.unet(inputs, t, encoder_hidden_states=context, encoder_attention_mask=context_mask,
                        return_dict=False)[0]
        if fold > 1:
            out = torch.nn.functional.pixel_shuffle(out, fold)
        return out[:, : x.shape[1]]

    def sample(self, mixture: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None,
               steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Explicit Euler on the flow ODE from t = 0 (noise) to t = 1 (the target's latent)."""
        x = torch.randn(mixture.shape, generator=generator, dtype=mixture.dtype).to(mixture.device)
        times = torch.linspace(0, 1, steps + 1, device=mixture.device)
        for t, t_next in zip(times[:-1], times[1:]):
            x = x + (t_next - t) * self.velocity(x, t.expand(len(x)), mixture, context, context_mask)
        return x

    def separate(self, wave: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None,
                 steps: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
        samples = wave.shape[-1]
        # the official model sees windows peak-normalised to 0.5; the output is scaled back to the input's level
        gain = 0.5 / torch.clamp(wave.abs().amax(dim=-1, keepdim=True), min=1e-8)
        mixture_mel = self.frontend.log_mel(wave * gain)[:, None]
        target_mel = self.decode(self.sample(self.encode(mixture_mel), context, context_mask, steps, generator))
        if self.vocoder is not None:
            estimate = self.vocoder(target_mel[:, 0].transpose(1, 2))[:, 0, :samples]
        else:
            estimate = mask_vocoder(self.frontend, wave * gain, mixture_mel[:, 0], target_mel[:, 0])
        return estimate / gain


def mask_vocoder(frontend: MelFrontend, mixture: torch.Tensor, mixture_mel: torch.Tensor,
                 target_mel: torch.Tensor) -> torch.Tensor:
    """The mini model's vocoder: the ratio of the estimated to the mixture mel magnitude, clipped to [0, 1],
    spread from mel bands to STFT bins and applied to the mixture's STFT. Unlike Griffin-Lim it needs no
    training and no phase estimate, and the result is aligned with the input sample for sample; it
    cannot add what the mixture lacks, which a separator should not do anyway."""
    gain = frontend.mel_gain_to_bins(torch.clamp(torch.exp(target_mel - mixture_mel), 0.0, 1.0))
    spec = frontend.stft(mixture, all_frames=True)
    # the STFT's frames beyond the mel frames (its last, centred on the final sample) repeat the last gain
    gain = torch.cat([gain, gain[..., -1:, :].expand(-1, spec.shape[-2] - gain.shape[-2], -1)], dim=-2)
    return frontend.istft(spec * gain, mixture.shape[-1])
