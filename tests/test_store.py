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
    assert record.getMessage() == (f"eventsep: warning: result file {path} (key {KEY}) is damaged "
                                   "(checksum mismatch); deleted, it will be recomputed")


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


# ---------------------------------------------------------------- argument guards, boundaries and edge cases

def _header_of(blob):
    import json
    import struct

    (length,) = struct.unpack("<Q", blob[:8])
    return json.loads(json.loads(blob[8:8 + length])["__metadata__"]["eventsep"])


def _safetensors_with(header, arrays=None):
    """A safetensors file holding `arrays` and `header` as its "eventsep" metadata (a dict is JSON-encoded)."""
    import json

    from safetensors.numpy import save

    text = header if isinstance(header, str) else json.dumps(header)
    return save(arrays if arrays is not None else {"probs": np.zeros(3, np.float32)}, metadata={"eventsep": text})


def _documented_checksum(stage, key, meta_text, arrays):
    """The checksum as the module docstring describes it, rebuilt here with hashlib: the format name, stage, key
    and metadata text as a JSON list, then for each array in name order its name, dtype and shape, and bytes."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(["eventsep-result/2", stage, key, meta_text]).encode())
    for name in sorted(arrays):
        digest.update(json.dumps([name, arrays[name].dtype.str, list(arrays[name].shape)]).encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def test_the_file_header_is_the_documented_format_so_other_versions_can_read_it():
    arrays = {"b": np.array([[1, 2, 3]], np.int16), "a": np.linspace(0, 1, 5, dtype=np.float32)}
    result = StageResult("fuse", KEY, arrays, {"z": 1, "a": [0.5, "x"]})
    header = _header_of(encode(result))
    meta_text = '{"a": [0.5, "x"], "z": 1}'  # keys sorted, json.dumps' default separators
    assert header == {"format": "eventsep-result/2", "stage": "fuse", "key": KEY, "meta": meta_text,
                      "sha256": _documented_checksum("fuse", KEY, meta_text, arrays)}
    back = decode(encode(result), expected_key=KEY)
    assert back.meta == {"z": 1, "a": [0.5, "x"]} and back.stage == "fuse"
    assert back["b"].dtype == np.int16 and back["b"].shape == (1, 3)
    np.testing.assert_array_equal(back["a"], arrays["a"])


def test_checksum_covers_dtype_shape_and_name_not_only_the_bytes():
    same_bytes = np.zeros(4, np.float32)
    base = store_module.checksum("sed", KEY, "{}", {"x": same_bytes})
    assert base == _documented_checksum("sed", KEY, "{}", {"x": same_bytes})
    assert store_module.checksum("sed", KEY, "{}", {"x": same_bytes.reshape(2, 2)}) != base
    assert store_module.checksum("sed", KEY, "{}", {"x": same_bytes.view(np.int32)}) != base
    assert store_module.checksum("sed", KEY, "{}", {"y": same_bytes}) != base
    assert store_module.checksum("mask", KEY, "{}", {"x": same_bytes}) != base
    # arrays in either order and a non-contiguous view of the same values give the same checksum
    two = {"p": np.arange(6, dtype=np.float32)[::2], "q": np.ones(2, np.float64)}
    assert store_module.checksum("sed", KEY, "{}", two) == store_module.checksum(
        "sed", KEY, "{}", {"q": np.ones(2, np.float64), "p": np.array([0, 2, 4], np.float32)})


def test_a_result_without_arrays_round_trips(tmp_path):
    empty = StageResult("events", KEY, {}, {"events": []})
    back = decode(encode(empty), expected_key=KEY)
    assert back.arrays == {} and back.meta == {"events": []} and back.stage == "events"
    store = ResultStore(tmp_path)
    store.save(empty)
    assert store.is_complete(KEY) and store.load(KEY).meta == {"events": []}


@pytest.mark.parametrize("blob, problem", [
    (b"", "^shorter than a safetensors header$"),
    (b"\x10\x00\x00\x00\x00\x00\x00", "^shorter than a safetensors header$"),         # 7 bytes
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{}", "^safetensors header cut off$"),          # declares 16, has 2
    ((200_000_000).to_bytes(8, "little") + b"{" * 64, "^safetensors header cut off$"),  # absurd length
    (b"\x04\x00\x00\x00\x00\x00\x00\x00{{{{", "^unreadable safetensors header \\(Expecting"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00", "^safetensors header cut off$"),            # 8 bytes, no header
    (b"\xff" * 16, "^safetensors header cut off$"),  # a length over 2**63: unsigned, not negative
])
def test_a_blob_that_is_not_safetensors_is_named_in_one_line(blob, problem):
    with pytest.raises(CorruptResult, match=problem) as caught:
        decode(blob)
    assert "\n" not in str(caught.value)


def test_a_header_of_exactly_its_declared_length_is_read():
    # 8 + N bytes with N the declared length: a complete (empty) safetensors header, not "cut off"
    assert store_module.expected_size(b"\x02\x00\x00\x00\x00\x00\x00\x00{}") == 10
    blob = encode(sample_result())
    assert store_module.expected_size(blob) == len(blob)


def test_bytes_after_the_declared_end_are_refused():
    blob = encode(sample_result())
    with pytest.raises(CorruptResult, match=f"^size {len(blob) + 1} differs from the declared size$"):
        decode(blob + b"\x00")


@pytest.mark.parametrize("header, problem", [
    ([1, 2], "^no EventSep header$"),
    ({"format": "something-else/1"}, "^unknown format 'something-else/1'$"),
    ({"stage": "sed"}, "^unknown format None$"),
    ({"format": "eventsep-result/2", "stage": "sed", "key": KEY, "meta": "{}"},
     "^damaged EventSep header \\(KeyError: 'sha256'\\)$"),
    ({"format": "eventsep-result/2", "stage": "sed", "key": KEY, "meta": "{}", "sha256": "0" * 64},
     "^checksum mismatch$"),
    ({"format": "eventsep-result/2", "stage": "sed", "key": KEY, "meta": 5,
      "sha256": _documented_checksum("sed", KEY, 5, {"probs": np.zeros(3, np.float32)})},
     "^damaged EventSep header \\(TypeError: the JSON object must be str"),
])
def test_a_damaged_header_is_named(header, problem):
    with pytest.raises(CorruptResult, match=problem) as caught:
        decode(_safetensors_with(header))
    assert not isinstance(caught.value, store_module.StaleResult)


def test_a_safetensors_file_without_eventsep_metadata_is_not_a_result():
    from safetensors.numpy import save

    with pytest.raises(CorruptResult, match=r"^not a readable EventSep result \(.*\)$"):
        decode(save({"probs": np.zeros(3, np.float32)}))


def test_unreadable_metadata_text_is_refused_even_with_a_matching_checksum():
    arrays = {"probs": np.zeros(3, np.float32)}
    header = {"format": "eventsep-result/2", "stage": "sed", "key": KEY, "meta": "{not json",
              "sha256": _documented_checksum("sed", KEY, "{not json", arrays)}
    with pytest.raises(CorruptResult, match="^damaged EventSep header \\(JSONDecodeError: "):
        decode(_safetensors_with(header, arrays))


@pytest.mark.parametrize("old", ["eventsep-result/1", "eventsep-result/0"])
def test_an_older_format_is_stale_and_names_the_format(old):
    with pytest.raises(store_module.StaleResult, match=f"^older format '{old}'$"):
        decode(_safetensors_with({"format": old}))


def test_a_result_under_the_wrong_key_names_both_keys():
    other = "b" * 64
    with pytest.raises(CorruptResult, match=f"^holds key {KEY} instead of {other}$"):
        decode(encode(sample_result()), expected_key=other)
    assert decode(encode(sample_result()), expected_key=None).key == KEY


def test_store_root_path_and_repr(tmp_path):
    store = ResultStore(f"{tmp_path}/results-X/")  # only the slash is dropped, not the X before it
    assert store.root == f"{tmp_path}/results-X" and repr(store) == f"ResultStore('{tmp_path}/results-X')"
    assert store.path(KEY) == f"{tmp_path}/results-X/{KEY}" and store.is_local
    assert not ResultStore("memory://eventsep-root-test").is_local


def test_keys_lists_only_finished_results(tmp_path):
    store = ResultStore(tmp_path)
    assert ResultStore(tmp_path / "not-made-yet").keys() == []
    store.save(sample_result())
    for name in ["b" * 63, "c" * 65, "A" * 64, "g" * 64, "X" * 64, f".{KEY}.0123.partial", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ("d" * 64)).write_bytes(b"x")
    assert store.keys() == [KEY, "d" * 64]


def test_a_missing_or_folder_key_reads_as_missing(tmp_path):
    store = ResultStore(tmp_path, max_bytes=10**9)
    assert store.read_bytes(KEY) is None and store.load(KEY) is None
    (tmp_path / KEY).mkdir()
    assert store.read_bytes(KEY) is None and store.load(KEY) is None
    store.delete("e" * 64)  # deleting what is not there is no error


@pytest.mark.parametrize("content", [b"", b"\x01\x02\x03", b"\xff" * 8, b"\x05\x00\x00\x00\x00\x00\x00\x00{}"])
def test_a_file_too_short_for_its_header_is_not_complete(tmp_path, content):
    (tmp_path / KEY).write_bytes(content)
    assert not ResultStore(tmp_path).is_complete(KEY)


def test_write_bytes_replaces_a_local_file_whole_and_leaves_no_temporary(tmp_path):
    store = ResultStore(tmp_path)
    store.write_bytes(KEY, b"first version")
    store.write_bytes(KEY, b"second")
    assert store.read_bytes(KEY) == b"second"
    assert [p.name for p in tmp_path.iterdir()] == [KEY]


def test_a_remote_store_uploads_whole_files_and_never_evicts():
    import fsspec

    store = ResultStore("memory://eventsep-remote-evict", max_bytes=1)
    store.save(sample_result())
    store.save(sample_result("b" * 64))
    assert store.keys() == [KEY, "b" * 64] and store.evict() == []
    fs = fsspec.filesystem("memory")
    assert fs.cat_file(store.path(KEY)) == encode(sample_result())
    store.write_bytes("c" * 64, b"raw")
    assert store.read_bytes("c" * 64) == b"raw"
    assert store.clear() == 3 and store.keys() == []


def test_reading_a_result_marks_it_recently_used_only_in_a_limited_store(tmp_path):
    import os

    limited, unlimited = ResultStore(tmp_path / "a", max_bytes=10**9), ResultStore(tmp_path / "b")
    for store in (limited, unlimited):
        store.save(sample_result())
        _aged(store, KEY, 1000)
        assert store.read_bytes(KEY) is not None
    import time

    assert time.time() - os.stat(limited.path(KEY)).st_mtime < 100
    assert time.time() - os.stat(unlimited.path(KEY)).st_mtime > 900


def test_a_store_exactly_at_its_limit_keeps_everything(tmp_path, caplog):
    keys = ["1" * 64, "2" * 64]
    size = len(encode(sample_result(keys[0])))
    store = ResultStore(tmp_path, max_bytes=2 * size)
    with caplog.at_level("INFO", logger="eventsep.store"):
        for key in keys:
            store.save(sample_result(key))
        assert store.evict() == []
    assert store.keys() == keys and not caplog.records
    assert ResultStore(tmp_path).evict() == []  # no limit: nothing is ever evicted


def _three_aged_results(folder):
    """A store with three results, the first the least recently used; the size of one result."""
    keys = [c * 64 for c in "123"]
    store = ResultStore(folder, max_bytes=10**9)
    for age, key in zip((300, 200, 100), keys):
        store.save(sample_result(key))
        _aged(store, key, age)
    return store, keys, len(encode(sample_result(keys[0])))


def test_eviction_skips_the_kept_file_even_when_it_is_the_oldest_and_logs_one_line(tmp_path, caplog):
    store, keys, size = _three_aged_results(tmp_path)
    store.max_bytes = size
    with caplog.at_level("INFO", logger="eventsep.store"):
        assert store.evict(keep=keys[0]) == [keys[1], keys[2]]
    assert store.keys() == [keys[0]]
    [record] = caplog.records
    assert record.getMessage() == f"eventsep: cache over {size} bytes: evicted 2 least recently used results"


def test_eviction_stops_as_soon_as_the_store_fits(tmp_path):
    store, keys, size = _three_aged_results(tmp_path)
    store.max_bytes = 2 * size + 1  # one over two files: only the oldest goes
    assert store.evict() == [keys[0]] and store.keys() == keys[1:]


def test_eviction_tolerates_a_file_removed_meanwhile(tmp_path, monkeypatch):
    import os

    keys = [c * 64 for c in "123"]
    store = ResultStore(tmp_path, max_bytes=10**9)
    for key in keys:
        store.save(sample_result(key))
    real_stat = os.stat

    def vanished(path, *args, **kwargs):
        if str(path).endswith(keys[0]):
            raise FileNotFoundError(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(store_module.os, "stat", vanished)
    store.max_bytes = 1  # the first file is gone when its size is asked: the others are still weighed
    assert store.evict(keep=keys[2]) == [keys[1]]


def test_info_reads_stage_size_and_metadata(tmp_path):
    store = ResultStore(tmp_path)
    store.save(sample_result())
    assert store.info(KEY) == {"key": KEY, "stage": "sed", "bytes": (tmp_path / KEY).stat().st_size,
                               "meta": {"frame_rate": 100.0, "events": [{"onset": 1.0}]}}


def test_clear_by_stage_removes_only_that_stage_and_counts(tmp_path):
    store = ResultStore(tmp_path)
    store.save(sample_result("1" * 64))
    store.save(StageResult("fuse", "2" * 64, {"audio": np.zeros(4, np.float32)}, {}))
    store.save(sample_result("3" * 64))
    assert store.clear("fuse") == 1 and store.keys() == ["1" * 64, "3" * 64]
    (tmp_path / ("4" * 64)).write_bytes(b"\x01")  # unreadable: whatever its stage, clearing a stage removes it
    assert store.clear("sed") == 3 and store.keys() == []
    assert store.clear() == 0


def test_write_bytes_keeps_a_limited_store_within_its_size_but_never_drops_what_it_wrote(tmp_path):
    store = ResultStore(tmp_path, max_bytes=15)
    store.write_bytes("1" * 64, b"x" * 10)
    _aged(store, "1" * 64, 100)
    store.write_bytes("2" * 64, b"y" * 10)  # 20 bytes: the older file goes
    assert store.keys() == ["2" * 64]
    store.max_bytes = 1
    store.write_bytes("3" * 64, b"z" * 10)  # larger than the limit by itself: it stays, alone
    assert store.keys() == ["3" * 64] and store.read_bytes("3" * 64) == b"z" * 10


def test_info_reads_an_older_format_file_whose_metadata_is_not_text(tmp_path):
    header = {"format": "eventsep-result/1", "stage": "sed", "key": KEY, "meta": {"frame_rate": 50.0},
              "sha256": "0" * 64}
    (tmp_path / KEY).write_bytes(_safetensors_with(header))
    info = ResultStore(tmp_path).info(KEY)
    assert info["stage"] == "sed" and info["meta"] == {"frame_rate": 50.0}


def test_a_folder_named_like_a_key_is_not_a_complete_result(tmp_path):  # raised IsADirectoryError (mutmut)
    (tmp_path / KEY).mkdir()
    assert not ResultStore(tmp_path).is_complete(KEY)
