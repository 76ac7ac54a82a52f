"""FlowSep: official-size modules against the reference structure, strict loading of official names,
the flow sampler, the front-end and vocoders, any-length windowing, and the mini model's training."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from eventsep.config import SeparatorParams
from eventsep.pretrained import StrictLoadError, load_official_flowsep
from eventsep.separators.flowsep import keymap
from eventsep.separators.flowsep.backend import FlowSepSeparator
from eventsep.separators.flowsep.bigvgan import BigVGAN, BigVGANConfig, fuse_weight_norm
from eventsep.separators.flowsep.frontend import MelFrontend
from eventsep.separators.flowsep.model import MINI, OFFICIAL, SIGMA_MIN, FlowSep, flan_t5_large_config, mask_vocoder

STRUCTURE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "flowsep_structure.json"


def ldm_vae_name(key: str, levels: int) -> str:
    """The LDM (official) name of a diffusers AutoencoderKL key, written out independently of diffusers'
    converter so that the test checks the converter's use in `keymap.vae_names`."""
    parts = key.split(".")
    if parts[0] in ("quant_conv", "post_quant_conv"):
        return key
    coder, rest = parts[0], parts[1:]
    renames = {"conv_shortcut": "nin_shortcut", "conv_norm_out": "norm_out", "group_norm": "norm",
               "to_q": "q", "to_k": "k", "to_v": "v"}
    if rest[0] in ("down_blocks", "up_blocks"):
        index = int(rest[1]) if rest[0] == "down_blocks" else levels - 1 - int(rest[1])
        head = ["down" if rest[0] == "down_blocks" else "up", str(index)]
        if rest[2] == "resnets":
            rest = head + ["block", rest[3]] + rest[4:]
        else:  # downsamplers.0.conv / upsamplers.0.conv
            rest = head + ["downsample" if rest[0] == "down_blocks" else "upsample"] + rest[4:]
    elif rest[0] == "mid_block":
        if rest[1] == "resnets":
            rest = ["mid", f"block_{int(rest[2]) + 1}"] + rest[3:]
        else:
            inner = rest[3:]
            inner = ["proj_out"] + inner[2:] if inner[:2] == ["to_out", "0"] else inner
            rest = ["mid", "attn_1"] + inner
    rest = [renames.get(part, part) for part in rest]
    return ".".join([coder] + rest)


def official_state(model: FlowSep, text_model, ema_offset: float = 0.0) -> dict[str, torch.Tensor]:
    """A state dict under the official checkpoint's names, sharing the given modules' tensors."""
    state = {}
    unet = model.unet.state_dict()
    for official, ours in keymap.unet_names(OFFICIAL.unet, unet).items():
        state[keymap.UNET + official] = unet[ours]
        state[keymap.ema_name(official)] = unet[ours] + ema_offset if ema_offset else unet[ours]
    levels = len(OFFICIAL.vae.block_out_channels)
    for key, value in model.vae.state_dict().items():
        name = ldm_vae_name(key, levels)
        state[keymap.VAE + name] = value.reshape(keymap.vae_official_shape(name, value.shape))
    state.update({keymap.VOCODER + k: v for k, v in model.vocoder.state_dict().items()})
    state.update({keymap.T5 + k: v for k, v in text_model.state_dict().items()})
    state["first_stage_model.loss.logvar"] = torch.zeros(())
    state.update({name: torch.zeros(1000) for name in ("betas", "alphas_cumprod", "logvar")})
    state.update({"model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(100000)})
    state["scale_factor"] = torch.tensor(0.75)
    return state


@pytest.fixture(scope="module")
def official():
    from transformers import T5EncoderModel

    torch.manual_seed(0)
    with torch.device("meta"):
        text = T5EncoderModel(flan_t5_large_config())
    text = text.to_empty(device="cpu")
    text.encoder.embed_tokens = text.shared  # to_empty breaks the tie the constructor made
    return FlowSep(OFFICIAL), text


@pytest.mark.slow
def test_official_size_matches_the_reference_structure(official):
    model, text = official
    reference = json.loads(STRUCTURE.read_text())["modules"]
    state = official_state(model, text)
    groups = {}
    for section in ("model.diffusion_model (UNetModel, openaimodel.py)", "first_stage_model.encoder",
                    "first_stage_model.decoder", "first_stage_model.vocoder (BigVGAN, src/bigvgan/model.py)"):
        groups.update(reference[section]["key_groups"])
    for prefix, expected in groups.items():
        tensors = [v for k, v in state.items() if k.startswith(prefix + ".")]
        assert (sum(t.numel() for t in tensors), len(tensors)) == (expected["numel"], expected["tensors"]), prefix
    assert sum(p.numel() for p in model.unet.parameters()) == reference[
        "model.diffusion_model (UNetModel, openaimodel.py)"]["params"]
    assert sum(p.numel() for p in model.vocoder.parameters()) == reference[
        "first_stage_model.vocoder (BigVGAN, src/bigvgan/model.py)"]["params_after_remove_weight_norm"]
    assert sum(p.numel() for p in text.parameters()) == reference[
        "cond_stage_models.0.model (T5EncoderModel flan-t5-large)"]["params"]
    # diffusers' own LDM converter, as keymap uses it, maps every official VAE name onto its module
    vae_keys = [k for k in state if k.startswith(keymap.VAE) and not k.startswith((keymap.VOCODER, "first_stage_model.loss"))]
    assert sorted(keymap.vae_names(OFFICIAL.vae, vae_keys).values()) == sorted(model.vae.state_dict())


@pytest.mark.slow
def test_official_names_load_strictly_with_ema_and_refuse_bad_keys(official):
    model, text = official
    state = official_state(model, text, ema_offset=1.0)
    loaded, encoder = load_official_flowsep(state, "test state")
    probe = "model.diffusion_model.input_blocks.0.0.weight"
    assert torch.equal(loaded.unet.conv_in.weight, state[keymap.ema_name(probe[len(keymap.UNET):])])
    assert not torch.equal(loaded.unet.conv_in.weight, state[probe])
    assert float(loaded.scale_factor) == 0.75
    mid_q = "first_stage_model.encoder.mid.attn_1.q.weight"
    assert torch.equal(loaded.vae.encoder.mid_block.attentions[0].to_q.weight, state[mid_q][:, :, 0, 0])
    del loaded, encoder

    for name, broken in [
        ("missing", {k: v for k, v in state.items() if k != "first_stage_model.vocoder.conv_post.bias"}),
        ("unexpected", {**state, "first_stage_model.decoder.extra.weight": torch.zeros(1)}),
        ("misshapen", {**state, "cond_stage_models.0.model.encoder.final_layer_norm.weight": torch.zeros(3)}),
    ]:
        with pytest.raises(StrictLoadError) as error:
            load_official_flowsep(broken, "test state")
        message = str(error.value)
        assert name in message
        assert any(part in message for part in ("conv_post.bias", "extra.weight", "final_layer_norm.weight"))


def test_missing_ema_twin_is_named():
    state = {keymap.UNET + "out.2.bias": torch.zeros(16), keymap.ema_name("out.0.weight"): torch.zeros(128)}
    _, _, unknown = keymap.split_official(state, OFFICIAL)
    assert any(u.startswith("model_ema.diffusion_modelout2bias") for u in unknown)
    assert "model_ema.diffusion_modelout0weight" in unknown  # an EMA buffer without its weight


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")  # the official file has the old API's keys
def test_weight_normed_generator_file_fuses_to_the_plain_vocoder():
    config = BigVGANConfig(upsample_rates=(2, 2), upsample_kernel_sizes=(4, 4), upsample_initial_channel=16,
                           resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))
    torch.manual_seed(0)
    normed = BigVGAN(config)
    for module in normed.modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            torch.nn.utils.weight_norm(module)
            with torch.no_grad():
                module.weight_g.mul_(torch.rand_like(module.weight_g) + 0.5)
    generator = normed.state_dict()
    assert any(k.endswith("weight_g") for k in generator)
    plain = BigVGAN(config)
    plain.load_state_dict(fuse_weight_norm(generator), strict=True)
    mel = torch.randn(1, 64, 12)
    with torch.no_grad():
        assert torch.allclose(plain(mel), normed(mel), atol=1e-6)


def test_vocoder_output_length():
    with torch.no_grad():
        wave = BigVGAN()(torch.randn(1, 64, 16))
    assert wave.shape == (1, 1, 16 * 160 + 32)  # 163872 samples for the official 1024 frames
    assert wave.abs().max() <= 1.0


def test_euler_steps_go_from_noise_at_t0_to_data_at_t1():
    """With the exact velocity of the straight path to one data point, Euler lands on that point."""
    model = FlowSep(MINI)
    target = torch.randn(2, 1, 16, 8)
    start = {}

    def exact_velocity(x, t, mixture, context, mask=None):
        t = t.view(-1, 1, 1, 1)
        if not start:
            start["t"] = float(t.flatten()[0])
        noise = (x - t * target) / (1 - (1 - SIGMA_MIN) * t)
        return target - (1 - SIGMA_MIN) * noise

    model.velocity = exact_velocity
    result = model.sample(torch.zeros_like(target), torch.zeros(2, 1, 384), None, steps=7,
                          generator=torch.Generator().manual_seed(0))
    assert start["t"] == 0.0
    assert torch.allclose(result, target, atol=1e-3)


def test_front_end_frames_and_mel_placement():
    frontend = MelFrontend()
    time = np.arange(16000) / 16000
    wave = torch.from_numpy(np.sin(2 * np.pi * 1000 * time).astype(np.float32))[None]
    log_mel = frontend.log_mel(wave)
    assert log_mel.shape == (1, 100, 64)
    peak_band = int(log_mel[0, 50].argmax())
    centre_bins = frontend.filterbank.argmax(dim=1)
    assert abs(int(centre_bins[peak_band]) - 64) <= 2  # 1 kHz is bin 64 of 513 at 16 kHz
    assert float(log_mel.min()) >= np.log(1e-5) - 1e-6


def test_mask_vocoder_keeps_the_mixture_when_the_estimate_equals_it_and_silences_when_far_below():
    frontend = MelFrontend()
    torch.manual_seed(0)
    mixture = torch.randn(1, 16000) * 0.1
    mel = frontend.log_mel(mixture)
    kept = mask_vocoder(frontend, mixture, mel, mel)
    assert torch.allclose(kept, mixture, atol=1e-5)
    silenced = mask_vocoder(frontend, mixture, mel, mel - 20)
    assert float(silenced.abs().max()) < 1e-6  # a gain of e^-20


class _Echo:
    def context(self, text):
        return torch.zeros(1, 1, 384), None


@pytest.mark.parametrize("seconds", [0.7, 10.24, 23.3])
def test_any_length_windows_are_aligned_and_keep_the_scale(seconds):
    """Windows of 10.24 s, zero-padded and cross-faded: a model that returns its input gives back exactly
    the input, whatever the length (the official code keeps one random window, peak-normalised)."""
    model = FlowSep(MINI)
    model.separate = lambda wave, context, mask=None, steps=20, generator=None: wave
    separator = FlowSepSeparator("flowsep", model, _Echo(), "test")
    rng = np.random.default_rng(1)
    samples = (rng.standard_normal(int(seconds * 16000)) * 0.3).astype(np.float32)
    out = separator.separate(samples, "anything", SeparatorParams(overlap_seconds=1.0))
    assert out.shape == samples.shape
    assert np.allclose(out, samples, atol=1e-6)


def test_output_follows_the_input_level():
    """The model sees every window at peak 0.5 and the output is scaled back: 3× input, 3× output."""
    torch.manual_seed(0)
    separator = FlowSepSeparator("flowsep", FlowSep(MINI), _Echo(), "test")
    samples = (np.random.default_rng(2).standard_normal(8000) * 0.05).astype(np.float32)
    params = SeparatorParams(steps=2)
    quiet, loud = separator.separate(samples, "q", params), separator.separate(3 * samples, "q", params)
    assert np.abs(quiet).max() > 0
    assert np.allclose(loud, 3 * quiet, atol=1e-5 * np.abs(loud).max())
    assert np.allclose(separator.separate(samples, "q", params), quiet)  # same seed, same output


@pytest.mark.slow
def test_mini_training_resumes_and_the_export_separates(tmp_path, monkeypatch):
    from eventsep import pretrained
    from eventsep.separators.flowsep.train import DEFAULTS, train
    from eventsep.separators.training import export

    monkeypatch.setenv("EVENTSEP_CACHE", str(tmp_path / "cache"))
    config = replace(DEFAULTS, train_seeds=(0, 3), validation_seeds=(100_000, 100_001), item_seconds=2.0,
                     crop_seconds=0.64, batch_size=2)
    folder = tmp_path / "run"
    first = train(folder, 0.05, config, progress=lambda row: None)
    second = train(folder, 0.05, config, progress=lambda row: None)
    assert second["step"] > first["step"] >= 1
    assert [h["step"] for h in second["history"]] == [first["step"], second["step"]]
    assert np.isfinite(second["history"][-1]["si_sdri_mean"])
    path = export(folder, tmp_path / "flowsep-mini.safetensors")
    monkeypatch.setitem(pretrained.REGISTRY, "flowsep-mini", replace(pretrained.REGISTRY["flowsep-mini"], packaged=path, sha256=None))
    model, metadata = pretrained.load_mini_flowsep()
    assert json.loads(metadata["state"])["step"] == second["step"]
    separator = FlowSepSeparator("flowsep", model, _Echo(), "test")
    out = separator.separate(np.zeros(12000, np.float32) + 0.01, "a dog", SeparatorParams(steps=2))
    assert out.shape == (12000,) and np.isfinite(out).all()


@pytest.mark.slow
def test_training_flow_runs_rounds_and_exports(prefect_server, tmp_path, monkeypatch):
    """`eventsep train flowsep-mini` without --local: the Prefect flow validates after each round and
    exports the packaged weights (here redirected to a temporary file)."""
    from eventsep import pretrained
    from flows.train import train_mini_separator

    monkeypatch.setenv("EVENTSEP_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "exported.safetensors"
    monkeypatch.setitem(pretrained.REGISTRY, "flowsep-mini", replace(pretrained.REGISTRY["flowsep-mini"], packaged=target, sha256=None))
    config = {"train_seeds": (0, 2), "validation_seeds": (100_000, 100_001), "item_seconds": 2.0,
              "crop_seconds": 0.64, "batch_size": 2}
    state = train_mini_separator("flowsep-mini", str(tmp_path / "run"), minutes=0.1, rounds=2, export=True,
                                 warm_start=False, config=config)
    assert len(state["history"]) == 2 and state["history"][1]["step"] > state["history"][0]["step"]
    model, metadata = pretrained.load_mini_flowsep()
    assert json.loads(metadata["state"])["step"] == state["step"]


def test_ema_moves_a_fraction_of_the_way_and_is_what_gets_exported(tmp_path):
    from eventsep.separators.flowsep.train import WithEma
    from eventsep.separators.training import export

    pair = WithEma(MINI)
    before = pair.ema.unet.conv_in.weight.clone()
    with torch.no_grad():
        pair.model.unet.conv_in.weight.add_(1.0)
    pair.update(decay=0.9)
    assert torch.allclose(pair.ema.unet.conv_in.weight, before + 0.1, atol=1e-6)
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save({"model": pair.state_dict(), "model_config": json.dumps(MINI.to_dict()), "train_config": "{}",
                "state": json.dumps({"step": 1})}, folder / "last.pt")
    from safetensors.torch import load_file

    exported = load_file(str(export(folder, tmp_path / "out.safetensors")))
    assert torch.equal(exported["unet.conv_in.weight"], pair.ema.unet.conv_in.weight)
    assert not any(key.startswith(("ema.", "model.")) for key in exported)
