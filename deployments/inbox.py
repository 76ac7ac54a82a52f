"""The upload inbox: finds audio files that have finished arriving in a folder (local or any fsspec URL).

An upload is taken once it and its sidecar `<name>.json` have kept the same size and modification
time for `window` seconds (longer than a slow writer's pause; a sidecar written after the audio
within the window restarts it) *and* the whole file decodes. A file that stays undecodable for
`give_up` seconds is handed out with its problem, so that its run fails with that one line. Hidden
files (a writer's `.name.partial`) are ignored. Which contents already ran is the watcher's business
(deployments/watcher.py); the inbox hands out each (path, size, mtime) once per process.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import fsspec

from eventsep.audio import AudioError, check_whole

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass(frozen=True)
class Upload:
    path: str  # as the flow run will open it (a local path or an fsspec URL)
    sha256: str  # of the audio's bytes
    sidecar: str | None  # the sidecar's text, None without one
    problem: str | None = None  # why the file is not whole audio (its run fails with it)


class Inbox:
    def __init__(self, url: str, window: float = 5.0, give_up: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.url = url.rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.url)
        self.window, self.give_up, self.clock = window, max(give_up, window), clock
        self._since: dict[str, tuple[tuple, float]] = {}  # path -> (stamp, when that stamp was first seen)
        self._handed: dict[str, tuple] = {}  # path -> stamp handed out
        self._checked: dict[str, tuple] = {}  # path -> (stamp, sha256, problem or None)

    def _full(self, path: str) -> str:
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return path if protocol == "file" else f"{protocol}://{path}"

    def _problem(self, path: str, blob: bytes) -> str | None:
        """None when the whole file decodes, else the one-line reason."""
        try:
            if self._full(path) == path:
                check_whole(path)
            else:  # a remote upload: check the bytes already fetched
                with tempfile.NamedTemporaryFile(suffix="." + path.rsplit(".", 1)[-1]) as local:
                    local.write(blob)
                    local.flush()
                    check_whole(local.name)
        except AudioError as error:
            return error.problem
        return None

    def poll(self) -> list[Upload]:
        """Uploads that have just become whole (and stable with their sidecar) since the last poll."""
        try:
            entries = {e["name"]: e for e in self.fs.ls(self.base, detail=True)}
        except FileNotFoundError:
            return []
        now = self.clock()
        ready = []
        for path, entry in sorted(entries.items()):
            name = path.rsplit("/", 1)[-1]
            if entry.get("type") != "file" or name.startswith(".") or not name.lower().endswith(AUDIO_SUFFIXES):
                continue
            sidecar_path = path.rsplit(".", 1)[0] + ".json"
            sidecar = entries.get(sidecar_path)
            stamp = tuple((e.get("size"), e.get("mtime") or e.get("LastModified") or e.get("created"))
                          if e else None for e in (entry, sidecar))
            previous, since = self._since.get(path, (None, now))
            if previous != stamp:
                self._since[path] = (stamp, now)
                continue
            if now - since < self.window or self._handed.get(path) == stamp:
                continue
            checked = self._checked.get(path)
            if checked is None or checked[0] != stamp:  # decode each stamp once, not on every poll
                blob = self.fs.cat_file(path)
                checked = self._checked[path] = (stamp, hashlib.sha256(blob).hexdigest(), self._problem(path, blob))
            _, digest, problem = checked
            if problem and now - since < self.give_up:
                continue  # still arriving (or bad): wait for a change or for give_up
            text = self.fs.cat_file(sidecar_path).decode("utf-8", "replace") if sidecar else None
            self._handed[path] = stamp
            ready.append(Upload(self._full(path), digest, text, problem))
        for gone in set(self._since) - set(entries):
            self._since.pop(gone, None)
            self._handed.pop(gone, None)
            self._checked.pop(gone, None)
        return ready
