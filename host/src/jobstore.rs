//! The job store: every job's configuration and its append-only list of
//! lifecycle states (SPEC 7), kept in SQLite, by default in the same file as
//! the keys ([`crate::keystore::sqlite`] describes the shared settings).
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS jobs (
//!   job_id        TEXT PRIMARY KEY NOT NULL,  -- UUID, lowercase with hyphens
//!   created_at_ms INTEGER NOT NULL,           -- Unix ms
//!   config_json   TEXT NOT NULL,              -- the job file, secrets redacted by the caller
//!   base_dir      TEXT NOT NULL               -- directory relative paths of the job resolve against
//! );
//! CREATE TABLE IF NOT EXISTS job_states (
//!   job_id  TEXT NOT NULL REFERENCES jobs (job_id),
//!   seq     INTEGER NOT NULL,                 -- 1, 2, 3, ... per job: the order of the states
//!   at_ms   INTEGER NOT NULL,                 -- Unix ms
//!   state   TEXT NOT NULL,                    -- PENDING | STARTED | RUNNING | FINISHED | ERROR_STARTING | ERROR
//!   message TEXT NOT NULL,
//!   PRIMARY KEY (job_id, seq)
//! );
//! -- plus triggers that abort any UPDATE or DELETE of job_states.
//! ```
//! `meta.jobs_schema_version` is `'1'`.
//!
//! States are appended in `BEGIN IMMEDIATE` transactions, with `seq` one
//! more than the job's highest, so that two processes appending to one job
//! cannot interleave and [`SqliteJobStore::claim_start`] is decided once.
//!
//! # Security
//! Messages are stored as given: callers must never put a PII value or key
//! material in one (SPEC 7), nor a secret in `config_json`.
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::keystore::sqlite::{open_connection, retry_busy};

/// The version of the job tables.
pub const JOBS_SCHEMA_VERSION: u32 = 1;

const JOB_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  job_id        TEXT PRIMARY KEY NOT NULL,
  created_at_ms INTEGER NOT NULL,
  config_json   TEXT NOT NULL,
  base_dir      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_states (
  job_id  TEXT NOT NULL REFERENCES jobs (job_id),
  seq     INTEGER NOT NULL,
  at_ms   INTEGER NOT NULL,
  state   TEXT NOT NULL,
  message TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
);
CREATE TRIGGER IF NOT EXISTS job_states_append_only_update BEFORE UPDATE ON job_states
  BEGIN SELECT RAISE(ABORT, 'job states are append-only'); END;
CREATE TRIGGER IF NOT EXISTS job_states_append_only_delete BEFORE DELETE ON job_states
  BEGIN SELECT RAISE(ABORT, 'job states are append-only'); END;
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at_ms);
";

const LATEST_STATE: &str =
    "SELECT state, message FROM job_states WHERE job_id = ?1 ORDER BY seq DESC LIMIT 1";
const APPEND_STATE: &str = "INSERT INTO job_states (job_id, seq, at_ms, state, message) \
     SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM job_states WHERE job_id = ?1";

/// A job's lifecycle state (SPEC 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Created, not started.
    Pending,
    /// Connectors and key store ready, about to read.
    Started,
    /// Processing (repeated with progress).
    Running,
    /// All outputs committed. Final.
    Finished,
    /// A start failed; retried, then final.
    ErrorStarting,
    /// A failure while running. Final.
    Error,
}

impl JobState {
    /// The name as stored and shown: `PENDING`, `STARTED`, `RUNNING`,
    /// `FINISHED`, `ERROR_STARTING`, `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Started => "STARTED",
            JobState::Running => "RUNNING",
            JobState::Finished => "FINISHED",
            JobState::ErrorStarting => "ERROR_STARTING",
            JobState::Error => "ERROR",
        }
    }

    /// The state named `s` (as [`Self::as_str`] writes it).
    pub fn from_name(s: &str) -> Option<JobState> {
        Some(match s {
            "PENDING" => JobState::Pending,
            "STARTED" => JobState::Started,
            "RUNNING" => JobState::Running,
            "FINISHED" => JobState::Finished,
            "ERROR_STARTING" => JobState::ErrorStarting,
            "ERROR" => JobState::Error,
            _ => return None,
        })
    }

    /// Whether a job in this state may be (re)started.
    pub fn is_startable(self) -> bool {
        matches!(self, JobState::Pending | JobState::ErrorStarting)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a job's state list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub at_ms: i64,
    pub state: JobState,
    pub message: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// A UUID.
    pub id: String,
    pub created_at_ms: i64,
    /// The job file, secrets already redacted by the caller.
    pub config_json: String,
    pub base_dir: String,
    /// Oldest first.
    pub states: Vec<StateEntry>,
}

/// What can go wrong in the job store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobStoreError {
    #[error("no job with id {id}")]
    NotFound { id: String },
    #[error("a job with id {id} already exists")]
    AlreadyExists { id: String },
    /// `claim_start` on a job that is not PENDING (or ERROR_STARTING).
    #[error("job {id} is {state}, not PENDING: it cannot be started")]
    NotPending { id: String, state: JobState },
    #[error("job id {id:?} is not a UUID")]
    InvalidId { id: String },
    #[error("corrupt job store: {message}")]
    Corrupt { message: String },
    #[error("job store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Jobs and their states in one SQLite file, safe to share between threads
/// and processes.
pub struct SqliteJobStore {
    conn: Mutex<Connection>,
}

impl fmt::Debug for SqliteJobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteJobStore").finish_non_exhaustive()
    }
}

/// What a read-then-write transaction decided, carried out of the retry loop.
enum Claim {
    Done,
    Missing,
    Refused(String),
}

impl SqliteJobStore {
    /// Opens (or creates) the job tables in the database at `path` (which may
    /// also hold a key store).
    ///
    /// # Errors
    /// [`JobStoreError::Corrupt`] if the tables were written by a newer
    /// keylink; SQLite errors.
    pub fn open(path: &Path) -> Result<Self, JobStoreError> {
        let mut conn = open_connection(path)?;
        let version = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(JOB_SCHEMA)?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('jobs_schema_version', ?1) ON CONFLICT (name) DO NOTHING",
                [JOBS_SCHEMA_VERSION.to_string()],
            )?;
            let v: String = tx.query_row(
                "SELECT value FROM meta WHERE name = 'jobs_schema_version'",
                [],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(v)
        })?;
        if version != JOBS_SCHEMA_VERSION.to_string() {
            return Err(JobStoreError::Corrupt {
                message: format!(
                    "unsupported job store schema version {version} (this keylink supports {JOBS_SCHEMA_VERSION})"
                ),
            });
        }
        Ok(SqliteJobStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // rusqlite rolls back an unfinished transaction on drop, so a panic
        // under the lock leaves the connection usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new job, in state PENDING.
    ///
    /// # Errors
    /// [`JobStoreError::InvalidId`], [`JobStoreError::AlreadyExists`], SQLite errors.
    pub fn create_job(
        &self,
        id: &str,
        config_json: &str,
        base_dir: &str,
        now_ms: i64,
    ) -> Result<(), JobStoreError> {
        if uuid::Uuid::try_parse(id).is_err() {
            return Err(JobStoreError::InvalidId { id: id.to_owned() });
        }
        let mut conn = self.conn();
        let created = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "INSERT INTO jobs (job_id, created_at_ms, config_json, base_dir) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (job_id) DO NOTHING",
                params![id, now_ms, config_json, base_dir],
            )?;
            if n == 1 {
                tx.execute(
                    "INSERT INTO job_states (job_id, seq, at_ms, state, message) VALUES (?1, 1, ?2, ?3, '')",
                    params![id, now_ms, JobState::Pending.as_str()],
                )?;
            }
            tx.commit()?;
            Ok(n == 1)
        })?;
        if created {
            Ok(())
        } else {
            Err(JobStoreError::AlreadyExists { id: id.to_owned() })
        }
    }

    /// Appends a state to the job's list.
    ///
    /// # Errors
    /// [`JobStoreError::NotFound`], SQLite errors.
    pub fn append_state(
        &self,
        id: &str,
        state: JobState,
        message: &str,
        now_ms: i64,
    ) -> Result<(), JobStoreError> {
        let mut conn = self.conn();
        let outcome = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // The SELECT over an unknown job yields one row with seq 1, so
            // check existence first rather than rely on the foreign key.
            let exists = tx
                .prepare_cached("SELECT 1 FROM jobs WHERE job_id = ?1")?
                .exists([id])?;
            if exists {
                tx.prepare_cached(APPEND_STATE)?.execute(params![
                    id,
                    now_ms,
                    state.as_str(),
                    message
                ])?;
            }
            tx.commit()?;
            Ok(exists)
        })?;
        if outcome {
            Ok(())
        } else {
            Err(JobStoreError::NotFound { id: id.to_owned() })
        }
    }

    /// Atomically claims a job for starting: appends STARTED only if its
    /// latest state is PENDING (or ERROR_STARTING, for a retry). Of several
    /// processes claiming one job, exactly one succeeds.
    ///
    /// # Errors
    /// [`JobStoreError::NotPending`] with the job's latest state;
    /// [`JobStoreError::NotFound`]; SQLite errors.
    pub fn claim_start(&self, id: &str, now_ms: i64) -> Result<(), JobStoreError> {
        let mut conn = self.conn();
        // IMMEDIATE: the read of the latest state and the append happen under
        // one write lock, so no other process can claim in between.
        let claim = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let latest: Option<String> = tx
                .prepare_cached(LATEST_STATE)?
                .query_row([id], |r| r.get(0))
                .optional()?;
            let claim = match latest {
                None => Claim::Missing,
                Some(s) if JobState::from_name(&s).is_some_and(JobState::is_startable) => {
                    tx.prepare_cached(APPEND_STATE)?.execute(params![
                        id,
                        now_ms,
                        JobState::Started.as_str(),
                        ""
                    ])?;
                    Claim::Done
                }
                Some(s) => Claim::Refused(s),
            };
            tx.commit()?;
            Ok(claim)
        })?;
        match claim {
            Claim::Done => Ok(()),
            Claim::Missing => Err(JobStoreError::NotFound { id: id.to_owned() }),
            Claim::Refused(s) => Err(JobStoreError::NotPending {
                id: id.to_owned(),
                state: parse_state(&s)?,
            }),
        }
    }

    /// The job with its states, oldest first.
    ///
    /// # Errors
    /// SQLite errors; [`JobStoreError::Corrupt`] for an unknown state name.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError> {
        let mut conn = self.conn();
        let found = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let job = tx
                .prepare_cached(
                    "SELECT created_at_ms, config_json, base_dir FROM jobs WHERE job_id = ?1",
                )?
                .query_row([id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .optional()?;
            let states = match job {
                None => Vec::new(),
                Some(_) => tx
                    .prepare_cached("SELECT at_ms, state, message FROM job_states WHERE job_id = ?1 ORDER BY seq")?
                    .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            };
            tx.commit()?;
            Ok(job.map(|j| (j, states)))
        })?;
        let Some(((created_at_ms, config_json, base_dir), states)) = found else {
            return Ok(None);
        };
        let states = states
            .into_iter()
            .map(|(at_ms, s, message)| {
                Ok(StateEntry {
                    at_ms,
                    state: parse_state(&s)?,
                    message,
                })
            })
            .collect::<Result<Vec<_>, JobStoreError>>()?;
        Ok(Some(JobRecord {
            id: id.to_owned(),
            created_at_ms,
            config_json,
            base_dir,
            states,
        }))
    }

    /// The `limit` most recently created jobs, newest first: id, creation
    /// time, latest state and its message.
    ///
    /// # Errors
    /// SQLite errors; [`JobStoreError::Corrupt`] for an unknown state name.
    pub fn list(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, i64, JobState, String)>, JobStoreError> {
        let conn = self.conn();
        let rows = retry_busy(|| {
            conn.prepare_cached(
                "SELECT j.job_id, j.created_at_ms, s.state, s.message FROM jobs j \
                 JOIN job_states s ON s.job_id = j.job_id \
                   AND s.seq = (SELECT MAX(seq) FROM job_states WHERE job_id = j.job_id) \
                 ORDER BY j.created_at_ms DESC, j.job_id LIMIT ?1",
            )?
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(id, created, s, message)| Ok((id, created, parse_state(&s)?, message)))
            .collect()
    }
}

fn parse_state(s: &str) -> Result<JobState, JobStoreError> {
    JobState::from_name(s).ok_or_else(|| JobStoreError::Corrupt {
        message: format!("unknown job state {s:?}"),
    })
}
