import json

import numpy as np
import pytest

from eventsep.config import MaskParams, ParamError
from eventsep.mask import apply_gain, class_track, compute_mask

RATE = 16000
FRAME_RATE = 100.0


def probs_with_event(seconds=4.0, start=1.0, stop=2.5, level=0.9, classes=5, column=2):
    frames = int(seconds * FRAME_RATE) + 1
    probs = np.full((frames, classes), 0.05, dtype=np.float32)
    t = np.arange(frames) / FRAME_RATE
    probs[(t >= start) & (t < stop), column] = level
    return probs


def mask(probs, seconds=4.0, **params):
    return compute_mask(probs, FRAME_RATE, [2], MaskParams(**{"mode": "soft", **params}),
                        num_samples=int(seconds * RATE), sample_rate=RATE, class_names=["Accordion"])


def gain_at(result, seconds):
    return result.gain[int(seconds * RATE)]


def test_class_track_is_max_over_selected_classes():
    probs = np.array([[0.1, 0.7, 0.3], [0.6, 0.2, 0.1]], dtype=np.float32)
    np.testing.assert_allclose(class_track(probs, [0, 2]), [0.3, 0.6])
    with pytest.raises(ValueError, match="out of range"):
        class_track(probs, [3])


def test_hard_mask_gates_at_threshold_and_reports_the_event():
    result = mask(probs_with_event(), mode="hard", threshold=0.5)
    assert gain_at(result, 0.5) == 0.0 and gain_at(result, 1.7) == 1.0 and gain_at(result, 3.5) == 0.0
    [event] = result.events
    assert event.onset == pytest.approx(1.0, abs=0.02) and event.offset == pytest.approx(2.5, abs=0.02)
    assert event.label == "Accordion" and event.peak == pytest.approx(0.9)
    assert json.loads(result.to_json())[0]["label"] == "Accordion"
    assert result.to_csv().splitlines()[0] == "onset,offset,label,peak"


def test_threshold_above_the_peak_finds_nothing():
    result = mask(probs_with_event(level=0.4), mode="hard", threshold=0.5)
    assert result.events == [] and result.gain.max() == 0.0


def test_soft_mask_is_proportional_below_threshold():
    result = mask(probs_with_event(level=0.3), mode="soft", threshold=0.6, smoothing="none")
    assert gain_at(result, 1.7) == pytest.approx(0.5, abs=1e-3)
    assert gain_at(result, 0.5) == pytest.approx(0.05 / 0.6, abs=1e-3)


def test_fades_bound_the_gain_slope_so_gating_never_clicks():
    result = mask(probs_with_event(), mode="hard", threshold=0.5, fade_ms=5.0)
    fade_samples = 0.005 * RATE
    assert np.abs(np.diff(result.gain)).max() <= 1.0 / fade_samples + 1e-6
    with pytest.raises(ValueError):
        MaskParams(fade_ms=2.0)


def test_short_events_are_dropped():
    probs = probs_with_event(start=1.0, stop=1.05)
    assert mask(probs, mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0.1).events == []
    assert len(mask(probs, mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0.0).events) == 1


def test_median_smoothing_removes_a_one_frame_dropout():
    probs = probs_with_event()
    probs[150, 2] = 0.0
    assert len(mask(probs, mode="hard", smoothing="none", min_event_seconds=0).events) == 2
    assert len(mask(probs, mode="hard", smoothing="median", median_seconds=0.05).events) == 1


def test_hysteresis_keeps_an_event_through_a_dip_above_the_low_level():
    probs = probs_with_event()
    probs[140:160, 2] = 0.4
    assert len(mask(probs, mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0).events) == 2
    assert len(mask(probs, mode="hard", threshold=0.5, smoothing="hysteresis", low_threshold=0.3).events) == 1


def test_spans_add_to_or_replace_sed():
    probs = probs_with_event()
    added = mask(probs, mode="hard", spans="3.0-3.5")
    assert gain_at(added, 3.2) == 1.0 and gain_at(added, 1.7) == 1.0
    assert [e.label for e in added.events] == ["Accordion", "span"]
    replaced = mask(probs, mode="hard", spans="3.0-3.5", spans_mode="replace")
    assert gain_at(replaced, 3.2) == 1.0 and gain_at(replaced, 1.7) == 0.0


def test_span_outside_the_recording_is_refused():
    with pytest.raises(ParamError, match="outside the recording"):
        mask(probs_with_event(), spans="3-9")


def test_mode_off_passes_everything():
    result = mask(probs_with_event(), mode="off")
    assert result.gain.min() == 1.0


def test_gain_is_given_at_any_sample_rate():
    probs = probs_with_event()
    for rate in (8000, 44100):
        result = compute_mask(probs, FRAME_RATE, [2], MaskParams(mode="hard"), num_samples=4 * rate,
                              sample_rate=rate)
        assert len(result.gain) == 4 * rate and result.gain[int(1.7 * rate)] == 1.0


def test_apply_gain_requires_equal_lengths():
    with pytest.raises(ValueError, match="samples"):
        apply_gain(np.ones(10), np.ones(9))


def test_a_class_the_detector_never_sees_is_not_gated_on():
    probs = probs_with_event(level=0.04)
    result = mask(probs, mode="hard", threshold=0.5, min_peak=0.1)
    assert result.gain.min() == 1.0 and result.events == [] and "min_peak" in result.note
    gated = mask(probs, mode="hard", threshold=0.5, min_peak=0.0)
    assert gated.gain.max() == 0.0 and gated.note is None


def reference_hysteresis(track, high, low):
    active, on = [], False
    for p in track:
        on = p >= high if not on else p >= low
        active.append(on)
    return np.array(active)


def test_vectorised_hysteresis_matches_the_frame_by_frame_rule():
    from eventsep.mask import hysteresis
    rng = np.random.default_rng(4)
    for _ in range(20):
        track = np.convolve(rng.random(300), np.ones(5) / 5, mode="same").astype(np.float32)
        np.testing.assert_array_equal(hysteresis(track, 0.6, 0.4), reference_hysteresis(track, 0.6, 0.4))


def test_soft_hysteresis_uses_the_soft_gain_inside_regions_and_the_floor_outside():
    probs = probs_with_event(level=0.9)
    probs[140:160, 2] = 0.4  # a dip between the low level and θ: still inside the event
    probs[:50, 2] = 0.3  # below the low level: outside, though the soft gain there would be 0.5
    result = mask(probs, mode="soft", threshold=0.6, smoothing="hysteresis", low_threshold=0.35,
                  min_event_seconds=0)
    assert len([e for e in result.events if e.label == "Accordion"]) == 1
    assert gain_at(result, 1.5) == pytest.approx(0.4 / 0.6, abs=1e-3)
    assert gain_at(result, 1.2) == pytest.approx(1.0)
    assert gain_at(result, 0.2) == 0.0 and gain_at(result, 3.5) == 0.0


def test_soft_mask_clips_a_short_spike_to_the_level_around_it():
    probs = probs_with_event(level=0.3)  # soft gain 0.5 from 1.0 s to 2.5 s
    probs[150:153, 2] = 0.95  # a 30 ms spike above θ, shorter than min_event_seconds
    result = mask(probs, mode="soft", threshold=0.6, smoothing="none", min_event_seconds=0.1)
    assert result.events == [] and gain_at(result, 1.515) == pytest.approx(0.5, abs=1e-3)
    kept = mask(probs, mode="soft", threshold=0.6, smoothing="none", min_event_seconds=0.0)
    assert len(kept.events) == 1 and gain_at(kept, 1.515) == pytest.approx(1.0)


def test_floor_is_the_gain_outside_events():
    result = mask(probs_with_event(), mode="hard", floor=0.2)
    assert gain_at(result, 0.5) == pytest.approx(0.2) and gain_at(result, 1.7) == pytest.approx(1.0)


@pytest.mark.parametrize("settings", [
    dict(mode="hard", fade_ms=5.0), dict(mode="soft", fade_ms=5.0, smoothing="none", threshold=0.7),
    dict(mode="hard", fade_ms=20.0, spans="0.3-0.31,3.0-3.5", spans_mode="replace"),
    dict(mode="soft", fade_ms=5.0, smoothing="hysteresis", spans="3.2-3.9"),
])
def test_no_mode_lets_the_gain_jump(settings):
    rng = np.random.default_rng(5)
    probs = rng.random((401, 5)).astype(np.float32)  # a noisy track switching every frame
    result = mask(probs, min_event_seconds=0, **settings)
    fade_samples = settings["fade_ms"] / 1000 * RATE
    assert np.abs(np.diff(result.gain)).max() <= 1.0 / fade_samples + 1e-6
    assert 0.0 <= result.gain.min() and result.gain.max() <= 1.0 and result.gain.dtype == np.float32


def test_frame_gain_is_the_gain_at_each_frame_centre():
    probs = probs_with_event()
    result = mask(probs, mode="hard", floor=0.1, spans="3.0-3.5")
    assert result.frame_gain.shape == (probs.shape[0],)
    assert result.frame_gain[50] == pytest.approx(0.1) and result.frame_gain[170] == 1.0
    assert result.frame_gain[320] == 1.0  # the span
    passed = mask(probs_with_event(level=0.01), mode="hard", min_peak=0.1)
    assert passed.frame_gain.min() == 1.0


def test_the_last_frame_reaches_the_end_of_the_recording():
    frame_rate = 1 / 0.48  # YAMNet-like: the last frame centre lies before the end
    probs = np.full((21, 3), 0.9, dtype=np.float32)
    result = compute_mask(probs, frame_rate, [0], MaskParams(mode="hard"), num_samples=10 * RATE, sample_rate=RATE)
    [event] = result.events
    assert event.onset == 0.0 and event.offset == 10.0 and result.gain[-1] == 1.0


def test_events_can_be_written_as_csv_to_a_path_or_a_buffer(tmp_path):
    import io
    result = mask(probs_with_event(), mode="hard", spans="3.0-3.5")
    path = tmp_path / "events.csv"
    assert result.to_csv(path) is None
    rows = path.read_text().splitlines()
    assert rows[0] == "onset,offset,label,peak" and rows[2].startswith("3.0,3.5,span")
    buffer = io.StringIO()
    result.to_csv(buffer)
    assert buffer.getvalue() == path.read_text() == result.to_csv()
    assert [row["label"] for row in json.loads(result.to_json())] == ["Accordion", "span"]


def test_bad_probabilities_and_class_lists_are_refused():
    with pytest.raises(ValueError, match="0..1"):
        mask(probs_with_event() * 5, mode="hard")
    with pytest.raises(ValueError, match="no class"):
        class_track(probs_with_event(), [])
    with pytest.raises(ValueError, match="frames, classes"):
        mask(np.ones(10, np.float32), mode="hard")


def test_apply_gain_scales_each_sample_and_each_channel():
    gain = np.array([0.0, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(apply_gain(np.array([2.0, 2.0, 2.0]), gain), [0.0, 1.0, 2.0])
    np.testing.assert_allclose(apply_gain(np.ones((3, 2)), gain), [[0, 0], [0.5, 0.5], [1, 1]])


def test_a_probability_equal_to_theta_counts_as_on():
    """p >= θ, not p > θ: 0.5 is exact in float32, so the event frames sit exactly at θ."""
    hard = mask(probs_with_event(level=0.5), mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0)
    assert gain_at(hard, 1.7) == 1.0 and len(hard.events) == 1
    held = mask(probs_with_event(level=0.5), mode="hard", threshold=0.5, smoothing="hysteresis", min_event_seconds=0)
    assert gain_at(held, 1.7) == 1.0 and len(held.events) == 1


def test_hysteresis_releases_at_half_theta_by_default():
    """θ 0.6: a dip to 0.35 (above θ/2 = 0.3) keeps one event; a dip to 0.25 (below θ/2) splits it in two."""
    def events_with_dip(level):
        probs = probs_with_event(level=0.9)
        probs[140:160, 2] = level
        return mask(probs, mode="hard", threshold=0.6, smoothing="hysteresis", min_event_seconds=0).events

    assert len(events_with_dip(0.35)) == 1
    assert len(events_with_dip(0.25)) == 2
    # a dip to exactly the release level stays on (p >= low)
    assert len(events_with_dip(0.3)) == 1


def test_hysteresis_starts_on_the_first_frame_that_reaches_theta():
    """On a clean step (at the recording's start too) hysteresis and a plain threshold give the same events."""
    probs = probs_with_event(start=0.0, stop=0.8)
    probs[150:250, 2] = 0.9
    plain = mask(probs, mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0)
    held = mask(probs, mode="hard", threshold=0.5, smoothing="hysteresis", min_event_seconds=0)
    assert len(plain.events) == 2 and held.events == plain.events
    np.testing.assert_array_equal(held.gain, plain.gain)


def test_event_edges_are_half_a_frame_beyond_the_first_and_last_active_frames():
    """Frame t stands for [t - ½, t + ½) frames: active frames 100..249 at 100 frames/s give 0.995-2.495 s."""
    [event] = mask(probs_with_event(), mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0).events
    assert (event.onset, event.offset) == (0.995, 2.495)


def test_an_explicit_release_level_is_used():
    """θ 0.5, a dip to 0.4: released with low_threshold 0.45 (two events), held with the default θ/2."""
    probs = probs_with_event()
    probs[140:160, 2] = 0.4
    assert len(mask(probs, mode="hard", threshold=0.5, smoothing="hysteresis", low_threshold=0.45,
                    min_event_seconds=0).events) == 2
    assert len(mask(probs, mode="hard", threshold=0.5, smoothing="hysteresis", min_event_seconds=0).events) == 1


def test_per_sample_work_in_blocks_equals_the_whole_signal_at_once(monkeypatch):
    from eventsep import mask as module

    rng = np.random.default_rng(3)
    signal = rng.random(10_001).astype(np.float32)
    frame_times = np.arange(30) * 0.34
    values = rng.random(30)
    monkeypatch.setattr(module, "BLOCK", 1000)  # many block edges
    for width in (2, 7, 640):
        padded = np.pad(signal.astype(np.float64), (width // 2, width - 1 - width // 2), mode="edge")
        whole = np.convolve(padded, np.ones(width) / width, mode="valid")  # the moving average, in one go
        np.testing.assert_allclose(module.box_filter(signal, width), whole, atol=1e-6)
    sample_times = np.arange(10_001) / 1000
    np.testing.assert_allclose(module.interpolate(10_001, 1000, frame_times, values),
                               np.interp(sample_times, frame_times, values), atol=1e-6)
