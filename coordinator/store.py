"""Results store: agents, artifacts, jobs with leases, results, training runs; SQLite in WAL mode.

One connection guarded by a lock: the gRPC servicer calls in from a thread pool, and the
lease transitions (queued -> leased -> succeeded/failed, expired -> queued) must be atomic.
Specs and results are stored as JSON of the `edgelab.domain` dataclasses so the dashboard
can read them without protobuf.

Provenance: every stored result says who wrote it, the agent (its report) or the coordinator (a
`timeout` after the last lease expired, `unavailable` for a revoked agent), and which agent held
that attempt (`leases` keeps every attempt's holder). A report that reaches a job the coordinator
already closed is kept in `late_results`, beside the coordinator's verdict, never instead of it.

Durability: commits that acknowledge something to a caller (a report, a submitted job, a
registration, an upload, a recorded run) reach the disk before the answer leaves; heartbeats,
leases and renewals, which the fleet repeats anyway, stay with WAL's `NORMAL` sync (durable at
the next sync or checkpoint). The sync is a group commit: an acknowledging transaction commits
like any other, then, outside the store's lock, waits for one fsync of the WAL that covers it,
so a slow disk neither holds up the calls that need no sync nor costs one sync per report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgelab.constants import (
    HEARTBEAT_INTERVAL_S,
    LEASE_DURATION_S,
    MAX_ATTEMPTS,
    OFFLINE_AFTER_HEARTBEATS,
    STALE_AFTER_HEARTBEATS,
)
from edgelab.domain import (
    AgentInfo,
    ArtifactRef,
    BenchmarkResult,
    DeviceCapabilities,
    Failure,
    FailureKind,
    Job,
    JobSpec,
    JobState,
    LateResult,
    Lease,
    TrainingConfig,
    TrainingRun,
    TrainingState,
    TrainingSummary,
)
from edgelab.errors import AuthError, LeaseLost, NotFound, PermissionDenied
from edgelab.serde import from_jsonable, to_jsonable

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    registered_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    current_job_id TEXT NOT NULL DEFAULT '',
    revoked_at REAL                 -- set: its credential is refused (PERMISSION_DENIED)
);
CREATE TABLE IF NOT EXISTS artifacts (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    backend TEXT NOT NULL,
    state TEXT NOT NULL,
    target_agent_id TEXT,           -- NULL: any capable agent
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_agent_id TEXT,
    lease_expires_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created_at);
-- What every LeaseJob looks up, so its cost does not grow with the queue or the fleet: the lease an
-- agent holds, the leases that expired, the oldest queued job for this agent or for any agent.
CREATE INDEX IF NOT EXISTS jobs_lease_agent ON jobs(lease_agent_id, state);
CREATE INDEX IF NOT EXISTS jobs_lease_expiry ON jobs(state, lease_expires_at);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, target_agent_id, backend, created_at);
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    attempt INTEGER NOT NULL,
    agent_id TEXT NOT NULL,         -- the agent that held this attempt
    ok INTEGER NOT NULL,
    result TEXT NOT NULL,
    created_at REAL NOT NULL,
    written_by TEXT NOT NULL DEFAULT 'agent',  -- 'agent' (its report) or 'coordinator' (timeout, revocation)
    payload_sha256 TEXT NOT NULL DEFAULT '',   -- of the report: a retry is a duplicate only when it matches
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE IF NOT EXISTS leases (  -- every attempt ever leased, and to whom
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    attempt INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    leased_at REAL NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE IF NOT EXISTS late_results (  -- reports for a job the coordinator had already closed
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    attempt INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    ok INTEGER NOT NULL,
    result TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE IF NOT EXISTS training_runs (
    run_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    config TEXT NOT NULL,           -- TrainingConfig JSON
    state TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL NOT NULL DEFAULT 0,
    finished_at REAL NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    summary TEXT,                   -- TrainingSummary JSON once it succeeded
    model_sha256 TEXT NOT NULL DEFAULT '',
    dataset_sha256 TEXT NOT NULL DEFAULT '',
    savedmodel_sha256 TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS training_runs_created ON training_runs(created_at);
"""

RESTARTED_DURING_TRAINING = "coordinator restarted during training"
BUSY_TIMEOUT_S = 5.0  # how long a transaction waits for SQLite's write lock before it fails

WRITTEN_BY_AGENT = "agent"
WRITTEN_BY_COORDINATOR = "coordinator"

# Rows the coordinator wrote before results said who wrote them (see _migrate).
_COORDINATOR_VERDICTS = """
    (json_extract(result, '$.failure.kind') = 'timeout'
     AND json_extract(result, '$.failure.message') LIKE 'lease expired % times; agent lost')
    OR (json_extract(result, '$.failure.kind') = 'unavailable'
     AND json_extract(result, '$.failure.message') LIKE 'agent % was revoked before the job finished')
"""

log = logging.getLogger("edgelab.coordinator")

PageKey = tuple[float, int]  # (sort time, rowid) of a page's last row: the next page starts after it


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _payload(result: BenchmarkResult) -> tuple[str, str]:
    """The stored JSON of a report and its sha256 (key order fixed, so equal reports hash equal)."""
    text = json.dumps(to_jsonable(result), sort_keys=True)
    return text, hashlib.sha256(text.encode()).hexdigest()


def encode_page_token(kind: str, key: PageKey) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, key[0], key[1]]).encode()).decode()


def decode_page_token(kind: str, token: str) -> PageKey | None:
    """None for "" (the first page); ValueError for a token another list call, or nobody, handed out."""
    if not token:
        return None
    try:
        got, sort_key, rowid = json.loads(base64.urlsafe_b64decode(token.encode()))
        if got == kind:
            return float(sort_key), int(rowid)
    except (ValueError, TypeError):
        pass
    raise ValueError(f"page_token: not a token a {kind} page handed out")


@dataclass(frozen=True)
class StoredResult:
    job_id: str
    attempt: int
    agent_id: str  # the agent that held the attempt
    result: BenchmarkResult
    created_at: float
    written_by: str = WRITTEN_BY_AGENT  # or WRITTEN_BY_COORDINATOR: a verdict, not a report


class Store:
    """All coordinator state. Thread-safe; every public method is one transaction."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Any = time.time,
        lease_duration_s: float = LEASE_DURATION_S,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        busy_timeout_s: float | None = None,
        readonly: bool = False,
        on_job_queued: Callable[[str | None, str], None] | None = None,
    ) -> None:
        """`readonly`: the dashboard's view. SQLite refuses every write (`mode=ro`), so it never takes the
        write lock, creates tables or migrates; the coordinator keeps the store in WAL mode, where readers
        never block it. Only the read methods work; a store that does not exist yet is a NotFound.

        `on_job_queued(target_agent_id, backend)` is called whenever a job becomes leasable (submitted
        or requeued), inside the store's lock: it must be quick and must not call the store."""
        timeout = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        if readonly:
            if not path.is_file():
                raise NotFound(f"no results store at {path}")
            uri = f"{path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=timeout)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
        self._db.row_factory = sqlite3.Row
        self._wal_path: Path | None = None
        self._sync_lock = threading.Lock()
        # agent id -> (token hash, revoked), as stored; only this store writes either (a second coordinator
        # on the same file is refused at bind), so the copy cannot go stale.
        self._credentials: dict[str, tuple[str, bool]] = {}
        self._committed = 0  # commits so far, and how many of them a WAL fsync is known to cover
        self._synced = 0
        if not readonly:
            wal = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
            # Without WAL (a file system that cannot share memory) every commit is synced instead.
            self._db.execute("PRAGMA synchronous=NORMAL" if wal else "PRAGMA synchronous=FULL")
            self._wal_path = path.with_name(path.name + "-wal") if wal else None
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            self._migrate()
        self._lock = threading.Lock()
        self._clock = clock
        self.lease_duration_s = lease_duration_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.path = path
        self._on_job_queued = on_job_queued or (lambda target, backend: None)

    def _migrate(self) -> None:
        """Bring a store written by an older coordinator up to this schema."""
        agents = {row["name"] for row in self._db.execute("PRAGMA table_info(agents)")}
        if "revoked_at" not in agents:  # before agents could be revoked
            self._db.execute("ALTER TABLE agents ADD COLUMN revoked_at REAL")
        results = {row["name"] for row in self._db.execute("PRAGMA table_info(results)")}
        if "written_by" not in results:  # before results said who wrote them
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ALTER TABLE results ADD COLUMN written_by TEXT NOT NULL DEFAULT 'agent'")
            self._db.execute("ALTER TABLE results ADD COLUMN payload_sha256 TEXT NOT NULL DEFAULT ''")
            self._db.execute(f"UPDATE results SET written_by='coordinator' WHERE ok=0 AND ({_COORDINATOR_VERDICTS})")
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. `durable`: the commit reaches the disk before this returns (it
        acknowledges something to a caller); otherwise WAL's NORMAL sync (durable at the next
        synced commit or checkpoint). Any failure, the COMMIT's own included, rolls back, so the
        shared connection never stays inside a transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.exception("ROLLBACK failed after an error in a store transaction")
                raise
            self._committed += 1
            ticket = self._committed
        if durable:
            self._sync_wal(ticket)

    def _sync_wal(self, ticket: int) -> None:
        """Return once the commit numbered `ticket` is on disk. COMMIT has written its frames to the WAL
        file; one fsync of that file makes them and every commit before it durable, so callers queued
        here while a sync runs are usually covered by the next one, not one each."""
        if self._wal_path is None:
            return  # synchronous=FULL synced it at COMMIT
        with self._sync_lock:
            if self._synced >= ticket:
                return
            covered = self._committed  # every commit counted so far has written its frames
            fd = os.open(self._wal_path, os.O_RDONLY)
            try:
                getattr(os, "fdatasync", os.fsync)(fd)  # fdatasync, as SQLite uses; macOS has only fsync
            finally:
                os.close(fd)
            self._synced = covered

    # -- agents -------------------------------------------------------------------------

    def register_agent(self, name: str, capabilities: DeviceCapabilities) -> tuple[str, str]:
        """Create an agent; returns (agent_id, agent_token). Only the token's hash is kept."""
        agent_id = uuid.uuid4().hex[:12]
        token = secrets.token_urlsafe(24)
        now = self._clock()
        with self._tx(durable=True) as db:
            db.execute(
                "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, '', NULL)",
                (agent_id, name, _hash_token(token), json.dumps(to_jsonable(capabilities)), now, now),
            )
        return agent_id, token

    def authenticate_agent(self, agent_id: str, token: str) -> None:
        # Every agent call starts here: known credentials are checked from memory, without the lock.
        known = self._credentials.get(agent_id)
        if known is None:
            with self._lock:
                row = self._db.execute(
                    "SELECT token_sha256, revoked_at FROM agents WHERE agent_id=?", (agent_id,)
                ).fetchone()
            if row is None:
                raise AuthError(f"unknown agent {agent_id!r}: register first")
            known = self._credentials[agent_id] = (row["token_sha256"], row["revoked_at"] is not None)
        token_sha256, revoked = known
        if not secrets.compare_digest(token_sha256, _hash_token(token)):
            raise AuthError(f"bad credential for agent {agent_id!r}")
        if revoked:
            raise PermissionDenied(f"agent {agent_id!r} was revoked by an operator")

    def revoke_agent(self, agent_id: str) -> tuple[list[str], list[str]]:
        """Refuse the agent from now on; returns (requeued job ids, failed job ids).

        Its leased job goes back to the queue unless it is pinned to this agent; jobs pinned to
        it could never run, so they fail as unavailable.
        """
        now = self._clock()
        with self._tx(durable=True) as db:
            if db.execute("SELECT 1 FROM agents WHERE agent_id=?", (agent_id,)).fetchone() is None:
                raise NotFound(f"unknown agent {agent_id!r}")
            db.execute(
                "UPDATE agents SET revoked_at=COALESCE(revoked_at, ?), current_job_id='' WHERE agent_id=?",
                (now, agent_id),
            )
            self._credentials.pop(agent_id, None)  # read again, revoked, on its next call
            rows = db.execute(
                "SELECT job_id, backend FROM jobs WHERE state=? AND lease_agent_id=? AND target_agent_id IS NULL",
                (JobState.LEASED.value, agent_id),
            ).fetchall()
            requeued = [r["job_id"] for r in rows]
            for row in rows:
                db.execute(
                    "UPDATE jobs SET state=?, lease_agent_id=NULL, lease_expires_at=NULL, updated_at=? WHERE job_id=?",
                    (JobState.QUEUED.value, now, row["job_id"]),
                )
                self._on_job_queued(None, row["backend"])
            pinned = db.execute(
                "SELECT job_id, attempt FROM jobs WHERE target_agent_id=? AND state IN (?, ?)",
                (agent_id, JobState.QUEUED.value, JobState.LEASED.value),
            ).fetchall()
            failure = Failure(FailureKind.UNAVAILABLE, f"agent {agent_id} was revoked before the job finished")
            for row in pinned:
                self._finish(
                    db, row["job_id"], row["attempt"], agent_id, BenchmarkResult(failure=failure), now, by_agent=False
                )
        return requeued, [r["job_id"] for r in pinned]

    def heartbeat(self, agent_id: str, current_job_id: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE agents SET last_seen_at=?, current_job_id=? WHERE agent_id=?",
                (self._clock(), current_job_id, agent_id),
            )

    def agent_status(self, last_seen_at: float) -> str:
        age = self._clock() - last_seen_at
        if age <= STALE_AFTER_HEARTBEATS * self.heartbeat_interval_s:
            return "online"
        if age <= OFFLINE_AFTER_HEARTBEATS * self.heartbeat_interval_s:
            return "stale"
        return "offline"

    def list_agents(self) -> list[AgentInfo]:
        """Every agent, oldest registration first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM agents ORDER BY registered_at, rowid").fetchall()
        return [self._agent_from_row(r) for r in rows]

    def agents_page(self, limit: int, after: PageKey | None = None) -> list[tuple[PageKey, AgentInfo]]:
        """Up to `limit` agents registered after `after`, oldest first, each with its page key."""
        where, args = ("WHERE (registered_at, rowid) > (?, ?)", after) if after is not None else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"SELECT rowid AS row_id, * FROM agents {where} ORDER BY registered_at, rowid LIMIT ?", (*args, limit)
            ).fetchall()
        return [((r["registered_at"], r["row_id"]), self._agent_from_row(r)) for r in rows]

    def get_agent(self, agent_id: str) -> AgentInfo:
        with self._lock:
            row = self._db.execute("SELECT * FROM agents WHERE agent_id=?", (agent_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown agent {agent_id!r}")
        return self._agent_from_row(row)

    def _agent_from_row(self, row: sqlite3.Row) -> AgentInfo:
        return AgentInfo(
            agent_id=row["agent_id"],
            name=row["name"],
            status="revoked" if row["revoked_at"] is not None else self.agent_status(row["last_seen_at"]),
            last_seen_at=row["last_seen_at"],
            capabilities=from_jsonable(json.loads(row["capabilities"]), DeviceCapabilities),
            current_job_id=row["current_job_id"],
        )

    # -- artifacts ----------------------------------------------------------------------

    def add_artifact(self, ref: ArtifactRef, metadata: dict[str, str] | None = None) -> None:
        with self._tx(durable=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?, ?)",
                (ref.sha256, ref.name, ref.format, ref.size_bytes, json.dumps(metadata or {}), self._clock()),
            )

    def get_artifact(self, sha256: str) -> ArtifactRef:
        with self._lock:
            row = self._db.execute("SELECT * FROM artifacts WHERE sha256=?", (sha256,)).fetchone()
        if row is None:
            raise NotFound(f"unknown artifact {sha256}")
        return ArtifactRef(row["sha256"], row["size_bytes"], row["format"], row["name"])

    # -- jobs and leases ----------------------------------------------------------------

    def submit_job(self, spec: JobSpec, target_agent_id: str | None = None) -> str:
        for ref in (spec.model, spec.dataset):
            self.get_artifact(ref.sha256)  # NotFound before anything is queued
        job_id = uuid.uuid4().hex[:12]
        now = self._clock()
        with self._tx(durable=True) as db:
            db.execute(
                "INSERT INTO jobs (job_id, spec, backend, state, target_agent_id, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    json.dumps(to_jsonable(spec)),
                    spec.backend,
                    JobState.QUEUED.value,
                    target_agent_id,
                    now,
                    now,
                ),
            )
            self._on_job_queued(target_agent_id, spec.backend)
        return job_id

    def cancel_job(self, job_id: str) -> JobState:
        """Cancel a queued or leased job; returns the state it had. A leased job's agent loses its lease
        (its renewal and its report are refused as for an expired lease); a finished job stays as it is."""
        with self._tx(durable=True) as db:
            row = db.execute("SELECT state, lease_agent_id FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"unknown job {job_id!r}")
            state = JobState(row["state"])
            if state.finished:
                raise ValueError(f"job {job_id} already {state.value}: nothing to cancel")
            db.execute(
                "UPDATE jobs SET state=?, lease_agent_id=NULL, lease_expires_at=NULL, updated_at=? WHERE job_id=?",
                (JobState.CANCELLED.value, self._clock(), job_id),
            )
            db.execute(
                "UPDATE agents SET current_job_id='' WHERE agent_id=? AND current_job_id=?",
                (row["lease_agent_id"], job_id),
            )
        return state

    def retry_job(self, job_id: str) -> str:
        """Queue a finished job's spec again as a new job on the same target (any agent: none); returns its id."""
        with self._lock:
            row = self._db.execute("SELECT spec, state, target_agent_id FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown job {job_id!r}")
        if not JobState(row["state"]).finished:
            raise ValueError(f"job {job_id} is still {row['state']}: retry it once it finished, or cancel it first")
        return self.submit_job(from_jsonable(json.loads(row["spec"]), JobSpec), row["target_agent_id"])

    def lease_job(self, agent_id: str, backends: list[str]) -> Lease | None:
        """Lease the oldest queued job this agent may run, or None.

        One job at a time: an agent that already holds a lease gets that same lease back (same job,
        same attempt, the time it has left, not renewed): a LeaseJob retried after its answer was lost
        picks up its job instead of taking a second one and leaving the first to expire.
        """
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "UPDATE agents SET last_seen_at=? WHERE agent_id=?", (now, agent_id)
            )  # a lease call is a sign of life
            self._expire_leases(db, now)
            held = db.execute(
                "SELECT * FROM jobs WHERE state=? AND lease_agent_id=? ORDER BY updated_at LIMIT 1",
                (JobState.LEASED.value, agent_id),
            ).fetchone()
            if held is not None:
                spec = from_jsonable(json.loads(held["spec"]), JobSpec)
                return Lease(held["job_id"], held["attempt"], max(held["lease_expires_at"] - now, 0.0), spec)
            if not backends:
                return None
            marks = ",".join("?" * len(backends))
            # The oldest of: the oldest job pinned to this agent, the oldest job for any agent (one index
            # lookup each; an OR of both would walk the whole queue).
            candidates = [
                db.execute(
                    f"SELECT * FROM jobs WHERE state=? AND target_agent_id {target} AND backend IN ({marks})"
                    " ORDER BY created_at LIMIT 1",
                    (JobState.QUEUED.value, *args, *backends),
                ).fetchone()
                for target, args in (("=?", (agent_id,)), ("IS NULL", ()))
            ]
            found = [r for r in candidates if r is not None]
            if not found:
                return None
            row = min(found, key=lambda r: r["created_at"])
            attempt = row["attempt"] + 1
            db.execute(
                "UPDATE jobs SET state=?, attempt=?, lease_agent_id=?, lease_expires_at=?, updated_at=? WHERE job_id=?",
                (JobState.LEASED.value, attempt, agent_id, now + self.lease_duration_s, now, row["job_id"]),
            )
            db.execute("UPDATE agents SET current_job_id=? WHERE agent_id=?", (row["job_id"], agent_id))
            db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)", (row["job_id"], attempt, agent_id, now))
        spec = from_jsonable(json.loads(row["spec"]), JobSpec)
        return Lease(row["job_id"], attempt, self.lease_duration_s, spec)

    def renew_lease(self, agent_id: str, job_id: str, attempt: int) -> float:
        now = self._clock()
        with self._tx() as db:
            self._expire_leases(db, now)
            self._check_current_lease(db, agent_id, job_id, attempt)
            db.execute(
                "UPDATE jobs SET lease_expires_at=?, updated_at=? WHERE job_id=?",
                (now + self.lease_duration_s, now, job_id),
            )
        return self.lease_duration_s

    def report_result(self, agent_id: str, job_id: str, attempt: int, result: BenchmarkResult) -> bool:
        """Store an agent's report as the job's result; True when it repeats the stored one (idempotent).

        A duplicate is the same payload from the same agent for the same attempt. Anything else that
        cannot be the job's result raises LeaseLost: a different payload for an attempt already
        reported, or an attempt that is not the current lease. A report for a job the coordinator
        closed itself (a timeout) from an agent that held one of its attempts is kept first, as a
        late result beside that verdict, and then refused with LeaseLost saying so.
        """
        payload, digest = _payload(result)
        now = self._clock()
        with self._tx(durable=True) as db:
            done = db.execute(
                "SELECT agent_id, written_by, payload_sha256 FROM results WHERE job_id=? AND attempt=?",
                (job_id, attempt),
            ).fetchone()
            if done is not None and done["written_by"] == WRITTEN_BY_AGENT and done["agent_id"] == agent_id:
                if done["payload_sha256"] in (digest, ""):  # "": stored before reports were hashed
                    return True
                raise LeaseLost(
                    f"job {job_id} attempt {attempt} was already reported with a different result; "
                    "the first report stands"
                )
            late = db.execute(
                "SELECT agent_id, payload_sha256 FROM late_results WHERE job_id=? AND attempt=?", (job_id, attempt)
            ).fetchone()
            if late is not None:
                if late["agent_id"] != agent_id or late["payload_sha256"] != digest:
                    raise LeaseLost(
                        f"job {job_id} attempt {attempt} already has a different late result; the first one is kept"
                    )
                closed = self._closed_by_coordinator(db, job_id, agent_id, attempt)
            else:
                self._expire_leases(db, now)
                closed = self._closed_by_coordinator(db, job_id, agent_id, attempt)
                if closed is None:
                    self._check_current_lease(db, agent_id, job_id, attempt)
                    self._finish(db, job_id, attempt, agent_id, result, now, by_agent=True, payload=(payload, digest))
                    return False
                db.execute(
                    "INSERT INTO late_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (job_id, attempt, agent_id, int(result.ok), payload, digest, now),
                )
        raise LeaseLost(closed or f"job {job_id} attempt {attempt}: lease lost")

    @staticmethod
    def _closed_by_coordinator(db: sqlite3.Connection, job_id: str, agent_id: str, attempt: int) -> str | None:
        """Why the report of `attempt` by `agent_id` is late: the job was closed by a coordinator verdict
        (not another agent's report) and this agent held that attempt. None when that is not the case."""
        job = db.execute("SELECT state, attempt FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if job is None or not JobState(job["state"]).finished:
            return None
        final = db.execute(
            "SELECT agent_id, written_by, result FROM results WHERE job_id=? AND attempt=?", (job_id, job["attempt"])
        ).fetchone()
        if final is None or final["written_by"] != WRITTEN_BY_COORDINATOR:
            return None
        held = db.execute(
            "SELECT 1 FROM leases WHERE job_id=? AND attempt=? AND agent_id=?", (job_id, attempt, agent_id)
        ).fetchone()
        if held is None and not (attempt == job["attempt"] and final["agent_id"] == agent_id):
            return None
        failure = from_jsonable(json.loads(final["result"]), BenchmarkResult).failure
        verdict = f"{failure.kind.value}: {failure.message}" if failure is not None else "closed"
        return (
            f"lease lost: the coordinator closed job {job_id} before the report of attempt {attempt} arrived "
            f"({verdict}); the report is kept as a late result beside that verdict, not as the job's result"
        )

    def expire_leases(self) -> None:
        with self._tx() as db:
            self._expire_leases(db, self._clock())

    def grant_restart_grace(self) -> int:
        """Give every leased job a full lease again; returns how many. Called when the coordinator starts.

        Expiry times keep running while the coordinator is down, and agents cannot renew then: without
        this, a restart longer than a lease would requeue jobs their agents finished during the outage
        and refuse those agents' reports.
        """
        now = self._clock()
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_expires_at = MAX(lease_expires_at, ?) WHERE state=?",
                (now + self.lease_duration_s, JobState.LEASED.value),
            )
        return cursor.rowcount

    def _check_current_lease(self, db: sqlite3.Connection, agent_id: str, job_id: str, attempt: int) -> None:
        row = db.execute("SELECT state, attempt, lease_agent_id FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown job {job_id!r}")
        if row["state"] != JobState.LEASED.value or row["attempt"] != attempt or row["lease_agent_id"] != agent_id:
            raise LeaseLost(
                f"job {job_id} attempt {attempt} is not leased to agent {agent_id} "
                f"(state {row['state']}, current attempt {row['attempt']})"
            )

    def _expire_leases(self, db: sqlite3.Connection, now: float) -> None:
        expired = db.execute(
            "SELECT job_id, attempt, lease_agent_id, backend, target_agent_id FROM jobs"
            " WHERE state=? AND lease_expires_at < ?",
            (JobState.LEASED.value, now),
        ).fetchall()
        for row in expired:
            db.execute("UPDATE agents SET current_job_id='' WHERE agent_id=?", (row["lease_agent_id"],))
            log.info(
                "agent %s lost: the lease on job %s (attempt %d) expired; %s",
                row["lease_agent_id"],
                row["job_id"],
                row["attempt"],
                "the job fails" if row["attempt"] >= MAX_ATTEMPTS else "requeued",
            )
            if row["attempt"] >= MAX_ATTEMPTS:
                failure = Failure(FailureKind.TIMEOUT, f"lease expired {row['attempt']} times; agent lost")
                self._finish(
                    db,
                    row["job_id"],
                    row["attempt"],
                    row["lease_agent_id"],
                    BenchmarkResult(failure=failure),
                    now,
                    by_agent=False,
                )
            else:
                db.execute(
                    "UPDATE jobs SET state=?, lease_agent_id=NULL, lease_expires_at=NULL, updated_at=? WHERE job_id=?",
                    (JobState.QUEUED.value, now, row["job_id"]),
                )
                self._on_job_queued(row["target_agent_id"], row["backend"])

    def _finish(
        self,
        db: sqlite3.Connection,
        job_id: str,
        attempt: int,
        agent_id: str,
        result: BenchmarkResult,
        now: float,
        *,
        by_agent: bool,
        payload: tuple[str, str] | None = None,
    ) -> None:
        """Close the job with `result`: an agent's report (`by_agent`) or the coordinator's own verdict.

        `agent_id` is the agent that held the attempt either way. A plain INSERT: an attempt's stored
        result is never replaced (a conflict is a bug and fails the transaction).
        """
        state = JobState.SUCCEEDED if result.ok else JobState.FAILED
        text, digest = payload or _payload(result)
        db.execute(
            "INSERT INTO results (job_id, attempt, agent_id, ok, result, created_at, written_by, payload_sha256)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                attempt,
                agent_id,
                int(result.ok),
                text,
                now,
                WRITTEN_BY_AGENT if by_agent else WRITTEN_BY_COORDINATOR,
                digest if by_agent else "",
            ),
        )
        db.execute(
            "UPDATE jobs SET state=?, lease_expires_at=NULL, updated_at=? WHERE job_id=?",
            (state.value, now, job_id),
        )
        db.execute("UPDATE agents SET current_job_id='' WHERE agent_id=? AND current_job_id=?", (agent_id, job_id))

    # -- training runs ------------------------------------------------------------------

    def add_training_runs(self, runs: list[tuple[str, TrainingConfig]], origin: str = "coordinator") -> list[str]:
        """Queue one run per (pipeline, config); returns their ids in the same order."""
        run_ids = [uuid.uuid4().hex[:12] for _ in runs]
        now = self._clock()
        with self._tx(durable=True) as db:
            for run_id, (pipeline, config) in zip(run_ids, runs, strict=True):
                self._insert_training_run(db, run_id, pipeline, config, origin, now)
        return run_ids

    def start_training_runs(self, run_ids: list[str]) -> None:
        now = self._clock()
        with self._tx() as db:
            db.executemany(
                "UPDATE training_runs SET state=?, started_at=? WHERE run_id=? AND state=?",
                [(TrainingState.RUNNING.value, now, run_id, TrainingState.QUEUED.value) for run_id in run_ids],
            )

    def finish_training_run(
        self,
        run_id: str,
        *,
        summary: TrainingSummary | None = None,
        error: str = "",
        model_sha256: str = "",
        dataset_sha256: str = "",
        savedmodel_sha256: str = "",
    ) -> None:
        """Succeeded with its summary and stored artifacts, or failed with `error`."""
        shas = (model_sha256, dataset_sha256, savedmodel_sha256)
        with self._tx(durable=True) as db:
            if db.execute("SELECT 1 FROM training_runs WHERE run_id=?", (run_id,)).fetchone() is None:
                raise NotFound(f"unknown training run {run_id!r}")
            self._finish_training_run(db, run_id, summary, error, shas, self._clock())

    def record_training_run(self, run: TrainingRun) -> str:
        """Store a finished run trained elsewhere (the CLI) in one transaction; returns its new id."""
        if not run.state.finished:
            raise ValueError(f"only a finished run can be recorded, not a {run.state.value} one")
        if run.state is TrainingState.SUCCEEDED and run.summary is None:
            raise ValueError("a succeeded run needs its summary")
        if run.state is TrainingState.FAILED and not run.error:
            raise ValueError("a failed run needs its error")
        run_id = uuid.uuid4().hex[:12]
        now = self._clock()
        with self._tx(durable=True) as db:
            self._insert_training_run(db, run_id, run.pipeline, run.config, run.origin, run.created_at or now)
            db.execute("UPDATE training_runs SET started_at=? WHERE run_id=?", (run.started_at, run_id))
            shas = (run.model_sha256, run.dataset_sha256, run.savedmodel_sha256)
            self._finish_training_run(db, run_id, run.summary, run.error, shas, run.finished_at or now)
        return run_id

    def fail_interrupted_training_runs(self) -> int:
        """Runs a previous coordinator process left queued or running fail; returns how many. Called at start."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE training_runs SET state=?, error=?, finished_at=? WHERE state IN (?, ?)",
                (
                    TrainingState.FAILED.value,
                    RESTARTED_DURING_TRAINING,
                    self._clock(),
                    TrainingState.QUEUED.value,
                    TrainingState.RUNNING.value,
                ),
            )
        return cursor.rowcount

    def get_training_run(self, run_id: str) -> TrainingRun:
        with self._lock:
            row = self._db.execute("SELECT * FROM training_runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown training run {run_id!r}")
        return self._training_run_from_row(row)

    def list_training_runs(self, limit: int = 500) -> list[TrainingRun]:
        """Newest first."""
        return [run for _, run in self.training_runs_page(limit)]

    def training_runs_page(self, limit: int, after: PageKey | None = None) -> list[tuple[PageKey, TrainingRun]]:
        """Up to `limit` runs created before `after`, newest first, each with its page key."""
        where, args = ("WHERE (created_at, rowid) < (?, ?)", after) if after is not None else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"SELECT rowid AS row_id, * FROM training_runs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [((r["created_at"], r["row_id"]), self._training_run_from_row(r)) for r in rows]

    @staticmethod
    def _insert_training_run(
        db: sqlite3.Connection, run_id: str, pipeline: str, config: TrainingConfig, origin: str, now: float
    ) -> None:
        db.execute(
            "INSERT INTO training_runs (run_id, pipeline, config, state, origin, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, pipeline, json.dumps(to_jsonable(config)), TrainingState.QUEUED.value, origin, now),
        )

    @staticmethod
    def _finish_training_run(
        db: sqlite3.Connection,
        run_id: str,
        summary: TrainingSummary | None,
        error: str,
        shas: tuple[str, str, str],
        now: float,
    ) -> None:
        """`shas`: the model, dataset and SavedModel artifacts ("" for none), each already in the store."""
        if not error and summary is None:
            raise ValueError("a training run finishes with a summary or an error")
        for sha in shas:
            if sha and db.execute("SELECT 1 FROM artifacts WHERE sha256=?", (sha,)).fetchone() is None:
                raise NotFound(f"unknown artifact {sha}: upload it before recording the run")
        state = TrainingState.FAILED if error else TrainingState.SUCCEEDED
        db.execute(
            "UPDATE training_runs SET state=?, error=?, summary=?, model_sha256=?, dataset_sha256=?,"
            " savedmodel_sha256=?, finished_at=? WHERE run_id=?",
            (
                state.value,
                error,
                None if summary is None or error else json.dumps(to_jsonable(summary)),
                *shas,
                now,
                run_id,
            ),
        )

    @staticmethod
    def _training_run_from_row(row: sqlite3.Row) -> TrainingRun:
        return TrainingRun(
            run_id=row["run_id"],
            pipeline=row["pipeline"],
            config=from_jsonable(json.loads(row["config"]), TrainingConfig),
            state=TrainingState(row["state"]),
            origin=row["origin"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            error=row["error"],
            summary=from_jsonable(json.loads(row["summary"]), TrainingSummary) if row["summary"] else None,
            model_sha256=row["model_sha256"],
            dataset_sha256=row["dataset_sha256"],
            savedmodel_sha256=row["savedmodel_sha256"],
        )

    # -- reads --------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        with self._lock:
            row = self._db.execute(self._JOB_QUERY + " WHERE j.job_id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown job {job_id!r}")
        return self._job_from_row(row)

    def list_jobs(self, limit: int = 100) -> list[Job]:
        """Newest first."""
        return [job for _, job in self.jobs_page(limit)]

    def jobs_page(self, limit: int, after: PageKey | None = None) -> list[tuple[PageKey, Job]]:
        """Up to `limit` jobs created before `after`, newest first, each with its page key."""
        where, args = (" WHERE (j.created_at, j.rowid) < (?, ?)", after) if after is not None else ("", ())
        query = self._JOB_QUERY.replace("SELECT j.*", "SELECT j.rowid AS row_id, j.*", 1)
        with self._lock:
            rows = self._db.execute(
                query + where + " ORDER BY j.created_at DESC, j.rowid DESC LIMIT ?", (*args, limit)
            ).fetchall()
        return [((r["created_at"], r["row_id"]), self._job_from_row(r)) for r in rows]

    def latest_result(self, job_id: str) -> StoredResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM results WHERE job_id=? ORDER BY attempt DESC LIMIT 1", (job_id,)
            ).fetchone()
        if row is None:
            return None
        result = from_jsonable(json.loads(row["result"]), BenchmarkResult)
        return StoredResult(
            row["job_id"], row["attempt"], row["agent_id"], result, row["created_at"], row["written_by"]
        )

    def late_results(self, job_id: str) -> list[LateResult]:
        """Reports that arrived after the coordinator closed the job, by attempt."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM late_results WHERE job_id=? ORDER BY attempt", (job_id,)).fetchall()
        return [self._late_from_row(r) for r in rows]

    @staticmethod
    def _late_from_row(row: sqlite3.Row) -> LateResult:
        result = from_jsonable(json.loads(row["result"]), BenchmarkResult)
        return LateResult(row["attempt"], row["agent_id"], row["created_at"], result)

    # Dashboard read model: whole-table reads in one query each (no per-job round trips).

    def list_results(self, limit: int = 5000) -> list[tuple[Job, StoredResult]]:
        """Every finished job with its latest attempt's result, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.attempt AS r_attempt, r.agent_id AS r_agent_id, r.result AS r_result,"
                " r.created_at AS r_created_at, r.written_by AS r_written_by, "
                + self._JOB_QUERY.removeprefix("SELECT ")
                + " JOIN results r"
                " ON r.job_id = j.job_id AND r.attempt = (SELECT MAX(attempt) FROM results WHERE job_id = j.job_id)"
                " ORDER BY r.created_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            (
                self._job_from_row(row),
                StoredResult(
                    row["job_id"],
                    row["r_attempt"],
                    row["r_agent_id"],
                    from_jsonable(json.loads(row["r_result"]), BenchmarkResult),
                    row["r_created_at"],
                    row["r_written_by"],
                ),
            )
            for row in rows
        ]

    def list_late_results(self) -> dict[str, list[LateResult]]:
        """Every late result (a report that reached a job the coordinator had already closed), by job id."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM late_results ORDER BY job_id, attempt").fetchall()
        late: dict[str, list[LateResult]] = {}
        for row in rows:
            late.setdefault(row["job_id"], []).append(self._late_from_row(row))
        return late

    def list_artifacts(self) -> list[tuple[ArtifactRef, dict[str, str]]]:
        """Every stored artifact with its metadata (pipeline, split, ...), newest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM artifacts ORDER BY created_at DESC").fetchall()
        return [
            (ArtifactRef(r["sha256"], r["size_bytes"], r["format"], r["name"]), json.loads(r["metadata"])) for r in rows
        ]

    _JOB_QUERY = (
        "SELECT j.*, COALESCE(j.lease_agent_id, j.target_agent_id, '') AS shown_agent, a.name AS agent_name"
        " FROM jobs j LEFT JOIN agents a ON a.agent_id = COALESCE(j.lease_agent_id, j.target_agent_id)"
    )

    @staticmethod
    def _job_from_row(row: sqlite3.Row) -> Job:
        return Job(
            job_id=row["job_id"],
            spec=from_jsonable(json.loads(row["spec"]), JobSpec),
            state=JobState(row["state"]),
            attempt=row["attempt"],
            agent_id=row["shown_agent"],
            agent_name=row["agent_name"] or "",
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )
