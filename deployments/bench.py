"""`eventsep bench serve`: how long `eventsep serve` takes to be ready, and from an upload's drop to its
run's start and to its outputs, for one upload and for five dropped at once; printed as a table.

Everything runs in a temporary cache (a fresh Prefect database, an empty result cache) on a free
loopback port, with the model folder of this machine. The uploads are six different 4 s pieces of a
recording, each written under a hidden name and renamed into the inbox (a "drop").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "accordion_and_speech.flac"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(predicate, seconds: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise RuntimeError(f"{what} did not happen within {seconds:.0f} s")


def _run_starts(api_url: str, paths: list[str]) -> dict[str, float]:
    """Wall-clock start time of each upload's first run that reached Running."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        starts = {}
        for run in client.read_flow_runs():
            path = (run.parameters or {}).get("audio_path")
            if path in paths and run.start_time is not None:
                starts[path] = min(starts.get(path, float("inf")), run.start_time.timestamp())
        return starts


def bench(audio: str, window: float, seconds: float = 4.0) -> tuple[list[tuple[str, str, str]], dict]:
    from eventsep.audio import load_audio, write_audio
    from eventsep.settings import settings

    recording = load_audio(audio)
    piece = int(seconds * recording.sample_rate)
    if len(recording.samples) < piece + 5 * recording.sample_rate // 2:
        raise ValueError(f"{audio}: needs at least {seconds + 2.5:g} s for six different pieces")
    with tempfile.TemporaryDirectory(prefix="eventsep-bench-serve-") as folder:
        root = Path(folder)
        clips = []
        hop = (len(recording.samples) - piece) // 5
        for index in range(6):  # six different contents, overlapping
            start = index * hop
            path = root / "clips" / f"clip{index}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_audio(path, recording.samples[start:start + piece], recording.sample_rate)
            clips.append(path)
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update({"EVENTSEP_CACHE": str(root / "cache"), "EVENTSEP_MODELS": str(settings().models_dir),
                    "DO_NOT_TRACK": "1"})
        env.pop("EVENTSEP_RESULTS", None)
        inbox, results, log = root / "inbox", root / "results", root / "serve.log"
        load_before = os.getloadavg()
        launched = time.time()
        process = subprocess.Popen([sys.executable, "-m", "deployments.local", "--port", str(port), "--inbox",
                                    str(inbox), "--results", str(results), "--poll", "0.2", "--window", str(window)],
                                   stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                                   cwd=Path(__file__).resolve().parent.parent)
        try:
            _wait(lambda: '"ready_seconds"' in log.read_text() or process.poll() is not None, 600, "serve ready", 0.2)
            if process.poll() is not None:
                raise RuntimeError(f"serve exited: {log.read_text()[-2000:]}")
            ready = time.time() - launched

            def drop_and_time(chosen: list[Path]) -> list[tuple[float, float]]:
                dropped = {}
                for clip in chosen:
                    hidden = inbox / f".{clip.name}.partial"
                    hidden.write_bytes(clip.read_bytes())
                    hidden.rename(inbox / clip.name)
                    dropped[str(inbox / clip.name)] = time.time()
                outputs = {}

                def all_out():
                    for path in dropped:
                        stem = Path(path).stem
                        if path not in outputs and (results / stem / f"{stem}.target.wav").exists():
                            outputs[path] = time.time()
                    return len(outputs) == len(dropped)

                _wait(all_out, 900, "the outputs", 0.1)
                starts = _run_starts(api_url, list(dropped))
                return [(starts[p] - dropped[p], outputs[p] - dropped[p]) for p in dropped]

            one = drop_and_time(clips[:1])
            five = drop_and_time(clips[1:])
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        load_after = os.getloadavg()

    def spread(values: list[float]) -> str:
        return f"{statistics.mean(values):.1f} mean, {min(values):.1f}–{max(values):.1f}"

    rows = [("launch → ready (fresh database)", f"{ready:.1f}", ""),
            ("drop → run start", f"{one[0][0]:.1f}", spread([s for s, _ in five])),
            ("drop → outputs", f"{one[0][1]:.1f}", spread([o for _, o in five]))]
    facts = {"window_s": window, "cores": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
             "load_after": [round(x, 2) for x in load_after], "clip_s": seconds}
    return rows, facts


def format_table(rows, facts) -> str:
    lines = [f"eventsep serve, {facts['cores']} cores, window {facts['window_s']:g} s, {facts['clip_s']:g} s clips, "
             f"load average {facts['load_before']} before, {facts['load_after']} after", "",
             "| seconds | one upload | five at once |", "|---|---:|---:|"]
    lines += [f"| {what} | {one} | {five} |" for what, one, five in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eventsep bench serve")
    parser.add_argument("--audio", default=str(EXAMPLE), help="recording cut into the uploads (at least 6.5 s)")
    parser.add_argument("--window", type=float, default=5.0, help="serve's stability window (its default: 5 s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows, facts = bench(args.audio, args.window)
    print(json.dumps({"rows": rows, **facts}) if args.json else format_table(rows, facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
