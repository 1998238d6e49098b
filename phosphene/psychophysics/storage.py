"""SQLite storage of sessions and responses (WAL mode, one short connection per operation).

Each response row carries everything the analysis needs (kind, depth, layer, images per unit, the
answer, the assignment, items correct, reaction time), so a CSV export is self-contained and machine
observers write the same columns (`RESPONSE_COLUMNS`). ``UNIQUE(session, trial)`` makes a retried
submission a no-op instead of a duplicate.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import OutputError, PhospheneError

RESPONSE_COLUMNS = (
    "source", "session", "participant", "trial", "kind", "depth", "layer", "images_per_unit",
    "units", "answer", "assignment", "correct", "items", "rt_ms", "response_id", "created",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    participant INTEGER NOT NULL UNIQUE,
    seed INTEGER NOT NULL,
    trials TEXT NOT NULL,
    user_agent TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    session TEXT NOT NULL REFERENCES sessions(id),
    participant INTEGER NOT NULL,
    trial INTEGER NOT NULL,
    kind TEXT NOT NULL,
    depth TEXT NOT NULL,
    layer TEXT NOT NULL,
    images_per_unit INTEGER NOT NULL,
    units TEXT NOT NULL,
    answer TEXT NOT NULL,
    assignment TEXT NOT NULL,
    correct INTEGER NOT NULL,
    items INTEGER NOT NULL,
    rt_ms REAL,
    response_id TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (session, trial)
);
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS sessions_created ON sessions (created);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created);
"""


def token_digest(token: str) -> str:
    """SHA-256 of a session token: the database never holds the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def encode_list(values) -> str:
    """A list of ints or strings as one CSV-safe field (``1 0 2``, ``a|b|c``)."""
    values = list(values)
    if values and isinstance(values[0], str):
        return "|".join(values)
    return " ".join(str(int(v)) for v in values)


class ExperimentDB:
    """The experiment's SQLite file. Thread-safe: every call opens its own connection."""

    def __init__(self, path: str | Path, create: bool = True):
        """Open (``create``: or start) the database; `PhospheneError` if ``path`` is another file."""
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise PhospheneError(f"no such database: {self.path}")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.connect() as db:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if create and not tables - {"sqlite_sequence"}:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(SCHEMA)
                else:
                    check_experiment_db(db, self.path)
                if create:  # the open-session count reads these (older files get them here)
                    db.executescript(INDEXES)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise OutputError(f"cannot use {self.path} as an experiment database: {exc}") from None

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA synchronous=FULL")  # a stored answer survives a power cut
        try:
            yield db
        finally:
            db.close()

    # -- sessions -----------------------------------------------------------------------------------
    def create_session(self, make_trials: Callable[[int], tuple[int, list[dict]]],
                       max_open: int | None = None, active_since: float = 0.0
                       ) -> tuple[str, str, int] | None:
        """A new session with the next participant number; returns (session id, token, participant),
        or None when ``max_open`` sessions are open (`open_sessions` of ``active_since``) already.

        The count and the insert are one transaction, so the cap is exact however many requests
        race for the last places. ``make_trials(participant) -> (seed, trials)`` builds that
        participant's trial list. Nothing about the participant's browser is stored (the
        ``user_agent`` column stays empty).
        """
        session, token = secrets.token_urlsafe(9), secrets.token_urlsafe(32)
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if max_open is not None and _count_open(db, active_since) >= max_open:
                    db.execute("ROLLBACK")
                    return None
                participant = db.execute(
                    "SELECT COALESCE(MAX(participant), -1) + 1 FROM sessions").fetchone()[0]
                seed, trials = make_trials(participant)
                db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (session, token_digest(token), participant, seed, json.dumps(trials),
                            None, time.time()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return session, token, participant

    def session(self, session: str) -> dict[str, Any] | None:
        """The session row (trials decoded), or None."""
        with self.connect() as db:
            row = db.execute("SELECT * FROM sessions WHERE id = ?", (session,)).fetchone()
        if row is None:
            return None
        data = dict(row)
        data["trials"] = json.loads(data["trials"])
        return data

    def answered(self, session: str) -> list[int]:
        """Trial indices of the session that have a response, sorted."""
        with self.connect() as db:
            rows = db.execute("SELECT trial FROM responses WHERE session = ? ORDER BY trial",
                              (session,)).fetchall()
        return [r[0] for r in rows]

    # -- responses --------------------------------------------------------------------------------
    def add_response(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Insert one response; ("created", row), or ("duplicate"|"conflict", the stored row).

        A second submission for the same (session, trial) is a duplicate when it has the same
        ``response_id`` and assignment (a retry), a conflict otherwise; neither writes anything.
        """
        row = {**row, "created": time.time()}
        columns = list(RESPONSE_COLUMNS)
        with self.connect() as db:
            try:
                db.execute(f"INSERT INTO responses ({', '.join(columns)}) "
                           f"VALUES ({', '.join('?' * len(columns))})", [row[c] for c in columns])
                return "created", row
            except sqlite3.IntegrityError:
                stored = dict(db.execute("SELECT * FROM responses WHERE session = ? AND trial = ?",
                                         (row["session"], row["trial"])).fetchone())
        same = stored["response_id"] == row["response_id"] and stored["assignment"] == row["assignment"]
        return ("duplicate" if same else "conflict"), stored

    def responses(self, session: str | None = None) -> list[dict[str, Any]]:
        """All response rows (or one session's), in insertion order, as dicts of `RESPONSE_COLUMNS`."""
        query = f"SELECT {', '.join(RESPONSE_COLUMNS)} FROM responses"
        args: tuple = ()
        if session is not None:
            query, args = query + " WHERE session = ?", (session,)
        with self.connect() as db:
            return [dict(r) for r in db.execute(query + " ORDER BY id", args).fetchall()]

    def counts(self) -> dict[str, int]:
        """Numbers of sessions and responses."""
        with self.connect() as db:
            return {"sessions": db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0],
                    "responses": db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]}

    def orphaned(self) -> int:
        """Sessions created but never answered (a page closed after consent, a restart, or a bot);
        they have no rows in the export."""
        with self.connect() as db:
            return db.execute(ORPHANS).fetchone()[0]

    def open_sessions(self, since: float) -> int:
        """Sessions not finished (fewer answers than trials) and active (created or answered) after
        ``since`` (epoch seconds): an abandoned session stops counting once it has been idle that long."""
        with self.connect() as db:
            return _count_open(db, since)


def _count_open(db: sqlite3.Connection, since: float) -> int:
    return db.execute(
        "SELECT COUNT(*) FROM sessions s WHERE (s.created > :since OR s.id IN "
        "(SELECT session FROM responses WHERE created > :since)) AND json_array_length(s.trials) > "
        "(SELECT COUNT(*) FROM responses r WHERE r.session = s.id)", {"since": since}).fetchone()[0]


ORPHANS = ("SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS "
           "(SELECT 1 FROM responses r WHERE r.session = s.id)")


def check_experiment_db(db: sqlite3.Connection, path: Path) -> None:
    """Raise `PhospheneError` unless ``db`` has the experiment's tables and columns."""
    for table, needed in (("sessions", {"id", "token_sha256", "trials"}),
                          ("responses", set(RESPONSE_COLUMNS))):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not needed <= columns:
            lacking = f"lacks {', '.join(sorted(needed - columns))}" if columns else "missing"
            raise PhospheneError(f"{path} is not a phosphene experiment database (table {table!r} "
                                 f"{lacking})")


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """Response rows as CSV text with the `RESPONSE_COLUMNS` header."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESPONSE_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in RESPONSE_COLUMNS})
    return buffer.getvalue()
