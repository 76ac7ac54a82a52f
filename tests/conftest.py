import os

import numpy as np
import prefect.main  # noqa: F401 - see below
import pytest

from eventsep.audio import Audio
from standins import CALLS, STANDIN_OPTIONS, register_all

# Prefect binds its console log handler to sys.stderr when `prefect.main` is first imported. Imported here,
# that is pytest's session-wide capture; imported first inside a test (a --local command that reaches a
# flow module), it would be that test's capsys stream, closed after it, and every later Prefect log line
# would fail ("I/O operation on closed file", then a RecursionError in the flow tests).


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One temporary Prefect server for the whole test session (it takes 20-30 s to start)."""
    from flows.cli import prepare_prefect_environment

    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    prepare_prefect_environment()
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def corpus_cache(tmp_path, monkeypatch):
    """A private cache folder for corpus renders."""
    monkeypatch.setenv("EVENTSEP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    """A private cache folder (results, locks, models) and the stand-in backends."""
    monkeypatch.setenv("EVENTSEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EVENTSEP_RESULTS", raising=False)
    monkeypatch.setenv("EVENTSEP_WEIGHTS", "")  # none; restored after the test even where `main` sets it (--weights)
    register_all(tmp_path / "weights")
    CALLS.clear()
    return tmp_path


def tone_mixture(seconds=3.0, rate=32000, seed=0) -> Audio:
    """A 440 Hz tone active from 1 s to 2 s over low noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) * ((t >= 1.0) & (t < 2.0))
    return Audio((tone + 0.01 * rng.standard_normal(len(t))).astype(np.float32), rate)


@pytest.fixture
def mixture():
    return tone_mixture()


@pytest.fixture
def standin_options():
    return dict(STANDIN_OPTIONS)
