"""Names: the official FlowSep checkpoint's state-dict keys -> this package's modules, and back.

The official checkpoint (`v2_100k.ckpt`, Lightning, weights under `state_dict`) holds the UNet
(`model.diffusion_model.*`, openaimodel naming) and its EMA copy (`model_ema.*`, the same names with
the dots removed), the first stage (`first_stage_model.encoder/decoder/quant_conv/post_quant_conv`,
LDM naming; `first_stage_model.vocoder.*`, BigVGAN naming; `first_stage_model.loss.*`, training
only), FLAN-T5-large (`cond_stage_models.0.model.*`, transformers naming), `scale_factor`, and the
unused DDPM schedule buffers.
"""

from __future__ import annotations

import torch

from .model import UNetConfig, VAEConfig

UNET = "model.diffusion_model."
EMA = "model_ema."
VAE = "first_stage_model."
VOCODER = "first_stage_model.vocoder."
T5 = "cond_stage_models.0.model."
# Present in the official file and not needed for inference: skipped by these names.
TRAINING_ONLY_PREFIXES = ("first_stage_model.loss.",)
SCHEDULE_BUFFERS = frozenset({
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "logvar", "model_ema.decay", "model_ema.num_updates"})

_RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
           "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}


def unet_module_map(config: UNetConfig) -> dict[str, tuple[str, bool]]:
    """official module path -> (diffusers module path, is a ResBlock) for openaimodel's UNetModel with
    AudioLDM2's extra self-attention transformer before each cross-attention one."""
    modules = {"time_embed.0": ("time_embedding.linear_1", False), "time_embed.2": ("time_embedding.linear_2", False),
               "input_blocks.0.0": ("conv_in", False), "out.0": ("conv_norm_out", False), "out.2": ("conv_out", False)}
    levels, layers = len(config.block_out_channels), config.layers_per_block
    index = 1
    for level in range(levels):
        attention = config.attention_levels[level]
        for j in range(layers):
            modules[f"input_blocks.{index}.0"] = (f"down_blocks.{level}.resnets.{j}", True)
            if attention:
                modules[f"input_blocks.{index}.1"] = (f"down_blocks.{level}.attentions.{2 * j}", False)
                modules[f"input_blocks.{index}.2"] = (f"down_blocks.{level}.attentions.{2 * j + 1}", False)
            index += 1
        if level < levels - 1:
            modules[f"input_blocks.{index}.0.op"] = (f"down_blocks.{level}.downsamplers.0.conv", False)
            index += 1
    modules.update({"middle_block.0": ("mid_block.resnets.0", True), "middle_block.1": ("mid_block.attentions.0", False),
                    "middle_block.2": ("mid_block.attentions.1", False), "middle_block.3": ("mid_block.resnets.1", True)})
    index = 0
    for up, level in enumerate(reversed(range(levels))):
        attention = config.attention_levels[level]
        for j in range(layers + 1):
            modules[f"output_blocks.{index}.0"] = (f"up_blocks.{up}.resnets.{j}", True)
            if attention:
                modules[f"output_blocks.{index}.1"] = (f"up_blocks.{up}.attentions.{2 * j}", False)
                modules[f"output_blocks.{index}.2"] = (f"up_blocks.{up}.attentions.{2 * j + 1}", False)
            if level > 0 and j == layers:
                position = 3 if attention else 1
                modules[f"output_blocks.{index}.{position}.conv"] = (f"up_blocks.{up}.upsamplers.0.conv", False)
            index += 1
    return modules


def _translate(key: str, modules: dict[str, tuple[str, bool]], resnet_renames: dict[str, str]) -> str | None:
    """Rename `key` by its longest module prefix in `modules`; inside a ResBlock also rename the layer."""
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in modules:
            target, is_resnet = modules[prefix]
            rest = ".".join(parts[cut:])
            if is_resnet:
                for old, new in resnet_renames.items():
                    if rest.startswith(old + "."):
                        return f"{target}.{new}{rest[len(old):]}"
                return None
            return f"{target}.{rest}"
    return None


def unet_key(official: str, modules: dict[str, tuple[str, bool]]) -> str | None:
    """The diffusers key of one official UNet key (without its prefix), or None if it has no place."""
    return _translate(official, modules, _RESNET)


def unet_names(config: UNetConfig, diffusers_keys) -> dict[str, str]:
    """official UNet key (no prefix) -> diffusers key, for every key of a diffusers UNet's state dict."""
    inverse = {target: (official, is_resnet) for official, (target, is_resnet) in unet_module_map(config).items()}
    resnet_inverse = {new: old for old, new in _RESNET.items()}
    names = {_translate(key, inverse, resnet_inverse): key for key in diffusers_keys}
    names.pop(None, None)
    return names


def ema_name(official_unet_key: str) -> str:
    """LitEma's buffer name for a UNet parameter: `diffusion_model.` + key with every dot removed."""
    return EMA + ("diffusion_model." + official_unet_key).replace(".", "")


def vae_names(config: VAEConfig, official_keys) -> dict[str, str]:
    """official first-stage key (with `first_stage_model.`) -> diffusers AutoencoderKL key, found by running
    diffusers' own LDM converter on one-element tensors that each carry their index."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    keys = sorted(official_keys)
    marked = {key: torch.tensor([float(i)]) for i, key in enumerate(keys)}
    converted = convert_ldm_vae_checkpoint(marked, config.diffusers_config())
    return {keys[int(value.flatten()[0])]: name for name, value in converted.items()}


def vae_official_shape(key: str, shape: torch.Size) -> torch.Size:
    """LDM's mid-block attention uses 1×1 convolutions where diffusers uses linear layers."""
    if ".mid.attn_1." in key and key.endswith((".q.weight", ".k.weight", ".v.weight", ".proj_out.weight")):
        return torch.Size([*shape, 1, 1])
    return shape


def split_official(state: dict[str, torch.Tensor], config, use_ema: bool = True):
    """Sort an official state dict into per-module state dicts under this package's names.

    Returns ({"unet", "vae", "vocoder", "text"} -> state dict, scale_factor or None, unknown keys).
    With `use_ema` and EMA buffers present, the UNet takes the EMA weights (FlowSep samples inside
    its EMA scope); every official UNet key must then have its EMA twin.
    """
    pieces = {"unet": {}, "vae": {}, "vocoder": {}, "text": {}}
    unknown = []
    modules = unet_module_map(config.unet)
    has_ema = any(key.startswith(EMA) and key not in SCHEDULE_BUFFERS for key in state)
    vae_keys = [k for k in state if k.startswith(VAE) and not k.startswith((VOCODER, *TRAINING_ONLY_PREFIXES))]
    vae_map = vae_names(config.vae, vae_keys) if config.vae and vae_keys else {}
    for key, tensor in state.items():
        if key.startswith(UNET):
            official = key[len(UNET):]
            target = unet_key(official, modules)
            if target is None:
                unknown.append(key)
                continue
            if use_ema and has_ema:
                twin = ema_name(official)
                if twin not in state:
                    unknown.append(f"{twin} (EMA twin of {key}) missing")
                    continue
                tensor = state[twin]
            pieces["unet"][target] = tensor
        elif key.startswith(EMA) or key in SCHEDULE_BUFFERS or key.startswith(TRAINING_ONLY_PREFIXES) \
                or key == "scale_factor":
            continue
        elif key.startswith(VOCODER):
            pieces["vocoder"][key[len(VOCODER):]] = tensor
        elif key in vae_map:
            target = vae_map[key]
            pieces["vae"][target] = tensor.reshape(tensor.shape[:2]) if tensor.dim() == 4 and \
                target.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")) else tensor
        elif key.startswith(T5):
            pieces["text"][key[len(T5):]] = tensor
        else:
            unknown.append(key)
    if has_ema:
        known = {ema_name(key[len(UNET):]) for key in state if key.startswith(UNET)}
        unknown += [k for k in state if k.startswith(EMA) and k not in known and k not in SCHEDULE_BUFFERS]
    scale = state.get("scale_factor")
    return pieces, (float(scale) if scale is not None else None), sorted(unknown)
