"""Results store: agents, artifacts, jobs with leases, results, training runs; SQLite in WAL mode.

One connection guarded by a lock: the gRPC servicer calls in from a thread pool, and the
lease transitions (queued -> leased -> succeeded/failed, expired -> queued) must be atomic.
Specs and results are stored as JSON of the `edgelab.domain` dataclasses so the dashboard
can read them without protobuf.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
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
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    attempt INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    ok INTEGER NOT NULL,
    result TEXT NOT NULL,
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


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class StoredResult:
    job_id: str
    attempt: int
    agent_id: str
    result: BenchmarkResult
    created_at: float


class Store:
    """All coordinator state. Thread-safe; every public method is one transaction."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Any = time.time,
        lease_duration_s: float = LEASE_DURATION_S,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(agents)")}
        if "revoked_at" not in columns:  # a store written before agents could be revoked
            self._db.execute("ALTER TABLE agents ADD COLUMN revoked_at REAL")
        self._lock = threading.Lock()
        self._clock = clock
        self.lease_duration_s = lease_duration_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.path = path

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- agents -------------------------------------------------------------------------

    def register_agent(self, name: str, capabilities: DeviceCapabilities) -> tuple[str, str]:
        """Create an agent; returns (agent_id, agent_token). Only the token's hash is kept."""
        agent_id = uuid.uuid4().hex[:12]
        token = secrets.token_urlsafe(24)
        now = self._clock()
        with self._tx() as db:
            db.execute(
                "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, '', NULL)",
                (agent_id, name, _hash_token(token), json.dumps(to_jsonable(capabilities)), now, now),
            )
        return agent_id, token

    def authenticate_agent(self, agent_id: str, token: str) -> None:
        with self._lock:
            row = self._db.execute(
                "SELECT token_sha256, revoked_at FROM agents WHERE agent_id=?", (agent_id,)
            ).fetchone()
        if row is None:
            raise AuthError(f"unknown agent {agent_id!r}: register first")
        if not secrets.compare_digest(row["token_sha256"], _hash_token(token)):
            raise AuthError(f"bad credential for agent {agent_id!r}")
        if row["revoked_at"] is not None:
            raise PermissionDenied(f"agent {agent_id!r} was revoked by an operator")

    def revoke_agent(self, agent_id: str) -> tuple[list[str], list[str]]:
        """Refuse the agent from now on; returns (requeued job ids, failed job ids).

        Its leased job goes back to the queue unless it is pinned to this agent; jobs pinned to
        it could never run, so they fail as unavailable.
        """
        now = self._clock()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM agents WHERE agent_id=?", (agent_id,)).fetchone() is None:
                raise NotFound(f"unknown agent {agent_id!r}")
            db.execute(
                "UPDATE agents SET revoked_at=COALESCE(revoked_at, ?), current_job_id='' WHERE agent_id=?",
                (now, agent_id),
            )
            requeued = [
                r["job_id"]
                for r in db.execute(
                    "SELECT job_id FROM jobs WHERE state=? AND lease_agent_id=? AND target_agent_id IS NULL",
                    (JobState.LEASED.value, agent_id),
                )
            ]
            for job_id in requeued:
                db.execute(
                    "UPDATE jobs SET state=?, lease_agent_id=NULL, lease_expires_at=NULL, updated_at=? WHERE job_id=?",
                    (JobState.QUEUED.value, now, job_id),
                )
            pinned = db.execute(
                "SELECT job_id, attempt FROM jobs WHERE target_agent_id=? AND state IN (?, ?)",
                (agent_id, JobState.QUEUED.value, JobState.LEASED.value),
            ).fetchall()
            failure = Failure(FailureKind.UNAVAILABLE, f"agent {agent_id} was revoked before the job finished")
            for row in pinned:
                self._finish(db, row["job_id"], row["attempt"], agent_id, BenchmarkResult(failure=failure), now)
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
        with self._lock:
            rows = self._db.execute("SELECT * FROM agents ORDER BY registered_at").fetchall()
        return [self._agent_from_row(r) for r in rows]

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
        with self._tx() as db:
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
        with self._tx() as db:
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
        return job_id

    def lease_job(self, agent_id: str, backends: list[str]) -> Lease | None:
        """Lease the oldest queued job this agent may run, or None."""
        if not backends:
            return None
        now = self._clock()
        with self._tx() as db:
            self._expire_leases(db, now)
            marks = ",".join("?" * len(backends))
            row = db.execute(
                f"SELECT * FROM jobs WHERE state=? AND backend IN ({marks})"
                " AND (target_agent_id IS NULL OR target_agent_id=?) ORDER BY created_at LIMIT 1",
                (JobState.QUEUED.value, *backends, agent_id),
            ).fetchone()
            if row is None:
                return None
            attempt = row["attempt"] + 1
            db.execute(
                "UPDATE jobs SET state=?, attempt=?, lease_agent_id=?, lease_expires_at=?, updated_at=? WHERE job_id=?",
                (JobState.LEASED.value, attempt, agent_id, now + self.lease_duration_s, now, row["job_id"]),
            )
            db.execute("UPDATE agents SET current_job_id=? WHERE agent_id=?", (row["job_id"], agent_id))
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
        """Store a result; returns True if it was a duplicate of an accepted report (idempotent)."""
        now = self._clock()
        with self._tx() as db:
            done = db.execute("SELECT agent_id FROM results WHERE job_id=? AND attempt=?", (job_id, attempt)).fetchone()
            if done is not None and done["agent_id"] == agent_id:
                return True
            self._expire_leases(db, now)
            self._check_current_lease(db, agent_id, job_id, attempt)
            self._finish(db, job_id, attempt, agent_id, result, now)
        return False

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
            "SELECT job_id, attempt, lease_agent_id FROM jobs WHERE state=? AND lease_expires_at < ?",
            (JobState.LEASED.value, now),
        ).fetchall()
        for row in expired:
            db.execute("UPDATE agents SET current_job_id='' WHERE agent_id=?", (row["lease_agent_id"],))
            if row["attempt"] >= MAX_ATTEMPTS:
                failure = Failure(FailureKind.TIMEOUT, f"lease expired {row['attempt']} times; agent lost")
                self._finish(
                    db,
                    row["job_id"],
                    row["attempt"],
                    row["lease_agent_id"],
                    BenchmarkResult(failure=failure),
                    now,
                )
            else:
                db.execute(
                    "UPDATE jobs SET state=?, lease_agent_id=NULL, lease_expires_at=NULL, updated_at=? WHERE job_id=?",
                    (JobState.QUEUED.value, now, row["job_id"]),
                )

    def _finish(
        self,
        db: sqlite3.Connection,
        job_id: str,
        attempt: int,
        agent_id: str,
        result: BenchmarkResult,
        now: float,
    ) -> None:
        state = JobState.SUCCEEDED if result.ok else JobState.FAILED
        db.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, attempt, agent_id, int(result.ok), json.dumps(to_jsonable(result)), now),
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
        with self._tx() as db:
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
        with self._tx() as db:
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
        with self._tx() as db:
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
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM training_runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [self._training_run_from_row(r) for r in rows]

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
        with self._lock:
            rows = self._db.execute(self._JOB_QUERY + " ORDER BY j.created_at DESC LIMIT ?", (limit,)).fetchall()
        return [self._job_from_row(r) for r in rows]

    def latest_result(self, job_id: str) -> StoredResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM results WHERE job_id=? ORDER BY attempt DESC LIMIT 1", (job_id,)
            ).fetchone()
        if row is None:
            return None
        result = from_jsonable(json.loads(row["result"]), BenchmarkResult)
        return StoredResult(row["job_id"], row["attempt"], row["agent_id"], result, row["created_at"])

    # Dashboard read model: whole-table reads in one query each (no per-job round trips).

    def list_results(self, limit: int = 5000) -> list[tuple[Job, StoredResult]]:
        """Every finished job with its latest attempt's result, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.attempt AS r_attempt, r.agent_id AS r_agent_id, r.result AS r_result,"
                " r.created_at AS r_created_at, " + self._JOB_QUERY.removeprefix("SELECT ") + " JOIN results r"
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
                ),
            )
            for row in rows
        ]

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
