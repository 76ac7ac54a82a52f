"""`eventsep serve`: one machine's whole setup — a Prefect server on loopback, the served deployments,
and the inbox watcher — started together and stopped together on Ctrl-C or SIGTERM.

`serve` owns its processes: the server and the runner each run in a process group of their own that
dies with `serve` (the server by a parent-death signal, the runner by killing its group, its runs
included), their group ids are kept in `<cache>/prefect/serve.pids`, and a start first kills whatever
a previous `serve` of this cache left, then refuses a port that something else answers on: it never
attaches to an orphan. The server's log is `<cache>/prefect/server.log`; when the server does not
start, its last lines are shown. At start, runs left active by a process that is gone are marked
crashed and their uploads queued again.

With `--api-url` it joins an existing Prefect server instead of starting one. Nothing listens beyond
127.0.0.1 unless `--host` says so.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

class ServeError(RuntimeError):
    """serve cannot start; the message is for the operator."""


def spawn(command: list[str], die_with_parent: bool = True, **kwargs) -> subprocess.Popen:
    """A child in a process group of its own (so that the group can be killed whole); with
    `die_with_parent` the kernel sends it SIGKILL when this process ends, however it ends. (The runner
    does not take that signal: it watches for this process itself and then kills its group, its runs
    included, which a SIGKILL of the runner alone would leave behind.)"""
    from eventsep.procs import die_with_parent as parent_death_signal

    return subprocess.Popen(command, start_new_session=True, env=os.environ,
                            preexec_fn=parent_death_signal() if die_with_parent else None, **kwargs)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} was not written)"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return None


def kill_group(pgid: int, wait: float = 5.0) -> None:
    """SIGKILL every process of the group and wait (at most `wait` seconds) until none is left: a killed
    member lingers until it is reaped, and serve must not exit while any of its groups still exists."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the group's leader, give it `grace` seconds, then SIGKILL whatever is left of its group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    kill_group(process.pid)
    process.wait()


class PidFile:
    """The process groups this serve started, so that the next start can stop any that outlived it."""

    def __init__(self, path: Path):
        self.path = path
        self.groups: dict[str, list] = {}

    def stop_stale(self) -> list[str]:
        """Kill the groups a previous serve of this cache left; refuse if that serve still runs."""
        if not self.path.exists():
            return []
        try:
            previous = json.loads(self.path.read_text())
        except ValueError:
            previous = {}
        owner, owner_started = previous.get("serve", [None, None])
        if owner and owner != os.getpid() and _start_time(owner) == owner_started:
            raise ServeError(f"another eventsep serve (pid {owner}) uses this cache; stop it first")
        stopped = []
        for name, (pgid, started) in previous.get("groups", {}).items():
            if _start_time(pgid) == started:
                kill_group(pgid)
                stopped.append(f"{name} (pid {pgid})")
        self.path.unlink(missing_ok=True)
        return stopped

    def add(self, name: str, process: subprocess.Popen) -> None:
        from eventsep.atomic import write_text

        self.groups[name] = [process.pid, _start_time(process.pid)]
        write_text(self.path, json.dumps({"serve": [os.getpid(), _start_time(os.getpid())], "groups": self.groups}))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2):
            return True
    except OSError:
        return False


def port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, port)) == 0


def wait_for_server(url: str, server: subprocess.Popen | None, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(url):
            return
        if server is not None and server.poll() is not None:
            raise ServeError(f"the Prefect server exited with code {server.returncode}; the end of {log}:\n"
                             f"{tail(log)}")
        time.sleep(0.5)
    end = f"; the end of {log}:\n{tail(log)}" if server is not None else ""
    raise ServeError(f"no Prefect server answered at {url} within {seconds:.0f} s{end}")


def wait_for_deployment(client, runner: subprocess.Popen, since: float, seconds: float = 180) -> None:
    """Until this runner polls for the upload deployment's runs (the deployment may exist from before)."""
    from deployments.watcher import UPLOAD_DEPLOYMENT

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if runner.poll() is not None:
            raise ServeError(f"the served deployments exited with code {runner.returncode} (see its output above)")
        try:
            polled = client.read_deployment_by_name(UPLOAD_DEPLOYMENT).last_polled
        except Exception:  # noqa: BLE001 - not registered yet
            polled = None
        if polled is not None and polled.timestamp() >= since:
            return
        time.sleep(0.3)
    raise ServeError(f"the deployments were not served within {seconds:.0f} s")


def parse_args(argv: list[str] | None):
    from eventsep.settings import settings

    cache = settings().cache_dir
    parser = argparse.ArgumentParser(prog="eventsep serve")
    parser.add_argument("--inbox", default=str(cache / "inbox"))
    parser.add_argument("--results", default=str(cache / "uploads"))
    parser.add_argument("--manifest", default=str(cache / "manifest.json"))
    parser.add_argument("--cron", default="0 3 * * *", help="schedule of the manifest re-run")
    parser.add_argument("--every", type=float, help="re-run the manifest every this many seconds instead of --cron")
    parser.add_argument("--query", default="speech", help="query of an upload without a sidecar JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--api-url", help="use this Prefect server instead of starting one")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between inbox scans")
    parser.add_argument("--window", type=float, default=5.0,
                        help="seconds an upload and its sidecar must stay unchanged before it is taken")
    parser.add_argument("--give-up", type=float, default=60.0,
                        help="seconds after which an upload that still does not decode fails its run")
    parser.add_argument("--limit", type=int, default=os.cpu_count() or 1,
                        help="runs at once (default: one per core)")
    return parser.parse_args(argv), cache


def environment(api_url: str, cache: Path) -> None:
    os.environ.update({"PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    os.environ.setdefault("PREFECT_HOME", str(cache / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # The scheduler creates a schedule's runs on its loop (60 s by default): a new deployment's first
    # runs would wait that long.
    os.environ.setdefault("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", "5")


def say(record: dict) -> None:
    print(json.dumps(record), flush=True)


def main(argv: list[str] | None = None) -> int:
    args, cache = parse_args(argv)
    started = time.monotonic()
    home = cache / "prefect"
    home.mkdir(parents=True, exist_ok=True)  # SQLite cannot create its folder: a fresh cache failed here
    api_url = args.api_url or f"http://{args.host}:{args.port}/api"
    environment(api_url, cache)
    if "://" not in args.inbox:
        Path(args.inbox).mkdir(parents=True, exist_ok=True)
    manifest = Path(args.manifest)
    if "://" not in args.manifest and not manifest.exists():
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text("[]")

    stopping = {"now": False}

    def request_stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    pids = PidFile(home / "serve.pids")
    server = runner = None
    server_log = home / "server.log"
    try:
        for stale in pids.stop_stale():
            say({"stopped_stale": stale})
        if not args.api_url:
            if port_taken(args.host, args.port):
                raise ServeError(f"{args.host}:{args.port} is already in use by a process this serve did not "
                                 f"start; stop it or choose another --port")
            with open(server_log, "a") as log:
                log.write(f"--- eventsep serve {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
                log.flush()
                server = spawn([sys.executable, "-m", "prefect", "server", "start", "--host", args.host,
                                "--port", str(args.port)], stdout=log, stderr=subprocess.STDOUT)
            pids.add("server", server)
        wait_for_server(api_url, server, server_log, 180)

        from prefect.client.orchestration import get_client

        from deployments.inbox import Inbox
        from deployments.watcher import Watcher

        with get_client(sync_client=True) as client:
            watcher = Watcher(client, cache / "inbox-state.json", args.results, args.query, say=say)
            watcher.recover(every_active_run=not args.api_url)
            schedule = ["--every", str(args.every)] if args.every else ["--cron", args.cron]
            runner_started = time.time()
            runner = spawn([sys.executable, "-m", "deployments.serve", "--results", args.results, "--manifest",
                            args.manifest, *schedule, "--limit", str(args.limit), "--die-with-parent"],
                           die_with_parent=False)
            pids.add("runner", runner)
            try:
                wait_for_deployment(client, runner, runner_started)
                inbox = Inbox(args.inbox, window=args.window, give_up=args.give_up)
                say({"api": api_url, "inbox": args.inbox, "results": args.results,
                     "ready_seconds": round(time.monotonic() - started, 2)})
                while not stopping["now"]:
                    watcher.follow()
                    for upload in inbox.poll():
                        watcher.submit(upload)
                    if runner.poll() is not None:
                        raise ServeError("the served deployments stopped")
                    if server is not None and server.poll() is not None:
                        raise ServeError(f"the Prefect server stopped; the end of {server_log}:\n{tail(server_log)}")
                    time.sleep(args.poll)
            finally:
                # Prefect 3.8.8's runner does not cancel its runs on SIGTERM (its handler never awaits its own
                # stop): kill its group, runs included, and mark the runs it left as crashed while the server
                # still answers; their uploads run again at the next start.
                kill_group(runner.pid)
                runner.wait()
                if server is None or server.poll() is None:
                    try:
                        watcher.recover(every_active_run=not args.api_url)
                    except Exception as error:  # noqa: BLE001 - the next start does it then
                        say({"warning": f"could not mark the interrupted runs crashed: {error}"})
    except ServeError as error:
        print(f"eventsep serve: {error}", file=sys.stderr)
        return 1
    finally:
        if runner is not None:
            stop(runner)
        if server is not None:
            stop(server)
        pids.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
