"""`eventsep serve` against a real local Prefect server: upload → triggered run → outputs, schedule, re-fuse, stop."""

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

from eventsep.corpus import make_mixture
from eventsep.audio import write_audio

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "accordion_and_speech.flac"

CLIENT = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

async def main(action, argument):
    async with get_client() as client:
        if action == "schedule":
            deployment = await client.read_deployment_by_name("rerun-manifest/scheduled")
            print(json.dumps([s.schedule.cron for s in deployment.schedules]))
        elif action == "states":
            runs = await client.read_flow_runs()
            print(json.dumps([[r.name, r.flow_id.hex, r.state.type.value, r.parameters.get("audio_path")]
                              for r in runs]))
        elif action == "refuse":
            run = await run_deployment("refuse/on-demand", parameters=json.loads(argument), timeout=240)
            print(json.dumps({"state": run.state.type.value, "rows": await run.state.aresult()}))

asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def drop(inbox: Path, source: Path, name: str, query: str | None = None):
    """Arrive the way an upload does: written under a hidden name, then renamed."""
    if query is not None:
        (inbox / f"{name}.json").write_text(json.dumps({"query": query}))
    partial = inbox / f".{name}.partial"
    shutil.copy(source, partial)
    partial.rename(inbox / f"{name}{source.suffix}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"EVENTSEP_CACHE": str(root / "cache"), "PREFECT_HOME": str(root / "prefect-home"),
                "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"})
    log = open(root / "serve.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--port", str(port),
                                "--inbox", str(root / "inbox"), "--results", str(root / "results"), "--poll", "0.5"],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[1])
    wait_for(lambda: '"api"' in (root / "serve.log").read_text(), 180, "server start")
    wait_for(lambda: "being served" in (root / "serve.log").read_text(), 120, "deployments served")

    def client(action, argument=""):
        done = subprocess.run([sys.executable, "-c", CLIENT, action, argument], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    yield {"root": root, "process": process, "client": client, "port": port}
    if process.poll() is None:  # a failed test left it running: stop it as an operator would
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def test_upload_runs_once_with_its_sidecar_query_and_writes_outputs(served):
    root = served["root"]
    drop(root / "inbox", EXAMPLE, "first", query="only the accordion")
    target = root / "results" / "first" / "first.target.wav"
    wait_for(target.exists, 240, "the triggered run's outputs")
    report = json.loads((root / "results" / "first" / "first.report.json").read_text())
    assert report["mapping"]["classes"][0]["name"] == "Accordion"
    drop(root / "inbox", EXAMPLE, "same-content-again")
    time.sleep(5)
    uploads = [line for line in (root / "serve.log").read_text().splitlines() if line.startswith('{"upload"')]
    assert len(uploads) == 1  # the same content dropped twice runs once


def test_a_bad_upload_fails_alone_and_the_watcher_goes_on(served, tmp_path):
    root = served["root"]
    (tmp_path / "broken.wav").write_text("not audio at all")
    drop(root / "inbox", tmp_path / "broken.wav", "broken")
    other = make_mixture(3, seconds=3.0, sample_rate=16000)
    write_audio(tmp_path / "second.flac", other.mixture, other.sample_rate)
    drop(root / "inbox", tmp_path / "second.flac", "second", query=other.prompts[0])
    wait_for((root / "results" / "second" / "second.target.wav").exists, 240, "the second upload's outputs")

    def broken_failed():
        runs = served["client"]("states")
        return any(r[3] and r[3].endswith("broken.wav") and r[2] == "FAILED" for r in runs)

    wait_for(broken_failed, 60, "the broken upload's run failing")


def test_scheduled_deployment_has_its_cron(served):
    assert served["client"]("schedule") == ["0 3 * * *"]


def test_refuse_on_demand_returns_its_grid(served):
    audio = str(served["root"] / "inbox" / "first.flac")
    wait_for((served["root"] / "results" / "first" / "first.target.wav").exists, 240, "first upload")
    grid = [{"mask_mode": m, "threshold": t, "fusion_mode": "rate"} for m in ("hard", "soft") for t in (0.3, 0.6)]
    answer = served["client"]("refuse", json.dumps({"audio_path": audio, "query": "only the accordion",
                                                    "grid": grid}))
    assert answer["state"] == "COMPLETED" and len(answer["rows"]) == 4
    assert {(r["mask_mode"], r["threshold"]) for r in answer["rows"]} == {(g["mask_mode"], g["threshold"])
                                                                           for g in grid}


def test_sigterm_stops_everything(served):
    process = served["process"]
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-f", f"--port {served['port']}|{served['root']}"], capture_output=True,
                               text=True)
    assert process.returncode == 0 and leftovers.stdout == ""
