"""Atomic file publication: a reader of the path sees the old file or the whole new one, never a part.
`publish_dir` does the same for a folder of files written together (a run's outputs, an upload's results).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
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


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where the OS cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM):  # not supported by this file system
        return False
    raise OSError(code, os.strerror(code), str(first))


def publish_dir(tmp_dir: str | Path, final_dir: str | Path, *, replace: bool = False) -> Path:
    """Move everything written in `tmp_dir` (complete, on the same file system) into `final_dir` as a set.

    When `final_dir` does not exist, `tmp_dir` is renamed to it: one atomic step. When it exists,
    `replace=True` swaps the two folders in one step where the OS can (else moves the old one aside
    first) and deletes the old contents; `replace=False` renames each entry of `tmp_dir` onto its name
    in `final_dir` (each rename atomic; entries `tmp_dir` lacks stay) and removes `tmp_dir`. A writer
    that fails before calling this leaves `final_dir` as it was.
    """
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    for path in tmp_dir.rglob("*"):  # durable before it becomes visible
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    if not final_dir.exists():
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp_dir, final_dir)
            return final_dir
        except OSError as error:  # another writer made it meanwhile
            if not final_dir.is_dir() or error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    elif not final_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(final_dir))
    if replace:
        old = final_dir.with_name(f".{final_dir.name}.{uuid.uuid4().hex}.old")
        if _exchange(tmp_dir, final_dir):
            old = tmp_dir
        else:
            os.rename(final_dir, old)
            os.rename(tmp_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)
        return final_dir
    for entry in sorted(tmp_dir.iterdir()):
        os.replace(entry, final_dir / entry.name)
    tmp_dir.rmdir()
    return final_dir


@contextmanager
def atomic_dir(final_dir: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a new temporary folder to write a set of files into; when the block ends without error they
    are published into `final_dir` with `publish_dir`, otherwise the folder is removed and `final_dir`
    is untouched. The folder lies inside an existing `final_dir` (merging) or beside it."""
    final_dir = Path(final_dir)
    inside = final_dir.is_dir() and not replace
    parent = final_dir if inside else final_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    temporary = parent / f".{final_dir.name}.{uuid.uuid4().hex}.partial"
    temporary.mkdir()
    try:
        yield temporary
        publish_dir(temporary, final_dir, replace=replace)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
