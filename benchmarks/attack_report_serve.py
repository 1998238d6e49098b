"""Path attacks on `phosphene report serve` (issue 27): nothing from outside the site may come back.

    .venv/bin/python benchmarks/attack_report_serve.py                 # this checkout
    .venv/bin/python benchmarks/attack_report_serve.py --repo ../main  # another checkout (before)

A site folder gets planted symbolic links (to a file and to a folder outside it, to /etc/passwd),
a FIFO and a file of its own; an outside folder holds a file with a marker. Raw requests (no
client-side normalization) try ``..``, ``%2e%2e``, ``%2f``, backslashes, NUL bytes, the links, the
FIFO and listings; then idle sockets and a FIFO request are left open while the page is fetched
again. Printed per request: status line, whether the marker or ``root:`` came back; in the end how
many replies carried outside content, listings or a Python version, and whether the server still
serves.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKER = b"OUTSIDE-MARKER-7f3a"
TARGETS = [b"/", b"/index.html", b"/own.txt", b"/passwd", b"/outside-file", b"/outside-dir/",
           b"/outside-dir/secret.txt", b"/../outside/secret.txt", b"/%2e%2e/outside/secret.txt",
           b"/%2E%2E%2Foutside%2Fsecret.txt", b"/..%2f..%2f..%2fetc%2fpasswd", b"/..\\..\\etc\\passwd",
           b"/..%5c..%5cetc%5cpasswd", b"//etc/passwd", b"/a%00b", b"/%00", b"/own.txt%00.png",
           b"/fifo", b"/sub", b"/sub/", b"/empty-dir/", b"/%ff%fe", b"/" + b"a/" * 3000]


def plant(root: Path) -> Path:
    site, outside = root / "site", root / "outside"
    (site / "sub").mkdir(parents=True)
    (site / "empty-dir").mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(MARKER + b"\n")
    (site / "index.html").write_text("<!doctype html><p>the site</p>")
    (site / "own.txt").write_text("own file\n")
    (site / "sub" / "index.html").write_text("<p>sub</p>")
    os.symlink("/etc/passwd", site / "passwd")
    os.symlink(outside / "secret.txt", site / "outside-file")
    os.symlink(outside, site / "outside-dir")
    os.mkfifo(site / "fifo")
    return site


def request(port: int, target: bytes, timeout: float = 15.0) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data
    except OSError as exc:
        return f"(no reply: {type(exc).__name__})".encode()


def wait_for(server: subprocess.Popen, port: int, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if server.poll() is not None:
                raise SystemExit(server.stderr.read()[-2000:]) from None
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        site = plant(Path(tmp))
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        env = {**os.environ, "PYTHONPATH": str(Path(args.repo).resolve())}
        server = subprocess.Popen([sys.executable, "-c", "from phosphene.cli import main; main()",
                                   "report", "serve", str(site), "--port", str(port)], env=env,
                                  cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(server, port)
            leaks = listings = versions = 0
            for target in TARGETS:
                reply = request(port, target)
                head = reply.split(b"\r\n\r\n")[0]
                leaked = MARKER in reply or b"root:" in reply
                listed = b"Directory listing" in reply
                leaks, listings = leaks + leaked, listings + listed
                versions += b"Python/" in head
                status = head.split(b"\r\n")[0].decode(errors="replace")
                print(f"{target[:48]!r:52} {status:34} outside={leaked} listing={listed}")
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
            fifo = socket.create_connection(("127.0.0.1", port))
            fifo.sendall(b"GET /fifo HTTP/1.1\r\n\r\n")
            alive = request(port, b"/").startswith(b"HTTP/1.") and b"the site" in request(port, b"/")
            for sock in idle + [fifo]:
                sock.close()
        finally:
            server.terminate()
            server.wait(10)
        tracebacks = server.stderr.read().count("Traceback")
    print(json.dumps({"requests": len(TARGETS), "outside_content": leaks, "listings": listings,
                      "python_version_in_server_header": versions, "tracebacks": tracebacks,
                      "serves_after_idle_and_fifo": alive}))


if __name__ == "__main__":
    main()
