"""Held to the official outputs: AudioSep's ResUNet30, CLAP's text branch, PANNs Cnn14_DecisionLevelMax and
FlowSep's UNet, VAE and BigVGAN, on recipe weights loaded through EventSep's own loaders, against the outputs
of the official code in ../shared/reference/equivalence (see its README for the recipe and the tolerances)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

FIX = Path(__file__).resolve().parents[2] / "shared" / "reference" / "equivalence"
REL = 1e-4              # the README's rule: max|ours - ref| <= 1e-4 x max|ref|
BIGVGAN_WAVE_ABS = 2e-3  # after tanh, where fp32 rounding at the pre-tanh scale (peak ~77) shows


@pytest.fixture(scope="module")
def recipe():
    if not (FIX / "recipe.py").is_file():
        pytest.fail(f"equivalence fixtures missing: {FIX} (CI keeps a copy of shared/ beside the clone)")
    spec = importlib.util.spec_from_file_location("equivalence_recipe", FIX / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fixture(name: str) -> dict[str, np.ndarray]:
    with np.load(FIX / name) as f:
        return {k: f[k] for k in f.files}


def assert_close(ours, ref, rel=REL, abs_tol=None):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    assert np.isfinite(ours).all()
    err = np.abs(ours - ref).max()
    limit = abs_tol if abs_tol is not None else rel * np.abs(ref).max()
    assert err <= limit, f"max abs {err:.3e} > {limit:.3e} (peak of the official output {np.abs(ref).max():.3e})"


def torch_state(state: dict) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}


@torch.no_grad()
def test_audiosep_resunet30_matches_the_official_output(recipe, tmp_path):
    from eventsep.pretrained import load_official_audiosep

    state = recipe.recipe_state(recipe.load_manifest("audiosep_ss_model"))  # analytic STFT keys: dropped by the loader
    path = tmp_path / "audiosep_base_4M_steps.ckpt"
    torch.save({"state_dict": torch_state(state)}, path)
    model = load_official_audiosep(path).eval()
    f = fixture("audiosep_resunet30.npz")
    assert np.array_equal(f["mixture"][0, 0], recipe.test_signal(32000, 3.0, seed=0))  # the input regenerates
    assert np.array_equal(f["condition"], recipe.audiosep_condition())
    y = model(torch.from_numpy(f["mixture"]), torch.from_numpy(f["condition"])).numpy()
    assert_close(y, f["waveform"])


@torch.inference_mode()
def test_clap_text_embedding_matches_the_official_output(recipe, tmp_path):
    from eventsep.pretrained import checkpoint_tensors, load_strict
    from eventsep.separators.audiosep.clap_text import ClapText, text_state

    state = recipe.recipe_state(recipe.load_manifest("clap_text"))
    # the legacy buffer the real checkpoint carries: EventSep must drop it by name
    state["query_encoder.model.text_branch.embeddings.position_ids"] = np.arange(514, dtype=np.int64)[None]
    path = tmp_path / "audiosep_base_4M_steps.ckpt"
    torch.save({"state_dict": torch_state(state)}, path)
    model = load_strict(ClapText(), text_state(checkpoint_tensors(path)), str(path)).eval()
    f = fixture("clap_text.npz")
    ids = recipe.clap_token_ids()
    assert [row[:len(r)].tolist() for row, r in zip(f["input_ids"], ids)] == ids
    emb = model(torch.from_numpy(f["input_ids"]), torch.from_numpy(f["attention_mask"])).numpy()
    assert_close(emb, f["embedding"])


@torch.no_grad()
def test_panns_matches_the_official_output(recipe, tmp_path):
    from eventsep.sed.panns import Cnn14DecisionLevelMax, load_panns

    manifest = recipe.load_manifest("panns")
    own = Cnn14DecisionLevelMax().state_dict()  # EventSep's own DFT matrices and mel bank
    state = recipe.recipe_state(manifest, analytic={k: own[k].numpy() for k in manifest["analytic"]})
    path = tmp_path / "Cnn14_DecisionLevelMax_mAP=0.385.pth"
    torch.save({"model": torch_state(state), "iteration": 0}, path)
    model = load_panns(path).eval()
    f = fixture("panns_cnn14_dlm.npz")
    assert np.array_equal(f["waveform"][0], recipe.test_signal(32000, 3.0, seed=0))
    framewise = model(torch.from_numpy(f["waveform"])).numpy()
    assert_close(framewise, f["framewise_output"])
    assert_close(framewise.max(axis=1), f["clipwise_output"])


@pytest.mark.slow
@torch.no_grad()
def test_flowsep_unet_vae_and_bigvgan_match_the_official_outputs(recipe):
    """The full-size model (266 M-parameter UNet): about 60 s and 4.7 GB peak on 2 cores."""
    from eventsep.pretrained import load_strict
    from eventsep.separators.flowsep import keymap
    from eventsep.separators.flowsep.model import OFFICIAL, FlowSep

    manifest = recipe.load_manifest("flowsep")
    model = FlowSep(OFFICIAL)
    own = model.vocoder.state_dict()  # EventSep's own anti-aliasing filters, under the official names
    state = recipe.recipe_state(manifest, analytic={k: own[k[len(keymap.VOCODER):]].numpy()
                                                    for k in manifest["analytic"]})
    # what load_official_flowsep does, minus FLAN-T5 (not part of the fixture)
    pieces, scale, unknown = keymap.split_official(torch_state(state), OFFICIAL)
    del state
    assert not unknown and scale == pytest.approx(0.7)
    for part in ("unet", "vae", "vocoder"):
        load_strict(getattr(model, part), pieces[part], f"fixture ({part})")
    del pieces
    model.scale_factor.fill_(scale)
    model.eval()
    f = {k: torch.from_numpy(v) for k, v in fixture("flowsep.npz").items()}
    for name, value in recipe.flowsep_inputs().items():
        assert np.array_equal(f[name].numpy(), value), name
    ref = fixture("flowsep.npz")

    velocity = model.velocity(f["x"], f["t"], f["mixture"], f["context"], f["mask"]).numpy()
    assert_close(velocity, ref["unet_output"][:, :8])
    full = model.unet(torch.cat([f["x"], f["mixture"]], 1), f["t"], encoder_hidden_states=f["context"],
                      encoder_attention_mask=f["mask"], return_dict=False)[0].numpy()
    assert_close(full, ref["unet_output"])
    assert_close(model.decode(f["latent"]).numpy(), ref["vae_decode"])
    assert_close(model.encode(f["mel_vae"]).numpy(), ref["vae_encode_mean_scaled"])
    pre = {}
    hook = model.vocoder.conv_post.register_forward_hook(lambda m, i, o: pre.setdefault("x", o.clone()))
    try:
        wav = model.vocoder(f["mel_vocoder"]).numpy()
    finally:
        hook.remove()
    assert_close(pre["x"].numpy(), ref["bigvgan_conv_post_output"])
    assert_close(wav, ref["bigvgan_waveform"], abs_tol=BIGVGAN_WAVE_ABS)
