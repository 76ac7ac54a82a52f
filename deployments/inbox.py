"""The upload inbox: finds audio files that have finished arriving in a folder (local or any fsspec URL).

A file counts as arrived once its size and modification time stay the same over `settle_polls`
consecutive polls; hidden and partial files are ignored. Each distinct content (sha256) is handed
out once, so the same upload dropped twice runs once; what was handed out is remembered in a
state file, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import fsspec

from eventsep.atomic import write_text

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class Upload:
    path: str
    sha256: str
    query: str


class Inbox:
    def __init__(self, url: str, state_file: str | os.PathLike, default_query: str, settle_polls: int = 2):
        self.url = url.rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.url)
        self.state_file = Path(state_file)
        self.default_query = default_query
        self.settle_polls = settle_polls
        self._sightings: dict[str, tuple[tuple, int]] = {}
        self.seen: dict[str, str] = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _full(self, path: str) -> str:
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return path if protocol == "file" else f"{protocol}://{path}"

    def _remember(self, digest: str, path: str) -> None:
        self.seen[digest] = path
        write_text(self.state_file, json.dumps(self.seen, indent=1))

    def query_for(self, path: str) -> str:
        """The query of a sidecar `<name>.json` ({"query": ...}) next to the upload, else the default."""
        sidecar = path.rsplit(".", 1)[0] + ".json"
        try:
            return str(json.loads(self.fs.cat_file(sidecar))["query"])
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            return self.default_query

    def poll(self) -> list[Upload]:
        """Uploads that have just finished arriving and whose content was never handed out before."""
        try:
            entries = self.fs.ls(self.base, detail=True)
        except FileNotFoundError:
            return []
        ready = []
        for entry in entries:
            path = entry["name"]
            name = path.rsplit("/", 1)[-1]
            if entry.get("type") != "file" or name.startswith(".") or not name.lower().endswith(AUDIO_SUFFIXES):
                continue
            stamp = (entry.get("size"), entry.get("mtime") or entry.get("LastModified") or entry.get("created"))
            previous, count = self._sightings.get(path, (None, 0))
            count = count + 1 if previous == stamp else 1
            self._sightings[path] = (stamp, count)
            if count != self.settle_polls:
                continue
            digest = hashlib.sha256(self.fs.cat_file(path)).hexdigest()
            if digest in self.seen:
                continue
            ready.append(Upload(self._full(path), digest, self.query_for(path)))
            self._remember(digest, self._full(path))
        return ready
