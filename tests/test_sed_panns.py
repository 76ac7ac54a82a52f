"""PANNs Cnn14_DecisionLevelMax: official keys, strict round trip, refusals by name, frame count, probabilities."""

import numpy as np
import pytest
import torch

from eventsep.pretrained import StrictLoadError
from eventsep.sed.panns import Cnn14DecisionLevelMax, PannsSed, load_panns

# Key groups of the official checkpoint (panns_inference models.py): extractor, bn0, six conv blocks, two fcs.
EXPECTED_SHAPES = {
    "spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
    "spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
    "logmel_extractor.melW": (513, 64),
    "bn0.weight": (64,),
    "conv_block1.conv1.weight": (64, 1, 3, 3),
    "conv_block6.conv2.weight": (2048, 2048, 3, 3),
    "conv_block6.bn2.running_var": (2048,),
    "fc1.weight": (2048, 2048),
    "fc_audioset.weight": (527, 2048),
    "fc_audioset.bias": (527,),
}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    torch.manual_seed(0)
    model = Cnn14DecisionLevelMax()
    path = tmp_path_factory.mktemp("panns") / "Cnn14_DecisionLevelMax_mAP=0.385.pth"
    torch.save({"model": model.state_dict(), "iteration": 1}, path)
    return model, path


def test_full_size_has_the_official_keys(full):
    state = full[0].state_dict()
    for key, shape in EXPECTED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert len([k for k in state if k.startswith("conv_block")]) == 6 * 12
    assert sum(p.numel() for p in full[0].parameters()) > 80_000_000


def test_round_trip_is_strict_and_exact(full):
    model, path = full
    loaded = load_panns(path)
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


@pytest.mark.parametrize("edit, named", [
    (lambda s: s.pop("fc1.bias"), "missing: fc1.bias"),
    (lambda s: s.__setitem__("fc_extra.weight", torch.zeros(1)), "unexpected: fc_extra.weight"),
    (lambda s: s.__setitem__("fc_audioset.bias", torch.zeros(10)), "misshapen: fc_audioset.bias"),
])
def test_bad_checkpoint_is_refused_by_name(full, tmp_path, edit, named):
    state = dict(full[0].state_dict())
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(StrictLoadError, match=named):
        load_panns(path)


def test_framewise_output_is_a_probability_with_floor_n_over_320_plus_1_frames():
    torch.manual_seed(1)
    model = Cnn14DecisionLevelMax(widths=(4, 4, 8, 8, 8, 8), classes=527).eval()
    with torch.no_grad():
        model.fc_audioset.bias.fill_(-30.0)  # a second sigmoid would lift these to 0.5
    backend = PannsSed(model, "tiny")
    for length in (32000, 32000 * 3 + 123, 640):
        out = backend.detect(np.random.default_rng(0).standard_normal(length).astype(np.float32) * 0.1, 32000)
        assert out.probs.shape == (length // 320 + 1, 527) and out.frame_rate == 100.0
        assert out.probs.max() < 1e-6 and out.probs.min() >= 0.0


@pytest.fixture(scope="module")
def tiny_with_statistics():
    """Small widths (the receptive field does not depend on them), non-trivial batch-norm statistics."""
    torch.manual_seed(2)
    model = Cnn14DecisionLevelMax(widths=(4, 4, 8, 8, 8, 8)).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("chunk_seconds", [60.0, 7.0])
def test_65_s_in_chunks_equals_one_pass(tiny_with_statistics, chunk_seconds):
    """Chunks start on 32-frame decision segments with context beyond the receptive field: every frame
    equals one pass, at the chunk boundaries too (60 s: one boundary near 59.8 s; 7 s: nine boundaries).
    Without the context the frames from ~3 segments before each boundary differ by up to ~1e-2."""
    samples = np.random.default_rng(3).standard_normal(32000 * 65).astype(np.float32) * 0.1
    with torch.inference_mode():
        whole = tiny_with_statistics(torch.from_numpy(samples)[None])[0].numpy()
    backend = PannsSed(tiny_with_statistics, "tiny")
    backend.chunk_seconds = chunk_seconds
    chunked = backend.detect(samples, 32000).probs
    assert chunked.shape == whole.shape == (65 * 100 + 1, 527)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-4)
