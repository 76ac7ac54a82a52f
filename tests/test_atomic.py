"""A file published through eventsep.atomic is either the old one or the whole new one, and no partial
file is left beside it, whatever the writer does."""

import numpy as np
import pytest

from eventsep.atomic import atomic_file, write_text


def test_a_failed_writer_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "deep" / "result.txt"
    write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as temporary:
            temporary.write_text("half of the new")
            raise RuntimeError("writer died")
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["result.txt"]


def test_a_finished_writer_replaces_the_file(tmp_path):
    path = tmp_path / "result.txt"
    write_text(path, "old")
    write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_suffix_serves_writers_that_append_their_own(tmp_path):
    path = tmp_path / "matrix.npy"
    with atomic_file(path, suffix=".npy") as temporary:
        np.save(temporary, np.arange(3))
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["matrix.npy"]


def test_a_writer_that_writes_nothing_publishes_nothing(tmp_path):
    path = tmp_path / "result.txt"
    with pytest.raises(FileNotFoundError):
        with atomic_file(path):
            pass
    assert not path.exists()
