"""AudioSep: the official-size network matches the reference key for key, strict loading, any-length chunking."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eventsep.config import SeparatorParams
from eventsep.pretrained import (AUDIOSEP_FIXED_STFT, StrictLoadError, check_state, load_official_audiosep)
from eventsep.separators import apply as apply_module
from eventsep.separators.apply import apply_chunked
from eventsep.separators.audiosep.backend import AudioSepSeparator
from eventsep.separators.audiosep.network import OFFICIAL, ResUNet30, ResUNetConfig

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "audiosep_ss_model_state_dict.json"
TINY = ResUNetConfig(widths=(4, 8, 8, 8, 8, 8), condition_size=6, n_fft=128, hop=32, sample_rate=8000)


@pytest.fixture(scope="module")
def official():
    torch.manual_seed(0)
    return ResUNet30(OFFICIAL)


@pytest.fixture(scope="module")
def reference_keys():
    if not REFERENCE.exists():  # shared/ sits beside the clone in CI and on every developer machine
        pytest.fail(f"reference file missing: {REFERENCE}")
    keys = json.loads(REFERENCE.read_text())["keys"]
    return {k[len("ss_model."):]: v for k, v in keys.items() if k.startswith("ss_model.")}


def test_official_size_matches_the_reference_key_for_key(official, reference_keys):
    ours = {k: list(v.shape) for k, v in official.state_dict().items()}
    fixed = {k for k in reference_keys if k.startswith(AUDIOSEP_FIXED_STFT)}
    assert len(reference_keys) == 332 and len(fixed) == 5
    assert set(ours) == set(reference_keys) - fixed
    assert all(ours[k] == reference_keys[k] for k in ours)


def test_official_checkpoint_layout_loads_strictly(official, tmp_path):
    state = {f"ss_model.{k}": v for k, v in official.state_dict().items()}
    state["ss_model.base.stft.conv_real.weight"] = torch.zeros(1025, 1, 2048)
    state["query_encoder.model.text_projection.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "audiosep_base_4M_steps.ckpt"
    torch.save({"epoch": 1, "global_step": 10, "state_dict": state}, path)
    loaded = load_official_audiosep(path)
    for key, tensor in official.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


@pytest.mark.parametrize("change, named", [
    (lambda s: s.pop("base.after_conv.bias"), "missing: base.after_conv.bias"),
    (lambda s: s.__setitem__("base.extra.weight", torch.zeros(1)), "unexpected: base.extra.weight"),
    (lambda s: s.__setitem__("base.pre_conv.bias", torch.zeros(5)), "misshapen: base.pre_conv.bias"),
])
def test_mismatched_state_is_refused_by_name(change, named):
    model = ResUNet30(TINY)
    state = dict(model.state_dict())
    change(state)
    with pytest.raises(StrictLoadError, match=named):
        check_state(model, state, "test")


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = ResUNet30(TINY).eval()
    with torch.no_grad():  # a non-trivial mask: random FiLM and convolutions already give one
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_output_length_equals_input_for_odd_lengths():
    model = tiny_model()
    for length in (1000, 4321, 8000):
        out = model(torch.randn(2, 1, length), torch.randn(2, TINY.condition_size))
        assert out.shape == (2, 1, length) and torch.isfinite(out).all()


def test_chunking_is_exact_for_input_shorter_than_a_window():
    model = tiny_model()
    condition = torch.randn(1, TINY.condition_size)
    samples = np.random.default_rng(0).standard_normal(6000).astype(np.float32)
    with torch.no_grad():
        single = model(torch.from_numpy(samples)[None, None], condition)[0, 0].numpy()
    chunked = apply_chunked(lambda x: model(x, condition.expand(len(x), -1)), samples, 8000, 2000)
    np.testing.assert_array_equal(chunked, single)


def test_long_input_each_window_once_and_memory_bounded():
    seen = []

    def identity(chunks):
        seen.append(tuple(chunks.shape))
        return chunks

    samples = np.random.default_rng(1).standard_normal(100_000).astype(np.float32)
    out = apply_chunked(identity, samples, 8000, 2000, batch_size=4)
    np.testing.assert_allclose(out, samples, atol=1e-6)  # the cross-fades sum to one everywhere
    windows = sum(s[0] for s in seen)
    assert windows == int(np.ceil((100_000 - 8000) / 6000)) + 1
    assert max(s[0] for s in seen) <= 4 and all(s[2] == 8000 for s in seen)


@pytest.mark.parametrize("block", [777, 6000, 1 << 20])
def test_weight_sums_made_block_by_block_give_the_input_back_through_an_identity(monkeypatch, block):
    """The cross-fade weight sums are made a block at a time (no whole-length array of them): at any block
    size, windows straddling block edges and the last window's longer overlap included, an identity model gives
    its input back."""
    monkeypatch.setattr(apply_module, "NORMALISE_BLOCK", block)
    samples = np.random.default_rng(2).standard_normal(100_003).astype(np.float32)
    np.testing.assert_allclose(apply_chunked(lambda chunks: chunks, samples, 8000, 2000), samples, atol=1e-6)
    doubled = apply_chunked(lambda chunks: 2 * chunks, samples, 8000, 2000, batch_size=3)
    np.testing.assert_allclose(doubled, 2 * samples, atol=2e-6)


def test_separator_backend_works_at_any_length():
    model = tiny_model()
    separator = AudioSepSeparator("tiny", model, lambda text: np.ones(TINY.condition_size, np.float32), "id")
    for length in (50, 7000, 30_000):
        out = separator.separate(np.random.default_rng(2).standard_normal(length).astype(np.float32), "dog",
                                 SeparatorParams(chunk_seconds=1.0, overlap_seconds=0.25))
        assert out.shape == (length,) and np.isfinite(out).all()


def test_the_level_cap_separates_a_loud_window_at_the_cap_and_leaves_a_quiet_one():
    from eventsep.separators.audiosep.backend import window_gain

    rng = np.random.default_rng(5)
    chunks = torch.from_numpy(rng.standard_normal((3, 1, 4000)).astype(np.float32))
    chunks[0] *= 0.01  # -40 dBFS: under a -20 dBFS cap
    chunks[2] = 0.0  # silence
    gain = window_gain(chunks, -20.0)
    assert gain.shape == (3, 1, 1) and gain[0].item() == 1.0 and gain[2].item() == 1.0
    level = 10 * torch.log10((chunks[1] * gain[1]).double().pow(2).mean()).item()
    assert level == pytest.approx(-20.0, abs=1e-4)
    assert window_gain(chunks, None) == 1.0


def test_with_a_level_cap_a_louder_copy_of_a_loud_window_gets_the_same_answer_louder():
    # the model is not level-invariant (the mini AudioSep loses about 10 dB on the same mixtures 12 dB louder);
    # above the cap every copy is separated at the cap, so the answers differ only by the copies' gain
    model = tiny_model()
    embed = lambda text: np.ones(TINY.condition_size, np.float32)  # noqa: E731
    capped = AudioSepSeparator("tiny", model, embed, "id", level_cap_dbfs=-20.0)
    bare = AudioSepSeparator("tiny", model, embed, "id")
    params = SeparatorParams(chunk_seconds=1.0, overlap_seconds=0.25)
    loud = 0.3 * np.random.default_rng(6).standard_normal(20_000).astype(np.float32)  # about -10 dBFS
    louder = capped.separate(4 * loud, "dog", params)
    np.testing.assert_allclose(louder, 4 * capped.separate(loud, "dog", params), rtol=1e-4, atol=1e-5)
    assert np.abs(bare.separate(4 * loud, "dog", params) - 4 * bare.separate(loud, "dog", params)).max() > 1e-3
    quiet = 0.01 * loud  # under the cap: as it comes
    np.testing.assert_array_equal(capped.separate(quiet, "dog", params), bare.separate(quiet, "dog", params))
    assert capped.identity() != bare.identity() == "id"  # cached answers of one are never read for the other


def test_digital_silence_inside_a_signal_reads_the_official_magnitude_floor():
    """The official code feeds the network sqrt(max(re² + im², 1e-10)): a silent bin reads 1e-5, its phase is
    0, and the output stays finite (a bare |X| would divide 0 by 0 there)."""
    model = tiny_model()
    rate = 8000
    t = np.arange(3 * rate) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(4).standard_normal(len(t)))
    samples[rate:2 * rate] = 0.0  # one second of digital silence in the middle
    seen = {}
    hook = model.base.bn0.register_forward_hook(lambda m, inputs, out: seen.setdefault("in", inputs[0].clone()))
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(samples.astype(np.float32))[None, None],
                        torch.randn(1, TINY.condition_size))[0, 0].numpy()
    finally:
        hook.remove()
    magnitude = seen["in"].transpose(1, 3)[0, 0]  # (frames, bins), undoing bn0's transpose
    hop = TINY.hop
    silent = slice(rate // hop + TINY.n_fft // hop + 1, 2 * rate // hop - TINY.n_fft // hop - 1)  # frames inside
    torch.testing.assert_close(magnitude[silent], torch.full_like(magnitude[silent], 1e-5), rtol=1e-6, atol=0)
    assert magnitude[: rate // hop - TINY.n_fft // hop].min() > 1e-5  # the floor does not touch the signal
    assert np.isfinite(out).all()
    inner = out[rate + TINY.n_fft: 2 * rate - TINY.n_fft]
    assert np.abs(inner).max() == 0.0  # a silent bin's phase is 0: nothing comes out of silence
    assert np.abs(out[: rate // 2]).max() > 1e-3


def test_mask_loss_keeps_its_gradient_where_the_mask_has_saturated_at_zero():
    """A prompt the model answers with silence (mask logits far below zero) gets almost no gradient from the
    waveform loss; the mask cross-entropy must still pull the mask towards the ideal one."""
    from eventsep.separators.audiosep.train import loss_fn, mask_loss

    torch.manual_seed(0)
    config = ResUNetConfig(widths=(4, 8), pools=((2, 2), (2, 2)), condition_size=6, n_fft=128, hop=32,
                           sample_rate=8000)
    model = ResUNet30(config)
    with torch.no_grad():
        model.base.after_conv.bias.view(1, 3)[:, 0] = -12.0  # mask ≈ 6e-6 everywhere
    mixture = torch.randn(2, 1, 4000)
    target = 0.5 * mixture
    condition = torch.randn(2, 6)

    def mask_bias_gradient(loss) -> float:
        model.zero_grad()
        estimate, logits = model.separate_with_mask_logits(mixture, condition)
        loss(estimate, logits).backward()
        return model.base.after_conv.bias.grad.view(3)[0].item()

    waveform = mask_bias_gradient(lambda estimate, logits: loss_fn(estimate, target, config, 1.0, 0.05))
    cross_entropy = mask_bias_gradient(lambda estimate, logits: mask_loss(model, logits, mixture, target))
    assert cross_entropy < 0, "the cross-entropy must push the mask up towards the ideal 0.5"
    assert abs(cross_entropy) > 50 * abs(waveform)
    estimate, _ = model.separate_with_mask_logits(mixture, condition)
    torch.testing.assert_close(estimate, model(mixture, condition))


def test_packaged_mini_audiosep_separates_held_out_corpus_mixtures():
    """A floor under the committed weights, on validation seeds never used in training: a retrained model that
    answers a prompt with silence or stops separating does not get committed unnoticed."""
    from eventsep import backends
    from eventsep.corpus import make_mixture
    from eventsep.metrics import si_sdr_improvement

    separator = backends.get("separator", "audiosep")
    assert separator.name == "audiosep" and separator.sample_rate == 16000
    scores, levels = [], []
    for seed in range(100_000, 100_008):
        item = make_mixture(seed, sample_rate=16000, seconds=4.0)
        estimate = separator.separate(item.mixture, item.prompts[0], SeparatorParams())
        scores.append(si_sdr_improvement(estimate, item.target, item.mixture))
        levels.append(10 * np.log10(np.sum(estimate ** 2) / np.sum(item.target ** 2)))
    assert min(levels) > -30, f"silent answers: {np.round(levels, 1)}"
    assert np.median(scores) >= 6.0, np.round(scores, 1)
