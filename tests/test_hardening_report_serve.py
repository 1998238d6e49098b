"""`phosphene report serve` serves regular files inside the site and nothing else, and keeps serving
through idle, trickling and FIFO-reading connections."""

from __future__ import annotations

import os
import resource
import socket
import time

import pytest
from click.testing import CliRunner

from phosphene.cli.app import main
from phosphene.report.httpd import ServerLimits
from phosphene.report.serve import background

MARKER = b"OUTSIDE-MARKER-7f3a"
QUICK = ServerLimits(header_timeout_s=1.0, write_timeout_s=1.0, reply_timeout_s=2.0)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    site, outside = root / "site", root / "outside"
    (site / "sub").mkdir(parents=True)
    (site / "empty").mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(MARKER)
    (site / "index.html").write_text("<!doctype html><p>the site</p>")
    (site / "sub" / "index.html").write_text("<p>sub page</p>")
    (site / "own.txt").write_text("own file")
    os.symlink("/etc/passwd", site / "passwd")
    os.symlink(outside / "secret.txt", site / "outside-file")
    os.symlink(outside, site / "outside-dir")
    os.symlink(site / "own.txt", site / "inside-link.txt")
    os.mkfifo(site / "fifo")
    return site


@pytest.fixture(scope="module")
def url(site):
    with background(site, QUICK) as url:
        yield url


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def get(url: str, target: bytes) -> bytes:
    """The raw reply to ``GET target`` (the target sent as is, no client-side normalization)."""
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize("target", [
    b"/passwd", b"/outside-file", b"/outside-dir/secret.txt", b"/outside-dir/", b"/../outside/secret.txt",
    b"/%2e%2e/outside/secret.txt", b"/%2E%2E%2Foutside%2Fsecret.txt", b"/..%2f..%2fetc%2fpasswd",
    b"/..\\..\\etc\\passwd", b"//etc/passwd", b"/a%00b", b"/%00", b"/own.txt%00.png", b"/fifo",
    b"/empty/", b"/%ff%fe", b"/" + b"a/" * 3000,
])
def test_nothing_outside_the_site_and_no_special_file_is_served(url, target):
    reply = get(url, target)
    assert status(reply) == 404 and MARKER not in reply and b"root:" not in reply
    assert b"Directory listing" not in reply


def test_regular_files_folders_and_inside_links_are_served(url):
    assert b"the site" in get(url, b"/") and b"the site" in get(url, b"/index.html")
    assert get(url, b"/own.txt").endswith(b"own file")
    assert get(url, b"/inside-link.txt").endswith(b"own file")  # a link that stays inside is fine
    moved = get(url, b"/sub")
    assert status(moved) == 301 and b"Location: /sub/\r\n" in moved
    assert b"sub page" in get(url, b"/sub/")


def test_replies_carry_security_headers_and_no_python_version(url):
    head = get(url, b"/").split(b"\r\n\r\n")[0].decode()
    assert "Server: phosphene\r\n" in head and "Python" not in head
    for header in ("Content-Security-Policy: default-src 'self'", "X-Content-Type-Options: nosniff",
                   "Referrer-Policy: no-referrer"):
        assert header in head


def test_silent_and_trickling_connections_are_closed_after_the_header_deadline(url):
    silent = socket.create_connection(("127.0.0.1", port_of(url)))
    trickling = socket.create_connection(("127.0.0.1", port_of(url)))
    trickling.sendall(b"GET / HTTP/1.1\r\n")
    started = time.monotonic()
    with pytest.raises(OSError):
        while time.monotonic() - started < 10:
            trickling.sendall(b"X")
            time.sleep(0.2)
    silent.settimeout(5)
    assert silent.recv(10) == b""
    assert time.monotonic() - started < QUICK.header_timeout_s + 3
    silent.close()
    trickling.close()


def test_a_thousand_idle_connections_do_not_stop_the_site(site):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2600:
        pytest.skip("needs 2,600 open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(4096, hard)), hard))
    with background(site, ServerLimits(max_connections=600)) as url:
        idle = [socket.create_connection(("127.0.0.1", port_of(url))) for _ in range(1000)]
        try:
            replies = [get(url, b"/own.txt") for _ in range(20)]
        finally:
            for sock in idle:
                sock.close()
    assert all(reply.endswith(b"own file") for reply in replies)


def test_a_fifo_being_read_does_not_hold_a_worker(site):
    with background(site, ServerLimits(threads=1)) as url:
        assert status(get(url, b"/fifo")) == 404
        assert get(url, b"/own.txt").endswith(b"own file")


def test_bad_host_and_busy_port_are_one_line(site):
    runner = CliRunner()
    result = runner.invoke(main, ["report", "serve", str(site), "--host", "999.1.1.1"])
    assert result.exit_code == 2 and "cannot listen on 999.1.1.1" in result.output
    assert "Traceback" not in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = runner.invoke(main, ["report", "serve", str(site), "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 2 and "cannot listen on 127.0.0.1" in result.output
