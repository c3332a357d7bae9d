//! The SQLite key store: one database file shared by every process and
//! machine (through a shared file system that supports SQLite locking) that
//! runs jobs of the same groups.
//!
//! # Design note: the on-disk format
//!
//! This file is also read and written by a Node implementation
//! (better-sqlite3) sharing the same file with the CLI, so the format below
//! is a contract. Change it only together with [`SCHEMA_VERSION`].
//!
//! Connection settings (every connection, every process): `PRAGMA
//! journal_mode = WAL`, `PRAGMA busy_timeout = 30000`, `PRAGMA secure_delete
//! = ON` (shredded key material is overwritten with zeros, not left on free
//! pages). Every write is one `BEGIN IMMEDIATE` transaction, so writers queue
//! on the database lock instead of failing on a read-to-write upgrade.
//!
//! ```sql
//! -- Settings of the store. `value` holds TEXT except `hmac_secret` (BLOB).
//! CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value NOT NULL);
//! --   schema_version    '1'
//! --   hmac_secret       32 random bytes (absent if the store uses an external secret)
//! --   hmac_secret_check lowercase hex HMAC-SHA-256(key = secret, "keylink hmac secret check v1")
//! --   kek_key_id        decimal Tink key id of the KEK, or '' when key material is stored raw
//! --   kek_fingerprint   lowercase hex HMAC-SHA-256(key = KEK material, "keylink kek fingerprint v1"), or ''
//!
//! -- One row per batch job group: its cipher, fixed at first use.
//! CREATE TABLE IF NOT EXISTS groups (
//!   group_id      TEXT PRIMARY KEY NOT NULL,   -- the group id as given (not PII)
//!   cipher        TEXT NOT NULL,               -- 'aes-256-gcm' | 'aes-256-siv'
//!   created_at_ms INTEGER NOT NULL             -- Unix time in milliseconds
//! );
//!
//! -- One row per (group, key-field value, window): exactly one key each.
//! CREATE TABLE IF NOT EXISTS keys (
//!   group_id        TEXT NOT NULL,
//!   key_value_hmac  BLOB NOT NULL,             -- 32 bytes, see "HMAC" below
//!   window          INTEGER NOT NULL,          -- window index (SPEC 3)
//!   window_start_ms INTEGER NOT NULL,          -- start of the window, Unix ms
//!   key_link        TEXT NOT NULL UNIQUE,      -- UUID v4, lowercase with hyphens
//!   key_id          INTEGER NOT NULL,          -- Tink key id, 1..=4294967295
//!   cipher          TEXT NOT NULL,             -- same as the group's cipher
//!   material        BLOB NOT NULL,             -- raw key material, or wrapped (see below)
//!   wrapped         INTEGER NOT NULL,          -- 0 = raw, 1 = wrapped with the KEK
//!   subject_hmac    BLOB,                      -- 32 bytes, or NULL without a data subject
//!   created_at_ms   INTEGER NOT NULL,          -- Unix ms
//!   uses            INTEGER NOT NULL DEFAULT 0,-- values encrypted with this key by finished jobs
//!   PRIMARY KEY (group_id, key_value_hmac, window)
//! );
//! CREATE INDEX IF NOT EXISTS keys_by_subject ON keys (group_id, subject_hmac)
//!   WHERE subject_hmac IS NOT NULL;
//! ```
//!
//! The job store ([`crate::jobstore`]) may keep its own tables (`jobs`,
//! `job_states`) and its own `meta` row (`jobs_schema_version`) in the
//! same file.
//!
//! **HMAC.** `key_value_hmac` and `subject_hmac` are HMAC-SHA-256 with the
//! store's 32-byte secret as key over `UTF-8(group_id) ‖ 0x00 ‖
//! UTF-8(value)`: equal values in different groups give unrelated hashes.
//!
//! **Get-or-create.** In one `BEGIN IMMEDIATE` transaction: `INSERT INTO
//! groups … ON CONFLICT (group_id) DO NOTHING`, then compare the group's
//! cipher; for each request `INSERT INTO keys … ON CONFLICT (group_id,
//! key_value_hmac, window) DO NOTHING`; when no row was inserted, `SELECT`
//! the existing one. Every racer thus returns the first writer's key. A job
//! uses the batched form, which keeps that transaction open across the
//! batches of up to a second (or 65,536 requests), so many batches share one
//! commit and other writers wait for the lock at most about that long; the
//! job commits before it publishes its outputs.
//!
//! **Wrapping.** With a KEK (a Tink AES-256-GCM key), `material` holds the raw
//! Tink ciphertext `0x01 ‖ KEK key id (4 bytes, big-endian) ‖ nonce (12
//! random bytes) ‖ AES-256-GCM ciphertext of the raw material ‖ tag (16
//! bytes)`, with the key link (UTF-8, as stored) as associated data. A store
//! is either wrapped or raw for its whole life, decided when it is created.
//!
//! # Security
//! - No PII at rest: key-field and subject values exist only as keyed
//!   HMACs. Whoever holds the file *and* its `hmac_secret` can test guesses
//!   of a value; keep the secret outside the file
//!   ([`SqliteKeyStore::open_with_secret`]) where that matters.
//! - Without a KEK the key material is stored raw: protect the file like the
//!   keys themselves.
//! - Shredding deletes rows with `secure_delete` on and then truncates the
//!   WAL (`wal_checkpoint(TRUNCATE)`), so the material does not linger in
//!   the file. If another connection holds a read transaction open at that
//!   moment the truncation is skipped and happens at a later shred or
//!   checkpoint; copies of the file (backups) are out of reach, of course.
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use keylink_core::config::CipherKind;
use keylink_core::keys::{KeyRequest, StoredKey};
use keylink_core::tink::{KeyMaterial, TinkKey};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Kek, KeyStore, KeyStoreError};

/// The version of the format described above.
pub const SCHEMA_VERSION: u32 = 1;

/// How long a connection waits for another process's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an operation that failed with `SQLITE_BUSY` despite the busy
/// timeout (WAL recovery, journal mode switch) is retried.
const BUSY_RETRIES: u32 = 50;

const SECRET_LEN: usize = 32;

/// WAL size (in pages) at which a committing connection checkpoints: 10,000
/// pages of 4 KiB, i.e. about 40 MB of WAL between checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

const KEY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
  group_id      TEXT PRIMARY KEY NOT NULL,
  cipher        TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
  group_id        TEXT NOT NULL,
  key_value_hmac  BLOB NOT NULL,
  window          INTEGER NOT NULL,
  window_start_ms INTEGER NOT NULL,
  key_link        TEXT NOT NULL UNIQUE,
  key_id          INTEGER NOT NULL,
  cipher          TEXT NOT NULL,
  material        BLOB NOT NULL,
  wrapped         INTEGER NOT NULL,
  subject_hmac    BLOB,
  created_at_ms   INTEGER NOT NULL,
  uses            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (group_id, key_value_hmac, window)
);
CREATE INDEX IF NOT EXISTS keys_by_subject ON keys (group_id, subject_hmac) WHERE subject_hmac IS NOT NULL;
";

const INSERT_KEY: &str = "INSERT INTO keys (group_id, key_value_hmac, window, window_start_ms, key_link, key_id, cipher, \
     material, wrapped, subject_hmac, created_at_ms, uses) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0) \
     ON CONFLICT (group_id, key_value_hmac, window) DO NOTHING";
const SELECT_KEY: &str = "SELECT key_link, key_id, cipher, material, wrapped, uses FROM keys \
     WHERE group_id = ?1 AND key_value_hmac = ?2 AND window = ?3";
const SELECT_BY_LINK: &str =
    "SELECT key_link, key_id, cipher, material, wrapped, uses FROM keys WHERE key_link = ?1";

/// Opens `path` with the settings every connection to a keylink database
/// uses (WAL, busy timeout, secure delete). Shared with the job store.
pub(crate) fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Switching to WAL needs an exclusive lock for a moment and may report
    // SQLITE_BUSY without waiting when another process opens the new file at
    // the same time; once any connection set it, it is persistent.
    retry_busy(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)))?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A job touches keys all over the index (key values arrive in no
    // order): keep the hot part of the file in SQLite's own cache rather
    // than reading pages through syscalls. 16 MiB: a larger cache (64 MiB
    // was measured) bought no speed, since the OS caches the file too, and
    // cost its size in resident memory.
    conn.pragma_update(None, "cache_size", -16_384)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Key-field values are HMACs, so a batch of new keys lands all over the
    // indexes and one commit dirties thousands of pages. With SQLite's
    // default (checkpoint once the WAL passes 1,000 pages) every commit of a
    // job would also copy them all back into the database file; a larger
    // WAL lets a checkpoint copy a page once for many commits (measured:
    // half the time of a million-row job with ~185,000 new keys).
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(conn)
}

/// Runs `f` again while it fails with `SQLITE_BUSY`/`SQLITE_LOCKED`. The
/// busy timeout covers ordinary lock waits; this covers the cases where
/// SQLite reports busy at once (WAL recovery by another process, journal
/// mode switch). `f` must be a whole transaction, so a retry is safe.
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && attempt < BUSY_RETRIES =>
            {
                attempt += 1;
                thread::sleep(Duration::from_millis(10 * u64::from(attempt.min(10))));
            }
            other => return other,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The HMAC secret of a store: key-field and subject values are only kept
/// as HMACs under it.
struct Secret(Zeroizing<[u8; SECRET_LEN]>);

impl Secret {
    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0[..])
            .expect("HMAC accepts keys of any length")
    }

    /// HMAC-SHA-256(secret, group ‖ 0x00 ‖ value).
    fn value_hmac(&self, group: &str, value: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(group.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Identifies the secret without revealing it, to refuse a wrong
    /// external secret.
    fn check(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"keylink hmac secret check v1");
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A [`KeyStore`] in one SQLite file, safe to share between threads and
/// processes.
///
/// # Security
/// See the [module documentation](self): no PII at rest, optional wrapping of
/// key material, shredding that overwrites.
pub struct SqliteKeyStore {
    conn: Mutex<Held>,
    secret: Secret,
    kek: Option<Kek>,
}

/// How long a batch of `get_or_create_batched` may hold the write lock
/// before it commits, and how many keys it may gather: other processes
/// sharing the file wait for the lock at most about this long.
const BATCH_MAX_AGE: Duration = Duration::from_secs(1);
const BATCH_MAX_KEYS: usize = 65_536;

/// The connection and the transaction `get_or_create_batched` left open.
struct Held {
    conn: Connection,
    /// When the open batch began and how many requests it holds.
    open: Option<(Instant, usize)>,
    /// Why keys handed out by an open batch were lost, until `flush`
    /// reports it.
    lost: Option<String>,
}

impl Held {
    /// Commits the open batch, if any. A failed commit rolls back and
    /// loses the batch's keys.
    fn commit_open(&mut self) -> Result<(), KeyStoreError> {
        if self.open.take().is_some() {
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(self.lose(KeyStoreError::Sqlite(e)));
            }
        }
        Ok(())
    }

    /// Records that an open batch's keys were lost through `e`.
    fn lose(&mut self, e: KeyStoreError) -> KeyStoreError {
        let message = e.to_string();
        self.open = None;
        self.lost = Some(message.clone());
        KeyStoreError::Uncommitted { message }
    }
}

impl std::fmt::Debug for SqliteKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteKeyStore")
            .field("kek", &self.kek)
            .finish_non_exhaustive()
    }
}

/// A request prepared outside the transaction: hashes and the material as
/// it will be stored.
struct Prepared {
    key_value_hmac: [u8; 32],
    subject_hmac: Option<[u8; 32]>,
    stored_material: Zeroizing<Vec<u8>>,
}

impl SqliteKeyStore {
    /// Opens (or creates) the key store at `path`, with an HMAC secret kept
    /// in the file (created at random with the store).
    ///
    /// With `kek`, key material is wrapped at rest; a store is wrapped or
    /// raw for its whole life, as decided by the first open.
    ///
    /// # Errors
    /// [`KeyStoreError::KekRequired`], [`KeyStoreError::KekMismatch`] or
    /// [`KeyStoreError::KekNotExpected`] when `kek` does not fit the store;
    /// [`KeyStoreError::SecretRequired`] if the store was created with an
    /// external secret; [`KeyStoreError::UnsupportedSchema`]; SQLite errors.
    pub fn open(path: &Path, kek: Option<Kek>) -> Result<Self, KeyStoreError> {
        Self::open_inner(path, kek, None)
    }

    /// Opens (or creates) the key store at `path` with an HMAC secret kept
    /// outside the file: whoever steals the file cannot then test guesses of
    /// key-field or subject values.
    ///
    /// # Errors
    /// As [`Self::open`]; [`KeyStoreError::SecretMismatch`] if the store was
    /// created with another secret (or with a secret of its own).
    pub fn open_with_secret(
        path: &Path,
        kek: Option<Kek>,
        secret: &[u8; 32],
    ) -> Result<Self, KeyStoreError> {
        Self::open_inner(path, kek, Some(Secret(Zeroizing::new(*secret))))
    }

    fn open_inner(
        path: &Path,
        kek: Option<Kek>,
        external: Option<Secret>,
    ) -> Result<Self, KeyStoreError> {
        let mut conn = open_connection(path)?;
        // Two processes may create the file at once: the schema and the
        // settings are written in one IMMEDIATE transaction, and whoever
        // comes second sees the first one's settings.
        let mut fresh_secret = Zeroizing::new([0u8; SECRET_LEN]);
        getrandom::fill(&mut fresh_secret[..]).map_err(|e| KeyStoreError::Random(e.to_string()))?;
        let kek_settings = kek
            .as_ref()
            .map(|k| (k.key_id().to_string(), k.fingerprint()));
        let meta = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(KEY_SCHEMA)?;
            let version: Option<String> = get_meta_text(&tx, "schema_version")?;
            if version.is_none() {
                let check = match &external {
                    Some(s) => s.check(),
                    None => {
                        tx.execute(
                            "INSERT INTO meta (name, value) VALUES ('hmac_secret', ?1)",
                            [&fresh_secret[..]],
                        )?;
                        Secret(fresh_secret.clone()).check()
                    }
                };
                let (kek_id, kek_fp) = kek_settings.clone().unwrap_or_default();
                let mut ins = tx.prepare("INSERT INTO meta (name, value) VALUES (?1, ?2)")?;
                ins.execute(params!["schema_version", SCHEMA_VERSION.to_string()])?;
                ins.execute(params!["hmac_secret_check", check])?;
                ins.execute(params!["kek_key_id", kek_id])?;
                ins.execute(params!["kek_fingerprint", kek_fp])?;
                drop(ins);
            }
            let meta = StoreMeta {
                version: get_meta_text(&tx, "schema_version")?.unwrap_or_default(),
                secret: tx
                    .query_row(
                        "SELECT value FROM meta WHERE name = 'hmac_secret'",
                        [],
                        |r| r.get::<_, Vec<u8>>(0),
                    )
                    .optional()?,
                secret_check: get_meta_text(&tx, "hmac_secret_check")?.unwrap_or_default(),
                kek_key_id: get_meta_text(&tx, "kek_key_id")?.unwrap_or_default(),
                kek_fingerprint: get_meta_text(&tx, "kek_fingerprint")?.unwrap_or_default(),
            };
            tx.commit()?;
            Ok(meta)
        })?;

        if meta.version != SCHEMA_VERSION.to_string() {
            return Err(KeyStoreError::UnsupportedSchema {
                found: meta.version,
                supported: SCHEMA_VERSION,
            });
        }
        let secret = match (external, meta.secret) {
            (Some(s), _) => s,
            (None, Some(bytes)) => {
                let bytes = Zeroizing::new(bytes);
                let arr: [u8; SECRET_LEN] =
                    bytes[..].try_into().map_err(|_| KeyStoreError::Corrupt {
                        message: "meta.hmac_secret is not 32 bytes".into(),
                    })?;
                Secret(Zeroizing::new(arr))
            }
            (None, None) => return Err(KeyStoreError::SecretRequired),
        };
        if secret.check() != meta.secret_check {
            return Err(KeyStoreError::SecretMismatch);
        }
        match (&kek, meta.kek_key_id.as_str()) {
            (None, "") => {}
            (Some(_), "") => return Err(KeyStoreError::KekNotExpected),
            (None, id) => {
                return Err(KeyStoreError::KekRequired {
                    kek_key_id: parse_kek_id(id)?,
                });
            }
            (Some(k), id) => {
                let stored = parse_kek_id(id)?;
                if k.key_id() != stored || k.fingerprint() != meta.kek_fingerprint {
                    return Err(KeyStoreError::KekMismatch {
                        stored,
                        given: k.key_id(),
                    });
                }
            }
        }
        Ok(SqliteKeyStore {
            conn: Mutex::new(Held {
                conn,
                open: None,
                lost: None,
            }),
            secret,
            kek,
        })
    }

    /// The connection, with no transaction of `get_or_create_batched` left
    /// open (committed first).
    fn conn(&self) -> Result<MutexGuard<'_, Held>, KeyStoreError> {
        let mut held = self.held();
        held.commit_open()?;
        Ok(held)
    }

    /// The connection as it is, possibly inside an open batch.
    fn held(&self) -> MutexGuard<'_, Held> {
        // A panic while holding the lock leaves no half-done transaction
        // behind (statements run to completion or roll back), and an open
        // batch stays open for the next call to commit.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn prepare(
        &self,
        group: &str,
        cipher: CipherKind,
        requests: &[KeyRequest],
    ) -> Result<Vec<Prepared>, KeyStoreError> {
        let invalid = |message: String| KeyStoreError::InvalidProposal {
            group: group.to_owned(),
            message,
        };
        // One OS call for every nonce of the batch.
        let mut nonces = Vec::new();
        if self.kek.is_some() {
            nonces.resize(requests.len() * 12, 0u8);
            getrandom::fill(&mut nonces).map_err(|e| KeyStoreError::Random(e.to_string()))?;
        }
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let p = &r.proposal;
                if p.key.cipher != cipher {
                    return Err(invalid(format!(
                        "proposal {} is {}, not {}",
                        p.key_link,
                        p.key.cipher.name(),
                        cipher.name()
                    )));
                }
                if p.key.material.as_bytes().len() != cipher.key_len() {
                    return Err(invalid(format!(
                        "proposal {} has key material of the wrong length",
                        p.key_link
                    )));
                }
                if p.key.key_id == 0 {
                    return Err(invalid(format!("proposal {} has key id 0", p.key_link)));
                }
                if !is_canonical_uuid(&p.key_link) {
                    return Err(invalid(
                        "a proposal's key link is not a lowercase hyphenated UUID".into(),
                    ));
                }
                let stored_material = match &self.kek {
                    Some(kek) => {
                        let nonce: &[u8; 12] =
                            nonces[i * 12..i * 12 + 12].try_into().expect("12 bytes");
                        Zeroizing::new(kek.wrap_with_nonce(
                            p.key.material.as_bytes(),
                            &p.key_link,
                            nonce,
                        )?)
                    }
                    None => Zeroizing::new(p.key.material.as_bytes().to_vec()),
                };
                Ok(Prepared {
                    key_value_hmac: self.secret.value_hmac(group, &r.key_value),
                    subject_hmac: r
                        .subject
                        .as_deref()
                        .map(|s| self.secret.value_hmac(group, s)),
                    stored_material,
                })
            })
            .collect()
    }

    /// Get-or-create; `batched` leaves the transaction open for the next
    /// call (see [`KeyStore::get_or_create_batched`]).
    fn get_or_create_impl(
        &self,
        group: &str,
        cipher: CipherKind,
        requests: &[KeyRequest],
        batched: bool,
    ) -> Result<Vec<StoredKey>, KeyStoreError> {
        // Hashing and wrapping happen before the lock is taken, so other
        // processes wait for the database only as long as SQLite works.
        let prepared = self.prepare(group, cipher, requests)?;
        // Inserted in primary-key order, so consecutive inserts walk
        // neighbouring pages (HMACs arrive in random order).
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            (&prepared[a].key_value_hmac, requests[a].window).cmp(&(&prepared[b].key_value_hmac, requests[b].window))
        });
        let now = now_ms();
        let map_err = |e: rusqlite::Error| match e.sqlite_error_code() {
            // The only unique constraint an insert that ignores primary-key
            // conflicts can hit is `key_link`.
            Some(ErrorCode::ConstraintViolation) => KeyStoreError::InvalidProposal {
                group: group.to_owned(),
                message: "a proposal's key link is already the key link of another key".into(),
            },
            _ => KeyStoreError::Sqlite(e),
        };
        let insert_all = |conn: &Connection| -> rusqlite::Result<Result<Vec<Option<RawKeyRow>>, String>> {
            conn.prepare_cached("INSERT INTO groups (group_id, cipher, created_at_ms) VALUES (?1, ?2, ?3) ON CONFLICT (group_id) DO NOTHING")?
                .execute(params![group, cipher.name(), now])?;
            let stored: String =
                conn.prepare_cached("SELECT cipher FROM groups WHERE group_id = ?1")?.query_row([group], |r| r.get(0))?;
            if stored != cipher.name() {
                return Ok(Err(stored));
            }
            let mut rows: Vec<Option<RawKeyRow>> = Vec::with_capacity(requests.len());
            rows.resize_with(requests.len(), || None);
            let mut insert = conn.prepare_cached(INSERT_KEY)?;
            let mut select = conn.prepare_cached(SELECT_KEY)?;
            for &i in &order {
                let (r, p) = (&requests[i], &prepared[i]);
                let k = &r.proposal;
                let inserted = insert.execute(params![
                    group,
                    &p.key_value_hmac[..],
                    r.window,
                    r.window_start_ms,
                    k.key_link,
                    i64::from(k.key.key_id),
                    cipher.name(),
                    &p.stored_material[..],
                    self.kek.is_some(),
                    p.subject_hmac.as_ref().map(|h| &h[..]),
                    now,
                ])?;
                if inserted != 1 {
                    // Another job (or an earlier request of this batch) got
                    // there first: read its key, decode after the lock.
                    rows[i] = Some(select.query_row(params![group, &p.key_value_hmac[..], r.window], RawKeyRow::read)?);
                }
            }
            Ok(Ok(rows))
        };
        let mut held = self.held();
        if batched {
            if let Some(message) = &held.lost {
                return Err(KeyStoreError::Uncommitted { message: message.clone() });
            }
        } else {
            held.commit_open()?;
        }
        let outcome = if held.open.is_some() {
            // Inside the open batch, which holds the write lock: nothing
            // waits, and a failure loses the batch's earlier keys too.
            match insert_all(&held.conn) {
                Ok(o) => o,
                Err(e) => {
                    let _ = held.conn.execute_batch("ROLLBACK");
                    return Err(held.lose(map_err(e)));
                }
            }
        } else {
            let conn = &held.conn;
            let o = retry_busy(|| {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                insert_all(conn).inspect_err(|_| {
                    let _ = conn.execute_batch("ROLLBACK");
                })
            })
            .map_err(map_err)?;
            held.open = Some((Instant::now(), 0));
            o
        };
        if let Some((since, n)) = held.open.as_mut() {
            *n += requests.len();
            if !batched || since.elapsed() >= BATCH_MAX_AGE || *n >= BATCH_MAX_KEYS {
                if batched {
                    held.commit_open()?;
                } else {
                    held.open = None;
                    if let Err(e) = held.conn.execute_batch("COMMIT") {
                        let _ = held.conn.execute_batch("ROLLBACK");
                        return Err(KeyStoreError::Sqlite(e));
                    }
                }
            }
        }
        drop(held);
        let rows = outcome.map_err(|stored| match CipherKind::from_name(&stored) {
            Some(stored) => KeyStoreError::CipherMismatch {
                group: group.to_owned(),
                stored,
                requested: cipher,
            },
            None => KeyStoreError::Corrupt {
                message: format!("group {group:?} has an unknown cipher"),
            },
        })?;
        requests
            .iter()
            .zip(rows)
            .map(|(r, row)| match row {
                None => Ok(StoredKey {
                    uses_before: 0,
                    ..r.proposal.clone()
                }),
                Some(raw) => raw.decode(self),
            })
            .collect()
    }

    fn shred(&self, sql: &str, group: &str, hash: &[u8; 32]) -> Result<u64, KeyStoreError> {
        let mut held = self.conn()?;
        let conn = &mut held.conn;
        let deleted = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.prepare_cached(sql)?.execute(params![group, &hash[..]])?;
            tx.commit()?;
            Ok(n)
        })?;
        if deleted > 0 {
            // Old copies of the deleted pages live on in the WAL until it is
            // checkpointed and truncated. Best effort: a reader elsewhere
            // makes this a partial checkpoint, finished by a later one.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        Ok(deleted as u64)
    }
}

struct StoreMeta {
    version: String,
    secret: Option<Vec<u8>>,
    secret_check: String,
    kek_key_id: String,
    kek_fingerprint: String,
}

fn get_meta_text(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

fn parse_kek_id(id: &str) -> Result<u32, KeyStoreError> {
    id.parse().map_err(|_| KeyStoreError::Corrupt {
        message: "meta.kek_key_id is not a key id".into(),
    })
}

fn is_canonical_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

impl KeyStore for SqliteKeyStore {
    fn get_or_create(
        &self,
        group: &str,
        cipher: CipherKind,
        requests: &[KeyRequest],
    ) -> Result<Vec<StoredKey>, KeyStoreError> {
        self.get_or_create_impl(group, cipher, requests, false)
    }

    fn get_or_create_batched(
        &self,
        group: &str,
        cipher: CipherKind,
        requests: &[KeyRequest],
    ) -> Result<Vec<StoredKey>, KeyStoreError> {
        self.get_or_create_impl(group, cipher, requests, true)
    }

    fn flush(&self) -> Result<(), KeyStoreError> {
        let mut held = self.held();
        held.commit_open()?;
        match held.lost.take() {
            Some(message) => Err(KeyStoreError::Uncommitted { message }),
            None => Ok(()),
        }
    }

    fn lookup(
        &self,
        group: &str,
        requests: &[KeyRequest],
    ) -> Result<Vec<Option<StoredKey>>, KeyStoreError> {
        let hashes: Vec<[u8; 32]> = requests
            .iter()
            .map(|r| self.secret.value_hmac(group, &r.key_value))
            .collect();
        let mut held = self.conn()?;
        let conn = &mut held.conn;
        // One read transaction: a consistent snapshot of the whole batch.
        let rows = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let mut out = Vec::with_capacity(requests.len());
            {
                let mut select = tx.prepare_cached(SELECT_KEY)?;
                for (r, h) in requests.iter().zip(&hashes) {
                    out.push(
                        select
                            .query_row(params![group, &h[..], r.window], RawKeyRow::read)
                            .optional()?,
                    );
                }
            }
            tx.commit()?;
            Ok(out)
        })?;
        drop(held);
        rows.into_iter()
            .map(|row| row.map(|raw| raw.decode(self)).transpose())
            .collect()
    }

    fn record_uses(&self, uses: &[(String, u64)]) -> Result<(), KeyStoreError> {
        // Kept in the caller's order (first use), which for the keys a job
        // created is the order of their rows in the table: sorting by key
        // link instead made the table pages random and was measured slower.
        let mut held = self.conn()?;
        let conn = &mut held.conn;
        retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                // Saturates instead of letting SQLite turn an overflowing sum
                // into a floating-point value.
                let mut update = tx.prepare_cached(
                    "UPDATE keys SET uses = CASE WHEN uses > 9223372036854775807 - ?1 THEN 9223372036854775807 \
                     ELSE uses + ?1 END WHERE key_link = ?2",
                )?;
                for (link, n) in uses {
                    update.execute(params![i64::try_from(*n).unwrap_or(i64::MAX), link])?;
                }
            }
            tx.commit()
        })?;
        Ok(())
    }

    fn keys_by_links(&self, links: &[String]) -> Result<Vec<(String, TinkKey)>, KeyStoreError> {
        let mut held = self.conn()?;
        let conn = &mut held.conn;
        let rows = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let mut out = Vec::with_capacity(links.len());
            {
                let mut select = tx.prepare_cached(SELECT_BY_LINK)?;
                for link in links {
                    if let Some(raw) = select.query_row([link], RawKeyRow::read).optional()? {
                        out.push(raw);
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })?;
        drop(held);
        rows.into_iter()
            .map(|raw| {
                let k = raw.decode(self)?;
                Ok((k.key_link, k.key))
            })
            .collect()
    }

    fn shred_subject(&self, group: &str, subject: &str) -> Result<u64, KeyStoreError> {
        let hash = self.secret.value_hmac(group, subject);
        self.shred(
            "DELETE FROM keys WHERE group_id = ?1 AND subject_hmac = ?2",
            group,
            &hash,
        )
    }

    fn shred_key_value(&self, group: &str, key_value: &str) -> Result<u64, KeyStoreError> {
        let hash = self.secret.value_hmac(group, key_value);
        self.shred(
            "DELETE FROM keys WHERE group_id = ?1 AND key_value_hmac = ?2",
            group,
            &hash,
        )
    }
}

/// A key row as read inside a transaction; decoded (and unwrapped) after the
/// database lock is released.
struct RawKeyRow {
    key_link: String,
    key_id: i64,
    cipher: String,
    material: Zeroizing<Vec<u8>>,
    wrapped: bool,
    uses: i64,
}

impl RawKeyRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawKeyRow> {
        Ok(RawKeyRow {
            key_link: row.get(0)?,
            key_id: row.get(1)?,
            cipher: row.get(2)?,
            material: Zeroizing::new(row.get(3)?),
            wrapped: row.get(4)?,
            uses: row.get(5)?,
        })
    }

    fn decode(self, store: &SqliteKeyStore) -> Result<StoredKey, KeyStoreError> {
        let key_link = self.key_link;
        let corrupt = |what: &str| KeyStoreError::Corrupt {
            message: format!("key {key_link}: {what}"),
        };
        let cipher =
            CipherKind::from_name(&self.cipher).ok_or_else(|| corrupt("unknown cipher"))?;
        let key_id = u32::try_from(self.key_id)
            .ok()
            .filter(|&id| id != 0)
            .ok_or_else(|| corrupt("key id out of range"))?;
        let material = if self.wrapped {
            let Some(kek) = &store.kek else {
                // `open` refuses a wrapped store without a KEK; a wrapped row
                // in a raw store was written by something else.
                return Err(corrupt(
                    "wrapped key material in a store opened without a KEK",
                ));
            };
            kek.unwrap(&self.material, &key_link)?
        } else {
            self.material.to_vec()
        };
        if material.len() != cipher.key_len() {
            return Err(corrupt("key material of the wrong length"));
        }
        Ok(StoredKey {
            key: TinkKey {
                key_id,
                cipher,
                material: KeyMaterial::new(material),
            },
            key_link,
            uses_before: u64::try_from(self.uses).unwrap_or(0),
        })
    }
}
