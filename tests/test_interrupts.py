"""Signals to a real `python3 -m flows.cli separate` on the default (Prefect) path: Ctrl-C and SIGTERM end it
with one line and 130 / 143, and no temporary Prefect server outlives it, kill -9 included."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventsep.procs import children

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def temporary_server_of(pid: int, timeout: float = 120.0) -> int:
    """The pid of the temporary Prefect server (uvicorn with Prefect's app) that process `pid` started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(pid):
            try:
                if b"prefect.server.api.server:create_app" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return child
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"no temporary Prefect server started by {pid} within {timeout} s")


@pytest.fixture
def command(tmp_path, mixture):
    from eventsep.audio import write_audio

    wav = tmp_path / "tone.wav"
    write_audio(wav, mixture.samples, mixture.sample_rate)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EVENTSEP_"))}
    env.update(EVENTSEP_CACHE=str(tmp_path / "cache"), PREFECT_HOME=str(tmp_path / "prefect"))
    return dict(args=[sys.executable, "-m", "flows.cli", "separate", str(wav), "the tone", "-o", str(tmp_path / "out")],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, "eventsep: interrupted"),
                                             (signal.SIGTERM, 143, "eventsep: terminated"),
                                             (signal.SIGKILL, -9, None)], ids=["ctrl-c", "sigterm", "kill-9"])
def test_a_signal_ends_the_run_and_its_temporary_server(command, sig, code, line):
    process = subprocess.Popen(**command)
    try:
        server = temporary_server_of(process.pid)
        process.send_signal(sig)
        _, err = process.communicate(timeout=10)  # the requirement is 2 s; 10 s keeps a loaded machine green
    finally:
        process.kill()
    assert process.returncode == code
    if line is not None:
        assert err.decode().splitlines() == [line]
    deadline = time.monotonic() + 10
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(server), "the temporary Prefect server outlived the command"
