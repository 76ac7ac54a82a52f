"""The served deployments: separate on upload (event trigger), re-run a manifest on a schedule, re-fuse on demand.

`python -m deployments.serve --results DIR --manifest FILE --cron "0 3 * * *"` serves them from
this process (no work pool needed; each run is a subprocess). `eventsep serve` starts this, a
local Prefect server and the inbox watcher together.
"""

from __future__ import annotations

import argparse

from prefect import serve
from prefect.events import DeploymentEventTrigger

from flows.refuse import refuse_flow
from flows.upload import rerun_manifest, separate_upload

UPLOAD_EVENT = "eventsep.upload.created"


def build(results_dir: str, manifest: str, cron: str) -> list:
    on_upload = separate_upload.to_deployment(
        "on-upload", parameters={"results_dir": results_dir},
        triggers=[DeploymentEventTrigger(
            expect={UPLOAD_EVENT}, match={"prefect.resource.id": "eventsep.upload.*"},
            parameters={"audio_path": "{{ event.resource['eventsep.path'] }}",
                        "query": "{{ event.resource['eventsep.query'] }}",
                        "results_dir": results_dir})])
    nightly = rerun_manifest.to_deployment("scheduled", cron=cron,
                                           parameters={"manifest": manifest, "results_dir": results_dir})
    refuse = refuse_flow.to_deployment("on-demand")
    return [on_upload, nightly, refuse]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve")
    parser.add_argument("--results", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--cron", default="0 3 * * *")
    args = parser.parse_args(argv)
    serve(*build(args.results, args.manifest, args.cron))


if __name__ == "__main__":
    main()
