"""Fast unit tests of eventsep/pipeline.py for mutation testing (docs/testing.md): choosing backends by the
query's family, each stage's key and output, `finish` and `notes`, the local runner's cache and lock, `run`'s
wiring with stand-in backends, and re-fusion from the cache. No model is loaded; expected values are worked out
by hand (a separator that halves its input, a gain set sample by sample)."""

from __future__ import annotations

import os
import socket
import threading

import numpy as np
import pytest

from eventsep import backends, pipeline
from eventsep.audio import Audio
from eventsep.config import FusionParams, MaskParams, ParamError, QueryParams, SedParams, SeparatorParams
from eventsep.hashing import stage_key
from eventsep.locks import OwnedFileLockManager
from eventsep.ontology import by_name, speech_indices
from eventsep.pipeline import RunOptions
from eventsep.store import ResultStore, StageResult
from eventsep.trust import GATED, SEPARATOR

RATE = 8000
DOG = by_name("Dog")
SPEECH = by_name("Speech")


def recording(n: int = RATE, seed: int = 0, **extra) -> Audio:
    samples = (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    return Audio(samples, RATE, **extra)


def mapping(classes=((DOG, 1.0),), query="dog", remove=False, target_text=None, key="map-key") -> StageResult:
    meta = {"query": query,
            "classes": [{"index": c.index, "mid": c.mid, "name": c.name, "score": s} for c, s in classes],
            "exclude": [], "remove": remove}
    if target_text is not None:
        meta["target_text"] = target_text
    return StageResult("map_query", key, meta=meta)


class Halver:
    """Answers with half its input; remembers what it was asked for and the input it got."""

    param_fields = ("chunk_seconds", "text")

    def __init__(self, name: str, sample_rate: int = RATE, factor: float = 0.5):
        self.name, self.sample_rate, self.factor = name, sample_rate, factor
        self.asked: list[str] = []
        self.inputs: list[np.ndarray] = []
        self.params: list[SeparatorParams] = []

    def identity(self) -> str:
        return f"weights-of-{self.name}"

    def separate(self, samples, query, params):
        self.asked.append(query)
        self.inputs.append(np.array(samples))
        self.params.append(params)
        return (samples * self.factor).astype(np.float64)  # float64: the stage casts to float32


class ProgressHalver(Halver):
    def separate(self, samples, query, params, progress=None):
        if progress is not None:
            progress(0.5)
            progress(1.0)
        return super().separate(samples, query, params)


class ConstantSed:
    """Every class at probability 0.9 for the first half of the frames, 0 after (10 frames/s)."""

    name = "unit-sed"

    def identity(self) -> str:
        return "unit-sed-v1"

    def detect(self, samples, sample_rate):
        from eventsep.ontology import NUM_CLASSES
        from eventsep.sed import SedOutput

        frames = len(samples) * 10 // sample_rate + 1
        probs = np.zeros((frames, NUM_CLASSES), dtype=np.float64)
        probs[: frames // 2] = 0.9
        return SedOutput(probs, 10, "unit-sed-model")


class ProgressSed(ConstantSed):
    def detect(self, samples, sample_rate, progress=None):
        progress(1.0)
        return super().detect(samples, sample_rate)


class FlatEncoder:
    """Every text the same vector: only exact names score (1.0), everything else ties."""

    name = "unit-encoder"
    dim = 4

    def identity(self) -> str:
        return "unit-encoder-v1"

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out


def unavailable(reason: str):
    def factory():
        raise backends.BackendUnavailable(reason)
    return factory


@pytest.fixture
def units(monkeypatch):
    """Stand-in backends under names of their own; instances kept so a test can read what they were asked."""
    made = {"unit-a": Halver("unit-a"), "unit-b": Halver("unit-b", 4000, 0.25), "unit-c": Halver("unit-c"),
            "unit-p": ProgressHalver("unit-p")}
    for name, instance in made.items():
        backends.register("separator", name, lambda instance=instance: instance)
    backends.register("separator", "unit-broken", unavailable("no weights for unit-broken"))
    backends.register("separator", "unit-broken2", unavailable("no weights for unit-broken2"))
    backends.register("sed", "unit-sed", ConstantSed)
    backends.register("sed", "unit-nosed", unavailable("no detector here"))
    backends.register("sed", "unit-psed", ProgressSed)
    backends.register("text_encoder", "unit-encoder", FlatEncoder)
    monkeypatch.setattr("eventsep.query._matrix_cache", {})
    yield made
    for name in [*made, "unit-broken", "unit-broken2"]:
        backends.unregister("separator", name)
    for name in ("unit-sed", "unit-nosed", "unit-psed"):
        backends.unregister("sed", name)
    backends.unregister("text_encoder", "unit-encoder")


@pytest.fixture
def runner(tmp_path):
    return pipeline.LocalRunner(ResultStore(tmp_path / "results"), OwnedFileLockManager(tmp_path / "locks"))


def options(**fields) -> RunOptions:
    base = {"encoder": "unit-encoder", "sed": "unit-sed", "separators": ("unit-a",),
            "query": {"top_k": 1}, "mask": {"mode": "hard", "smoothing": "none", "min_event_seconds": 0.0}}
    for name, value in fields.items():
        base[name] = {**base[name], **value} if isinstance(value, dict) and isinstance(base.get(name), dict) else value
    return RunOptions.model_validate(base)


# ---------------------------------------------------------------- choosing by the query

def test_selected_classes_follow_the_named_classes_or_the_best_within_the_margin():
    found = mapping(((DOG, 1.0), (by_name("Cat"), 0.75), (by_name("Bark"), 0.5)))
    names = lambda params: [c["name"] for c in pipeline.selected_classes(found, params)]  # noqa: E731
    assert names(MaskParams(class_margin=0.25)) == ["Dog", "Cat"]  # 0.75 is exactly 1.0 - 0.25
    assert names(MaskParams(class_margin=0.0)) == ["Dog"]
    assert names(MaskParams(class_margin=0.5)) == ["Dog", "Cat", "Bark"]
    assert pipeline.selected_classes(found, MaskParams(classes=("Cat", "Speech"))) == [
        {"index": by_name("Cat").index, "name": "Cat"}, {"index": SPEECH.index, "name": "Speech"}]
    assert pipeline.selected_classes(mapping(()), MaskParams()) == []


def test_the_query_family_is_that_of_the_first_followed_class():
    assert SPEECH.index in speech_indices()
    assert pipeline.query_family(mapping(((SPEECH, 1.0), (DOG, 0.99))), MaskParams()) == "speech"
    assert pipeline.query_family(mapping(((DOG, 1.0), (SPEECH, 0.99))), MaskParams()) == "other"
    assert pipeline.query_family(mapping(()), MaskParams()) == "other"
    assert pipeline.query_family(mapping(((DOG, 1.0),)), MaskParams(classes=("Speech",))) == "speech"


@pytest.fixture
def families(monkeypatch, units):
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "speech", lambda: ("unit-p",))
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "other", lambda: ("unit-a", "unit-b"))


def test_resolve_fills_auto_by_family_and_keeps_explicit_choices(families):
    auto = RunOptions()
    speech, passed = pipeline.resolve(auto, mapping(((SPEECH, 1.0),)))
    assert (speech.sed, speech.separators, passed) == ("silero", ("unit-p",), {})
    assert speech.mask == MaskParams(mode="soft", floor=1.0)
    other, passed = pipeline.resolve(auto, mapping())
    assert (other.sed, other.separators, passed) == ("yamnet", ("unit-a", "unit-b"), {})
    assert other.mask == MaskParams(mode="soft", floor=0.0, mask_at="none")
    assert auto.sed == "auto" and auto.separators == ("auto",)  # a copy: the options are unchanged
    chosen = RunOptions(sed="unit-sed", separators=("unit-c",), mask=MaskParams(mode="hard", threshold=0.3))
    kept, passed = pipeline.resolve(chosen, mapping(((SPEECH, 1.0),)))
    assert kept == chosen and passed == {}
    # the rest of an auto mask's fields are kept
    tuned, _ = pipeline.resolve(RunOptions(mask=MaskParams(threshold=0.3, floor=0.5)), mapping())
    assert tuned.mask == MaskParams(mode="soft", threshold=0.3, floor=0.0, mask_at="none")


def test_resolve_falls_back_to_the_other_familys_separators(monkeypatch, families):
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "speech", lambda: ("unit-broken", "unit-c"))
    resolved, passed = pipeline.resolve(RunOptions(), mapping(((SPEECH, 1.0),)))
    assert resolved.separators == ("unit-a", "unit-b") and resolved.sed == "silero"
    assert passed == {"unit-broken": "no weights for unit-broken"}
    # only the first separator is tried: a usable first one keeps the family's pair
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "speech", lambda: ("unit-c", "unit-broken"))
    assert pipeline.resolve(RunOptions(), mapping(((SPEECH, 1.0),))) == (
        RunOptions(sed="silero", separators=("unit-c", "unit-broken"), mask=MaskParams(mode="soft", floor=1.0)), {})
    # "other" has nowhere to fall back to: its choice stays, and what was passed over is said
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "other", lambda: ("unit-broken2",))
    resolved, passed = pipeline.resolve(RunOptions(), mapping())
    assert resolved.separators == ("unit-broken2",) and passed == {"unit-broken2": "no weights for unit-broken2"}


def test_the_families_defaults():
    assert pipeline.SEPARATORS_BY_FAMILY["speech"]() == ("dfn3",)
    assert pipeline.SED_BY_FAMILY == {"speech": "silero", "other": "yamnet"}


# ---------------------------------------------------------------- stages and their keys

def test_with_progress_passes_progress_only_where_it_is_taken():
    heard = []
    takes = lambda x, progress=None: (x, progress)  # noqa: E731
    assert pipeline._with_progress(takes, 1, progress=heard.append) == (1, heard.append)
    assert pipeline._with_progress(takes, 1, progress=None) == (1, None)
    assert pipeline._with_progress(lambda x, y: (x, y), 1, 2, progress=heard.append) == (1, 2)


def test_map_query_stage_and_key(units):
    params = QueryParams(top_k=1)
    expected = stage_key("map_query", 2, params, inputs={"query": "dog"}, weights={"unit-encoder": "unit-encoder-v1"})
    assert pipeline.map_query_key("  dog ", "unit-encoder", params) == expected
    result = pipeline.map_query(" dog", "unit-encoder", params)
    assert (result.stage, result.key) == ("map_query", expected)
    assert result.meta["query"] == " dog"
    assert [c["name"] for c in result.meta["classes"]] == ["Dog"] and result.meta["classes"][0]["score"] == 1.0
    assert result.meta["remove"] is False and result.meta["target_text"] == "dog" and result.meta["exclude"] == []


def test_sed_stage_and_key(units):
    audio = recording()
    params = SedParams(chunk_seconds=30)
    expected = stage_key("sed", 2, params, inputs={"recording": audio.key}, weights={"unit-sed": "unit-sed-v1"})
    assert pipeline.sed_key(audio, "unit-sed", params) == expected
    result = pipeline.sed(audio, "unit-sed", params, progress=lambda f: None)
    assert (result.stage, result.key) == ("sed", expected)
    assert result["probs"].dtype == np.float32 and result["probs"].shape[0] == 11
    assert result.meta == {"frame_rate": 10.0, "model": "unit-sed-model"}
    assert type(result.meta["frame_rate"]) is float
    heard = []
    pipeline.sed(audio, "unit-psed", params, progress=heard.append)
    assert heard == [1.0]


def sed_result(frames: int = 11, on: int = 5) -> StageResult:
    from eventsep.ontology import NUM_CLASSES

    probs = np.zeros((frames, NUM_CLASSES), dtype=np.float32)
    probs[:on] = 0.9
    return StageResult("sed", "sed-key", arrays={"probs": probs}, meta={"frame_rate": 10.0, "model": "m"})


def test_the_mask_stage_needs_a_class_unless_it_is_off_or_replaced_by_spans():
    audio = recording()
    with pytest.raises(ValueError) as error:
        pipeline.mask(sed_result(), mapping(()), MaskParams(mode="hard"), audio)
    assert str(error.value) == "the query matched no sound class to follow; give --classes or --mask off"
    off = pipeline.mask(sed_result(), mapping(()), MaskParams(mode="off"), audio)
    np.testing.assert_array_equal(off["gain"], np.ones(RATE, dtype=np.float32))
    spans = pipeline.mask(sed_result(), mapping(()), MaskParams(mode="hard", spans=((0.0, 0.5),), spans_mode="replace"),
                          audio)
    assert spans["gain"][:100].min() == 1.0 and spans["gain"][-100:].max() == 0.0


def test_the_mask_stage_output_and_key():
    audio, found = recording(), mapping(((DOG, 1.0),))
    params = MaskParams(mode="hard", smoothing="none", min_event_seconds=0.0, fade_ms=5.0)
    result = pipeline.mask(sed_result(), found, params, audio)
    expected = stage_key("mask", 2, params, inputs={"sed": "sed-key", "map_query": "map-key", "recording": audio.key})
    assert (result.stage, result.key) == ("mask", expected)
    assert pipeline.mask_key(sed_result(), found, params, audio) == expected
    gain = result["gain"]
    assert gain.dtype == np.float32 and gain.shape == (RATE,)
    # frames 0-4 on: one event of Dog from 0 to 0.45 s (frame centres), faded out over 5 ms around sample 3600
    assert gain[:3500].min() == 1.0 and gain[3700:].max() == 0.0
    assert result.meta["sample_rate"] == RATE and result.meta["classes"] == found.meta["classes"]
    assert [(e["label"], e["onset"], e["offset"]) for e in result.meta["events"]] == [("Dog", 0.0, 0.45)]
    assert result.meta["note"] is None and result["frame_gain"].shape == (11,)


def test_masked_input_is_the_mixture_times_the_gain_under_a_key_of_its_own():
    audio = recording(source="in.wav")
    gain = np.linspace(0, 1, RATE).astype(np.float32)
    mask_result = StageResult("mask", "mask-key", arrays={"gain": gain})
    gated = pipeline.masked_input(audio, mask_result)
    np.testing.assert_allclose(gated.samples, audio.samples * gain, rtol=1e-6)
    assert gated.samples.dtype == np.float32 and gated.sample_rate == RATE and gated.source == "in.wav"
    assert gated.key == stage_key("masked_input", 1, None, inputs={"recording": audio.key, "mask": "mask-key"})


def test_separate_key_holds_only_the_backends_fields_and_drops_the_default_text(units):
    audio, found = recording(), mapping()

    def key(**params):
        return pipeline.separate_key(audio, found, "unit-a", SeparatorParams(**params))

    inputs = {"recording": audio.key, "map_query": "map-key", "separator": "unit-a"}
    weights = {"unit-a": "weights-of-unit-a"}
    assert key() == stage_key("separate", 3, {"chunk_seconds": 10.0}, inputs=inputs, weights=weights)
    assert key(steps=5, seed=3) == key()  # not unit-a's fields
    assert key(text="words") == stage_key("separate", 3, {"chunk_seconds": 10.0, "text": "words"}, inputs=inputs,
                                          weights=weights)
    assert key(chunk_seconds=5.0) != key()


@pytest.mark.parametrize("how, expected", [
    ("auto", "dog and a person speaking"),
    ("words", "doggo and the talking"),
    ("class", "Dog and Speech"),
    ("class+words", "Dog, doggo and Speech, the talking"),
])
def test_target_text_each_way(how, expected):
    found = mapping(((DOG, 1.0), (SPEECH, 0.5)), query="doggo and the talking", target_text="doggo and the talking")
    if how == "auto":
        found.meta["target_text"] = "dog and the talking"
        expected = "dog and a person speaking"
    assert pipeline.target_text(found, how) == expected


def test_target_text_edge_cases():
    # the query itself where no target text was kept; a name equal to the words is said once
    assert pipeline.target_text(mapping(((DOG, 1.0),), query="dog"), "class+words") == "Dog"
    assert pipeline.target_text(mapping(((SPEECH, 1.0),), query="speech"), "auto") == "a person speaking"
    assert pipeline.target_text(mapping(((SPEECH, 1.0),), query="the talking", target_text=""), "auto") == (
        "a person speaking")
    # fewer classes than phrases: the words as they are
    assert pipeline.target_text(mapping(((SPEECH, 1.0),), target_text="talk and dog"), "class") == "talk and dog"
    no_classes = StageResult("map_query", "k", meta={"query": "speech"})
    assert pipeline.target_text(no_classes) == "speech"
    assert pipeline._asked_for("dog", "Dog", "auto") == "dog"
    assert pipeline._asked_for("speech", "Speech", "words") == "a person speaking"  # only target_text skips it
    assert pipeline.target_text(mapping(((SPEECH, 1.0),), query="speech")) == "a person speaking"  # default "auto"


def test_separate_asks_for_the_target_text_at_the_backends_rate(units):
    audio = recording()
    result = pipeline.separate(audio, mapping(target_text="doggo"), "unit-b", SeparatorParams(text="class"))
    halver = units["unit-b"]
    assert halver.asked == ["Dog"] and len(halver.inputs[0]) == RATE // 2  # resampled to 4 kHz
    assert halver.params == [SeparatorParams(text="class")]
    np.testing.assert_allclose(result["audio"], 0.25 * halver.inputs[0], rtol=1e-6)
    assert result["audio"].dtype == np.float32 and result.stage == "separate"
    assert result.meta == {"sample_rate": 4000, "separator": "unit-b"}
    assert result.key == pipeline.separate_key(audio, mapping(), "unit-b", SeparatorParams(text="class"))
    heard = []
    pipeline.separate(audio, mapping(), "unit-p", SeparatorParams(), progress=heard.append)
    assert heard == [0.5, 1.0] and units["unit-p"].asked == ["dog"]


def estimate(name: str, audio: np.ndarray, rate: int = RATE, key: str | None = None) -> StageResult:
    return StageResult("separate", key or f"sep-{name}", arrays={"audio": audio.astype(np.float32)},
                       meta={"sample_rate": rate, "separator": name})


def test_fuse_key_and_one_estimate_fused_alone():
    audio = recording()
    first = estimate("a", 0.5 * audio.samples)
    params = FusionParams(mode="rate", alpha=0.5)
    key = pipeline.fuse_key(first, None, params, audio)
    assert key == stage_key("fuse", 2, params, inputs={"first": "sep-a", "second": "", "rate": str(RATE),
                                                       "length": str(RATE)})
    result = pipeline.fuse(first, None, params, audio)
    assert (result.stage, result.key) == ("fuse", key)
    np.testing.assert_allclose(result["audio"], 0.5 * audio.samples, atol=1e-6)
    assert result["audio"].dtype == np.float32 and result.meta == {"sample_rate": RATE, "separators": ["a"]}


def test_fuse_gives_the_recordings_length():
    audio = recording()
    short = estimate("a", 0.5 * audio.samples[:7000])
    fused = pipeline.fuse(short, None, FusionParams(), audio)["audio"]
    assert fused.shape == (RATE,) and not fused[7000:].any()
    np.testing.assert_allclose(fused[:7000], 0.5 * audio.samples[:7000], atol=1e-7)


def test_fuse_of_two_estimates():
    audio = recording()
    first, second = estimate("a", 0.5 * audio.samples), estimate("b", 0.5 * audio.samples, key="sep-b")
    params = FusionParams(mode="rate", alpha=0.5, rms_match=False, max_lag_ms=0.0)
    result = pipeline.fuse(first, second, params, audio)
    assert pipeline.fuse_key(first, second, params, audio) == stage_key(
        "fuse", 2, params, inputs={"first": "sep-a", "second": "sep-b", "rate": str(RATE), "length": str(RATE)})
    assert result.meta["separators"] == ["a", "b"] and result["audio"].shape == (RATE,)
    np.testing.assert_allclose(result["audio"], 0.5 * audio.samples, atol=1e-4)
    # rate fusion of two in-phase estimates: the mean magnitude, (0.5 + 0.25) / 2 = 0.375 of the input
    quieter = estimate("b", 0.25 * audio.samples, key="sep-b3")
    np.testing.assert_allclose(pipeline.fuse(first, quieter, params, audio)["audio"], 0.375 * audio.samples, atol=1e-6)
    # the second estimate's rate is read from its own metadata
    short = estimate("b", 0.5 * audio.samples[::2], rate=RATE // 2, key="sep-b2")
    assert pipeline.fuse(first, short, params, audio)["audio"].shape == (RATE,)


# ---------------------------------------------------------------- the local runner

class FakeStore:
    def __init__(self, loads):
        self.loads, self.saved, self.asked = list(loads), [], []

    def load(self, key):
        self.asked.append(key)
        return self.loads.pop(0) if self.loads else None

    def save(self, result):
        self.saved.append(result)


class FakeLocks:
    def __init__(self):
        self.events = []

    def acquire_lock(self, key, holder):
        self.events.append(("acquire", key, holder))

    def release_lock(self, key, holder):
        self.events.append(("release", key, holder))


@pytest.fixture
def fake_stage(monkeypatch):
    computed = []

    def compute(x):
        computed.append(x)
        if x == "boom":
            raise RuntimeError("boom")
        return StageResult("fake", f"key-{x}", meta={"x": x})

    monkeypatch.setitem(pipeline.STAGES, "fake", pipeline.Stage("fake", compute, lambda x: f"key-{x}"))
    return computed


def test_local_runner_computes_under_the_lock_and_saves(fake_stage):
    store, locks = FakeStore([]), FakeLocks()
    runner = pipeline.LocalRunner(store, locks)
    result = runner.run("fake", x=1)
    holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    assert result.meta == {"x": 1} and store.saved == [result] and fake_stage == [1]
    assert locks.events == [("acquire", "key-1", holder), ("release", "key-1", holder)]
    assert store.asked == ["key-1", "key-1"] and runner.computed == ["fake"]
    assert pipeline.LocalRunner.releases_results is True


def test_local_runner_reads_a_stored_result_without_the_lock(fake_stage):
    stored = StageResult("fake", "key-2")
    store, locks = FakeStore([stored]), FakeLocks()
    runner = pipeline.LocalRunner(store, locks)
    assert runner.run("fake", x=2) is stored
    assert locks.events == [] and fake_stage == [] and runner.computed == [] and store.saved == []


def test_local_runner_reads_what_another_process_stored_while_it_waited(fake_stage):
    stored = StageResult("fake", "key-3")
    store, locks = FakeStore([None, stored]), FakeLocks()
    runner = pipeline.LocalRunner(store, locks)
    assert runner.run("fake", x=3) is stored
    assert [e[0] for e in locks.events] == ["acquire", "release"]
    assert fake_stage == [] and runner.computed == [] and store.saved == []


def test_local_runner_releases_the_lock_when_a_stage_fails(fake_stage):
    store, locks = FakeStore([]), FakeLocks()
    runner = pipeline.LocalRunner(store, locks)
    with pytest.raises(RuntimeError, match="boom"):
        runner.run("fake", x="boom")
    assert [e[0] for e in locks.events] == ["acquire", "release"] and runner.computed == [] and store.saved == []


def test_local_runner_with_a_real_store_computes_once(fake_stage, runner):
    first = runner.run("fake", x=4)
    again = runner.run("fake", x=4)
    assert first.meta == again.meta == {"x": 4} and fake_stage == [4] and runner.computed == ["fake"]
    both = runner.run_parallel([("fake", {"x": 5}), ("fake", {"x": 4})])
    assert [r.meta["x"] for r in both] == [5, 4] and runner.computed == ["fake", "fake"]


# ---------------------------------------------------------------- finish and notes

def finish_inputs(audio: Audio, estimate_audio, separators=("unit-a",), gain=None, note=None, events=True,
                  classes=((DOG, 1.0),)):
    gain = np.linspace(0.0, 1.0, len(audio.samples)).astype(np.float32) if gain is None else gain
    fused = StageResult("fuse", "fuse-key", arrays={"audio": np.asarray(estimate_audio, dtype=np.float32)},
                        meta={"sample_rate": audio.sample_rate, "separators": list(separators)})
    mask_result = StageResult("mask", "mask-key", arrays={"gain": gain},
                              meta={"classes": [{"index": c.index, "name": c.name} for c, _ in classes],
                                    "events": [{"label": "Dog", "onset": 0.0, "offset": 1.0}] if events else [],
                                    "note": note})
    return fused, mask_result, gain


def finish_options(mask_at="output", fallback="gated", **mask) -> RunOptions:
    return RunOptions(mask=MaskParams(mode="soft", mask_at=mask_at, **mask), fallback=fallback)


def test_finish_keeps_the_masked_estimate_and_its_residual():
    audio = recording()
    fused, mask_result, gain = finish_inputs(audio, 0.5 * audio.samples)
    found = mapping()
    result = pipeline.finish(audio, fused, mask_result, found, finish_options())
    np.testing.assert_allclose(result.target, 0.5 * audio.samples * gain, atol=1e-7)
    np.testing.assert_allclose(result.residual, audio.samples - 0.5 * audio.samples * gain, atol=1e-7)
    assert result.target.dtype == np.float32 and result.residual.dtype == np.float32
    assert result.sample_rate == RATE and result.mapping is found.meta and result.gain is gain
    assert result.events == [{"label": "Dog", "onset": 0.0, "offset": 1.0}]
    assert result.keys == {"recording": audio.key, "map_query": "map-key", "mask": "mask-key", "fuse": "fuse-key"}
    assert result.separators == ["unit-a"] and result.metrics is None
    assert result.options == finish_options().model_dump(mode="json")
    assert result.extra == {"answer": SEPARATOR}
    assert "audio" in fused.arrays  # not consumed


def test_finish_for_a_removal_answers_the_residual():
    audio = recording()
    fused, mask_result, gain = finish_inputs(audio, 0.5 * audio.samples)
    result = pipeline.finish(audio, fused, mask_result, mapping(remove=True), finish_options())
    np.testing.assert_allclose(result.target, audio.samples - 0.5 * audio.samples * gain, atol=1e-7)
    np.testing.assert_allclose(result.residual, 0.5 * audio.samples * gain, atol=1e-7)


@pytest.mark.parametrize("mask_at", ["none", "input"])
def test_finish_leaves_the_estimate_unmasked_where_the_gain_is_not_applied_at_the_output(mask_at):
    audio = recording()
    fused, mask_result, _ = finish_inputs(audio, 0.5 * audio.samples)
    result = pipeline.finish(audio, fused, mask_result, mapping(), finish_options(mask_at))
    np.testing.assert_allclose(result.target, 0.5 * audio.samples, atol=1e-7)
    np.testing.assert_allclose(result.residual, 0.5 * audio.samples, atol=1e-7)


def test_finish_consumes_the_fused_audio_when_asked():
    audio = recording()
    fused, mask_result, gain = finish_inputs(audio, 0.5 * audio.samples)
    result = pipeline.finish(audio, fused, mask_result, mapping(), finish_options(), consume=True)
    assert "audio" not in fused.arrays
    np.testing.assert_allclose(result.target, 0.5 * audio.samples * gain, atol=1e-7)


def test_finish_scores_against_a_reference():
    from eventsep.metrics import evaluate

    audio = recording()
    fused, mask_result, gain = finish_inputs(audio, 0.5 * audio.samples)
    reference = (0.5 * audio.samples).astype(np.float32)
    result = pipeline.finish(audio, fused, mask_result, mapping(), finish_options(mask_at="none"), reference)
    assert result.metrics == evaluate(0.5 * audio.samples, reference, audio.samples)
    assert result.metrics["si_sdr"] > 60  # the target is the reference


def test_finish_answers_the_gated_mixture_for_a_silent_separator():
    audio = recording()
    fused, mask_result, gain = finish_inputs(audio, np.zeros(RATE))
    result = pipeline.finish(audio, fused, mask_result, mapping(), finish_options())
    np.testing.assert_allclose(result.target, audio.samples * gain, atol=1e-7)  # floor 0: the gate is the gain
    assert result.extra["answer"] == GATED
    assert result.extra["untrusted"].startswith("the separator's answer for 'Dog' is ")
    assert result.extra["warnings"][-1].endswith(": answering with the mixture gated by the detector instead")
    off = pipeline.finish(audio, *finish_inputs(audio, np.zeros(RATE))[:2], mapping(), finish_options(fallback="off"))
    np.testing.assert_array_equal(off.target, np.zeros(RATE, dtype=np.float32))
    assert off.extra["answer"] == SEPARATOR and "untrusted" in off.extra
    assert off.extra["warnings"][-1].endswith(": answering with the separator's output anyway (fallback off)")


def test_finish_distrusts_an_answer_40_db_below_the_mixture():
    audio = recording()
    fused, mask_result, gain = finish_inputs(audio, 0.01 * audio.samples, events=False)  # 10·log10(0.01²) = -40 dB
    result = pipeline.finish(audio, fused, mask_result, mapping(), finish_options())
    assert result.extra["untrusted"] == ("the separator's answer for 'Dog' is 40 dB below the mixture while the query "
                                         "asks for it")
    assert result.extra["answer"] == GATED
    np.testing.assert_allclose(result.target, audio.samples * gain, atol=1e-7)


def test_finish_of_a_silent_removal():
    audio = recording()
    # the detector finds the sound and the separator answers silence: untrusted, but a removal is not answered by
    # the gate (fallback "gated"): the answer stays the separator's, the whole mixture
    fused, mask_result, _ = finish_inputs(audio, np.zeros(RATE))
    result = pipeline.finish(audio, fused, mask_result, mapping(remove=True), finish_options())
    assert result.extra["answer"] == SEPARATOR
    assert result.extra["untrusted"].endswith(" dB below the mixture while the detector finds it")
    assert result.extra["warnings"][-1].endswith("answering with the separator's output anyway (a removal is not "
                                                 "answered by the detector's gate, which would silence the rest of "
                                                 "the mix wherever the sound is detected)")
    np.testing.assert_array_equal(result.target, audio.samples)
    # nothing detected: a quiet removal can be right
    fused, mask_result, _ = finish_inputs(audio, np.zeros(RATE), events=False)
    result = pipeline.finish(audio, fused, mask_result, mapping(remove=True), finish_options())
    assert "untrusted" not in result.extra and result.extra["answer"] == SEPARATOR


def test_finish_announces_a_class_outside_the_separators_card_and_keeps_its_answer(monkeypatch):
    monkeypatch.setattr("eventsep.trust.card_classes", lambda separator: {"Cat"})
    audio = recording()
    fused, mask_result, gain = finish_inputs(audio, 0.5 * audio.samples)
    result = pipeline.finish(audio, fused, mask_result, mapping(), finish_options())
    assert result.extra["untrusted"] == ("'Dog' is outside the classes the separator was trained on "
                                         "(model card of unit-a)")
    assert result.extra["answer"] == SEPARATOR and result.extra["warnings"][-1] == (
        result.extra["untrusted"] + ": answering with the separator's output, which may miss or mistake the sound")
    np.testing.assert_allclose(result.target, 0.5 * audio.samples * gain, atol=1e-7)


def test_finish_of_the_detector_only_baseline_is_the_gated_mixture():
    audio = recording()
    fused, mask_result, gain = finish_inputs(audio, audio.samples, separators=())
    result = pipeline.finish(audio, fused, mask_result, mapping(), finish_options())
    np.testing.assert_allclose(result.target, audio.samples * gain, atol=1e-7)
    assert result.extra["answer"] == GATED and "untrusted" not in result.extra and result.separators == []


def test_finish_gives_each_channel_back(monkeypatch):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # torch's pool does not survive mutmut's fork (docs/testing.md)
    try:
        audio = recording()
        stereo = Audio(audio.samples, RATE, channels=np.stack([audio.samples, audio.samples], axis=1))
        fused, mask_result, _ = finish_inputs(stereo, 0.5 * audio.samples)
        result = pipeline.finish(stereo, fused, mask_result, mapping(), finish_options(mask_at="none"))
    finally:
        torch.set_num_threads(threads)
    assert result.target.shape == (RATE, 2) and result.residual.shape == (RATE, 2)
    np.testing.assert_allclose(result.target[:, 1], 0.5 * audio.samples, atol=1e-4)
    np.testing.assert_allclose(result.target + result.residual, stereo.channels, atol=1e-6)
    assert result.extra["channels"] == ("2 channels: separated on their mean, the answer's time-frequency ratio "
                                        "to it applied to each channel")


NONE_NOTE = ("events found; their gain is not applied to the answer (no mask earned its place on the development "
             "sets: docs/mask.md)")


def test_notes():
    audio = recording(source="in.wav")
    fused, mask_result, _ = finish_inputs(audio, audio.samples, note="the detector never reached min_peak")
    notes = pipeline.notes(audio, fused, mask_result, mapping(), finish_options())
    assert notes == {"input": "in.wav", "answer": SEPARATOR, "mask_note": "the detector never reached min_peak"}
    notes = pipeline.notes(audio, fused, mask_result, mapping(), finish_options("none"), answer=GATED)
    assert notes["mask_note"] == "the detector never reached min_peak; " + NONE_NOTE and notes["answer"] == GATED
    fused, mask_result, _ = finish_inputs(recording(), audio.samples)
    assert pipeline.notes(recording(), fused, mask_result, mapping(), finish_options("none")) == {
        "answer": SEPARATOR, "mask_note": NONE_NOTE}


def test_notes_warnings():
    audio = recording()  # 8 kHz: the default band split (4000 Hz) is not below Nyquist
    weak = mapping(((DOG, 0.5),), query="a zorblax")
    two, mask_result, _ = finish_inputs(audio, audio.samples, separators=("a", "b"))
    notes = pipeline.notes(audio, two, mask_result, weak, RunOptions())
    assert notes["warnings"] == [
        "no sound class fits the query well: the best, 'Dog', scores 0.50 (a weak match is below 0.7); describe the "
        "sound differently or name classes with --classes",
        "split_hz 4000 Hz is not below the Nyquist frequency of this 8000 Hz recording (4000 Hz): `band` fusion uses "
        "the first separator's (AudioSep's) estimate alone"]
    one, mask_result, _ = finish_inputs(audio, audio.samples, separators=("a",))
    assert "warnings" not in pipeline.notes(audio, one, mask_result, mapping(), RunOptions())
    untrusted = pipeline.notes(audio, one, mask_result, mapping(), RunOptions(), untrusted="too quiet",
                               answer=SEPARATOR, replaceable=False)
    assert untrusted["untrusted"] == "too quiet" and untrusted["warnings"] == [
        "too quiet: answering with the separator's output, which may miss or mistake the sound"]
    replaced = pipeline.notes(audio, one, mask_result, mapping(), RunOptions(), untrusted="too quiet", answer=GATED)
    assert replaced["warnings"] == ["too quiet: answering with the mixture gated by the detector instead"]


def test_stage_progress():
    heard = []
    assert pipeline._stage_progress(None, "sed") is None
    callback = pipeline._stage_progress(lambda stage, fraction: heard.append((stage, fraction)), "sed")
    assert heard == [("sed", None)]
    callback(0.25)
    assert heard == [("sed", None), ("sed", 0.25)]


def test_no_separator_available_says_why():
    error = pipeline.NoSeparatorAvailable({"a": "no weights", "b": "not installed"}, [{"x": 1}])
    assert str(error) == "no separator is available (a: no weights; b: not installed)"
    assert error.reasons == {"a": "no weights", "b": "not installed"} and error.events == [{"x": 1}]
    assert str(pipeline.NoSeparatorAvailable({}, [], also="the detector is missing")) == (
        "no separator is available (none registered); and the detector is missing")


# ---------------------------------------------------------------- run

class RecordingRunner(pipeline.LocalRunner):
    """A local runner that notes each stage's input names and keeps what it returned."""

    def __init__(self, store, locks, releases=True):
        super().__init__(store, locks)
        self.releases_results = releases
        self.calls, self.returned = [], []

    def run(self, stage, **inputs):
        self.calls.append((stage, sorted(inputs)))
        result = super().run(stage, **inputs)
        self.returned.append(result)
        return result


@pytest.fixture
def recorder(tmp_path):
    return RecordingRunner(ResultStore(tmp_path / "results"), OwnedFileLockManager(tmp_path / "locks"))


def test_run_wires_the_stages(units, recorder):
    audio = recording()
    heard = []
    result = pipeline.run(audio, "dog", options(separators=("unit-broken", "unit-a", "unit-p", "unit-c")), recorder,
                          progress=lambda stage, fraction: heard.append((stage, fraction)))
    assert heard == [("map_query", None), ("sed", None), ("mask", None), ("separate (unit-a)", None),
                     ("separate (unit-p)", None), ("separate (unit-p)", 0.5), ("separate (unit-p)", 1.0),
                     ("fuse", None)]
    stages = [stage for stage, _ in recorder.calls]
    assert stages == ["map_query", "sed", "mask", "separate", "separate", "fuse"]  # at most two separators
    assert recorder.calls[1] == ("sed", ["model", "params", "progress", "recording"])
    assert recorder.calls[3] == ("separate", ["mapping", "params", "progress", "recording", "separator"])
    assert recorder.calls[4] == ("separate", ["mapping", "params", "progress", "recording", "separator"])
    mapped, sed_out, mask_out, first, second, fused = recorder.returned
    assert result.keys == {"recording": audio.key, "map_query": mapped.key, "mask": mask_out.key, "fuse": fused.key,
                           "sed": sed_out.key, "separate:unit-a": first.key, "separate:unit-p": second.key}
    assert result.separators == ["unit-a", "unit-p"] and fused.meta["separators"] == ["unit-a", "unit-p"]
    assert result.extra["unavailable_separators"] == {"unit-broken": "no weights for unit-broken"}
    assert result.track["classes"] == ["Dog"] and result.track["frame_rate"] == 10.0
    np.testing.assert_allclose(result.track["probs"], sed_out["probs"][:, DOG.index])
    assert units["unit-a"].asked == ["dog"] and units["unit-c"].asked == []
    assert "audio" not in fused.arrays  # consumed: the runner releases its results
    np.testing.assert_allclose(result.target + result.residual, audio.samples, atol=1e-6)


def test_run_without_progress_and_one_separator(units, recorder):
    audio = recording()
    result = pipeline.run(audio, "dog", options(), RecordingRunner(recorder.store, recorder.locks, releases=False))
    assert result.separators == ["unit-a"]
    again = RecordingRunner(recorder.store, recorder.locks, releases=False)
    pipeline.run(audio, "dog", options(), again)
    assert again.calls[1] == ("sed", ["model", "params", "recording"])
    assert again.calls[3] == ("separate", ["mapping", "params", "recording", "separator"])
    assert again.calls[4] == ("fuse", ["first", "params", "recording", "second"])
    fused = again.returned[-1]
    assert "audio" in fused.arrays  # a runner that keeps its results: not consumed
    assert "unavailable_separators" in result.extra and result.extra["unavailable_separators"] == {}


def test_run_scores_against_a_reference(units, recorder):
    from eventsep.metrics import evaluate

    audio = recording()
    reference = 0.5 * audio.samples
    result = pipeline.run(audio, "dog", options(mask={"mask_at": "none"}), recorder, reference=reference)
    assert result.metrics == evaluate(result.target, reference, audio.samples) and result.metrics["si_sdr"] > 60


class MinimalRunner:
    """Only what the Runner protocol asks for: no `releases_results`."""

    def __init__(self, inner):
        self.inner, self.returned = inner, []

    def run(self, stage, **inputs):
        self.returned.append(self.inner.run(stage, **inputs))
        return self.returned[-1]

    def run_parallel(self, calls):
        return [self.run(stage, **inputs) for stage, inputs in calls]


def test_run_keeps_the_results_of_a_runner_that_does_not_say_it_releases_them(units, runner):
    minimal = MinimalRunner(runner)
    result = pipeline.run(recording(), "dog", options(), minimal)
    assert "audio" in minimal.returned[-1].arrays and result.separators == ["unit-a"]


def test_run_fuses_a_single_estimate_alone(units, recorder, monkeypatch):
    seconds = []
    original = pipeline.fuse
    monkeypatch.setitem(pipeline.STAGES, "fuse", pipeline.Stage(
        "fuse", lambda first, second, params, recording: seconds.append(second) or original(first, second, params,
                                                                                            recording),
        pipeline.fuse_key))
    pipeline.run(recording(), "dog", options(), recorder)
    assert seconds == [None]


def test_run_gates_the_separators_input_when_the_mask_is_at_the_input(units, recorder):
    audio = recording()
    result = pipeline.run(audio, "dog", options(mask={"mask_at": "input"}), recorder)
    gain = result.gain
    assert gain[:100].max() == 1.0 and gain[-100:].max() == 0.0
    np.testing.assert_allclose(units["unit-a"].inputs[0], audio.samples * gain, atol=1e-7)
    np.testing.assert_allclose(result.target, 0.5 * audio.samples * gain, atol=1e-6)  # not masked twice (same gain)


def test_run_at_the_output_masks_the_answer(units, recorder):
    audio = recording()
    result = pipeline.run(audio, "dog", options(), recorder)
    np.testing.assert_allclose(units["unit-a"].inputs[0], audio.samples, atol=0)
    np.testing.assert_allclose(result.target, 0.5 * audio.samples * result.gain, atol=1e-6)


def test_run_without_a_usable_separator(units, recorder):
    with pytest.raises(pipeline.NoSeparatorAvailable) as error:
        pipeline.run(recording(), "dog", options(separators=("unit-broken",)), recorder)
    assert str(error.value) == "no separator is available (unit-broken: no weights for unit-broken)"
    assert error.value.events and error.value.events[0]["label"] == "Dog"
    with pytest.raises(pipeline.NoSeparatorAvailable) as error:
        pipeline.run(recording(), "dog", options(sed="unit-nosed", separators=("unit-broken",)), recorder)
    assert str(error.value) == ("no separator is available (unit-broken: no weights for unit-broken); "
                                "and no detector here")
    assert error.value.events == []
    with pytest.raises(backends.BackendUnavailable, match="^no detector here$"):
        pipeline.run(recording(), "dog", options(sed="unit-nosed"), recorder)


def test_run_checks_the_spans_first(units, recorder):
    with pytest.raises(ParamError, match="lies outside the recording"):
        pipeline.run(recording(), "dog", options(mask={"spans": ((2.0, 3.0),)}), recorder)
    assert recorder.calls == []


def test_detector_track_is_none_without_classes():
    assert pipeline.detector_track(sed_result(), StageResult("mask", "k", meta={"classes": []})) is None
    assert pipeline.detector_track(sed_result(), StageResult("mask", "k", meta={})) is None
    track = pipeline.detector_track(sed_result(), StageResult("mask", "k", meta={
        "classes": [{"index": DOG.index, "name": "Dog"}, {"index": 3, "name": "x"}]}))
    assert track["classes"] == ["Dog", "x"] and type(track["frame_rate"]) is float
    np.testing.assert_allclose(track["probs"], [0.9] * 5 + [0.0] * 6)


# ---------------------------------------------------------------- re-fusing from the cache

def test_grid_points_and_their_labels():
    assert pipeline.GridPoint().label() == "fused band · soft θ=0.5"
    hard = pipeline.GridPoint(mask_mode="hard", threshold=0.25, fusion_mode="rate")
    assert hard.label() == "fused rate · hard θ=0.25"
    assert pipeline.GridPoint(mask_mode="off", separator="audiosep").label() == "audiosep · mask off"
    assert pipeline.GridPoint(separator=pipeline.MIXTURE).label() == "mixture · soft θ=0.5"
    assert pipeline.GridPoint(mask_mode="oracle", threshold=0.25).label() == "fused band · oracle span"
    grid = pipeline.grid_product(["soft", "hard"], [0.25, 0.5], ["band", "rate"])
    assert [(p.mask_mode, p.threshold, p.fusion_mode) for p in grid] == [
        ("soft", 0.25, "band"), ("soft", 0.25, "rate"), ("soft", 0.5, "band"), ("soft", 0.5, "rate"),
        ("hard", 0.25, "band"), ("hard", 0.25, "rate"), ("hard", 0.5, "band"), ("hard", 0.5, "rate")]
    assert all(p.separator is None for p in grid)


def test_load_cached_reads_what_a_run_stored(units, runner):
    audio = recording()
    wanted = options(separators=("unit-a", "unit-broken", "unit-c", "unit-p"))
    with pytest.raises(pipeline.NotCached) as error:
        pipeline.load_cached(runner.store, audio, "dog", wanted)
    assert str(error.value) == (f"no cached map_query output for this recording and query in {runner.store.root}; "
                                "run `eventsep separate` on it first")
    pipeline.run(audio, "dog", options(separators=("unit-c", "unit-p")), runner)
    found, sed_out, estimates = pipeline.load_cached(runner.store, audio, "dog", wanted)
    assert found.meta["classes"][0]["name"] == "Dog" and sed_out.stage == "sed"
    assert [e.meta["separator"] for e in estimates] == ["unit-c", "unit-p"]  # unit-a not cached, unit-broken skipped
    pipeline.run(audio, "dog", options(), runner)  # unit-a now cached too: the first two are given
    assert [e.meta["separator"] for e in pipeline.load_cached(runner.store, audio, "dog", wanted)[2]] == [
        "unit-a", "unit-c"]
    with pytest.raises(pipeline.NotCached) as error:
        pipeline.load_cached(runner.store, audio, "dog", options(separators=("unit-b",)))
    assert str(error.value) == (f"no cached separator output for this recording and query in {runner.store.root}; "
                                "run `eventsep separate` on it first")
    with pytest.raises(pipeline.NotCached, match="^no cached sed output"):
        pipeline.load_cached(runner.store, audio, "dog", options(sed_params={"chunk_seconds": 30}))


def test_load_cached_resolves_auto_first(units, runner, monkeypatch):
    monkeypatch.setitem(pipeline.SEPARATORS_BY_FAMILY, "other", lambda: ("unit-a",))
    monkeypatch.setitem(pipeline.SED_BY_FAMILY, "other", "unit-sed")
    audio = recording()
    pipeline.run(audio, "dog", options(separators=("auto",), sed="auto"), runner)
    _, _, estimates = pipeline.load_cached(runner.store, audio, "dog", options(separators=("auto",), sed="auto"))
    assert [e.meta["separator"] for e in estimates] == ["unit-a"]


def test_refuse_grid(units, runner, monkeypatch):
    audio = recording()
    opts = options(separators=("unit-a", "unit-c"))
    pipeline.run(audio, "dog", opts, runner)
    found, sed_out, estimates = pipeline.load_cached(runner.store, audio, "dog", opts)
    with pytest.raises(ValueError) as error:
        pipeline.refuse_grid(audio, found, sed_out, estimates, [pipeline.GridPoint()],
                             options(mask={"mask_at": "input"}))
    assert str(error.value) == ("re-fusion needs mask_at 'output' or 'none': a mask on the input changes the "
                                "separators' input")
    masks, fusions = [], []
    original_mask, original_fuse = pipeline.mask, pipeline.fuse
    monkeypatch.setattr(pipeline, "mask", lambda *a: masks.append(a[2]) or original_mask(*a))
    monkeypatch.setattr(pipeline, "fuse", lambda *a: fusions.append(a) or original_fuse(*a))
    grid = [pipeline.GridPoint(mask_mode="hard", threshold=0.5, fusion_mode="rate"),
            pipeline.GridPoint(mask_mode="hard", threshold=0.5, fusion_mode="rate"),
            pipeline.GridPoint(mask_mode="off", fusion_mode="rate"),
            pipeline.GridPoint(mask_mode="hard", threshold=0.5, separator="unit-c"),
            pipeline.GridPoint(mask_mode="hard", threshold=0.5, separator=pipeline.MIXTURE)]
    results = pipeline.refuse_grid(audio, found, sed_out, estimates, grid, opts)
    assert len(masks) == 2 and [m.mode for m in masks] == ["hard", "off"]  # shared masks made once
    assert masks[0].min_event_seconds == 0.0  # the run's other mask fields are kept
    assert len(fusions) == 2  # the fusion of both, once, and unit-c alone
    assert fusions[0][1] is not None and fusions[0][2].mode == "rate"
    assert fusions[1][0].meta["separator"] == "unit-c" and fusions[1][1] is None and fusions[1][2] == FusionParams()
    assert [r.extra["grid_point"] for r in results] == [p.model_dump() for p in grid]
    gain = results[0].gain
    np.testing.assert_allclose(results[0].target, 0.5 * audio.samples * gain, atol=1e-6)  # both halve: fused, too
    np.testing.assert_allclose(results[2].target, 0.5 * audio.samples, atol=1e-6)  # mask off: gain 1
    np.testing.assert_allclose(results[4].target, audio.samples * gain, atol=1e-7)  # the mixture, gated
    assert results[4].extra["answer"] == GATED and results[4].separators == []
    assert results[3].separators == ["unit-c"] and results[0].separators == ["unit-a", "unit-c"]
    assert results[0].options["mask"]["mode"] == "hard" and results[2].options["mask"]["mode"] == "off"
    assert results[0].options["fusion"]["mode"] == "rate"
    assert results[0].track["classes"] == ["Dog"] and results[2].track["classes"] == ["Dog"]
    # fused points of two modes are two fusions; one separator's output is fused alone once, whatever the mode
    fusions.clear()
    modes = [pipeline.GridPoint(fusion_mode="rate"), pipeline.GridPoint(fusion_mode="band"),
             pipeline.GridPoint(fusion_mode="rate", separator="unit-c"),
             pipeline.GridPoint(fusion_mode="band", separator="unit-c")]
    pipeline.refuse_grid(audio, found, sed_out, estimates, modes, opts)
    assert [(f[0].meta["separator"], f[1] is not None, f[2].mode) for f in fusions] == [
        ("unit-a", True, "rate"), ("unit-a", True, "band"), ("unit-c", False, "band")]
    # one cached estimate: fused alone
    fusions.clear()
    single = pipeline.refuse_grid(audio, found, sed_out, estimates[:1], [pipeline.GridPoint(fusion_mode="rate")], opts)
    assert fusions[0][1] is None and single[0].separators == ["unit-a"]
    reference = 0.5 * audio.samples
    scored = pipeline.refuse_grid(audio, found, sed_out, estimates, grid[2:3], opts, reference)
    assert scored[0].metrics["si_sdr"] > 60


def test_a_grid_points_mask():
    opts = options(mask={"floor": 0.5, "threshold": 0.3, "fade_ms": 20.0})
    point = pipeline._point_mask(pipeline.GridPoint(mask_mode="soft", threshold=0.75), opts, None)
    assert point == opts.mask.model_copy(update={"mode": "soft", "threshold": 0.75})
    oracle = pipeline._point_mask(pipeline.GridPoint(mask_mode="oracle", threshold=0.75), opts, (0.25, 0.5))
    assert oracle == MaskParams.model_validate({**opts.mask.model_dump(), "mode": "hard", "spans": [(0.25, 0.5)],
                                                "spans_mode": "replace", "floor": 0.0})
    assert oracle.threshold == 0.3 and oracle.fade_ms == 20.0 and oracle.spans == ((0.25, 0.5),)
    with pytest.raises(ValueError) as error:
        pipeline._point_mask(pipeline.GridPoint(mask_mode="oracle"), opts, None)
    assert str(error.value) == "the oracle mask needs the wanted sound's onset and offset (an evaluation item's)"


def test_refuse_grid_gates_oracle_points_by_the_span(units, runner):
    audio = recording()
    opts = options(mask={"floor": 0.5, "fade_ms": 5.0})
    pipeline.run(audio, "dog", opts, runner)
    found, sed_out, estimates = pipeline.load_cached(runner.store, audio, "dog", opts)
    result, = pipeline.refuse_grid(audio, found, sed_out, estimates, [pipeline.GridPoint(mask_mode="oracle")], opts,
                                   span=(0.25, 0.5))
    gain = result.gain  # samples 2000 to 4000 open, floor 0 elsewhere (5 ms ramps: 40 samples)
    assert gain[2100:3900].min() == 1.0 and gain[:1900].max() == 0.0 and gain[4100:].max() == 0.0
    assert result.options["mask"]["mode"] == "hard" and result.options["mask"]["floor"] == 0.0


def test_grid_source(units):
    audio = recording()
    first = estimate("a", 0.5 * audio.samples)
    mixture = pipeline.grid_source(pipeline.MIXTURE, first, None, {"a": first}, FusionParams(), audio)
    assert mixture.stage == "fuse" and mixture.meta == {"separators": []}
    assert mixture["audio"] is audio.samples
    assert mixture.key == stage_key("fuse", 2, None, inputs={"mixture": audio.key})
    with pytest.raises(pipeline.NotCached) as error:
        pipeline.grid_source("b", first, None, {"a": first, "c": first}, FusionParams(), audio)
    assert str(error.value) == "no cached output of separator 'b' for this recording and query (cached: a, c)"
    with pytest.raises(pipeline.NotCached, match=r"\(cached: none\)$"):
        pipeline.grid_source("b", first, None, {}, FusionParams(), audio)
    alone = pipeline.grid_source("a", first, None, {"a": first}, FusionParams(mode="rate"), audio)
    assert alone.key == pipeline.fuse_key(first, None, FusionParams(), audio)
    fused = pipeline.grid_source(None, first, None, {"a": first}, FusionParams(mode="rate"), audio)
    assert fused.key == pipeline.fuse_key(first, None, FusionParams(mode="rate"), audio)
