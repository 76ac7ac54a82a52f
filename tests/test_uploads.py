"""The upload path piece by piece: uploads taken once and whole, sidecars checked strictly, outputs
published as a set, runs followed to their end (a fake client), artifact keys, serve's process
bookkeeping; and the upload and manifest flows on the session's temporary Prefect server."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile

from deployments.inbox import Inbox, Upload
from deployments.local import PidFile, _start_time
from deployments.watcher import Watcher, upload_key
from eventsep import atomic
from eventsep.atomic import publish_dir
from eventsep import pipeline
from eventsep.audio import AudioError, check_whole, write_audio
from eventsep.config import ParamError
from eventsep.sidecar import parse_sidecar
from flows.artifacts import artifact_key


@pytest.fixture
def audio_bytes(tmp_path):
    """A whole 3 s FLAC and WAV, as bytes."""
    samples = (0.1 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32)
    blobs = {}
    for suffix in ("flac", "wav"):
        soundfile.write(tmp_path / f"whole.{suffix}", samples, 16000)
        blobs[suffix] = (tmp_path / f"whole.{suffix}").read_bytes()
    return blobs


# ------------------------------------------------------------------ whole files


@pytest.mark.parametrize("suffix", ["flac", "wav"])
def test_a_file_cut_short_is_not_whole(tmp_path, audio_bytes, suffix):
    whole = tmp_path / f"whole.{suffix}"
    check_whole(whole)
    part = tmp_path / f"part.{suffix}"
    part.write_bytes(audio_bytes[suffix][: len(audio_bytes[suffix]) // 2])
    with pytest.raises(AudioError, match="truncated|cannot be decoded"):
        check_whole(part)


def test_non_audio_is_not_whole(tmp_path):
    (tmp_path / "x.wav").write_text("not audio")
    with pytest.raises(AudioError, match="not an audio file"):
        check_whole(tmp_path / "x.wav")


# ------------------------------------------------------------------ the inbox


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def write_slowly(inbox: Inbox, clock: Clock, path: Path, blob: bytes, chunks: int, pause: float) -> list:
    """Append `blob` in `chunks` pieces, `pause` seconds apart on the inbox's clock, polling every 0.5 s."""
    taken = []
    pieces = np.array_split(np.frombuffer(blob, dtype=np.uint8), chunks)
    for piece in pieces:
        with open(path, "ab") as handle:
            handle.write(piece.tobytes())
        for _ in range(int(pause / 0.5)):
            taken += inbox.poll()
            clock.now += 0.5
    return taken


@pytest.mark.parametrize("suffix", ["flac", "wav"])
def test_a_slow_writer_is_taken_once_and_whole(tmp_path, audio_bytes, suffix):
    clock = Clock()
    inbox = Inbox(str(tmp_path / "in"), window=5.0, give_up=60.0, clock=clock)
    (tmp_path / "in").mkdir()
    target = tmp_path / "in" / f"slow.{suffix}"
    # pauses of 3 s: shorter than the window, so the window alone already holds the upload back
    taken = write_slowly(inbox, clock, target, audio_bytes[suffix], chunks=4, pause=3.0)
    assert taken == []
    for _ in range(20):
        taken += inbox.poll()
        clock.now += 0.5
    assert len(taken) == 1 and taken[0].problem is None
    assert taken[0].sha256 == hashlib.sha256(audio_bytes[suffix]).hexdigest()


def test_a_pause_longer_than_the_window_waits_for_the_whole_file(tmp_path, audio_bytes):
    clock = Clock()
    (tmp_path / "in").mkdir()
    inbox = Inbox(str(tmp_path / "in"), window=2.0, give_up=60.0, clock=clock)
    target = tmp_path / "in" / "paused.flac"
    # 8 s pauses: longer than the window; the FLAC does not decode to its end, so it is not taken
    taken = write_slowly(inbox, clock, target, audio_bytes["flac"], chunks=3, pause=8.0)
    assert len(taken) == 1 and taken[0].problem is None
    assert taken[0].sha256 == hashlib.sha256(audio_bytes["flac"]).hexdigest()


def test_an_upload_that_never_decodes_is_handed_out_with_its_problem_after_give_up(tmp_path):
    clock = Clock()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.wav").write_text("not audio at all")
    inbox = Inbox(str(tmp_path / "in"), window=1.0, give_up=10.0, clock=clock)
    taken = []
    for _ in range(19):
        taken += inbox.poll()
        clock.now += 0.5
    assert taken == []
    for _ in range(4):
        taken += inbox.poll()
        clock.now += 0.5
    assert len(taken) == 1 and "not an audio file" in taken[0].problem


def test_a_sidecar_written_after_the_audio_is_waited_for(tmp_path, audio_bytes):
    clock = Clock()
    (tmp_path / "in").mkdir()
    inbox = Inbox(str(tmp_path / "in"), window=3.0, clock=clock)
    (tmp_path / "in" / "late.wav").write_bytes(audio_bytes["wav"])
    taken = []
    for step in range(20):
        if step == 4:  # 2 s after the audio, inside the window
            (tmp_path / "in" / "late.json").write_text('{"query": "only the dog"}')
        taken += inbox.poll()
        clock.now += 0.5
    assert len(taken) == 1 and json.loads(taken[0].sidecar) == {"query": "only the dog"}


def test_a_file_is_handed_out_again_only_when_it_changes(tmp_path, audio_bytes):
    clock = Clock()
    (tmp_path / "in").mkdir()
    inbox = Inbox(str(tmp_path / "in"), window=1.0, clock=clock)
    path = tmp_path / "in" / "a.wav"
    path.write_bytes(audio_bytes["wav"])
    taken = []
    for _ in range(10):
        taken += inbox.poll()
        clock.now += 0.5
    path.write_bytes(audio_bytes["wav"][:-4000] + b"\0" * 4000)
    os.utime(path, (time.time(), time.time() + 5))
    for _ in range(10):
        taken += inbox.poll()
        clock.now += 0.5
    assert len(taken) == 2 and taken[0].sha256 != taken[1].sha256


# ------------------------------------------------------------------ sidecars


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('["only the dog"]', "must be a JSON object"),
    ('{"querry": "only the dog"}', "unknown key(s) 'querry'"),
    ('{"query": "dog", "mask": {"treshold": 0.4}}', "mask.treshold"),
    ('{"query": ""}', "non-empty string"),
])
def test_a_bad_sidecar_is_one_clear_error(text, message):
    with pytest.raises(ParamError) as error:
        parse_sidecar(text, "speech")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_sidecar_sets_the_query_reference_and_stage_parameters():
    settings = parse_sidecar('{"query": "only the dog", "reference": "dog.clean.wav", "mask": {"threshold": 0.3},'
                             ' "separators": ["audiosep"], "query_params": {}}', "speech")
    assert settings["query"] == "only the dog" and settings["reference"] == "dog.clean.wav"
    assert settings["options"] == {"mask": {"threshold": 0.3}, "separators": ["audiosep"], "query": {}}
    assert parse_sidecar(None, "speech")["query"] == "speech"


# ------------------------------------------------------------------ outputs as a set


@pytest.mark.parametrize("exchange", [True, False])
def test_publish_dir_swaps_a_whole_set(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    final = tmp_path / "results" / "song"
    final.mkdir(parents=True)
    (final / "song.target.wav").write_text("old")
    (final / "song.stale.csv").write_text("old")
    new = tmp_path / "results" / f".song.{uuid.uuid4().hex}.partial"
    new.mkdir()
    (new / "song.target.wav").write_text("new")
    (new / "song.report.json").write_text("new")
    publish_dir(new, final, replace=True)
    assert {p.name: p.read_text() for p in final.iterdir()} == {"song.target.wav": "new", "song.report.json": "new"}
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["song"]  # nothing left beside it


def test_publish_dir_into_a_new_place(tmp_path):
    new = tmp_path / ".x.partial"
    new.mkdir()
    (new / "a").write_text("a")
    publish_dir(new, tmp_path / "x", replace=True)
    assert (tmp_path / "x" / "a").read_text() == "a" and not new.exists()


# ------------------------------------------------------------------ artifact keys


@pytest.mark.parametrize("name", ["café", "Ünïcödé Song", "日本語", "a b", "a-b", "first"])
def test_artifact_keys_are_valid_and_distinct(name):
    key = artifact_key(name)
    assert key and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in key)
    assert artifact_key("a b") != artifact_key("a-b")
    assert artifact_key("first") == "first"


# ------------------------------------------------------------------ the watcher


class FakeClient:
    """What the watcher asks of Prefect: create a run, read runs' states, force a state."""

    def __init__(self):
        self.runs: dict[str, dict] = {}

    def read_deployment_by_name(self, name):
        return SimpleNamespace(id="deployment")

    def create_flow_run_from_deployment(self, deployment_id, idempotency_key, parameters):
        run_id = str(uuid.uuid4())
        self.runs[run_id] = {"state": "SCHEDULED", "parameters": parameters, "key": idempotency_key}
        return SimpleNamespace(id=run_id)

    def read_flow_runs(self, flow_run_filter=None):
        wanted = None
        if flow_run_filter is not None and flow_run_filter.id is not None:
            wanted = {str(i) for i in flow_run_filter.id.any_}
        if flow_run_filter is not None and flow_run_filter.state is not None:
            types = set(flow_run_filter.state.type.any_)
            return [self._run(i) for i, r in self.runs.items() if r["state"] in types]
        return [self._run(i) for i in self.runs if wanted is None or i in wanted]

    def _run(self, run_id):
        return SimpleNamespace(id=run_id, name=run_id[:8],
                               state=SimpleNamespace(type=SimpleNamespace(value=self.runs[run_id]["state"])))

    def set_flow_run_state(self, run_id, state, force=False):
        self.runs[str(run_id)]["state"] = state.type.value


def upload(content="a", sidecar='{"query": "only the dog"}', path="/in/a.wav"):
    return Upload(path, hashlib.sha256(content.encode()).hexdigest(), sidecar)


def test_one_run_per_content_and_query_and_duplicates_are_recorded(tmp_path):
    client, said = FakeClient(), []
    watcher = Watcher(client, tmp_path / "state.json", "/results", "speech", say=said.append)
    watcher.submit(upload())
    watcher.submit(upload(path="/in/again.wav"))  # same content, same query
    watcher.submit(upload())  # the first file seen again after a restart: neither a run nor a record
    watcher.submit(upload(path="/in/again.wav"))  # nor is the duplicate seen again
    watcher.submit(upload(sidecar='{"query": "only the cat"}', path="/in/cat.wav"))  # same content, other query
    assert len(client.runs) == 2
    state = json.loads((tmp_path / "state.json").read_text())
    assert [s["path"] for s in state["skipped"]] == ["/in/again.wav"]
    assert any(record.get("skipped") == "/in/again.wav" for record in said)
    assert upload_key(upload(), "speech") != upload_key(upload(sidecar=None), "speech")


def test_an_upload_is_done_only_when_its_run_ends_and_a_crashed_run_is_queued_again(tmp_path):
    client = FakeClient()
    watcher = Watcher(client, tmp_path / "state.json", "/results", "speech", say=lambda r: None)
    watcher.submit(upload())
    [first] = list(client.runs)
    client.runs[first]["state"] = "RUNNING"
    watcher.follow()
    assert list(watcher.pending().values())[0]["run"] == first
    # serve dies (kill -9): a new watcher over the same state file and server finds the run still "Running"
    restarted = Watcher(client, tmp_path / "state.json", "/results", "speech", say=lambda r: None)
    restarted.recover(every_active_run=True)
    assert client.runs[first]["state"] == "CRASHED"
    restarted.follow()
    [entry] = restarted.pending().values()
    assert entry["run"] != first and entry["attempts"] == 2
    client.runs[entry["run"]]["state"] = "COMPLETED"
    restarted.follow()
    assert restarted.pending() == {} and list(restarted.uploads.values())[0]["state"] == "completed"


def test_a_failed_run_is_final_and_attempts_are_bounded(tmp_path):
    client = FakeClient()
    watcher = Watcher(client, tmp_path / "state.json", "/results", "speech", max_attempts=2, say=lambda r: None)
    watcher.submit(upload())
    watcher.submit(upload(content="b", path="/in/b.wav"))
    first, second = list(client.runs)
    client.runs[first]["state"] = "FAILED"
    client.runs[second]["state"] = "CRASHED"
    watcher.follow()
    third = list(client.runs)[-1]
    client.runs[third]["state"] = "CRASHED"
    watcher.follow()
    assert len(client.runs) == 3 and watcher.pending() == {}
    assert sorted(e["outcome"] for e in watcher.uploads.values()) == ["CRASHED", "FAILED"]


# ------------------------------------------------------------------ serve's own processes


def test_a_restart_kills_what_a_dead_serve_left_and_refuses_a_live_one(tmp_path):
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    try:
        pids = PidFile(tmp_path / "serve.pids")
        pids.add("server", orphan)
        record = json.loads((tmp_path / "serve.pids").read_text())
        record["serve"] = [999999, "0"]  # its serve is gone
        (tmp_path / "serve.pids").write_text(json.dumps(record))
        assert PidFile(tmp_path / "serve.pids").stop_stale() == [f"server (pid {orphan.pid})"]
        assert orphan.wait(10) == -signal.SIGKILL
        live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        try:
            (tmp_path / "serve.pids").write_text(json.dumps({"serve": [live.pid, _start_time(live.pid)],
                                                             "groups": {}}))
            with pytest.raises(Exception, match=f"another eventsep serve \\(pid {live.pid}\\)"):
                PidFile(tmp_path / "serve.pids").stop_stale()
        finally:
            live.kill()
            live.wait()
    finally:
        orphan.kill()
        orphan.wait()


def test_a_spawned_child_dies_with_its_parent(tmp_path):
    """The parent (a stand-in for serve) is killed with SIGKILL; its spawned child must not survive."""
    script = (f"import sys, time; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
              "from deployments.local import spawn\n"
              "child = spawn([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
              "print(child.pid, flush=True); time.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        assert _start_time(child) is not None
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _start_time(child) is not None and \
                Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0] != "Z":
            time.sleep(0.1)
        assert _start_time(child) is None or Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0] == "Z"
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_serve_refuses_a_port_it_did_not_take(tmp_path):
    """A server left on the port by someone else is never attached to."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        env = {**os.environ, "EVENTSEP_CACHE": str(tmp_path / "cache")}
        done = subprocess.run([sys.executable, "-m", "deployments.local", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1])
    assert done.returncode == 1
    assert done.stderr.strip() == (f"eventsep serve: 127.0.0.1:{port} is already in use by a process this serve "
                                   "did not start; stop it or choose another --port")


# ------------------------------------------------------------------ the flows (the session's temporary Prefect server)


def artifact_keys() -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {a.key for a in client.read_artifacts()}


@pytest.mark.slow
def test_upload_flow_publishes_a_set_with_metrics_and_a_bad_sidecar_fails_with_one_line(
        prefect_server, cache_env, mixture, standin_options):
    from flows.upload import separate_upload

    inbox = cache_env / "in"
    write_audio(inbox / "tön.wav", mixture.samples, mixture.sample_rate)
    write_audio(inbox / "tön.clean.wav", mixture.samples, mixture.sample_rate)
    results = cache_env / "results"
    (results / "tön").mkdir(parents=True)
    (results / "tön" / "left.from.before").write_text("old")
    sidecar = json.dumps({"query": "the tone", "reference": "tön.clean.wav", **standin_options})
    summary = separate_upload(str(inbox / "tön.wav"), str(results), sidecar=sidecar)
    assert sorted(p.name for p in (results / "tön").iterdir()) == sorted(Path(p).name for p in summary["outputs"].values())
    assert [p.name for p in results.iterdir()] == ["tön"] and summary["metrics"]
    key = artifact_key("tön")
    assert {f"metrics-{key}", f"events-{key}", f"outputs-{key}"} <= artifact_keys()

    state = separate_upload(str(inbox / "tön.wav"), str(results), sidecar='{"query": "x", "treshold": 1}',
                            return_state=True)
    assert state.is_failed() and state.message.startswith(f"{inbox / 'tön.wav'}: sidecar has unknown key(s) 'treshold'")
    assert f"failed-{key}" in artifact_keys()
    assert (results / "tön" / "tön.target.wav").exists()  # a failed run leaves the previous set alone


@pytest.mark.slow
def test_manifest_run_publishes_its_table_and_metrics(prefect_server, cache_env, mixture, standin_options):
    from flows.upload import rerun_manifest

    write_audio(cache_env / "in" / "a.wav", mixture.samples, mixture.sample_rate)
    manifest = cache_env / "nightly.json"
    manifest.write_text(json.dumps([
        {"audio": str(cache_env / "in" / "a.wav"), "query": "the tone", "reference": str(cache_env / "in" / "a.wav")},
        {"audio": str(cache_env / "in" / "missing.wav"), "query": "the tone"},
        {"bogus": 1}]))
    rows = rerun_manifest(str(manifest), str(cache_env / "results"), pipeline.RunOptions(**standin_options))
    assert [bool(row.get("error")) for row in rows] == [False, True, True]
    assert rows[0]["metrics"] and (cache_env / "results" / "a" / "a.target.wav").exists()
    assert {"manifest-nightly", "metrics-a"} <= artifact_keys()
