"""`eventsep serve` against a real local Prefect server (one per module, started from a fresh cache): the
schedule fires, uploads run once with their sidecar, bad ones fail alone with one line, kill -9 and SIGTERM
leave no process behind and lose no upload, and a server that cannot start shows its log."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventsep.audio import write_audio
from eventsep.corpus import make_mixture

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "accordion_and_speech.flac"
CLEAN = ROOT / "examples" / "accordion_and_speech.target.flac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def drop(inbox: Path, source: Path, name: str, sidecar: dict | str | None = None, sidecar_after: float = 0.0):
    """Arrive the way an upload does (written under a hidden name, then renamed); the sidecar, if any,
    `sidecar_after` seconds after the audio."""
    partial = inbox / f".{name}.partial"
    shutil.copy(source, partial)
    partial.rename(inbox / f"{name}{source.suffix}")
    if sidecar is not None:
        time.sleep(sidecar_after)
        (inbox / f"{name}.json").write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
    return str(inbox / f"{name}{source.suffix}")


def alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class Serve:
    """One `eventsep serve` of the module's cache; start() again after a stop or kill is a restart."""

    def __init__(self, root: Path):
        self.root, self.port, self.starts = root, free_port(), 0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        self.env.update({"EVENTSEP_CACHE": str(root / "cache"), "PREFECT_HOME": str(root / "prefect-home"),
                         "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
        self.process = None
        self.url = f"http://127.0.0.1:{self.port}/api"

    def start(self, *extra):
        self.starts += 1
        self.log = self.root / f"serve-{self.starts}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", "--port", str(self.port), "--inbox", str(self.root / "inbox"),
             "--results", str(self.root / "results"), "--poll", "0.3", "--window", "1.5", "--give-up", "5", *extra],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        return self

    def ready(self, seconds=300):
        wait_for(lambda: '"ready_seconds"' in self.log.read_text() or self.process.poll() is not None, seconds,
                 "serve ready")
        assert self.process.poll() is None, self.log.read_text()[-3000:]

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def groups(self) -> list[int]:
        return [pgid for pgid, _ in json.loads((self.root / "cache" / "prefect" / "serve.pids").read_text())
                ["groups"].values()]

    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        class Scoped:
            def __enter__(inner):
                inner.settings = temporary_settings(updates={PREFECT_API_URL: self.url})
                inner.settings.__enter__()
                inner.client = get_client(sync_client=True).__enter__()
                return inner.client

            def __exit__(inner, *exc):
                inner.client.__exit__(*exc)
                inner.settings.__exit__(*exc)

        return Scoped()

    def runs_of(self, audio_path: str) -> list:
        with self.client() as client:
            return [r for r in client.read_flow_runs() if r.parameters.get("audio_path") == audio_path]

    def run_state(self, audio_path: str) -> set[str]:
        return {r.state.type.value for r in self.runs_of(audio_path)}

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    (root / "inbox").mkdir()
    serve = Serve(root).start("--every", "4")  # a fresh cache: <cache>/prefect does not exist yet
    broken = Serve(root / "broken")
    broken.env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{root}/missing/folder/prefect.db"
    (root / "broken").mkdir()
    broken.start()
    try:
        serve.ready()
        yield serve, broken
    finally:
        for each in (serve, broken):
            each.stop()
        for pids in root.rglob("serve.pids"):  # whatever a failed test left
            for pgid, _ in json.loads(pids.read_text())["groups"].values():
                if alive(pgid):
                    os.killpg(pgid, signal.SIGKILL)


def test_a_fresh_cache_works_and_the_server_log_is_kept(served):
    serve, _ = served
    log = serve.root / "cache" / "prefect" / "server.log"
    assert "--- eventsep serve" in log.read_text() and "Check out the dashboard" in log.read_text()


def test_a_server_that_cannot_start_shows_the_end_of_its_log(served):
    _, broken = served
    assert broken.process.wait(240) == 1
    output = broken.log.read_text()
    assert "the Prefect server exited" in output and "unable to open database file" in output
    assert str(broken.root / "cache" / "prefect" / "server.log") in output


def test_the_schedule_fires(served):
    serve, _ = served
    with serve.client() as client:
        deployment = client.read_deployment_by_name("rerun-manifest/scheduled")

        def completed():
            runs = client.read_flow_runs()
            return len([r for r in runs if r.deployment_id == deployment.id and r.state.type.value == "COMPLETED"
                        and r.auto_scheduled]) >= 2

        try:
            wait_for(completed, 180, "two scheduled runs completing")
        finally:  # the rest of the module needs the runner: no backlog of scheduled ("Late") runs
            client.pause_deployment(deployment.id)
            for run in client.read_flow_runs():
                if run.deployment_id == deployment.id and run.state.type.value == "SCHEDULED":
                    client.delete_flow_run(run.id)


def test_an_upload_runs_once_with_its_late_sidecar_and_publishes_artifacts(served):
    serve, _ = served
    inbox = serve.root / "inbox"
    path = drop(inbox, EXAMPLE, "café", {"query": "only the accordion", "reference": str(CLEAN)}, sidecar_after=0.6)
    target = serve.root / "results" / "café" / "café.target.wav"
    wait_for(target.exists, 400, "the upload's outputs")
    report = json.loads((serve.root / "results" / "café" / "café.report.json").read_text())
    assert report["mapping"]["classes"][0]["name"] == "Accordion"  # the sidecar's query, not the default
    wait_for(lambda: serve.run_state(path) == {"COMPLETED"}, 60, "the run completing")
    from flows.artifacts import artifact_key

    with serve.client() as client:
        keys = {a.key for a in client.read_artifacts()}
    key = artifact_key("café")
    assert {f"metrics-{key}", f"events-{key}", f"outputs-{key}"} <= keys
    again = drop(inbox, EXAMPLE, "again", {"query": "only the accordion", "reference": str(CLEAN)})
    wait_for(lambda: any(r.get("skipped") == again for r in serve.records()), 30, "the duplicate skipped")
    state = json.loads((serve.root / "cache" / "inbox-state.json").read_text())
    assert [s["same_as"] for s in state["skipped"] if s["path"] == again] == [path]
    assert serve.runs_of(again) == []


def test_upload_runs_never_exceed_the_limit(served):
    """serve's default limit is one run per core (2 here): three uploads dropped at once never run three at a time."""
    serve, _ = served
    inbox = serve.root / "inbox"
    queries = ("only the accordion", "keep the man speaking", "remove the accordion")
    paths = [drop(inbox, EXAMPLE, f"limit{i}", {"query": query}) for i, query in enumerate(queries)]
    wait_for(lambda: all(serve.run_state(path) == {"COMPLETED"} for path in paths), 600, "the three runs")
    spans = [(run.start_time, run.end_time) for path in paths for run in serve.runs_of(path)]
    assert len(spans) == 3 and all(start and end for start, end in spans)
    busiest = max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)
    assert busiest <= (os.cpu_count() or 1), spans


def test_bad_sidecars_and_bad_audio_fail_alone_with_one_line(served, tmp_path):
    serve, _ = served
    inbox = serve.root / "inbox"
    other = make_mixture(3, seconds=3.0, sample_rate=16000)
    write_audio(tmp_path / "mix.flac", other.mixture, other.sample_rate)
    (tmp_path / "broken.wav").write_text("not audio at all")
    cases = {drop(inbox, tmp_path / "mix.flac", "typo", {"querry": "only the dog"}): "unknown key(s) 'querry'",
             drop(inbox, tmp_path / "mix.flac", "notjson", "{query: dog"): "sidecar is not valid JSON",
             drop(inbox, tmp_path / "broken.wav", "broken"): "not an audio file"}
    for path, message in cases.items():
        wait_for(lambda: serve.run_state(path) == {"FAILED"}, 300, f"{path} failing")
        [run] = serve.runs_of(path)

        def lines():  # the run's logs reach the server a moment after its final state
            from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

            with serve.client() as client:
                logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
            return [log.message for log in logs if log.message.startswith(f"{path}: ")]

        [line] = wait_for(lines, 30, f"the log line of {path}")
        assert message in line and "\n" not in line
        assert message in run.state.message and "\n" not in run.state.message


def drop_and_wait_until_running(serve: Serve, tmp_path: Path, seed: int, name: str):
    """Drop a corpus mixture with its prompt; once its run is Running: its path, its run, serve's groups."""
    other = make_mixture(seed, seconds=3.0, sample_rate=16000)
    write_audio(tmp_path / f"{name}.flac", other.mixture, other.sample_rate)
    path = drop(serve.root / "inbox", tmp_path / f"{name}.flac", name, {"query": other.prompts[0]})
    wait_for(lambda: "RUNNING" in serve.run_state(path), 300, "the upload's run starting")
    [run] = serve.runs_of(path)
    return path, run, serve.groups()


def test_kill_9_of_serve_leaves_nothing_and_its_upload_runs_again(served, tmp_path):
    serve, _ = served
    path, first, groups = drop_and_wait_until_running(serve, tmp_path, 5, "crash")
    serve.process.kill()
    serve.process.wait()
    wait_for(lambda: not any(alive(g) for g in groups), 20, "the server and runner groups ending")
    serve.start()  # a restart on the same cache and port: nothing left to attach to
    serve.ready()
    wait_for(lambda: "COMPLETED" in serve.run_state(path), 400, "the upload's new run completing")
    assert (serve.root / "results" / "crash" / "crash.target.wav").exists()
    runs = {str(r.id): r.state.type.value for r in serve.runs_of(path)}
    assert runs[str(first.id)] == "CRASHED" and sorted(runs.values()).count("COMPLETED") == 1
    wait_for(lambda: any(r.get("done") == path for r in serve.records()), 30, "the upload marked done")
    state = json.loads((serve.root / "cache" / "inbox-state.json").read_text())
    [entry] = [e for e in state["uploads"].values() if e["path"] == path]
    assert entry["state"] == "completed" and entry["attempts"] == 2


def test_sigterm_stops_everything_and_the_interrupted_upload_stays_queued(served, tmp_path):
    serve, _ = served
    path, run, groups = drop_and_wait_until_running(serve, tmp_path, 6, "term")
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(60) == 0
    assert not any(alive(g) for g in groups)
    assert {"crashed": str(run.id), "name": run.name} in serve.records()  # marked while the server still ran
    state = json.loads((serve.root / "cache" / "inbox-state.json").read_text())
    [entry] = [e for e in state["uploads"].values() if e["path"] == path]
    assert entry["state"] == "pending"  # not done: the next start queues it again (as after kill -9)
