"""The served deployments: separate on upload, re-run a manifest on a schedule, re-fuse on demand.

`python -m deployments.serve --results DIR --manifest FILE [--cron "0 3 * * *" | --every SECONDS]`
serves them from this process (no work pool needed; each run is a subprocess in this process's group),
at most `--limit` runs at once. Started by `eventsep serve` (deployments/local.py) in a process group of
its own: when that parent goes away, even by kill -9, this process kills its whole group, runs included.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from datetime import timedelta

from flows.refuse import refuse_flow
from flows.upload import rerun_manifest, separate_upload


def build(results_dir: str, manifest: str, cron: str | None = None, every: float | None = None) -> list:
    """The three deployments. Uploads get their runs from the inbox watcher (deployments/watcher.py), which
    follows each run to its end, rather than from an event trigger it could not follow."""
    on_upload = separate_upload.to_deployment("on-upload", parameters={"results_dir": results_dir})
    schedule = {"interval": timedelta(seconds=every)} if every else {"cron": cron or "0 3 * * *"}
    nightly = rerun_manifest.to_deployment("scheduled", parameters={"manifest": manifest, "results_dir": results_dir},
                                           **schedule)
    refuse = refuse_flow.to_deployment("on-demand")
    return [on_upload, nightly, refuse]


def die_with_parent(poll: float = 0.5) -> None:
    """Kill this process group (this runner and its run subprocesses) as soon as the parent is gone."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve")
    parser.add_argument("--results", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--cron", default="0 3 * * *")
    parser.add_argument("--every", type=float, help="seconds between manifest runs (instead of --cron)")
    parser.add_argument("--limit", type=int, default=os.cpu_count() or 1, help="runs at once (default: one per core)")
    parser.add_argument("--die-with-parent", action="store_true")
    args = parser.parse_args(argv)
    if args.die_with_parent:
        die_with_parent()
    from prefect import serve

    serve(*build(args.results, args.manifest, args.cron, args.every), limit=args.limit)


if __name__ == "__main__":
    main()
