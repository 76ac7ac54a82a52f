"""Prefect's temporary server for a command-line run: started from the main thread, dying with this process.

Without `PREFECT_API_URL`, Prefect starts a temporary ("ephemeral") API server as a subprocess on
first use and stops it at exit; a process killed with SIGKILL left it running (about 230 MB). Here
its `Popen` gets `eventsep.procs.die_with_parent`, and it is started at once from the main thread,
because the kernel's parent-death signal follows the thread that started the child.
"""

from __future__ import annotations

import subprocess
from typing import Any

from eventsep.procs import die_with_parent


class _SubprocessDyingWithUs:
    """The `subprocess` module as Prefect's server module sees it, except that `Popen` children die with us."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:  # noqa: N802 - the name Prefect calls
        kwargs.setdefault("preexec_fn", die_with_parent())
        return subprocess.Popen(*args, **kwargs)


def start_temporary_server() -> str | None:
    """Start the temporary server now unless an API URL is set; returns its API address (None if not ours)."""
    from prefect.server.api import server
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    server.subprocess = _SubprocessDyingWithUs()
    temporary = server.SubprocessASGIServer()  # the instance Prefect's clients will find and reuse
    temporary.start()
    return temporary.api_url
