"""A removal query end to end: "remove X" answers with the mixture minus what the separator found for X."""

import numpy as np

import eventsep
from eventsep.metrics import si_sdr

RATE = 32000


def test_a_removal_query_returns_the_residual_and_a_keep_query_the_estimate(cache_env, standin_options):
    t = np.arange(3 * RATE) / RATE
    low = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)    # what the stand-in separator finds
    high = (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)  # everything else
    options = {**standin_options, "separators": ("standin-lowpass",)}
    keep = eventsep.separate((low + high, RATE), "the tone", options=options, mask={"mode": "off"})
    removed = eventsep.separate((low + high, RATE), "remove the tone", options=options, mask={"mode": "off"})
    assert not keep.mapping["remove"] and removed.mapping["remove"]
    assert si_sdr(keep.target, low) > 30 and si_sdr(keep.residual, high) > 30
    assert si_sdr(removed.target, high) > 30 and si_sdr(removed.residual, low) > 30
