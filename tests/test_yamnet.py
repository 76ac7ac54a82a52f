"""YAMNet SED on rendered audio: speech frames found, silent and instrument-only frames not."""

import subprocess

import numpy as np
import pytest

from eventsep import backends
from eventsep.audio import load_audio
from eventsep.corpus.sources import ALL_KINDS, render
from eventsep.ontology import NUM_CLASSES, by_name
from eventsep.sed.yamnet import FRAME_SECONDS, PARENT_MID, YamnetSed, log_mel_patches, patch_count

RATE = 16000
SPEECH = by_name("Speech").index


@pytest.fixture(scope="module")
def yamnet():
    return YamnetSed(calibrated=False)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en+m3", "-w", str(path),
                    "The weather report says it will rain again tomorrow afternoon, and the river will rise."],
                   check=True, capture_output=True)
    return load_audio(path, RATE).samples


def frame_f1(probs, truth, threshold):
    detected = probs >= threshold
    tp = np.sum(detected & truth)
    return 2 * tp / max(np.sum(detected) + np.sum(truth), 1)


def truth_frames(count, start, stop):
    centres = np.arange(count) * FRAME_SECONDS
    return (centres >= start) & (centres < stop)


# Measured (docs/sed.md): inside-mean 0.83 / 0.60, outside-max 0.0001 / 0.011, F1@0.5 0.947 / 0.889.
@pytest.mark.parametrize("background, inside_mean, f1_floor", [("silence", 0.75, 0.9), ("clarinet", 0.55, 0.85)])
def test_speech_probability_follows_the_speech(yamnet, speech, background, inside_mean, f1_floor):
    seconds, start = 12.0, 4.0
    mixture = np.zeros(int(seconds * RATE), dtype=np.float32)
    if background == "clarinet":
        mixture += 0.1 * render(ALL_KINDS["clarinet"], 1, seconds, RATE)[: len(mixture)]
    mixture[int(start * RATE):int(start * RATE) + len(speech)] += speech
    out = yamnet.detect(mixture, RATE)
    assert out.probs.shape == (patch_count(len(mixture)), NUM_CLASSES)
    stop = start + len(speech) / RATE
    # frames wholly inside the speech vs wholly outside it (a 0.96 s window straddles the edges)
    inside = truth_frames(len(out.probs), start + 0.48, stop - 0.48)
    outside = ~truth_frames(len(out.probs), start - 0.48, stop + 0.48)
    speech_prob = out.probs[:, SPEECH]
    assert speech_prob[inside].mean() > inside_mean
    assert speech_prob[outside].max() < 0.05
    assert frame_f1(speech_prob, truth_frames(len(out.probs), start, stop), 0.5) > f1_floor


def test_every_one_of_the_527_columns_has_a_source(yamnet):
    columns = yamnet.column_of_527
    assert len(columns) == NUM_CLASSES and (columns >= 0).all()
    assert len(PARENT_MID) == 6
    # a class YAMNet lacks reads its parent's column
    male = by_name("Male speech, man speaking").index
    assert columns[male] == columns[SPEECH]


def test_frames_are_centred_every_048_seconds_and_memory_is_chunked():
    samples = np.random.default_rng(0).standard_normal(int(30 * RATE)).astype(np.float32) * 0.1
    whole = log_mel_patches(samples)
    assert whole.shape == (patch_count(len(samples)), 1, 96, 64)
    part = log_mel_patches(samples, 10, 5)
    np.testing.assert_allclose(part, whole[10:15], rtol=1e-5, atol=1e-5)


def test_registered_as_the_default_sed_backend():
    model = backends.get("sed", "yamnet")
    assert model.name == "yamnet" and len(model.identity()) > 64
