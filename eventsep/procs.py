"""Processes that end with their parent: children that die with it (Linux), and a prompt exit on Ctrl-C/SIGTERM.

No Prefect here: the flows and deployments use these for the Prefect servers they start.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from typing import Callable

PR_SET_PDEATHSIG = 1
MESSAGES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen`: the child gets `sig` when this process dies, `kill -9`
    included (Linux `prctl(PR_SET_PDEATHSIG)`). The kernel ties it to the *thread* that starts the
    child, so call this from the main thread; elsewhere (or off Linux) it returns None and the child
    is on its own."""
    if threading.current_thread() is not threading.main_thread() or not os.path.exists("/proc/self"):
        return None
    parent = os.getpid()

    def arm() -> None:  # runs in the child between fork and exec
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return arm


def children(pid: int | None = None) -> list[int]:
    """Process ids whose parent is `pid` (default: this process), from /proc."""
    pid = os.getpid() if pid is None else pid
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue
            # the name (field 2) may hold spaces and parentheses: fields after the last ')' are plain
            if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


_exiting = threading.Lock()


def _exit_now(signum: int) -> None:
    """One line, children told to stop, and out at once (no atexit, no joining of worker threads: results
    and locks are written to survive exactly this)."""
    if not _exiting.acquire(blocking=False):
        return
    name = MESSAGES.get(signum, signal.Signals(signum).name)
    os.write(2, f"eventsep: {name}\n".encode())
    for child in children():
        try:
            os.kill(child, signal.SIGTERM)
        except OSError:
            pass
    os._exit(128 + signum)


def exit_promptly_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """From now on `signals` end this process within moments, with one line on stderr and exit code 128 +
    the signal number (130 for Ctrl-C, 143 for SIGTERM), however busy the main thread is and whatever
    Python handler a library installs later: the interpreter writes each signal to a wakeup pipe that a
    thread of ours reads. Call it from the main thread of a program, never of a test process."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    for signum in signals:
        signal.signal(signum, lambda number, _frame: _exit_now(number))

    def watch() -> None:
        while True:
            for number in os.read(read, 64):
                if number in signals:
                    _exit_now(number)

    threading.Thread(target=watch, name="eventsep-signals", daemon=True).start()
