"""Atomic file publication: a reader of the path sees the old file or the whole new one, never a part."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_file(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; when the block ends without error the file is flushed
    to disk and renamed onto `path`, otherwise it is removed. `suffix` ends the temporary name, for writers
    that append their own (`np.save` adds `.npy` to a name without it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial{suffix}")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes(path: str | Path, blob: bytes) -> Path:
    with atomic_file(path) as temporary:
        temporary.write_bytes(blob)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


_RENAME_EXCHANGE = 2  # renameat2 flag (Linux 3.15+): swap two paths in one step


def _exchange(first: Path, second: Path) -> bool:
    """Swap two directory entries atomically; False where the system cannot (then the caller falls back)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), _RENAME_EXCHANGE) == 0


def publish_dir(temporary: str | Path, final: str | Path) -> Path:
    """Publish the folder `temporary` (complete, written beside `final`) as `final`, as a set: a reader of
    `final` sees the old folder or the whole new one. An existing `final` is swapped out in one step
    (renameat2 RENAME_EXCHANGE) and then removed; without that call it is moved aside first, so `final`
    is missing for an instant but never partly new."""
    import shutil

    temporary, final = Path(temporary), Path(final)
    for path in temporary.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    if not final.exists():
        os.rename(temporary, final)
        return final
    if not _exchange(temporary, final):
        aside = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
        os.rename(final, aside)
        os.rename(temporary, final)
        temporary = aside
    shutil.rmtree(temporary, ignore_errors=True)
    return final
