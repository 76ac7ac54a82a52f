"""`eventsep bench long`'s measuring: the input it synthesises and the peak RSS of the child alone."""

import sys

import soundfile

from flows.bench import long_input, run_measured
from flows.cli import EXAMPLE


def test_the_long_input_is_the_recording_tiled_to_the_length_each_tile_at_its_own_level(tmp_path):
    import numpy as np

    path = long_input(str(EXAMPLE), 0.5, str(tmp_path))  # 30 s from the 10 s example
    info = soundfile.info(path)
    assert info.frames == 30 * info.samplerate and path.endswith(".flac")
    tiles = [soundfile.read(path, start=k * 10 * info.samplerate, frames=info.samplerate, dtype="float64")[0]
             for k in range(3)]
    levels = [0.8 + 0.2 * ((k * 37) % 101) / 100 for k in range(3)]  # 0.8, 0.874, 0.948
    for tile, level in zip(tiles[1:], levels[1:]):  # the same audio, its own level (16-bit rounding aside)
        np.testing.assert_allclose(tile / level, tiles[0] / levels[0], atol=2e-4)
        assert not np.array_equal(tile, tiles[0])
    assert abs(tiles[0]).max() > 0.01


def test_peak_rss_is_the_childs_own(tmp_path):
    hold = "import numpy; a = numpy.ones(400 * 2**20 // 8); print(a.sum())"
    _, big, code = run_measured([sys.executable, "-c", hold], {})
    ballast = bytearray(300 * 2**20)  # a large parent must not show in its children's figures
    ballast[::4096] = b"x" * len(ballast[::4096])
    _, small, _ = run_measured([sys.executable, "-c", "pass"], {})
    assert code == 0 and big > 400 and small < 100  # the second child is measured alone, not the maximum
    _, _, failed = run_measured([sys.executable, "-c", "raise SystemExit(3)"], {})
    assert failed == 3
