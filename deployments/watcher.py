"""Turns whole uploads into flow runs of separate-upload/on-upload, one per (content, settings), and
follows each run to its end: an upload is done only when its run completed (or failed on its own
input); a run that crashed or was cancelled (serve stopped or killed) is queued again.

Its state — every upload key with its run and outcome, and every skipped duplicate — is a JSON file
written atomically after each change.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

from eventsep.atomic import write_text
from eventsep.config import ParamError
from eventsep.sidecar import parse_sidecar

from .inbox import Upload

UPLOAD_DEPLOYMENT = "separate-upload/on-upload"
ACTIVE = ("SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED")
REQUEUE = ("CRASHED", "CANCELLED")


def upload_key(upload: Upload, default_query: str) -> str:
    """The content's sha256 and the settings it runs with (query, reference, stage parameters)."""
    try:
        settings = json.dumps(parse_sidecar(upload.sidecar, default_query), sort_keys=True)
    except ParamError:
        settings = "invalid sidecar: " + (upload.sidecar or "")
    return f"{upload.sha256[:32]}-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"


class Watcher:
    def __init__(self, client, state_file: str | Path, results_dir: str, default_query: str,
                 max_attempts: int = 3, say: Callable[[dict], None] = print):
        self.client, self.state_file = client, Path(state_file)
        self.results_dir, self.default_query, self.max_attempts, self.say = results_dir, default_query, \
            max_attempts, say
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        if "uploads" not in state:  # the first format: {sha256: path} of uploads handed out
            state = {"uploads": {}, "skipped": []}
        self.state = state
        self._deployment_id = None

    @property
    def uploads(self) -> dict[str, dict]:
        return self.state["uploads"]

    def _save(self) -> None:
        write_text(self.state_file, json.dumps(self.state, indent=1, sort_keys=True))

    def _deployment(self):
        if self._deployment_id is None:
            self._deployment_id = self.client.read_deployment_by_name(UPLOAD_DEPLOYMENT).id
        return self._deployment_id

    def _start(self, key: str, entry: dict) -> None:
        entry["attempts"] = entry.get("attempts", 0) + 1
        run = self.client.create_flow_run_from_deployment(
            self._deployment(), idempotency_key=f"{key}-{entry['attempts']}",
            parameters={"audio_path": entry["path"], "results_dir": self.results_dir, "sidecar": entry["sidecar"],
                        "default_query": self.default_query, "problem": entry["problem"]})
        entry.update(run=str(run.id), state="pending", started=time.time())
        self._save()
        self.say({"upload": entry["path"], "run": str(run.id), "attempt": entry["attempts"]})

    def submit(self, upload: Upload) -> None:
        """Start a run for a new (content, settings) key; log and record a duplicate instead."""
        key = upload_key(upload, self.default_query)
        known = self.uploads.get(key)
        if known is not None and (known["path"] == upload.path or any(
                s["path"] == upload.path and s["key"] == key for s in self.state["skipped"])):
            return  # the same file seen again (serve restarted and scanned the inbox): not a new drop
        if known is not None:
            record = {"path": upload.path, "same_as": known["path"], "key": key, "outcome": known["state"],
                      "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            self.state["skipped"].append(record)
            self._save()
            self.say({"skipped": upload.path, "same_as": known["path"], "outcome": known["state"]})
            return
        entry = self.uploads[key] = {"path": upload.path, "sha256": upload.sha256, "sidecar": upload.sidecar,
                                     "problem": upload.problem}
        self._start(key, entry)

    def pending(self) -> dict[str, dict]:
        return {k: e for k, e in self.uploads.items() if e.get("state") == "pending"}

    def _run_states(self, ids: list[str]) -> dict[str, str]:
        runs = self.client.read_flow_runs(flow_run_filter=self._id_filter(ids))
        return {str(run.id): run.state.type.value if run.state else "SCHEDULED" for run in runs}

    def follow(self) -> None:
        """Mark finished runs' uploads done (completed or failed); queue crashed or cancelled ones again."""
        pending = self.pending()
        if not pending:
            return
        states = self._run_states([entry["run"] for entry in pending.values()])
        for key, entry in pending.items():
            state = states.get(entry["run"], "CRASHED")  # a run the server no longer knows is lost
            if state in ACTIVE:
                continue
            if state in REQUEUE and entry["attempts"] < self.max_attempts:
                self.say({"requeued": entry["path"], "run": entry["run"], "state": state})
                self._start(key, entry)
                continue
            entry.update(state="completed" if state == "COMPLETED" else "failed", finished=time.time(),
                         outcome=state)
            self._save()
            self.say({"done": entry["path"], "run": entry["run"], "state": state})

    def recover(self, every_active_run: bool) -> None:
        """At start, before any runner is up: runs still marked active were left by a process that is gone.
        Mark them crashed (all of the server's when this serve owns it, else this watcher's own) so that
        `follow` queues their uploads again."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
        from prefect.states import Crashed

        if every_active_run:
            runs = self.client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PENDING", "RUNNING", "CANCELLING"]))))
        else:
            ids = [entry["run"] for entry in self.pending().values()]
            runs = [run for run in self.client.read_flow_runs(flow_run_filter=self._id_filter(ids))
                    if run.state and run.state.type.value in ("PENDING", "RUNNING", "CANCELLING")] if ids else []
        for run in runs:
            self.client.set_flow_run_state(run.id, Crashed(message="left running by an eventsep serve that ended"),
                                           force=True)
            self.say({"crashed": str(run.id), "name": run.name})

    @staticmethod
    def _id_filter(ids: list[str]):
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        return FlowRunFilter(id=FlowRunFilterId(any_=ids))
