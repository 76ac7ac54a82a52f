import json
import os
import subprocess
import sys
import threading
import time

from eventsep.locks import OwnedFileLockManager

KEY = "k" * 64


def test_second_holder_waits_until_release(tmp_path):
    locks = OwnedFileLockManager(tmp_path)
    assert locks.acquire_lock(KEY, "one")
    assert locks.is_locked(KEY) and locks.is_lock_holder(KEY, "one")
    assert not locks.acquire_lock(KEY, "two", acquire_timeout=0.2)
    threading.Timer(0.2, locks.release_lock, args=(KEY, "one")).start()
    assert locks.acquire_lock(KEY, "two", acquire_timeout=5)
    assert locks.is_lock_holder(KEY, "two")


def test_lock_file_is_complete_json_when_visible(tmp_path):
    locks = OwnedFileLockManager(tmp_path)
    locks.acquire_lock(KEY, "one")
    info = json.loads((tmp_path / f"{KEY}.lock").read_text())
    assert info["holder"] == "one" and info["pid"] == os.getpid()


def test_lock_of_killed_process_is_freed(tmp_path):
    script = (f"from eventsep.locks import OwnedFileLockManager; import time\n"
              f"OwnedFileLockManager({str(tmp_path)!r}).acquire_lock({KEY!r}, 'victim')\n"
              f"print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    locks = OwnedFileLockManager(tmp_path)
    assert locks.is_locked(KEY)
    child.kill()
    child.wait()
    started = time.monotonic()
    assert locks.acquire_lock(KEY, "survivor", acquire_timeout=5)
    assert time.monotonic() - started < 2


def test_expired_hold_is_freed(tmp_path):
    locks = OwnedFileLockManager(tmp_path)
    locks.acquire_lock(KEY, "one", hold_timeout=0.1)
    time.sleep(0.2)
    assert not locks.is_locked(KEY)
    assert locks.acquire_lock(KEY, "two", acquire_timeout=1)
