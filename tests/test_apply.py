"""Chunked inference (eventsep.separators.apply): window starts, cross-fade weights, batching, progress and the
weighted sum of overlapping windows, checked against values worked out by hand. No network is loaded: the
"models" are small callables, so each test takes milliseconds (these tests also run under mutmut)."""

import numpy as np
import pytest
import torch

from eventsep.separators import apply as apply_module
from eventsep.separators.apply import apply_chunked, crossfade_weights, window_starts


class Recorder:
    """A model that records the chunks it is given and answers window k (counting from 1) with the constant k,
    so each output sample shows which windows were mixed into it, and with what weight."""

    def __init__(self):
        self.chunks, self.inference = [], []

    def __call__(self, chunk):
        self.inference.append(torch.is_inference_mode_enabled())
        self.chunks.append(chunk.clone())
        first = sum(len(c) for c in self.chunks[:-1]) + 1
        values = torch.arange(first, first + len(chunk), dtype=torch.float32)
        return values[:, None, None].expand(chunk.shape).clone()


# ---------------------------------------------------------------- cross-fade weights and window starts

def test_crossfade_weights_ramp_in_and_out_at_half_sample_steps():
    # ramp over 4 samples: (i + 0.5) / 4
    ramp = [0.125, 0.375, 0.625, 0.875]
    middle = crossfade_weights(8, 4, first=False, last=False)
    assert middle.dtype == np.float32 and middle.shape == (8,)
    np.testing.assert_array_equal(middle, ramp + ramp[::-1])
    np.testing.assert_array_equal(crossfade_weights(8, 4, first=True, last=False), [1, 1, 1, 1] + ramp[::-1])
    np.testing.assert_array_equal(crossfade_weights(8, 4, first=False, last=True), ramp + [1, 1, 1, 1])
    np.testing.assert_array_equal(crossfade_weights(8, 4, first=True, last=True), np.ones(8))
    # a fade in followed by the next window's fade out sums to one at every overlapping sample
    np.testing.assert_array_equal(middle[-4:] + middle[:4], np.ones(4))


def test_an_overlap_of_one_sample_weighs_it_one_half():
    np.testing.assert_array_equal(crossfade_weights(4, 1, first=False, last=False), [0.5, 1, 1, 0.5])
    model = Recorder()  # windows at 0, 3 and 6 over 10 samples: samples 3 and 6 are halves of two windows
    out = apply_chunked(model, np.zeros(10, np.float32), window=4, overlap=1)
    np.testing.assert_allclose(out, [1, 1, 1, 1.5, 2, 2, 2.5, 3, 3, 3], rtol=1e-6)


def test_crossfade_weights_without_overlap_are_all_one():
    for first in (False, True):
        for last in (False, True):
            weights = crossfade_weights(6, 0, first, last)
            assert weights.dtype == np.float32
            np.testing.assert_array_equal(weights, np.ones(6))


@pytest.mark.parametrize("length, window, overlap, starts", [
    (20, 8, 2, [0, 6, 12]),   # hop 6; the last window ends exactly at the end
    (15, 8, 2, [0, 6, 7]),    # the last window is moved back to end at the end, overlapping by 7
    (14, 8, 2, [0, 6]),
    (9, 8, 2, [0, 1]),
    (8, 8, 2, [0]),           # exactly one window
    (5, 8, 2, [0]),           # shorter than a window
    (20, 8, 4, [0, 4, 8, 12]),
])
def test_window_starts_cover_the_recording_and_end_at_its_end(length, window, overlap, starts):
    assert window_starts(length, window, overlap) == starts


# ---------------------------------------------------------------- one window

@pytest.mark.parametrize("length", [5, 8])
def test_a_recording_no_longer_than_a_window_is_one_exact_pass(length):
    model = Recorder()
    samples = np.arange(length, dtype=np.float64) / 10  # float64 in: the model sees float32
    seen = []
    out = apply_chunked(model, samples, window=8, overlap=2, progress=seen.append)
    [chunk] = model.chunks
    assert chunk.shape == (1, 1, length) and chunk.dtype == torch.float32
    np.testing.assert_array_equal(chunk[0, 0].numpy(), np.arange(length, dtype=np.float32) / np.float32(10))
    assert out.dtype == np.float32 and out.shape == (length,)
    np.testing.assert_array_equal(out, np.ones(length))  # window 1 answers 1 everywhere, weight 1
    assert seen == [1.0] and model.inference == [True]


# ---------------------------------------------------------------- several windows

def test_overlapping_windows_are_cross_faded_with_the_weights_worked_out_by_hand():
    """Windows of 8 at 0, 6 and 12 over 20 samples, overlap 2 (ramp 0.25, 0.75), answering 1, 2 and 3."""
    model = Recorder()
    samples = np.arange(20, dtype=np.float32)
    out = apply_chunked(model, samples, window=8, overlap=2, batch_size=4)
    expected = [1] * 6 + [0.75 * 1 + 0.25 * 2, 0.25 * 1 + 0.75 * 2] + [2] * 4 \
        + [0.75 * 2 + 0.25 * 3, 0.25 * 2 + 0.75 * 3] + [3] * 6
    assert out.dtype == np.float32 and out.shape == (20,)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    [chunk] = model.chunks  # three windows, one batch of (3, 1, 8), each the samples it covers
    assert chunk.shape == (3, 1, 8)
    for row, start in zip(chunk[:, 0].numpy(), (0, 6, 12)):
        np.testing.assert_array_equal(row, samples[start:start + 8])
    assert model.inference == [True]


def test_a_last_window_moved_back_is_divided_by_its_larger_weight_sum():
    """Windows at 0, 6 and 7 over 15 samples (overlap 2): the weights at samples 7..13 sum to more than one,
    and each sample is the weighted mean of the windows' answers 1, 2 and 3."""
    model = Recorder()
    out = apply_chunked(model, np.zeros(15, np.float32), window=8, overlap=2)
    expected = [1] * 6 + [
        (0.75 * 1 + 0.25 * 2) / 1.0,              # 6: end of window 1, start of window 2
        (0.25 * 1 + 0.75 * 2 + 0.25 * 3) / 1.25,  # 7: all three windows
        (1 * 2 + 0.75 * 3) / 1.75,                # 8
        (2 + 3) / 2, (2 + 3) / 2, (2 + 3) / 2,    # 9..11
        (0.75 * 2 + 1 * 3) / 1.75,                # 12
        (0.25 * 2 + 1 * 3) / 1.25,                # 13
        3.0]                                      # 14: the last window alone
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("block", [1, 3, 5, 7, 8, 64])
def test_weight_sums_made_in_blocks_of_any_size_give_the_same_output(monkeypatch, block):
    monkeypatch.setattr(apply_module, "NORMALISE_BLOCK", block)
    out = apply_chunked(Recorder(), np.zeros(15, np.float32), window=8, overlap=2)
    expected = [1] * 6 + [1.25, 2.0, 4.25 / 1.75, 2.5, 2.5, 2.5, 4.5 / 1.75, 2.8, 3.0]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_batches_hold_at_most_batch_size_windows_and_progress_counts_windows_done():
    model = Recorder()
    seen = []
    samples = np.arange(20, dtype=np.float32)
    out = apply_chunked(model, samples, window=8, overlap=2, batch_size=2, progress=seen.append)
    assert [tuple(c.shape) for c in model.chunks] == [(2, 1, 8), (1, 1, 8)]
    np.testing.assert_array_equal(model.chunks[1][0, 0].numpy(), samples[12:20])
    assert seen == [pytest.approx(2 / 3), 1.0]
    np.testing.assert_allclose(out[[0, 6, 7, 12, 13, 19]], [1, 1.25, 1.75, 2.25, 2.75, 3], rtol=1e-6)
    assert model.inference == [True, True]


def test_batches_hold_four_windows_by_default():
    model = Recorder()
    apply_chunked(model, np.zeros(38, np.float32), window=8, overlap=2)  # windows at 0, 6, ..., 30: six
    assert [tuple(c.shape) for c in model.chunks] == [(4, 1, 8), (2, 1, 8)]


def test_one_window_per_batch():
    model = Recorder()
    apply_chunked(model, np.zeros(20, np.float32), window=8, overlap=2, batch_size=1)
    assert [tuple(c.shape) for c in model.chunks] == [(1, 1, 8)] * 3


def test_the_overlap_is_capped_at_half_a_window():
    """An overlap of 6 in a window of 8 is taken as 4: windows at 0, 4, 8 and 12 (hop 4), ramps of four."""
    model = Recorder()
    out = apply_chunked(model, np.zeros(20, np.float32), window=8, overlap=6)
    assert [tuple(c.shape) for c in model.chunks] == [(4, 1, 8)]
    ramp = np.array([0.125, 0.375, 0.625, 0.875])
    expected = np.concatenate([np.ones(4),                            # window 1 alone
                               ramp[::-1] * 1 + ramp * 2,             # 4..7: 1 fades out, 2 fades in
                               ramp[::-1] * 2 + ramp * 3,             # 8..11
                               ramp[::-1] * 3 + ramp * 4,             # 12..15
                               4 * np.ones(4)])                       # window 4 alone
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_without_overlap_windows_are_butted_together():
    model = Recorder()
    out = apply_chunked(model, np.zeros(16, np.float32), window=8, overlap=0)
    np.testing.assert_array_equal(out, [1] * 8 + [2] * 8)


def test_an_identity_model_gives_a_long_input_back_and_no_progress_callback_is_needed():
    samples = np.random.default_rng(7).standard_normal(1001)
    out = apply_chunked(lambda chunk: chunk, samples, window=64, overlap=16, batch_size=3)
    assert out.dtype == np.float32 and out.shape == (1001,)
    np.testing.assert_allclose(out, samples.astype(np.float32), atol=1e-6)
