"""Idle-connection flood against both servers while real clients use them (issue 27).

    .venv/bin/python benchmarks/bench_server_flood.py                 # this checkout
    .venv/bin/python benchmarks/bench_server_flood.py --repo ../main  # another checkout (before)

The server runs as its own process (`phosphene experiment serve` on a model-free demo stimulus
set, `phosphene report serve` on a small folder), started from ``--repo``. This process opens
``--idle`` TCP connections that send nothing and ``--slow`` that trickle one header byte every
2 s (slowloris), then runs ``--participants`` participants at once, each with its own connection
pool: the page, its script and style, a new session, every trial's stimulus images and answer
(for the report server: every file of the site, ``--rounds`` times). Printed: failed client requests
(any exception or status other than 200/201), answers acknowledged vs stored (the admin export),
how many flood sockets the server had closed 5, 15 and 30 s after they opened, wall time and
the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ADMIN = "flood-admin-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(repo: Path, args: list[str], port: int, cwd: Path) -> subprocess.Popen:
    """``phosphene ARGS --port PORT`` from ``repo`` (run in ``cwd``: ``python -c`` puts the current
    folder first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(repo), "PHOSPHENE_ADMIN_TOKEN": ADMIN}
    process = subprocess.Popen([sys.executable, "-c", "from phosphene.cli import main; main()", *args,
                                "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=cwd)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                raise SystemExit(process.stderr.read()[-2000:]) from None
            time.sleep(0.2)
    raise SystemExit("the server did not start")


class Flood:
    """Idle and slowloris sockets; counts the ones the server has closed."""

    def __init__(self, port: int, idle: int, slow: int):
        self.sockets: list[socket.socket] = []
        self.opened = time.monotonic()
        for i in range(idle + slow):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i >= idle:
                sock.sendall(b"GET / HTTP/1.1\r\n")
            sock.setblocking(False)
            self.sockets.append(sock)
        self.slow = self.sockets[idle:]
        self.closed_at: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        last_trickle = time.monotonic()
        while not self._stop.is_set():
            for i, sock in enumerate(self.sockets):
                if i in self.closed_at:
                    continue
                try:
                    if sock.recv(65536) == b"":
                        self.closed_at[i] = time.monotonic() - self.opened
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed_at[i] = time.monotonic() - self.opened
            if time.monotonic() - last_trickle > 2:
                for sock in self.slow:
                    try:
                        sock.send(b"X")
                    except OSError:
                        pass
                last_trickle = time.monotonic()
            time.sleep(0.2)

    def closed_by(self, seconds: float) -> int:
        return sum(t <= seconds for t in self.closed_at.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def participant(url: str, number: int) -> dict:
    """One participant through the whole experiment; counts of failed and acknowledged requests."""
    failed, acknowledged, requests = 0, [], 0
    with httpx.Client(base_url=url, timeout=60) as client:
        def call(method, path, **kw):
            nonlocal failed, requests
            requests += 1
            try:
                response = client.request(method, path, **kw)
            except httpx.HTTPError as exc:
                failed += 1
                print(f"participant {number}: {method} {path}: {type(exc).__name__}", file=sys.stderr)
                return None
            if response.status_code not in (200, 201):
                failed += 1
                print(f"participant {number}: {method} {path}: {response.status_code}", file=sys.stderr)
                return None
            return response

        for path in ("/", "/app.js", "/style.css"):
            call("GET", path)
        created = call("POST", "/api/sessions", json={"consent": True})
        if created is None:
            return {"failed": failed, "requests": requests, "acknowledged": acknowledged}
        body = created.json()
        session, headers = body["session"], {"Authorization": f"Bearer {body['token']}"}
        state = call("GET", f"/api/sessions/{session}", headers=headers)
        for item in state.json()["items"] if state is not None else []:
            for row in item["references"] + item["queries"]:
                for image in row:
                    call("GET", f"/stimuli/{image}")
            answer = call("POST", f"/api/sessions/{session}/responses", headers=headers,
                          json={"trial": item["index"], "assignment": [0, 1, 2], "rt_ms": 900.0,
                                "response_id": f"p{number}t{item['index']}"})
            if answer is not None:
                acknowledged.append((session, item["index"]))
    return {"failed": failed, "requests": requests, "acknowledged": acknowledged}


def reader(url: str, files: list[str], rounds: int, number: int) -> dict:
    failed = requests = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(rounds):
            for path in files:
                requests += 1
                try:
                    ok = client.get(path).status_code == 200
                except httpx.HTTPError:
                    ok = False
                failed += not ok
    return {"failed": failed, "requests": requests, "acknowledged": []}


def experiment_server(repo: Path, folder: Path, args) -> tuple[list[str], callable]:
    sys.path.insert(0, str(repo))
    from phosphene.psychophysics.stimuli import demo_stimuli

    demo_stimuli(folder / "stimuli", size=16)
    command = ["experiment", "serve", str(folder / "stimuli"), "--db", str(folder / "r.sqlite"),
               "--trials-per-condition", "1", "--images-per-unit", "1,3"]
    return command, lambda url, n: participant(url, n)


def report_site(folder: Path, args) -> tuple[list[str], callable]:
    site = folder / "site"
    (site / "static").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>site</title><p>report</p>")
    (site / "static" / "report.css").write_text("body { margin: 0 }\n" * 50)
    (site / "static" / "image.png").write_bytes(os.urandom(40_000))
    files = ["/", "/index.html", "/static/report.css", "/static/image.png"]
    return ["report", "serve", str(site)], lambda url, n: reader(url, files, args.rounds, n)


def run(server: str, args) -> dict:
    repo = Path(args.repo).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        command, client = (experiment_server(repo, folder, args) if server == "experiment"
                           else report_site(folder, args))
        port = free_port()
        process = start(repo, command, port, folder)
        url = f"http://127.0.0.1:{port}"
        try:
            flood = Flood(port, args.idle, args.slow)
            started = time.monotonic()
            with ThreadPoolExecutor(args.participants) as pool:
                results = list(pool.map(lambda n: client(url, n), range(args.participants)))
            seconds = time.monotonic() - started
            time.sleep(max(0.0, 31 - (time.monotonic() - flood.opened)))
            closed = {s: flood.closed_by(s) for s in (5, 15, 30)}
            flood.close()
            stored = None
            if server == "experiment":
                export = httpx.get(url + "/api/admin/export.csv", timeout=60,
                                   headers={"Authorization": f"Bearer {ADMIN}"}).text
                stored = len(export.strip().splitlines()) - 1
        finally:
            process.terminate()
            process.wait(30)
    return {"server": server, "idle": args.idle, "slow": args.slow, "participants": args.participants,
            "requests": sum(r["requests"] for r in results),
            "failed": sum(r["failed"] for r in results),
            "acknowledged": sum(len(r["acknowledged"]) for r in results), "stored": stored,
            "flood_closed_by_5_15_30_s": list(closed.values()), "seconds": round(seconds, 1),
            "loadavg": open("/proc/loadavg").read().split()[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--server", choices=["experiment", "report", "both"], default="both")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=0)
    parser.add_argument("--participants", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="report server: passes over the files")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for server in (["experiment", "report"] if args.server == "both" else [args.server]):
        print(json.dumps(run(server, args)), flush=True)


if __name__ == "__main__":
    main()
