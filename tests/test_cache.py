"""The cache without Prefect: what each change invalidates, concurrency, damaged files."""

import threading
from pathlib import Path

import numpy as np
import pytest

import eventsep
import eventsep.api
from eventsep import pipeline
from eventsep.audio import Audio
from eventsep.settings import settings
from eventsep.store import ResultStore
from damage import change_meta_digit, flip_array_byte
from standins import CALLS

ALL_STAGES = ["map_query", "sed", "mask", "separate", "separate", "fuse"]


def run(mixture, standin_options, **overrides):
    runner = eventsep.api.local_runner()
    result = pipeline.run(mixture, "the tone", eventsep.api.make_options(standin_options, **overrides), runner)
    return result, sorted(runner.computed)


def test_first_run_computes_every_stage_and_second_none(cache_env, mixture, standin_options):
    result, computed = run(mixture, standin_options)
    assert computed == sorted(ALL_STAGES)
    assert result.target.shape == mixture.samples.shape
    np.testing.assert_allclose(result.target + result.residual, mixture.samples, atol=1e-6)
    again, computed = run(mixture, standin_options)
    assert computed == []
    np.testing.assert_array_equal(again.target, result.target)


def test_new_threshold_reruns_only_the_mask(cache_env, mixture, standin_options):
    run(mixture, standin_options)
    calls = dict(CALLS)
    _, computed = run(mixture, standin_options, mask={"threshold": 0.2})
    assert computed == ["mask"]
    assert dict(CALLS) == calls  # no separator or SED body ran


def test_new_fusion_mode_reruns_only_fusion(cache_env, mixture, standin_options):
    run(mixture, standin_options)
    _, computed = run(mixture, standin_options, fusion={"mode": "rate", "alpha": 0.3})
    assert computed == ["fuse"]


def test_changed_sample_invalidates_everything_downstream_of_the_recording(cache_env, mixture, standin_options):
    run(mixture, standin_options)
    samples = mixture.samples.copy()
    samples[1234] += 1e-3
    _, computed = run(Audio(samples, mixture.sample_rate), standin_options)
    assert computed == sorted(["sed", "mask", "separate", "separate", "fuse"])  # not the query mapping


def test_changed_weight_file_invalidates_its_separator_and_fusion(cache_env, mixture, standin_options):
    run(mixture, standin_options)
    weights = cache_env / "weights" / "standin-b.bin"
    weights.write_bytes(weights.read_bytes() + b"retrained")
    calls = dict(CALLS)
    _, computed = run(mixture, standin_options)
    assert computed == ["fuse", "separate"]
    assert CALLS["standin-b"] == calls["standin-b"] + 1 and CALLS["standin-a"] == calls["standin-a"]


@pytest.mark.parametrize("stage, downstream", [
    ("sed", ["mask", "sed"]),
    ("mask", ["mask"]),
    ("separate", ["fuse", "separate", "separate"]),
    ("fuse", ["fuse"]),
    ("map_query", ["map_query", "mask", "separate", "separate", "fuse"]),
])
def test_bumped_stage_version_invalidates_exactly_downstream(cache_env, mixture, standin_options,
                                                             monkeypatch, stage, downstream):
    run(mixture, standin_options)
    monkeypatch.setitem(pipeline.VERSIONS, stage, pipeline.VERSIONS[stage] + 1)
    _, computed = run(mixture, standin_options)
    assert computed == sorted(downstream)


def test_deleted_result_file_is_recomputed(cache_env, mixture, standin_options):
    result, _ = run(mixture, standin_options)
    store = ResultStore(settings().results_url)
    key = result.keys["separate:standin-a"]
    store.delete(key)
    _, computed = run(mixture, standin_options)
    assert computed == ["fuse", "separate"] or computed == ["separate"]
    assert store.is_complete(key)


def test_truncated_result_file_is_recomputed_not_read(cache_env, mixture, standin_options):
    result, _ = run(mixture, standin_options)
    store = ResultStore(settings().results_url)
    path = Path(store.path(result.keys["sed"]))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again, computed = run(mixture, standin_options)
    assert "sed" in computed
    np.testing.assert_array_equal(again.gain, result.gain)


def test_damaged_result_files_are_recomputed_and_named(cache_env, mixture, standin_options, caplog):
    result, _ = run(mixture, standin_options)
    assert result.events
    store = ResultStore(settings().results_url)
    damaged = {stage: Path(store.path(result.keys[stage])) for stage in ("separate:standin-a", "mask")}
    flip_array_byte(damaged["separate:standin-a"])
    change_meta_digit(damaged["mask"], b"onset")
    with caplog.at_level("WARNING", logger="eventsep.store"):
        again, computed = run(mixture, standin_options)
    assert computed == ["mask", "separate"]
    assert again.events == result.events
    np.testing.assert_array_equal(again.target, result.target)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    for stage, path in damaged.items():
        assert any(str(path) in w and result.keys[stage] in w for w in warnings)


def test_refuse_names_a_damaged_file_and_asks_for_a_rerun(cache_env, mixture, standin_options, caplog):
    result, _ = run(mixture, standin_options)
    path = Path(ResultStore(settings().results_url).path(result.keys["sed"]))
    flip_array_byte(path)
    with caplog.at_level("WARNING", logger="eventsep.store"), pytest.raises(pipeline.NotCached):
        eventsep.api.refuse(mixture, "the tone", pipeline.grid_product(["hard"], [0.5], ["rate"]),
                            options=standin_options)
    assert [str(path) in r.getMessage() for r in caplog.records] == [True]


def test_two_concurrent_identical_runs_compute_once(cache_env, mixture, standin_options, monkeypatch):
    import standins

    original = standins.GainSeparator.separate

    def slow(self, samples, query, params):
        threading.Event().wait(0.3)
        return original(self, samples, query, params)

    monkeypatch.setattr(standins.GainSeparator, "separate", slow)
    threads = [threading.Thread(target=run, args=(mixture, standin_options)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert CALLS["standin-a"] == 1 and CALLS["standin-b"] == 1 and CALLS["sed"] == 1


def test_refuse_reads_the_cache_alone(cache_env, mixture, standin_options):
    first, _ = run(mixture, standin_options)
    calls = dict(CALLS)
    results = eventsep.refuse(mixture, "the tone", mask_modes=["hard", "soft"], thresholds=[0.3, 0.6],
                              fusion_modes=["rate", "band"], options=standin_options, reference=(
                                  first.target, mixture.sample_rate))
    assert len(results) == 8
    assert dict(CALLS) == calls
    assert {r.extra["grid_point"]["fusion_mode"] for r in results} == {"rate", "band"}
    assert all(r.metrics is not None for r in results)


def test_refuse_before_separate_says_so(cache_env, mixture, standin_options):
    with pytest.raises(pipeline.NotCached, match="run `eventsep separate`"):
        eventsep.refuse(mixture, "the tone", options=standin_options)


def test_a_new_query_on_a_known_recording_reuses_sed(cache_env, mixture, standin_options):
    run(mixture, standin_options)
    runner = eventsep.api.local_runner()
    pipeline.run(mixture, "a different sound", eventsep.api.make_options(standin_options), runner)
    assert "sed" not in runner.computed and "separate" in runner.computed
    assert CALLS["sed"] == 1
