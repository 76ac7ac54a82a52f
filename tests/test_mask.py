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


# --- argument guards, boundaries and edge cases (mutation testing, docs/testing.md) ---

@pytest.mark.parametrize("num_samples, sample_rate, frame_rate", [(0, RATE, FRAME_RATE), (RATE, 0, FRAME_RATE),
                                                                   (RATE, RATE, 0.0), (-1, -1, -1.0)])
def test_a_zero_length_rate_or_frame_rate_is_refused(num_samples, sample_rate, frame_rate):
    with pytest.raises(ValueError, match=r"^need num_samples, sample_rate and frame_rate > 0, got "
                                         rf"{num_samples}, {sample_rate}, {frame_rate}$"):
        compute_mask(probs_with_event(), frame_rate, [2], MaskParams(mode="hard"), num_samples=num_samples,
                     sample_rate=sample_rate)


def test_a_one_sample_recording_at_one_hertz_is_masked():
    """The smallest valid inputs (one sample, 1 Hz, 1 frame/s) give a one-sample gain, not an error."""
    probs = np.full((1, 3), 0.9, np.float32)
    result = compute_mask(probs, 1.0, [0], MaskParams(mode="hard", min_event_seconds=0), num_samples=1,
                          sample_rate=1)
    assert result.gain.tolist() == [1.0] and result.sample_rate == 1 and result.frame_gain.tolist() == [1.0]
    assert [(e.onset, e.offset) for e in result.events] == [(0.0, 1.0)]


def test_mode_auto_must_be_resolved_by_the_pipeline():
    with pytest.raises(ValueError, match=r"^mask mode 'auto' is chosen by the pipeline from the query's family; "
                                         r"give hard, soft or off$"):
        mask(probs_with_event(), mode="auto")


def test_the_event_label_joins_the_class_names_or_says_selected_classes():
    params = MaskParams(mode="hard", min_event_seconds=0)
    named = compute_mask(probs_with_event(), FRAME_RATE, [2], params, num_samples=4 * RATE, sample_rate=RATE,
                         class_names=["Accordion", "Harmonica"])
    assert [e.label for e in named.events] == ["Accordion | Harmonica"]
    unnamed = compute_mask(probs_with_event(), FRAME_RATE, [2], params, num_samples=4 * RATE, sample_rate=RATE)
    assert [e.label for e in unnamed.events] == ["selected classes"]


def test_spans_mode_replace_without_spans_still_follows_sed():
    result = mask(probs_with_event(), mode="hard", spans_mode="replace")
    assert gain_at(result, 0.5) == 0.0 and gain_at(result, 1.7) == 1.0 and len(result.events) == 1


def test_a_peak_equal_to_min_peak_is_gated_on():
    """min_peak 0.5 and a peak of exactly 0.5 (exact in float32): the detector saw the class, so SED gates."""
    result = mask(probs_with_event(level=0.5), mode="hard", threshold=0.5, min_peak=0.5, min_event_seconds=0)
    assert result.note is None and gain_at(result, 0.5) == 0.0 and gain_at(result, 1.7) == 1.0


def test_the_min_peak_note_names_the_classes_the_peak_and_the_setting():
    result = mask(probs_with_event(level=0.04), mode="hard", min_peak=0.1)
    assert result.note == ("SED never gives Accordion more than 0.05 (below min_peak 0.1); "
                           "the mask passes everything")
    assert result.frame_gain.dtype == np.float32 and result.gain.dtype == np.float32


def test_an_event_exactly_min_event_seconds_long_is_kept():
    """Frames 100..104 (50 ms at 100 frames/s) against min_event_seconds 0.05 (5 frames): kept; 0.06 drops it."""
    probs = probs_with_event(start=1.0, stop=1.05)
    kept = mask(probs, mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0.05)
    assert [(e.onset, e.offset) for e in kept.events] == [(0.995, 1.045)]
    assert mask(probs, mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0.06).events == []


def test_median_smoothing_window_is_median_seconds_long_and_centred():
    """median_seconds 0.03 at 100 frames/s is a 3-frame median: a 1-frame dropout is filled, a 2-frame one is not."""
    one = probs_with_event()
    one[150, 2] = 0.0
    assert len(mask(one, mode="hard", smoothing="median", median_seconds=0.03, min_event_seconds=0).events) == 1
    two = probs_with_event()
    two[150:152, 2] = 0.0
    assert len(mask(two, mode="hard", smoothing="median", median_seconds=0.03, min_event_seconds=0).events) == 2
    # the window stays centred: the event keeps its frames 100..249 (0.995-2.495 s)
    [event] = mask(one, mode="hard", smoothing="median", median_seconds=0.03, min_event_seconds=0).events
    assert (event.onset, event.offset) == (0.995, 2.495)


def test_median_smooth_of_an_even_window_uses_the_next_odd_one_with_edges_held():
    from eventsep.mask import median_smooth
    track = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], np.float32)
    # 2 frames -> 3: medians of (1,1,0) (1,0,0) (0,0,1) (0,1,1) (1,1,0) (1,0,1) (0,1,1)
    smoothed = median_smooth(track, 2)
    assert smoothed.dtype == np.float32 and smoothed.tolist() == [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    # 4 -> 5 frames, edges held: padded 1,1,1,0,0,1,1,0,1,1,1
    assert median_smooth(track, 4).tolist() == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    np.testing.assert_array_equal(median_smooth(track, 1), track)
    assert median_smooth(np.array([0.3], np.float32), 5).tolist() == [pytest.approx(0.3)]


def test_soft_mask_with_theta_zero_passes_everything():
    """θ 0: every probability (even 0) is at or above θ, so the soft gain is 1 everywhere."""
    probs = probs_with_event()
    probs[:, 2] = 0.0
    probs[100:250, 2] = 0.9
    result = mask(probs, mode="soft", threshold=0.0, smoothing="none", min_peak=0.0)
    assert result.gain.min() == 1.0 and result.gain.max() == 1.0


def test_a_short_spike_at_the_recording_edges_is_clipped_to_its_one_neighbour():
    """A spike in the first (last) frames has no frame before (after) it: it takes the level after (before) it."""
    probs = probs_with_event(level=0.3)
    probs[:3, 2] = 0.95  # frames 0-2 above θ, then 0.05 (soft gain 0.05/0.6)
    probs[-3:, 2] = 0.95
    result = mask(probs, mode="soft", threshold=0.6, smoothing="none", min_event_seconds=0.1)
    assert result.events == []
    assert result.frame_gain[0] == pytest.approx(0.05 / 0.6, abs=1e-6)
    assert result.frame_gain[-1] == pytest.approx(0.05 / 0.6, abs=1e-6)


def test_a_short_spike_over_the_whole_recording_is_clipped_to_zero():
    """No frame around it at all: the clipped level is 0 (the floor)."""
    probs = np.full((3, 3), 0.95, np.float32)
    result = compute_mask(probs, FRAME_RATE, [0], MaskParams(mode="soft", smoothing="none", threshold=0.6,
                                                               min_event_seconds=0.1, floor=0.25),
                          num_samples=480, sample_rate=RATE)
    assert result.frame_gain.tolist() == [0.25, 0.25, 0.25]


def test_mode_off_needs_no_probabilities():
    result = compute_mask(None, FRAME_RATE, [], MaskParams(mode="off"), num_samples=RATE, sample_rate=RATE)
    assert result.gain.min() == 1.0 and len(result.gain) == RATE and result.frame_gain.shape == (0,)
    with_probs = compute_mask(probs_with_event(), FRAME_RATE, [2], MaskParams(mode="off"), num_samples=RATE,
                              sample_rate=RATE)
    assert with_probs.frame_gain.tolist() == [1.0] * 401 and with_probs.events == []


def test_frame_gain_beyond_the_recording_is_the_last_sample_gain():
    """401 frames (4 s at 100/s) over a 1 s recording: frames past the end take the gain of the last sample."""
    probs = np.full((401, 3), 0.05, np.float32)
    probs[50:, 0] = 0.9  # on from 0.5 s to the end
    result = compute_mask(probs, FRAME_RATE, [0], MaskParams(mode="hard", min_event_seconds=0, floor=0.5),
                          num_samples=RATE, sample_rate=RATE)
    assert result.frame_gain[10] == 0.5 and result.frame_gain[60] == 1.0 and result.frame_gain[300] == 1.0


def test_frame_gain_is_sampled_at_the_nearest_sample_to_each_frame_centre():
    """Frame centres at t / 3 s over a 10 Hz recording: frame 1 (0.333 s) is sample 3, frame 2 (0.667 s) sample 7."""
    probs = np.array([[0.0], [0.0], [0.9], [0.9]], np.float32)
    result = compute_mask(probs, 3.0, [0], MaskParams(mode="hard", min_event_seconds=0, fade_ms=5.0, min_peak=0),
                          num_samples=12, sample_rate=10)
    # frame 2 stands for [0.5, 0.833) s: samples 5..7 (onset 0.5 s, rounded: sample 5) are on
    assert result.frame_gain.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert result.gain.tolist() == [0.0] * 5 + [1.0] * 7


def test_a_short_fade_still_means_at_least_one_sample():
    """5 ms at 100 Hz is half a sample: no fade at all, the hard gate is kept as is."""
    probs = np.array([[0.0], [0.9]], np.float32)
    result = compute_mask(probs, 1.0, [0], MaskParams(mode="hard", min_event_seconds=0, fade_ms=5.0, min_peak=0),
                          num_samples=200, sample_rate=100)
    assert result.gain.tolist() == [0.0] * 50 + [1.0] * 150


def test_a_fade_is_fade_ms_long():
    """20 ms at 1 kHz: the gate opens over 20 samples in steps of 1/20."""
    probs = np.array([[0.0], [0.9]], np.float32)
    result = compute_mask(probs, 1.0, [0], MaskParams(mode="hard", min_event_seconds=0, fade_ms=20.0, min_peak=0),
                          num_samples=2000, sample_rate=1000)
    steps = np.diff(result.gain)
    assert np.count_nonzero(steps) == 20 and np.allclose(steps[steps != 0], 1 / 20)


def test_events_are_sorted_by_onset_then_offset():
    probs = probs_with_event(start=2.0, stop=3.0)  # frames 200..299: 1.995-2.995 s
    result = mask(probs, mode="hard", spans="2.0-2.5,0.5-1.0,2.0-2.2", min_event_seconds=0)
    assert [(e.onset, e.offset, e.label) for e in result.events] == [
        (0.5, 1.0, "span"), (1.995, 2.995, "Accordion"), (2.0, 2.2, "span"), (2.0, 2.5, "span")]


def test_class_track_errors_name_the_shape_and_the_valid_range():
    with pytest.raises(ValueError, match=r"^probabilities must be \(frames, classes\), got shape \(3,\)$"):
        class_track(np.ones(3), [0])
    with pytest.raises(ValueError, match=r"^no class selected$"):
        class_track(np.ones((2, 3)), [])
    with pytest.raises(ValueError, match=r"^class index 3 out of range 0..2$"):
        class_track(np.ones((2, 3)), [0, 3])
    with pytest.raises(ValueError, match=r"^class index -1 out of range 0..2$"):
        class_track(np.ones((2, 3)), [-1])


def test_median_smooth_of_an_empty_track_is_empty():
    from eventsep.mask import median_smooth
    assert median_smooth(np.zeros(0, np.float32), 5).shape == (0,)


def test_hysteresis_holds_after_a_trigger_on_the_first_frame():
    from eventsep.mask import hysteresis
    for track in ([0.9, 0.5, 0.5, 0.1, 0.5], [0.9, 0.9, 0.45, 0.45, 0.9, 0.2], [0.5, 0.9, 0.5, 0.1, 0.7, 0.5]):
        track = np.array(track, np.float32)
        np.testing.assert_array_equal(hysteresis(track, 0.6, 0.4), reference_hysteresis(track, 0.6, 0.4))
    assert hysteresis(np.array([0.9, 0.5, 0.5, 0.1], np.float32), 0.6, 0.4).tolist() == [True, True, True, False]


def test_probabilities_must_have_frames_and_lie_in_0_to_1():
    with pytest.raises(ValueError, match=r"^probabilities must be \(frames, classes\) with at least one frame, "
                                         r"got shape \(0, 5\)$"):
        mask(np.zeros((0, 5), np.float32), mode="hard")
    with pytest.raises(ValueError, match=r"^probabilities must be \(frames, classes\) with at least one frame, "
                                         r"got shape \(10,\)$"):
        mask(np.ones(10, np.float32), mode="hard")
    nan = probs_with_event()
    nan[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"^probabilities contain NaN or infinite values$"):
        mask(nan, mode="hard")
    over = probs_with_event()
    over[3, 0] = 1.01
    with pytest.raises(ValueError, match=r"^probabilities must lie in 0..1, got 0.05..1.01 \(logits\? SED outputs "
                                         r"are already probabilities\)$"):
        mask(over, mode="hard")


def test_a_probability_of_one_and_rounding_just_above_it_are_accepted():
    """1.0 is a valid probability; float32 rounding up to 1e-6 above it (a sigmoid's output) is tolerated."""
    for top in (1.0, np.float32(1.0 + 1e-6)):
        probs = probs_with_event(level=top)
        result = mask(probs, mode="hard", threshold=0.5, min_event_seconds=0)
        assert gain_at(result, 1.7) == 1.0 and result.events[0].peak == pytest.approx(1.0)


def test_replacing_sed_by_spans_ignores_the_detector():
    result = mask(probs_with_event(), mode="hard", spans="3.0-3.5", spans_mode="replace")
    assert [(e.onset, e.offset, e.label, e.peak) for e in result.events] == [(3.0, 3.5, "span", 1.0)]
    # no probabilities are needed at all
    alone = compute_mask(None, FRAME_RATE, [], MaskParams(mode="hard", spans="3.0-3.5", spans_mode="replace"),
                         num_samples=4 * RATE, sample_rate=RATE)
    assert gain_at(alone, 3.2) == 1.0 and gain_at(alone, 1.0) == 0.0


def test_a_span_event_has_peak_one_and_ends_at_the_recording_end():
    result = mask(probs_with_event(), mode="hard", spans="3.5-4.0")
    assert [(e.onset, e.offset, e.label, e.peak) for e in result.events if e.label == "span"] == [
        (3.5, 4.0, "span", 1.0)]


def test_an_event_starting_on_the_second_frame_starts_half_a_frame_before_it():
    probs = probs_with_event(start=0.01, stop=0.5)  # frames 1..49
    [event] = mask(probs, mode="hard", threshold=0.5, smoothing="none", min_event_seconds=0).events
    assert (event.onset, event.offset) == (0.005, 0.495)


def test_event_times_are_given_to_a_tenth_of_a_millisecond():
    """3 frames/s: frame 1 stands for [1/6, 1/2) s, reported as 0.1667-0.5."""
    probs = np.array([[0.0], [0.9], [0.0], [0.0]], np.float32)
    [event] = compute_mask(probs, 3.0, [0], MaskParams(mode="hard", min_event_seconds=0, min_peak=0),
                           num_samples=40, sample_rate=30).events
    assert (event.onset, event.offset) == (0.1667, 0.5)
    probs = np.array([[0.0], [0.0], [0.9], [0.0]], np.float32)
    [event] = compute_mask(probs, 3.0, [0], MaskParams(mode="hard", min_event_seconds=0, min_peak=0),
                           num_samples=40, sample_rate=30).events
    assert (event.onset, event.offset) == (0.5, 0.8333)


def test_an_event_beginning_at_the_recording_end_is_not_reported():
    """2 frames/s over 1.25 s: frame 3 stands for [1.25, 1.75) s, wholly after the end."""
    probs = np.array([[0.0], [0.0], [0.0], [0.9]], np.float32)
    result = compute_mask(probs, 2.0, [0], MaskParams(mode="hard", min_event_seconds=0, min_peak=0),
                          num_samples=5, sample_rate=4)
    assert result.events == [] and result.gain.max() == 0.0


def test_a_short_spike_takes_the_level_of_the_frame_just_before_it():
    """Spike frames 150-152; frame 149 at soft gain 0.5, frame 148 and frame 153 at 0.05/0.6: clipped to 0.5."""
    probs = probs_with_event(level=0.05)
    probs[149, 2] = 0.3
    probs[150:153, 2] = 0.95
    result = mask(probs, mode="soft", threshold=0.6, smoothing="none", min_event_seconds=0.1)
    assert result.events == [] and result.frame_gain[151] == pytest.approx(0.5, abs=1e-6)
    first = probs_with_event(level=0.05)
    first[0, 2] = 0.3  # frame 0 before a spike on frames 1-3
    first[1:4, 2] = 0.95
    result = mask(first, mode="soft", threshold=0.6, smoothing="none", min_event_seconds=0.1)
    assert result.frame_gain[2] == pytest.approx(0.5, abs=1e-6)


def test_the_gain_is_float32_in_every_mode_even_without_a_fade():
    """5 ms at 100 Hz rounds to no fade at all."""
    probs = probs_with_event()
    for mode in ("off", "hard", "soft"):
        result = compute_mask(probs, FRAME_RATE, [2], MaskParams(mode=mode, fade_ms=5.0), num_samples=400,
                              sample_rate=100)
        assert result.gain.dtype == np.float32 and result.frame_gain.dtype == np.float32


def test_the_first_and_the_past_the_end_frames_take_the_first_and_last_samples():
    """A span over sample 0 only and one over the last sample only (1 kHz, 1 s, frames at 100/s for 4 s)."""
    probs = np.full((401, 3), 0.05, np.float32)
    result = compute_mask(probs, FRAME_RATE, [0], MaskParams(mode="hard", min_peak=0, spans="0-0.001,0.999-1.0"),
                          num_samples=1000, sample_rate=1000)
    assert result.frame_gain[0] == 1.0 and result.frame_gain[1] == 0.0
    assert result.frame_gain[99] == 0.0 and result.frame_gain[100] == 1.0 and result.frame_gain[400] == 1.0


def test_a_100_ms_fade_at_10_khz_is_1000_samples():
    probs = np.array([[0.0], [0.9]], np.float32)
    result = compute_mask(probs, 1.0, [0], MaskParams(mode="hard", min_event_seconds=0, fade_ms=100.0,
                                                      min_peak=0), num_samples=20000, sample_rate=10000)
    assert np.count_nonzero(np.diff(result.gain)) == 1000


def test_interpolate_gives_float32():
    from eventsep.mask import interpolate
    out = interpolate(5, 2, np.array([0.0, 2.0]), np.array([0.0, 1.0]))
    assert out.dtype == np.float32 and out.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_apply_gain_returns_float32_and_names_the_mismatch():
    scaled = apply_gain(np.ones(3, np.float64), np.full(3, 0.5, np.float64))
    assert scaled.dtype == np.float32 and scaled.tolist() == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match=r"^the gain must be one value per sample \(n,\), got shape \(3, 2\)$"):
        apply_gain(np.ones(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"^audio has 0 samples but the gain has 3$"):
        apply_gain(1.0, np.ones(3))
    with pytest.raises(ValueError, match=r"^audio has 10 samples but the gain has 9$"):
        apply_gain(np.ones(10), np.ones(9))


# --- any stretch of the gain made alone (long recordings in blocks, eventsep/stream.py) ---

@pytest.mark.parametrize("params", [
    MaskParams(mode="hard", threshold=0.5),
    MaskParams(mode="soft", threshold=0.4, floor=0.3),
    MaskParams(mode="soft", threshold=0.5, smoothing="hysteresis", floor=0.1),
    MaskParams(mode="hard", threshold=0.6, spans="0.5-0.9,3.1-3.3", floor=0.2),
    MaskParams(mode="soft", threshold=0.5, spans="1.0-1.5,1.4-2.0", spans_mode="replace"),
    MaskParams(mode="off"),
])
def test_a_stretch_of_the_gain_made_alone_equals_the_whole_gain_there(monkeypatch, params):
    from eventsep import mask as module

    monkeypatch.setattr(module, "BLOCK", 997)  # many block edges, none where the stretches start
    rng = np.random.default_rng(7)
    probs = np.clip(np.cumsum(rng.normal(0, 0.2, (40, 2)), axis=0) * 0.3 + 0.5, 0, 1).astype(np.float32)
    rate, frame_rate, n = 2000, 10.0, 8000
    whole = compute_mask(probs, frame_rate, [0, 1], params, num_samples=n, sample_rate=rate)
    alone = compute_mask(probs, frame_rate, [0, 1], params, num_samples=n, sample_rate=rate, whole_gain=False)
    assert alone.gain is None and alone.events == whole.events
    np.testing.assert_array_equal(alone.frame_gain, whole.frame_gain)
    assert 0.0 < whole.gain.min() or params.floor == 0.0
    for start, stop in ((0, n), (0, 5), (1, 2500), (3333, 3334), (2999, 8000), (7990, 8000), (4000, 4000)):
        part = alone.plan.render(start, stop)
        assert part.dtype == np.float32 and len(part) == stop - start
        np.testing.assert_allclose(part, whole.gain[start:stop], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"^samples 10\.\.8001 are outside the recording's 0\.\.8000$"):
        alone.plan.render(10, 8001)


def test_the_gain_plan_is_sliced_as_the_whole_gain():
    params = MaskParams(mode="soft", threshold=0.4, floor=0.2)
    probs = np.clip(np.sin(np.arange(40) / 3.0)[:, None] * 0.6 + 0.4, 0, 1).astype(np.float32)
    made = compute_mask(probs, 10.0, [0], params, num_samples=8000, sample_rate=2000)
    plan = made.plan
    assert len(plan) == 8000
    np.testing.assert_allclose(plan[::37], made.gain[::37], atol=1e-6, rtol=0)  # a picture's sparse reading
    np.testing.assert_allclose(plan[5:7990:400], made.gain[5:7990:400], atol=1e-6, rtol=0)
    np.testing.assert_allclose(plan[100:300], made.gain[100:300], atol=1e-6, rtol=0)
    np.testing.assert_allclose(plan.at(np.array([0, 1, 7999])), made.gain[[0, 1, 7999]], atol=1e-6, rtol=0)
    with pytest.raises(TypeError, match="a GainPlan is sliced, not indexed"):
        plan[5]


def test_interval_membership_and_merging_by_hand():
    from eventsep.mask import _inside, _merged

    starts, stops = _merged([(5, 7), (1, 3), (3, 4), (6, 9), (10, 10), (12, 11)])
    assert starts.tolist() == [1, 5] and stops.tolist() == [4, 9]  # touching joined, empty and reversed dropped
    assert starts.dtype == stops.dtype == np.int64
    inside = _inside(np.arange(11), (np.array([2, 7]), np.array([5, 9])))
    assert inside.dtype == np.float32 and inside.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0]  # stops excluded
    assert _inside(np.arange(3), _merged([])).tolist() == [0, 0, 0]


@pytest.mark.parametrize("rate", [100, 2000])  # 5 ms at 100 Hz: a fade of one sample, no box filter; 10 at 2 kHz
def test_a_hard_gain_reaching_both_ends_is_made_alone_as_the_whole(rate):
    probs = np.zeros((40, 1), np.float32)
    probs[:6] = probs[15:22] = probs[34:] = 0.9  # events at the start, inside and at the end
    params = MaskParams(mode="hard", threshold=0.5, floor=0.25, fade_ms=5.0, min_event_seconds=0.0)
    n = 4 * rate
    made = compute_mask(probs, 10.0, [0], params, num_samples=n, sample_rate=rate)
    plan, gain = made.plan, made.gain
    assert plan.fade == (1 if rate == 100 else 10) and gain[0] == 1.0 and gain[-1] == 1.0
    if rate == 100:
        assert set(np.unique(gain).tolist()) == {0.25, 1.0}  # no fade: the floor or 1, nothing between
    ends = np.array([0, 1, 2, n - 3, n - 2, n - 1])
    np.testing.assert_allclose(plan.at(ends), gain[ends], atol=1e-6, rtol=0)
    for start, stop in ((0, 9), (n - 10, n), (1, n - 1), (n // 4, n // 4 + 50)):
        np.testing.assert_allclose(plan.render(start, stop), gain[start:stop], atol=1e-6, rtol=0)
    np.testing.assert_allclose(plan[n - 100::3], gain[n - 100::3], atol=1e-6, rtol=0)


def test_indexing_a_gain_plan_says_it_is_sliced():
    made = compute_mask(np.full((10, 1), 0.9, np.float32), 10.0, [0], MaskParams(mode="soft"), num_samples=2000,
                        sample_rate=2000)
    with pytest.raises(TypeError, match=r"^a GainPlan is sliced, not indexed$"):
        made.plan[5]


@pytest.mark.parametrize("rate, end", [(100, 3.99), (2000, 3.9995), (2000, 4.0)])
def test_a_span_to_the_last_sample_or_short_of_it_is_made_alone_as_the_whole(rate, end):
    """The recording's last samples: a span ending one sample short of the end (no fade at 100 Hz) or at the end
    (a 10-sample fade at 2 kHz, whose window there is held at the last sample, not read past it)."""
    params = MaskParams(mode="hard", floor=0.25, spans=f"1-{end}", spans_mode="replace")
    n = 4 * rate
    made = compute_mask(np.zeros((40, 1), np.float32), 10.0, [0], params, num_samples=n, sample_rate=rate)
    assert made.plan.unfaded(np.array([n - 2, n - 1])).tolist() == [1.0, 0.25 if end < 4 else 1.0]
    np.testing.assert_allclose(made.plan.render(n - 12, n), made.gain[n - 12:], atol=1e-6, rtol=0)
    np.testing.assert_allclose(made.plan.at(np.arange(n - 12, n)), made.gain[n - 12:], atol=1e-6, rtol=0)
