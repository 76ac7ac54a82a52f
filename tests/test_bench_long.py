"""`eventsep bench long`'s measuring: the input it synthesises and the peak RSS of the child alone."""

import sys

import soundfile

from flows.bench import long_input, run_measured
from flows.cli import EXAMPLE


def test_the_long_input_is_the_recording_tiled_to_the_length(tmp_path):
    path = long_input(str(EXAMPLE), 0.5, str(tmp_path))  # 30 s from the 10 s example
    info = soundfile.info(path)
    assert info.frames == 30 * info.samplerate and path.endswith(".flac")
    head, _ = soundfile.read(path, frames=info.samplerate, dtype="float32")
    again, _ = soundfile.read(path, start=10 * info.samplerate, frames=info.samplerate, dtype="float32")
    assert (head == again).all() and abs(head).max() > 0.01


def test_peak_rss_is_the_childs_own(tmp_path):
    hold = "import numpy; a = numpy.ones(400 * 2**20 // 8); print(a.sum())"
    _, big, code = run_measured([sys.executable, "-c", hold], {})
    ballast = bytearray(300 * 2**20)  # a large parent must not show in its children's figures
    ballast[::4096] = b"x" * len(ballast[::4096])
    _, small, _ = run_measured([sys.executable, "-c", "pass"], {})
    assert code == 0 and big > 400 and small < 100  # the second child is measured alone, not the maximum
    _, _, failed = run_measured([sys.executable, "-c", "raise SystemExit(3)"], {})
    assert failed == 3
