"""Per-key file locks whose owner is recorded, so a lock left by a killed process is recognised and freed.

It has the method set of Prefect's lock-manager protocol (acquire/release/is_locked/wait, sync and
async) without importing Prefect. Compared with Prefect's own file lock manager it (1) publishes a
lock file only once its contents are complete (hard link of a finished temporary file), so readers
never see a half-written lock, and (2) treats a lock whose owning process on this host is gone, or
whose hold time has passed, as free.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from pathlib import Path

POLL_SECONDS = 0.05


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OwnedFileLockManager:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.host = socket.gethostname()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.lock"

    def _read(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            # Only possible for a lock written by another tool; never by this class.
            return {"holder": "?", "host": self.host, "pid": -1, "expires": None}

    def _is_stale(self, info: dict) -> bool:
        expires = info.get("expires")
        if expires is not None and expires < time.time():
            return True
        return info.get("host") == self.host and not _process_alive(int(info.get("pid", -1)))

    def _break(self, key: str, seen: dict) -> None:
        # Remove the stale lock only if it is still the one we judged stale.
        if self._read(key) == seen:
            self._path(key).unlink(missing_ok=True)

    def _try_acquire(self, key: str, holder: str, hold_timeout: float | None) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        info = {"holder": holder, "host": self.host, "pid": os.getpid(), "created": time.time(),
                "expires": time.time() + hold_timeout if hold_timeout else None}
        temporary = self.directory / f".{key}.{uuid.uuid4().hex}.tmp"
        temporary.write_text(json.dumps(info))
        try:
            os.link(temporary, self._path(key))
            return True
        except FileExistsError:
            current = self._read(key)
            if current is None:
                return False
            if current.get("holder") == holder:
                return True
            if self._is_stale(current):
                self._break(key, current)
            return False
        finally:
            temporary.unlink(missing_ok=True)

    def acquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                     hold_timeout: float | None = None) -> bool:
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        while not self._try_acquire(key, holder, hold_timeout):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True

    async def aacquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                            hold_timeout: float | None = None) -> bool:
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        while not self._try_acquire(key, holder, hold_timeout):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

    def release_lock(self, key: str, holder: str) -> None:
        info = self._read(key)
        if info is None:
            raise ValueError(f"No lock for transaction with key {key}")
        if info.get("holder") != holder:
            raise ValueError(f"No lock held by {holder} for transaction with key {key}")
        self._path(key).unlink(missing_ok=True)

    def is_locked(self, key: str, use_cache: bool = False) -> bool:
        info = self._read(key)
        if info is None:
            return False
        if self._is_stale(info):
            self._break(key, info)
            return False
        return True

    def is_lock_holder(self, key: str, holder: str) -> bool:
        info = self._read(key)
        return info is not None and not self._is_stale(info) and info.get("holder") == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_locked(key):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_locked(key):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True
