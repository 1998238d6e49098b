"""The experiment server rejects every malformed request with a 4xx (never a 5xx), limits what one
client may cost, sends security headers and stores nothing about the participant's browser."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phosphene.cli.app import main
from phosphene.psychophysics.connections import ConnectionLimits
from phosphene.psychophysics.guard import BodyLimit, RateLimit
from phosphene.psychophysics.server import Limits, background_server, create_app
from phosphene.psychophysics.stimuli import demo_stimuli
from phosphene.psychophysics.storage import ExperimentDB

ADMIN = "admin-token-for-tests-0123456789"
FIELDS = ("trial", "assignment", "rt_ms", "response_id", "consent")


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    return demo_stimuli(tmp_path_factory.mktemp("stimuli"), size=16)


@pytest.fixture(scope="module")
def app(stimuli, tmp_path_factory):
    return create_app(stimuli, tmp_path_factory.mktemp("db") / "r.sqlite", ADMIN,
                      trials_per_condition=1, images_per_unit=(1, 3))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def session(client):
    body = client.post("/api/sessions", json={"consent": True}).json()
    return body["session"], {"Authorization": f"Bearer {body['token']}"}


def submit(client, session, content: bytes):
    sid, headers = session
    return client.post(f"/api/sessions/{sid}/responses", content=content,
                       headers={**headers, "content-type": "application/json"})


@pytest.mark.parametrize("body", [
    b'{"trial": 0, "assignment": [0, 1, 2], "rt_ms": NaN, "response_id": "a"}',
    b'{"trial": 0, "assignment": [0, 1, 2], "rt_ms": Infinity, "response_id": "a"}',
    b'{"trial": 1e400, "assignment": [0, 1, 2], "rt_ms": 5, "response_id": "a"}',
    b'{"trial": true, "assignment": [0, 1, 2], "rt_ms": 5, "response_id": "a"}',
    b'{"trial": "0", "assignment": [0, 1, 2], "rt_ms": 5, "response_id": "a"}',
    b'{"trial": 0, "assignment": [0, 1, 2], "rt_ms": "800", "response_id": "a"}',
    b'{"trial": 0, "assignment": [true, 1, 2], "rt_ms": 5, "response_id": "a"}',
    b'{"trial": 0.5, "assignment": [0, 1, 2], "rt_ms": 5, "response_id": "a"}',
    b'[' * 5000 + b']' * 5000,
    b'\xff\xfe not json',
])
def test_non_finite_and_coerced_values_are_422(client, session, body):
    response = submit(client, session, body)
    assert 400 <= response.status_code < 500, response.text
    assert ExperimentDB(client.app.state.db.path).responses(session[0]) == []


def test_strict_consent_and_integral_rt_is_fine(client, session):
    for consent in ("yes", 1, "true"):
        assert client.post("/api/sessions", json={"consent": consent}).status_code == 422
    ok = submit(client, session, b'{"trial": 0, "assignment": [0, 1, 2], "rt_ms": 800, '
                                 b'"response_id": "a"}')
    assert ok.status_code == 201  # an integer reaction time is a valid float


def test_nul_byte_and_odd_stimulus_paths_are_4xx(client):
    for path in ("/stimuli/a%00b.png", "/stimuli/%00", "/stimuli/images/%00/../x.png",
                 "/stimuli/" + "a/" * 2000):
        assert 400 <= client.get(path).status_code < 500


def test_security_headers_and_no_store_on_token_replies(client):
    page = client.get("/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    created = client.post("/api/sessions", json={"consent": True})
    assert created.headers["cache-control"] == "no-store"


def test_user_agent_is_not_stored(client):
    body = client.post("/api/sessions", json={"consent": True},
                       headers={"User-Agent": "Secret Browser 1.0"}).json()
    with client.app.state.db.connect() as db:
        stored = db.execute("SELECT user_agent FROM sessions WHERE id = ?", (body["session"],)).fetchone()
    assert stored[0] is None


def test_large_body_is_413_before_parsing(client, session):
    huge = json.dumps({"trial": 0, "assignment": list(range(3_000_000)), "rt_ms": 1,
                       "response_id": "a"}).encode()
    assert submit(client, session, huge).status_code == 413


def test_slow_body_is_408():
    async def app(scope, receive, send):  # never reached
        raise AssertionError

    sent = []

    async def receive():
        await asyncio.sleep(5)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": [(b"content-length", b"100")]}
    asyncio.run(BodyLimit(app, max_bytes=1000, timeout_s=0.2)(scope, receive, send))
    assert sent[0]["status"] == 408


def test_session_rate_limit_and_open_session_cap(stimuli, tmp_path):
    limited = create_app(stimuli, tmp_path / "r.sqlite", ADMIN, trials_per_condition=1,
                         images_per_unit=(1, 3), limits=Limits(sessions_per_client=3,
                                                               max_open_sessions=100))
    with TestClient(limited) as client:
        codes = [client.post("/api/sessions", json={"consent": True}).status_code for _ in range(5)]
        assert codes == [201, 201, 201, 429, 429]
    capped = create_app(stimuli, tmp_path / "r2.sqlite", ADMIN, trials_per_condition=1,
                        images_per_unit=(1, 3), limits=Limits(max_open_sessions=2))
    with TestClient(capped) as client:
        codes = [client.post("/api/sessions", json={"consent": True}).status_code for _ in range(3)]
        assert codes == [201, 201, 503]
        summary = client.get("/api/admin/summary", headers={"Authorization": f"Bearer {ADMIN}"})
        assert summary.json()["orphaned_sessions"] == 2
    limiter = RateLimit(2, 0.05)
    assert [limiter.allow("a") == 0 for _ in range(3)] == [True, True, False]


def test_real_server_sends_no_server_header(app):
    with background_server(app) as url:
        response = httpx.get(url + "/")
    assert "server" not in response.headers and "content-security-policy" in response.headers


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=6))
def test_fuzzed_json_never_gives_a_5xx(client, session, body):
    content = json.dumps(body).encode()  # NaN and Infinity included, as Python writes them
    assert submit(client, session, content).status_code < 500
    assert client.post("/api/sessions", content=content,
                       headers={"content-type": "application/json"}).status_code < 500


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=200))
def test_fuzzed_bytes_never_give_a_5xx(client, session, content):
    assert submit(client, session, content).status_code < 500


def test_cli_serve_bad_port_and_occupied_port_are_one_line(stimuli, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["experiment", "serve", str(stimuli.root), "--port", "99999"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(main, ["experiment", "serve", str(stimuli.root), "--port", str(port),
                                      "--db", str(tmp_path / "x.sqlite")],
                               env={"PHOSPHENE_ADMIN_TOKEN": ADMIN})
    assert result.exit_code == 2 and "cannot listen on 127.0.0.1" in result.output


def test_cli_admin_token_sources(stimuli, tmp_path, monkeypatch):
    from phosphene.cli.experiment import admin_token_from
    from phosphene.errors import PhospheneError

    monkeypatch.delenv("PHOSPHENE_ADMIN_TOKEN", raising=False)
    token, source = admin_token_from(None, None)
    assert source == "generated" and len(token) >= 16
    (tmp_path / "token").write_text(ADMIN + "\n")
    assert admin_token_from(None, str(tmp_path / "token")) == (ADMIN, "--admin-token-file")
    monkeypatch.setenv("PHOSPHENE_ADMIN_TOKEN", ADMIN)
    assert admin_token_from(None, None) == (ADMIN, "PHOSPHENE_ADMIN_TOKEN")
    monkeypatch.setenv("PHOSPHENE_ADMIN_TOKEN", "")
    with pytest.raises(PhospheneError, match="empty"):
        admin_token_from(None, None)
    (tmp_path / "empty").write_text("")
    with pytest.raises(PhospheneError, match="empty"):
        admin_token_from(None, str(tmp_path / "empty"))
    result = CliRunner().invoke(main, ["experiment", "serve", str(stimuli.root), "--admin-token", ""])
    assert result.exit_code == 2 and "empty" in result.output


def test_cli_db_export_and_analyze_on_wrong_files(stimuli, tmp_path):
    import sqlite3

    runner = CliRunner()
    text = tmp_path / "notes.sqlite"
    text.write_text("just some text, not a database\n" * 10)
    result = runner.invoke(main, ["experiment", "serve", str(stimuli.root), "--db", str(text)],
                           env={"PHOSPHENE_ADMIN_TOKEN": ADMIN})
    assert result.exit_code == 2 and "experiment database" in result.output
    binary = tmp_path / "results.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    result = runner.invoke(main, ["experiment", "analyze", str(binary), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "not a responses CSV" in result.output
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE things (x INTEGER)")
    result = runner.invoke(main, ["experiment", "export", str(other), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "not a phosphene experiment database" in result.output
    with sqlite3.connect(other) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["things"]


# -- connections: idle floods, slowloris, slow readers (issue 27) ------------------------------------
QUICK = ConnectionLimits(header_timeout_s=1.0, write_timeout_s=1.0)


def _room_for(files: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < files:
        pytest.skip(f"needs {files} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(files * 2, hard)), hard))


def _participant(url: str) -> list[int]:
    """Status codes of one participant's page, session and first answer."""
    with httpx.Client(base_url=url, timeout=30) as client:
        codes = [client.get(path).status_code for path in ("/", "/app.js")]
        created = client.post("/api/sessions", json={"consent": True})
        codes.append(created.status_code)
        body = created.json()
        answer = client.post(f"/api/sessions/{body['session']}/responses",
                             headers={"Authorization": f"Bearer {body['token']}"},
                             json={"trial": 0, "assignment": [0, 1, 2], "rt_ms": 900.0, "response_id": "a"})
        return codes + [answer.status_code]


def test_a_thousand_idle_connections_turn_no_participant_away(app):
    _room_for(2600)
    with background_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
        try:
            with ThreadPoolExecutor(5) as pool:
                codes = [c for result in pool.map(lambda _: _participant(url), range(5)) for c in result]
        finally:
            for sock in idle:
                sock.close()
    assert set(codes) <= {200, 201}, codes


def test_silent_and_trickling_connections_are_closed_after_the_header_deadline(app):
    with background_server(app, connections=QUICK) as url:
        port = int(url.rsplit(":", 1)[1])
        silent = socket.create_connection(("127.0.0.1", port))
        trickling = socket.create_connection(("127.0.0.1", port))
        trickling.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        with pytest.raises(OSError):
            while time.monotonic() - started < 10:
                trickling.sendall(b"X")
                time.sleep(0.2)
        silent.settimeout(5)
        assert silent.recv(10) == b""
        assert time.monotonic() - started < QUICK.header_timeout_s + 3
        assert httpx.get(url + "/").status_code == 200
        silent.close()
        trickling.close()


def test_past_the_connection_cap_the_longest_waiting_connection_is_closed(app):
    with background_server(app, connections=ConnectionLimits(max_connections=20)) as url:
        port = int(url.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        time.sleep(0.2)
        assert httpx.get(url + "/").status_code == 200
        idle[0].settimeout(5)
        assert idle[0].recv(10) == b""  # the oldest idle one made room
        for sock in idle:
            sock.close()


def test_a_reply_the_client_does_not_read_is_dropped(stimuli, tmp_path):
    big = stimuli.root / sorted(stimuli.image_paths())[0]
    original = big.read_bytes()
    big.write_bytes(os.urandom(40_000_000))
    try:
        app = create_app(stimuli, tmp_path / "r.sqlite", ADMIN, trials_per_condition=1,
                         images_per_unit=(1, 3))
        with background_server(app, connections=QUICK) as url:
            port = int(url.rsplit(":", 1)[1])
            reader = socket.socket()
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader.connect(("127.0.0.1", port))
            reader.sendall(f"GET /stimuli/{sorted(stimuli.image_paths())[0]} HTTP/1.1\r\n"
                           "Host: x\r\n\r\n".encode())
            time.sleep(QUICK.write_timeout_s + 2)
            reader.settimeout(5)
            received = 0
            with pytest.raises(OSError):
                while chunk := reader.recv(1 << 20):
                    received += len(chunk)
                raise ConnectionResetError  # a clean end would also mean the reply was cut
            assert received < 40_000_000
            reader.close()
            assert httpx.get(url + "/").status_code == 200
    finally:
        big.write_bytes(original)


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(stimuli, tmp_path):
    limits = Limits(sessions_per_client=2)
    for trusted, expected in ((None, [201, 201, 429]), ("127.0.0.1", [201, 201, 201])):
        app = create_app(stimuli, tmp_path / f"{trusted}.sqlite", ADMIN, trials_per_condition=1,
                         images_per_unit=(1, 3), limits=limits)
        with background_server(app, trusted_proxy=trusted) as url:
            codes = [httpx.post(url + "/api/sessions", json={"consent": True},
                                headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                     for i in range(3)]
        assert codes == expected, trusted


def test_the_open_session_cap_is_exact_under_concurrent_requests(stimuli, tmp_path):
    app = create_app(stimuli, tmp_path / "r.sqlite", ADMIN, trials_per_condition=1, images_per_unit=(1, 3),
                     limits=Limits(max_open_sessions=10))
    with background_server(app) as url, ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: httpx.post(url + "/api/sessions", json={"consent": True},
                                                   timeout=30).status_code, range(40)))
    assert codes.count(201) == 10 and codes.count(503) == 30
    assert ExperimentDB(tmp_path / "r.sqlite").counts()["sessions"] == 10


def test_an_abandoned_session_frees_its_place_and_an_answering_one_keeps_it(stimuli, tmp_path):
    app = create_app(stimuli, tmp_path / "r.sqlite", ADMIN, trials_per_condition=1, images_per_unit=(1, 3),
                     limits=Limits(max_open_sessions=2, open_session_s=1.0))
    with TestClient(app) as client:
        first = client.post("/api/sessions", json={"consent": True}).json()
        assert client.post("/api/sessions", json={"consent": True}).status_code == 201
        full = client.post("/api/sessions", json={"consent": True})
        assert full.status_code == 503 and "minutes" in full.json()["detail"]
        time.sleep(0.6)
        client.post(f"/api/sessions/{first['session']}/responses",
                    headers={"Authorization": f"Bearer {first['token']}"},
                    json={"trial": 0, "assignment": [0, 1, 2], "rt_ms": 900.0, "response_id": "a"})
        time.sleep(0.6)  # the second session is now idle for 1.2 s, the first answered 0.6 s ago
        assert client.post("/api/sessions", json={"consent": True}).status_code == 201
        assert client.post("/api/sessions", json={"consent": True}).status_code == 503


def test_a_turned_away_attempt_does_not_count_against_the_address(stimuli, tmp_path):
    app = create_app(stimuli, tmp_path / "r.sqlite", ADMIN, trials_per_condition=1, images_per_unit=(1, 3),
                     limits=Limits(max_open_sessions=1, sessions_per_client=2))
    with TestClient(app) as client:
        codes = [client.post("/api/sessions", json={"consent": True}).status_code for _ in range(4)]
    assert codes == [201, 503, 503, 503]  # never 429: only the one created session counted


def test_cli_serve_bad_host_and_bad_trusted_proxy_are_one_line(stimuli):
    runner = CliRunner()
    env = {"PHOSPHENE_ADMIN_TOKEN": ADMIN}
    result = runner.invoke(main, ["experiment", "serve", str(stimuli.root), "--host", "999.1.1.1"], env=env)
    assert result.exit_code == 2 and "cannot listen on 999.1.1.1" in result.output
    result = runner.invoke(main, ["experiment", "serve", str(stimuli.root), "--trusted-proxy", "*"], env=env)
    assert result.exit_code == 2 and "not an IP address" in result.output
