"""`eventsep serve`: one machine's whole setup — a Prefect server on loopback, the served deployments,
and the inbox watcher — started together and stopped together on Ctrl-C or SIGTERM.

With `--api-url` it joins an existing Prefect server instead of starting one. The server's
SQLite database lives under `<cache>/prefect`. Nothing listens beyond 127.0.0.1 unless `--host`
says so.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"no Prefect server answered at {url} within {seconds:.0f} s")


def stop(process: subprocess.Popen | None, grace: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    from eventsep.settings import settings

    parser = argparse.ArgumentParser(prog="eventsep serve")
    parser.add_argument("--inbox", default=str(settings().cache_dir / "inbox"))
    parser.add_argument("--results", default=str(settings().cache_dir / "uploads"))
    parser.add_argument("--manifest", default=str(settings().cache_dir / "manifest.json"))
    parser.add_argument("--cron", default="0 3 * * *")
    parser.add_argument("--query", default="speech", help="query of an upload without a sidecar JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--api-url", help="use this Prefect server instead of starting one")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between inbox scans")
    args = parser.parse_args(argv)

    cache = settings().cache_dir
    api_url = args.api_url or f"http://{args.host}:{args.port}/api"
    os.environ.update({"PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    os.environ.setdefault("PREFECT_HOME", str(cache / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    Path(args.inbox).mkdir(parents=True, exist_ok=True) if "://" not in args.inbox else None
    manifest = Path(args.manifest)
    if "://" not in args.manifest and not manifest.exists():
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text("[]")

    stopping = {"now": False}

    def request_stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = served = None
    try:
        if not args.api_url:
            server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", args.host,
                                       "--port", str(args.port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
        wait_for(api_url, 180)
        served = subprocess.Popen([sys.executable, "-m", "deployments.serve", "--results", args.results,
                                   "--manifest", args.manifest, "--cron", args.cron], env=os.environ)
        from prefect.events import emit_event

        from deployments.inbox import Inbox
        from deployments.serve import UPLOAD_EVENT

        inbox = Inbox(args.inbox, cache / "inbox-state.json", args.query)
        print(json.dumps({"api": api_url, "inbox": args.inbox, "results": args.results}), flush=True)
        while not stopping["now"]:
            for upload in inbox.poll():
                emit_event(UPLOAD_EVENT, resource={"prefect.resource.id": f"eventsep.upload.{upload.sha256[:16]}",
                                                   "eventsep.path": upload.path, "eventsep.query": upload.query})
                print(json.dumps({"upload": upload.path, "query": upload.query}), flush=True)
            if served.poll() is not None:
                raise RuntimeError("the served deployments stopped")
            time.sleep(args.poll)
    finally:
        stop(served)
        stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
