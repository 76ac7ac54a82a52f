"""Time how fast a signal ends `python3 -m flows.cli separate` on the default (Prefect) path, and whether
its temporary Prefect server outlives it: `python3 scripts/measure_signals.py int|term|kill [SECONDS]`
(SECONDS: how long to let the flow run after the server answers; default 3)."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from eventsep.procs import children  # noqa: E402


def main() -> None:
    sig = {"int": signal.SIGINT, "term": signal.SIGTERM, "kill": signal.SIGKILL}[sys.argv[1]]
    settle = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    folder = tempfile.mkdtemp(prefix="eventsep-signals-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EVENTSEP_"))}
    env.update(EVENTSEP_CACHE=f"{folder}/cache", PREFECT_HOME=f"{folder}/prefect")
    cli = subprocess.Popen([sys.executable, "-m", "flows.cli", "separate", "examples/accordion_and_speech.flac",
                            "only the accordion", "-o", f"{folder}/out"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    server = None
    while server is None:
        server = next((c for c in children(cli.pid)
                       if b"create_app" in Path(f"/proc/{c}/cmdline").read_bytes()), None)
        time.sleep(0.05)
    arguments = Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")
    port = arguments[arguments.index(b"--port") + 1].decode()
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    time.sleep(settle)
    sent = time.monotonic()
    cli.send_signal(sig)
    _, err = cli.communicate()
    ended = time.monotonic() - sent
    time.sleep(1.0)
    stat = Path(f"/proc/{server}/stat").read_text() if Path(f"/proc/{server}").exists() else ""
    server_alive = bool(stat) and stat[stat.rindex(")") + 2] != "Z"
    print(f"signal {sig.name}: exit {cli.returncode} after {ended:.2f} s; stderr {err.decode().strip()!r}; "
          f"temporary server {'STILL RUNNING' if server_alive else 'gone'} 1 s later")


if __name__ == "__main__":
    main()
