import builtins
import io

import numpy as np
import pytest

from eventsep import store as store_module
from eventsep.store import CorruptResult, ResultStore, StageResult, decode, encode

KEY = "a" * 64


def sample_result(key=KEY):
    return StageResult("sed", key, {"probs": np.arange(12, dtype=np.float32).reshape(3, 4)},
                       {"frame_rate": 100.0, "events": [{"onset": 1.0}]})


def test_round_trip_keeps_arrays_and_metadata():
    back = decode(encode(sample_result()))
    assert back.stage == "sed" and back.key == KEY
    np.testing.assert_array_equal(back["probs"], sample_result()["probs"])
    assert back.meta == {"frame_rate": 100.0, "events": [{"onset": 1.0}]}


@pytest.mark.parametrize("cut", [1, 7, 100, -1])
def test_truncated_blob_is_refused(cut):
    blob = encode(sample_result())
    with pytest.raises(CorruptResult):
        decode(blob[:cut])


def test_flipped_byte_is_refused_by_checksum():
    blob = bytearray(encode(sample_result()))
    blob[-3] ^= 0xFF
    with pytest.raises(CorruptResult):
        decode(bytes(blob))


def test_blob_is_not_a_pickle():
    blob = encode(sample_result())
    assert not blob.startswith(b"\x80")  # pickle protocol marker
    with pytest.raises(CorruptResult):
        decode(b"\x80\x04K\x01.")


def test_store_save_load_and_missing(tmp_path):
    store = ResultStore(tmp_path / "results")
    assert store.load(KEY) is None
    store.save(sample_result())
    assert store.is_complete(KEY)
    assert store.load(KEY).meta["frame_rate"] == 100.0
    assert store.keys() == [KEY]
    assert store.info(KEY)["stage"] == "sed"
    assert not list((tmp_path / "results").glob("*.partial"))


def test_truncated_file_is_never_read_back(tmp_path):
    store = ResultStore(tmp_path)
    store.save(sample_result())
    path = tmp_path / KEY
    path.write_bytes(path.read_bytes()[:-10])
    assert not store.is_complete(KEY)
    assert store.load(KEY) is None
    assert not path.exists()  # removed, so the next run recomputes it


def test_file_under_another_key_is_refused(tmp_path):
    store = ResultStore(tmp_path)
    other = "b" * 64
    store.write_bytes(other, encode(sample_result(KEY)))
    assert store.load(other) is None


def test_fsspec_memory_location():
    store = ResultStore("memory://eventsep-test-store")
    store.save(sample_result())
    assert store.is_complete(KEY)
    assert store.load(KEY).key == KEY
    assert store.clear() == 1
    assert store.load(KEY) is None


class CrashMidWrite:
    """A file opened for writing that dies after writing half of what it is given (a crash, a full disk)."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        data = bytes(data)
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise OSError("simulated crash mid-write")

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()
        return False


def test_a_crash_mid_write_leaves_the_old_result_whole(tmp_path, monkeypatch):
    """Local writes go to a temporary file that is renamed in: a writer dying half-way through a new version
    leaves the previous one readable and no partial file behind (written in place, the reader would find a
    half-written file: damaged, deleted, recomputed)."""
    store = ResultStore(tmp_path / "results")
    store.save(sample_result())
    real_open = builtins.open

    def crashing_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        inside = str(file).startswith(str(tmp_path))
        return CrashMidWrite(handle) if inside and ("w" in mode or "a" in mode or "+" in mode) else handle

    def crashing_save_file(arrays, path, metadata=None):  # the local writer, in Rust: dies after half the file
        with crashing_open(path, "wb") as handle:
            handle.write(store_module.save_tensors(arrays, metadata=metadata))

    monkeypatch.setattr(builtins, "open", crashing_open)
    monkeypatch.setattr(io, "open", crashing_open)  # pathlib opens through io.open
    monkeypatch.setattr(store_module, "save_file", crashing_save_file)
    newer = StageResult("sed", KEY, {"probs": np.ones((3, 4), np.float32)}, {"frame_rate": 50.0})
    with pytest.raises(OSError, match="simulated crash"):
        store.save(newer)
    monkeypatch.undo()
    back = store.load(KEY)
    assert back is not None and back.meta["frame_rate"] == 100.0
    np.testing.assert_array_equal(back["probs"], sample_result()["probs"])
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [KEY]


def test_a_local_store_writes_the_bytes_of_encode_from_the_arrays_memory(tmp_path):
    store = ResultStore(tmp_path / "results")
    big = StageResult("fuse", KEY, {"audio": np.linspace(-1, 1, 100_001, dtype=np.float32)[::-1]},
                      {"sample_rate": 32000})  # a reversed view: not contiguous, stored as its values
    store.save(big)
    assert (tmp_path / "results" / KEY).read_bytes() == encode(big)
    np.testing.assert_array_equal(store.load(KEY)["audio"], big["audio"])


def test_one_changed_digit_in_the_metadata_is_refused_by_checksum():
    blob = encode(sample_result())
    position = blob.index(b"100.0")
    changed = blob[:position] + b"900.0" + blob[position + 5:]
    with pytest.raises(CorruptResult, match="checksum"):
        decode(changed)


def test_damaged_file_is_deleted_and_named_in_one_warning(tmp_path, caplog):
    store = ResultStore(tmp_path)
    store.save(sample_result())
    path = tmp_path / KEY
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0xFF
    path.write_bytes(bytes(blob))
    with caplog.at_level("WARNING", logger="eventsep.store"):
        assert store.load(KEY) is None
    assert not path.exists()
    [record] = caplog.records
    assert str(path) in record.getMessage() and KEY in record.getMessage() and "\n" not in record.getMessage()


def test_older_format_is_recomputed_without_a_warning(tmp_path, caplog):
    import json

    from safetensors.numpy import save

    header = {"format": "eventsep-result/1", "stage": "sed", "key": KEY, "meta": {}, "sha256": "0" * 64}
    (tmp_path / KEY).write_bytes(save({"probs": np.zeros(3, np.float32)},
                                      metadata={"eventsep": json.dumps(header)}))
    with caplog.at_level("WARNING", logger="eventsep.store"):
        assert ResultStore(tmp_path).load(KEY) is None
    assert not (tmp_path / KEY).exists() and not caplog.records


def _aged(store, key, seconds_ago):
    import os
    import time

    stamp = time.time() - seconds_ago
    os.utime(store.path(key), (stamp, stamp))


def test_size_limit_evicts_least_recently_used_but_never_the_file_just_written(tmp_path):
    keys = [c * 64 for c in "0123"]
    size = len(encode(sample_result(keys[0])))
    store = ResultStore(tmp_path, max_bytes=3 * size)
    for age, key in zip((300, 200, 100), keys[:3]):
        store.save(sample_result(key))
        _aged(store, key, age)
    assert store.load(keys[0]) is not None  # reading the oldest makes it the most recently used
    store.save(sample_result(keys[3]))  # four files, room for three: the least recently used goes
    assert store.keys() == sorted([keys[0], keys[2], keys[3]])
    tiny = ResultStore(tmp_path, max_bytes=1)  # smaller than one result: all but the new one go
    tiny.save(sample_result("f" * 64))
    assert tiny.keys() == ["f" * 64] and tiny.load("f" * 64) is not None


def test_no_limit_keeps_everything(tmp_path):
    store = ResultStore(tmp_path)
    for c in "0123":
        store.save(sample_result(c * 64))
    assert len(store.keys()) == 4


@pytest.mark.parametrize("text, expected", [("2GB", 2 * 10**9), ("500MB", 5 * 10**8), ("1.5GiB", 3 * 2**29),
                                            ("4096", 4096), ("", None)])
def test_cache_max_sizes(monkeypatch, text, expected):
    from eventsep.settings import settings

    monkeypatch.setenv("EVENTSEP_CACHE_MAX", text)
    assert settings().cache_max_bytes == expected


@pytest.mark.parametrize("text", ["lots", "2XB", "-1GB", "0"])
def test_a_bad_cache_max_is_one_line(monkeypatch, text):
    from eventsep.settings import settings

    monkeypatch.setenv("EVENTSEP_CACHE_MAX", text)
    with pytest.raises(ValueError, match="EVENTSEP_CACHE_MAX=.*is not a size") as caught:
        settings().cache_max_bytes
    assert "\n" not in str(caught.value)
