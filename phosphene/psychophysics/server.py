"""The web experiment: a FastAPI app serving consent, instructions and trials, storing responses.

Routes (``create_app``):

- ``GET /``: the single-page experiment (static/index.html + app.js).
- ``POST /api/sessions`` ``{"consent": true}`` -> ``{"session", "token", "trials"}``; the token
  (``secrets.token_urlsafe(32)``) is the only key to the session and is stored only as its SHA-256.
- ``GET /api/sessions/{id}`` (``Authorization: Bearer TOKEN``) -> the trials (no answers) and the
  index of the next unanswered trial, so a reloaded page resumes.
- ``POST /api/sessions/{id}/responses`` ``{"trial", "assignment", "rt_ms", "response_id"}`` -> 201, or
  200 for a retry of a stored response (nothing written), 409 for a different answer to an answered
  trial or for a trial out of turn.
- ``GET /stimuli/{path}``: stimulus images; only files the manifest names, never outside the folder.
- ``GET /api/admin/export.csv`` and ``/api/admin/summary`` (``Authorization: Bearer ADMIN_TOKEN``).

Wrong or missing session tokens give 403/401, malformed bodies 422 (strict types: no ``true`` for 1,
no ``"800"`` for 800, no NaN/Infinity), bodies over the size limit 413, bodies that do not arrive in
time 408, too many new sessions from one address 429, too many open sessions 503 (both expire in
minutes, see `Limits`), unknown sessions 404; none of them writes anything. Connections are guarded
below the app (`connections`: header and write deadlines, idle connections shed first), and
``X-Forwarded-For`` is believed only from a ``trusted_proxy``. Every reply carries a
Content-Security-Policy and the other headers of `guard.SecurityHeaders`; API replies are
``Cache-Control: no-store``. The server stores no user agent, no IP address: only the
consent-named answers, reaction times and trial lists.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..io.serving import listen_socket
from .analysis import summarize
from .connections import ConnectionLimits, uvicorn_config
from .guard import BodyLimit, RateLimit, SecurityHeaders
from .stimuli import StimulusSet
from .storage import ExperimentDB, encode_list, rows_to_csv, token_digest
from .trials import IMAGES_PER_UNIT, UNITS_PER_TRIAL, Trial, design, participant_seed

MAX_RT_MS = 3_600_000.0


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server: body size and time, new sessions per address per
    ``session_window_s``, and open sessions (not finished, and created or answered within the last
    ``open_session_s``: an abandoned session frees its place after that long). Connections have
    their own limits (`connections.ConnectionLimits`, given to `serve`)."""

    max_body_bytes: int = 16_384
    body_timeout_s: float = 10.0
    sessions_per_client: int = 100
    session_window_s: float = 600.0
    max_open_sessions: int = 2000
    open_session_s: float = 1800.0


class NewSession(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    consent: bool


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    trial: int = Field(ge=0, le=100_000)
    assignment: list[int] = Field(min_length=UNITS_PER_TRIAL, max_length=UNITS_PER_TRIAL)
    rt_ms: float = Field(ge=0, le=MAX_RT_MS)
    response_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def _static(name: str) -> str:
    return resources.files("phosphene.psychophysics").joinpath("static", name).read_text()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 listing where and why, without echoing the input (it may be NaN or huge)."""
    errors = [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def create_app(stimuli: str | Path | StimulusSet, db_path: str | Path, admin_token: str,
               trials_per_condition: int = 2, images_per_unit: Sequence[int] = IMAGES_PER_UNIT,
               catch_trials: int = 2, seed: int = 0, title: str = "Which images belong together?",
               limits: Limits | None = None) -> FastAPI:
    """The experiment app for a stimulus folder, storing into the SQLite file ``db_path``.

    ``limits`` (`Limits`) bound request bodies, session creation per client and open sessions.
    """
    limits = limits or Limits()
    if not admin_token or len(admin_token) < 16:
        raise ValueError("the admin token must have at least 16 characters")
    stimuli = stimuli if isinstance(stimuli, StimulusSet) else StimulusSet.load(stimuli)
    root = stimuli.root.resolve()
    images_per_unit = tuple(images_per_unit)
    design(stimuli, trials_per_condition, images_per_unit, catch_trials, seed)  # fail early if unfit
    db = ExperimentDB(db_path)
    app = FastAPI(title="phosphene psychophysics", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s)
    app.add_middleware(SecurityHeaders)
    session_rate = RateLimit(limits.sessions_per_client, limits.session_window_s)
    app.state.db = db
    app.state.stimuli = stimuli
    _add_page_routes(app, title, root, stimuli.image_paths())
    _add_admin_routes(app, db, admin_token)

    def make_trials(participant: int) -> tuple[int, list[dict]]:
        pseed = participant_seed(seed, participant)
        trials = design(stimuli, trials_per_condition, images_per_unit, catch_trials, pseed)
        return pseed, [t.to_dict() for t in trials]

    @app.post("/api/sessions", status_code=201)
    def new_session(body: NewSession, request: Request) -> dict:
        if not body.consent:
            raise HTTPException(400, "consent is required to take part")
        session, token, participant = _admit(request, session_rate, db, limits, make_trials)
        n = len(db.session(session)["trials"])
        return {"session": session, "token": token, "participant": participant, "trials": n}

    @app.get("/api/sessions/{session}")
    def get_session(session: str, authorization: Annotated[str | None, Header()] = None) -> dict:
        row = _own_session(db, session, authorization)
        trials = [Trial.from_dict(t) for t in row["trials"]]
        done = db.answered(session)
        return {"session": session, "participant": row["participant"], "trials": len(trials),
                "answered": len(done), "next": len(done) if len(done) < len(trials) else None,
                "items": [t.public() for t in trials]}

    @app.post("/api/sessions/{session}/responses")
    def respond(session: str, body: Submission,
                authorization: Annotated[str | None, Header()] = None) -> JSONResponse:
        row = _own_session(db, session, authorization)
        trials = row["trials"]
        if body.trial >= len(trials):
            raise HTTPException(422, f"trial {body.trial} does not exist")
        if sorted(body.assignment) != list(range(UNITS_PER_TRIAL)):
            raise HTTPException(422, "assignment must give each reference row to exactly one query")
        trial = Trial.from_dict(trials[body.trial])
        answered = db.answered(session)
        if body.trial not in answered and body.trial != len(answered):
            raise HTTPException(409, f"trial {body.trial} is out of turn; next is {len(answered)}")
        status, stored = db.add_response({
            "source": "human", "session": session, "participant": row["participant"],
            "trial": body.trial, "kind": trial.kind, "depth": trial.depth, "layer": trial.layer,
            "images_per_unit": trial.images_per_unit, "units": encode_list(trial.units),
            "answer": encode_list(trial.answer), "assignment": encode_list(body.assignment),
            "correct": trial.score(body.assignment), "items": UNITS_PER_TRIAL, "rt_ms": body.rt_ms,
            "response_id": body.response_id,
        })
        if status == "conflict":
            raise HTTPException(409, f"trial {body.trial} was already answered differently")
        total = len(trials)
        done = len(answered) + (status == "created")
        return JSONResponse({"stored": status, "answered": done,
                             "next": done if done < total else None},
                            status_code=201 if status == "created" else 200)

    return app


def _admit(request: Request, rate: RateLimit, db: ExperimentDB, limits: Limits,
           make_trials) -> tuple[str, str, int]:
    """A new session: 429 past the address's session rate, 503 (the attempt not counted against
    the address) when ``max_open_sessions`` are open; the cap is checked in the insert's transaction."""
    client = request.client.host if request.client else "?"
    wait = rate.allow(client)
    if wait:
        raise HTTPException(429, "too many new sessions from this address; try again later",
                            headers={"Retry-After": str(int(wait) + 1)})
    created = db.create_session(make_trials, limits.max_open_sessions, time.time() - limits.open_session_s)
    if created is None:
        rate.refund(client)
        raise HTTPException(503, "the experiment is full right now; try again in a few minutes",
                            headers={"Retry-After": "60"})
    return created


def _own_session(db: ExperimentDB, session: str, authorization: str | None) -> dict:
    """The session row if ``authorization`` holds its token; 401/403/404 otherwise."""
    token = _bearer(authorization)
    if token is None:
        raise HTTPException(401, "missing session token")
    row = db.session(session)
    if row is None:
        raise HTTPException(404, "no such session")
    if not secrets.compare_digest(row["token_sha256"], token_digest(token)):
        raise HTTPException(403, "this token does not belong to this session")
    return row


def _add_page_routes(app: FastAPI, title: str, root: Path, allowed: set[str]) -> None:
    """The page, its script and style, and the stimulus images (manifest files only)."""

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return _static("index.html").replace("{{title}}", title)

    @app.get("/app.js")
    def app_js() -> Response:
        return Response(_static("app.js"), media_type="text/javascript")

    @app.get("/style.css")
    def style_css() -> Response:
        return Response(_static("style.css"), media_type="text/css")

    @app.get("/stimuli/{path:path}")
    def stimulus(path: str) -> FileResponse:
        if "\x00" in path:
            raise HTTPException(404, "no such stimulus")
        try:
            target = (root / path).resolve()
        except (OSError, RuntimeError, ValueError):
            raise HTTPException(404, "no such stimulus") from None
        if not target.is_relative_to(root):
            raise HTTPException(403, "outside the stimulus folder")
        relative = target.relative_to(root).as_posix()
        if relative not in allowed or not target.is_file():
            raise HTTPException(404, "no such stimulus")
        return FileResponse(target, media_type="image/png",
                            headers={"Cache-Control": "private, max-age=3600"})


def _add_admin_routes(app: FastAPI, db: ExperimentDB, admin_token: str) -> None:
    """CSV export and summary, behind the admin token."""

    def require_admin(authorization: str | None) -> None:
        token = _bearer(authorization)
        if token is None:
            raise HTTPException(401, "missing admin token")
        if not secrets.compare_digest(token.encode(), admin_token.encode()):
            raise HTTPException(403, "wrong admin token")

    @app.get("/api/admin/export.csv")
    def export(authorization: Annotated[str | None, Header()] = None) -> Response:
        require_admin(authorization)
        return Response(rows_to_csv(db.responses()), media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=responses.csv"})

    @app.get("/api/admin/summary")
    def summary(authorization: Annotated[str | None, Header()] = None) -> dict:
        require_admin(authorization)
        return {**db.counts(), "orphaned_sessions": db.orphaned(),
                "conditions": [c.to_dict() for c in summarize(db.responses())]}


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000,
          connections: ConnectionLimits | None = None, trusted_proxy: str | None = None) -> None:
    """Run the app with uvicorn (blocking); see `connections.uvicorn_config` for the options."""
    sock = listen_socket(host, port)
    uvicorn.Server(uvicorn_config(app, connections, trusted_proxy)).run(sockets=[sock])


@contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                      connections: ConnectionLimits | None = None,
                      trusted_proxy: str | None = None) -> Iterator[str]:
    """Serve ``app`` as `serve` does, in a thread (port 0: a free one); yields the base URL."""
    sock = listen_socket(host, port)
    server = uvicorn.Server(uvicorn_config(app, connections, trusted_proxy))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the experiment server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
