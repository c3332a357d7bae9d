//! Running a batch job: start (with retries), parallel chunk workers,
//! ordered output, commit, lifecycle.
//!
//! # Design
//! A reader thread cuts the source into ~1 MiB chunks on record boundaries
//! ([`crate::split`]) and hands chunk `i` to worker `i % N` (a fixed
//! assignment, so outputs are reproducible for a given seed, worker count and
//! key store). Each worker owns one engine job for its lifetime (its key
//! cache survives between chunks), pushes the header once, then its chunks;
//! it answers key requests from the shared key store in one batch per chunk.
//! The main thread writes each chunk's output in input order. Workers' row
//! and line numbers are mapped back to the whole file with the splitter's
//! counts. The keys output is written by the host: one row per key link, in
//! order of first use, whichever worker used it.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use keylink_core::config::{JobConfig, SecretRef};
use keylink_core::cipher::CellCipher;
use keylink_core::job::{
    write_data_headers, write_keys_header, write_keys_row, write_keys_row_encrypted, Outputs, Summary, MAX_LISTED_SKIPS,
};
use keylink_core::config::CipherKind;
use keylink_core::keys::{KeyRequest, StoredKey};
use keylink_core::tink::{KeyMaterial, TinkKey};
use keylink_core::rng::JobRng;

use crate::connector::{self, AtomicFile, ConnectorError};
use crate::engine::native::secret_ref_text;
use crate::engine::{Engine, EngineJob, JobInit};
use crate::jobstore::JobState;
use crate::keystore::KeyStore;
use crate::lifecycle::{Event, Lifecycle};
use crate::split::Splitter;

/// Keys a job's engines keep in memory by default, shared out among its
/// workers' engine jobs (~300 bytes each: about 5 MB). A key an engine
/// forgot and needs again is answered by the job's compact cache of keys
/// already given ([`Answered`], ~90 bytes a key) and only past that by the
/// store. The benchmark clickstream has no locality (rows pick their
/// session at random from the whole file): 1M rows, 185,000 keys, one
/// worker, before that cache existed, the engines asked the store 900,000
/// times with 65,536 keys here, 335,000 times with 1,000,000.
pub const DEFAULT_KEY_CACHE: u32 = 16_384;

/// Keys a job remembers in [`Answered`] (~90 bytes each, ~24 MB at most).
const ANSWERED_KEYS: usize = 262_144;

/// Target chunk size handed to a worker. Every chunk in flight holds its
/// input and about three times as much output; with key requests committed
/// in batches, smaller chunks no longer cost a commit each (512 KiB: peak
/// RSS of a 2-worker component job 200 MB -> 160 MB, same speed).
pub const CHUNK_BYTES: usize = 1 << 19;

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The job file is invalid; no job was created.
    #[error("{0}")]
    Invalid(keylink_core::Error),
    /// The job could not start, after its retries (ERROR_STARTING).
    #[error("{0}")]
    Start(String),
    /// The job failed while running (ERROR).
    #[error("{0}")]
    Run(String),
    /// The job store failed.
    #[error("job store: {0}")]
    JobStore(String),
}

/// A job file read from disk, with what it refers to.
pub struct LoadedJob {
    pub json: String,
    pub config: JobConfig,
    pub contracts: Vec<(String, String)>,
    /// Directory of the job file (the default key store lives there).
    pub dir: PathBuf,
}

/// Reads and validates a job file (every problem at once).
///
/// # Errors
/// `Invalid` with the JSON paths, or the file cannot be read.
pub fn load_job(path: &Path) -> Result<LoadedJob, RunError> {
    let json = std::fs::read_to_string(path)
        .map_err(|e| RunError::Invalid(secret_error("$", &format!("cannot read job file {}: {e}", path.display()))))?;
    load_job_json(json, path.parent().unwrap_or(Path::new(".")))
}

/// As [`load_job`] for job-file text; `dir` is where it lives.
pub fn load_job_json(json: String, dir: &Path) -> Result<LoadedJob, RunError> {
    let mut contracts = Vec::new();
    let config = keylink_core::config::JobConfig::from_json(&json, &mut |p| {
        let c = std::fs::read_to_string(p).map_err(|e| format!("cannot read contract file: {e}"))?;
        contracts.push((p.to_string(), c.clone()));
        Ok(c)
    })
    .map_err(RunError::Invalid)?;
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() };
    Ok(LoadedJob { json, config, contracts, dir })
}

fn secret_error(path: &str, message: &str) -> keylink_core::Error {
    keylink_core::Error::new(keylink_core::ErrorKind::Secret { path: path.into(), message: message.into() })
}

/// Resolves `env:` / `file:` references to their values.
///
/// # Errors
/// A message naming the reference (never its value).
pub fn resolve_secret(s: &SecretRef) -> Result<Vec<u8>, String> {
    match s {
        SecretRef::Inline(v) => Ok(v.clone().into_bytes()),
        SecretRef::Env(n) => std::env::var(n).map(String::into_bytes).map_err(|_| format!("environment variable {n} is not set")),
        SecretRef::File(p) => std::fs::read(p).map(|mut v| {
            while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                v.pop();
            }
            v
        })
        .map_err(|e| format!("cannot read secret file {p}: {e}")),
    }
}

/// Every secret the engine needs, resolved, keyed by its reference text.
fn resolve_secrets(config: &JobConfig) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    for (i, d) in config.derived_data.iter().enumerate() {
        if let Some(m) = &d.masked_fields {
            let v = resolve_secret(&m.seed).map_err(|e| format!("derived_data[{i}].masked_fields.seed: {e}"))?;
            out.push((secret_ref_text(&m.seed), v));
        }
    }
    Ok(out)
}

/// How to run a job.
pub struct RunOptions {
    pub engine: Arc<dyn Engine>,
    pub workers: usize,
    pub key_store: Arc<dyn KeyStore>,
    pub overwrite: bool,
    pub heartbeat: Duration,
    /// Seed of the job's CSPRNG; None: from the OS (always, outside tests).
    pub seed: Option<[u8; 32]>,
    /// Start attempts after the first (SPEC: 3).
    pub start_retries: u32,
    pub retry_base_delay: Duration,
    /// Key-encryption key: when set, the keys output holds Tink encrypted
    /// keysets under it.
    pub kek: Option<Arc<CellCipher>>,
    /// Keys the job keeps cached in all, shared out evenly among its
    /// workers' engine jobs (see `Job::set_key_cache_limit`).
    pub key_cache: u32,
}

/// What a finished job did, for the whole file.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub job_id: String,
    pub summary: Summary,
    pub elapsed: Duration,
    pub bytes: u64,
    pub outputs: Vec<PathBuf>,
}

/// Everything a start attempt prepares.
struct Started {
    source: std::fs::File,
    size: Option<u64>,
    header: Vec<u8>,
    rest: Vec<u8>,
    targets: Option<Targets>,
    init: JobInit,
}

struct Targets {
    keys: AtomicFile,
    encrypted: AtomicFile,
    derived: Vec<AtomicFile>,
}

impl Targets {
    fn paths(&self) -> Vec<PathBuf> {
        let mut v = vec![self.keys.target().to_path_buf(), self.encrypted.target().to_path_buf()];
        v.extend(self.derived.iter().map(|d| d.target().to_path_buf()));
        v
    }
}

/// The batch job group: the configured one, else the job's own id.
pub fn group_of(config: &JobConfig, job_id: &str) -> String {
    config.encryption.batch_job_group_id.clone().unwrap_or_else(|| job_id.to_string())
}

/// Runs a job that the job store holds as PENDING, through to FINISHED,
/// ERROR_STARTING (after retries) or ERROR.
///
/// # Errors
/// `Start` / `Run` with a message that names rows, columns or targets, never
/// a value; `JobStore`.
pub fn run_pending(job: &LoadedJob, life: &Lifecycle, opts: &RunOptions) -> Result<JobReport, RunError> {
    let store_err = |e: crate::jobstore::JobStoreError| RunError::JobStore(e.to_string());
    let attempts = opts.start_retries + 1;
    let mut started = None;
    for attempt in 1..=attempts {
        match start(job, opts, false) {
            Ok(s) => {
                life.store.claim_start(&life.job_id, crate::lifecycle::now_ms()).map_err(store_err)?;
                life.reporter.report(&Event::State {
                    job_id: life.job_id.clone(),
                    state: JobState::Started,
                    message: String::new(),
                    at_ms: crate::lifecycle::now_ms(),
                });
                started = Some(s);
                break;
            }
            Err(msg) => {
                let last = attempt == attempts;
                let m = if last {
                    format!("{msg} (attempt {attempt} of {attempts}; giving up)")
                } else {
                    format!("{msg} (attempt {attempt} of {attempts}; retrying)")
                };
                life.state(JobState::ErrorStarting, &m).map_err(store_err)?;
                if last {
                    return Err(RunError::Start(msg));
                }
                std::thread::sleep(opts.retry_base_delay * 2u32.pow(attempt - 1));
            }
        }
    }
    let started = started.expect("loop returns or starts");
    let beat = |m: &str| {
        let _ = life.state(JobState::Running, m);
    };
    match process(job, &life.job_id, &*life.reporter, &beat, opts, started) {
        Ok(report) => {
            let secs = report.elapsed.as_secs_f64();
            let rate = if secs > 0.0 { report.summary.rows_written as f64 / secs } else { 0.0 };
            let mut msg = format!("Processed {} records in {:.1} s ({:.0} records/s)", report.summary.rows_written, secs, rate);
            if report.summary.rows_skipped > 0 {
                msg.push_str(&format!("; skipped {} rows: {}", report.summary.rows_skipped, list_rows(&report.summary.skipped_rows)));
            }
            life.state(JobState::Finished, &msg).map_err(store_err)?;
            Ok(report)
        }
        Err(msg) => {
            life.state(JobState::Error, &msg).map_err(store_err)?;
            Err(RunError::Run(msg))
        }
    }
}

fn list_rows(rows: &[u64]) -> String {
    let shown: Vec<String> = rows.iter().take(20).map(u64::to_string).collect();
    let more = if rows.len() > 20 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// One start attempt: secrets, source, targets, header.
fn start(job: &LoadedJob, opts: &RunOptions, dry_run: bool) -> Result<Started, String> {
    let config = &job.config;
    let secrets = resolve_secrets(config)?;
    let mut seed = [0u8; 32];
    match opts.seed {
        Some(s) => seed = s,
        None => getrandom::fill(&mut seed).map_err(|e| format!("no secure random source: {e}"))?,
    }
    let init = JobInit { config_json: job.json.clone(), contracts: job.contracts.clone(), seed, secrets };
    let src_path = connector::local_path(config, &config.source.location).map_err(|e| e.to_string())?;
    let (mut source, size) = connector::open_source(&src_path).map_err(|e| e.to_string())?;
    let targets = if dry_run { None } else { Some(open_targets(config, opts.overwrite).map_err(|e| e.to_string())?) };
    // Read the header now: a missing column is a start error.
    let mut buf = Vec::new();
    let mut block = vec![0u8; 64 * 1024];
    let splitter = Splitter::new(config.source.delimiter);
    let header_end = loop {
        if let Some(end) = splitter.first_record_end(&buf) {
            break end;
        }
        let n = source.read(&mut block).map_err(|e| format!("cannot read source {}: {e}", src_path.display()))?;
        if n == 0 {
            break buf.len();
        }
        buf.extend_from_slice(&block[..n]);
        if buf.len() > 16 << 20 {
            return Err("the header row is longer than 16 MiB".into());
        }
    };
    let rest = buf.split_off(header_end);
    let mut probe = opts.engine.create(&init).map_err(|e| e.to_string())?;
    probe.push(&buf).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        probe.end_input().map_err(|e| e.to_string())?;
    }
    Ok(Started { source, size, header: buf, rest, targets, init })
}

fn open_targets(config: &JobConfig, overwrite: bool) -> Result<Targets, ConnectorError> {
    let open = |loc| -> Result<AtomicFile, ConnectorError> { AtomicFile::create(&connector::local_path(config, loc)?, overwrite) };
    Ok(Targets {
        keys: open(&config.encryption_keys_data.location)?,
        encrypted: open(&config.encrypted_data.location)?,
        derived: config.derived_data.iter().map(|d| open(&d.target.location)).collect::<Result<_, _>>()?,
    })
}

struct Chunk {
    index: u64,
    bytes: Vec<u8>,
    rows_before: u64,
    lines_before: u64,
    rows: u64,
    lines: u64,
    last: bool,
}

enum WorkerMsg {
    Chunk { index: u64, out: Outputs, keys: Vec<(StoredKey, i64)>, rows: u64, bytes: u64 },
    Done { summary: Summary, out: Outputs, keys: Vec<(StoredKey, i64)>, skipped: Vec<u64> },
    Failed { index: u64, message: String },
}

fn process(
    job: &LoadedJob,
    job_id: &str,
    reporter: &dyn crate::lifecycle::Reporter,
    beat: &(dyn Fn(&str) + Sync),
    opts: &RunOptions,
    started: Started,
) -> Result<JobReport, String> {
    let t0 = Instant::now();
    let config = &job.config;
    let group = group_of(config, job_id);
    let Started { source, size, header, rest, mut targets, init } = started;
    let workers = opts.workers.max(1);
    let header_lines = header.iter().filter(|&&b| b == b'\n').count() as u64;
    let cancel = Arc::new(AtomicBool::new(false));
    let (res_tx, res_rx) = mpsc::channel::<WorkerMsg>();
    // Every worker's job writes the headers with its first output; the host
    // writes them once and removes them from each worker's first output.
    let names = header_names(config, &header)?;
    let mut header_out = Outputs::default();
    write_data_headers(config, &names, &mut header_out);
    if let Some(t) = targets.as_mut() {
        write_outputs(Some(t), &header_out).map_err(|e| e.to_string())?;
    }
    let header_out = &header_out;

    let uses = Mutex::new(KeyUses::default());
    let uses = &uses;
    // A failed commit of the key store's open batch, seen by a worker's
    // key-store thread: the job fails, whatever else happens.
    let commit_err: Mutex<Option<String>> = Mutex::new(None);
    let commit_err = &commit_err;
    let answered = Answered::new(ANSWERED_KEYS);
    let answered = &answered;
    // Chunks read but not yet written: a few per engine job, so memory
    // stays bounded when writing (or a heartbeat) is slower than the workers.
    let permits = Permits::new(workers * (LANES + 2));
    // (rows, bytes) written so far, for the heartbeats.
    let progress = (AtomicU64::new(0), AtomicU64::new(header.len() as u64));
    let progress = &progress;
    let result = std::thread::scope(|scope| -> Result<(Summary, u64), String> {
        let mut chunk_txs = Vec::new();
        let engine_jobs = u32::try_from(workers * LANES).unwrap_or(u32::MAX);
        let lane_keys = (opts.key_cache / engine_jobs).max(1);
        for w in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<Chunk>(2);
            chunk_txs.push(tx);
            let mut init = init.clone();
            JobRng::new(init.seed, 2 + w as u64).fill(&mut init.seed);
            let res_tx = res_tx.clone();
            let header = &header;
            let cancel = cancel.clone();
            let group = &group;
            scope.spawn(move || {
                worker(opts, &init, lane_keys, header, header_out, header_lines, group, config, rx, &res_tx, &cancel, uses, commit_err, answered);
            });
        }
        drop(res_tx);
        let reader_cancel = cancel.clone();
        let permits = &permits;
        let delimiter = config.source.delimiter;
        let reader = scope.spawn(move || read_chunks(source, rest, header_lines, delimiter, chunk_txs, &reader_cancel, permits));

        // Write outputs in input order; heartbeat while waiting.
        let mut pending: BTreeMap<u64, PendingChunk> = BTreeMap::new();
        let mut next = 0u64;
        let mut rows_done = 0u64;
        let mut bytes_done = header.len() as u64;
        // Which key links the keys output lists is a flag of their entries
        // in `uses` (no second per-key table); rows are written as chunks
        // complete, in input order.
        let mut keys_bytes = Vec::new();
        write_keys_header(config, &mut keys_bytes);
        let mut summaries = Vec::new();
        let mut failures: Vec<(u64, String)> = Vec::new();
        let mut finals: Vec<(Outputs, Vec<(StoredKey, i64)>)> = Vec::new();
        let mut skipped_all = Vec::new();
        // Heartbeats come from a thread of their own: a job-store write may
        // wait for the database lock (the key store shares the file), and
        // the writer must not wait with it.
        let (stop_beats, beats_stop) = mpsc::channel::<()>();
        scope.spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = beats_stop.recv_timeout(opts.heartbeat) {
                let (rows, bytes) = (progress.0.load(Ordering::Relaxed), progress.1.load(Ordering::Relaxed));
                beat(&format!("{rows} rows, {bytes} bytes"));
            }
        });
        let mut write_err: Option<String> = None;
        let add_keys = |keys: Vec<(StoredKey, i64)>, keys_bytes: &mut Vec<u8>| -> Result<(), String> {
            let mut listed = uses.lock().unwrap_or_else(|p| p.into_inner());
            for (k, window) in keys {
                if listed.list(&k.key_link) {
                    match &opts.kek {
                        Some(kek) => {
                            let mut nonce = [0u8; 12];
                            getrandom::fill(&mut nonce).map_err(|e| format!("no secure random source: {e}"))?;
                            write_keys_row_encrypted(config, &k, window, kek, &nonce, keys_bytes);
                        }
                        None => write_keys_row(config, &k, window, keys_bytes),
                    }
                }
            }
            Ok(())
        };
        loop {
            let msg = match res_rx.recv_timeout(opts.heartbeat.min(Duration::from_millis(500))) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                Some(WorkerMsg::Chunk { index, out, keys, rows, bytes }) => {
                    pending.insert(index, (out, keys, rows, bytes));
                }
                Some(WorkerMsg::Done { summary, out, keys, skipped, .. }) => {
                    summaries.push(summary);
                    finals.push((out, keys));
                    skipped_all.extend(skipped);
                }
                Some(WorkerMsg::Failed { index, message }) => {
                    cancel.store(true, Ordering::SeqCst);
                    failures.push((index, message));
                }
                None => {}
            }
            while let Some((out, keys, rows, bytes)) = pending.remove(&next) {
                if let Err(e) = add_keys(keys, &mut keys_bytes) {
                    write_err.get_or_insert(e);
                }
                if write_err.is_none() {
                    if let Err(e) = write_keys(targets.as_mut(), &mut keys_bytes).and_then(|()| write_outputs(targets.as_mut(), &out)) {
                        write_err = Some(e.to_string());
                        cancel.store(true, Ordering::SeqCst);
                    }
                }
                rows_done += rows;
                bytes_done += bytes;
                next += 1;
                permits.give();
            }
            progress.0.store(rows_done, Ordering::Relaxed);
            progress.1.store(bytes_done, Ordering::Relaxed);
            reporter.report(&Event::Progress {
                job_id: job_id.to_string(),
                rows: rows_done,
                bytes: bytes_done,
                total_bytes: size,
                elapsed: t0.elapsed(),
            });
        }
        drop(stop_beats);
        let read = reader.join().map_err(|_| "the reader thread panicked".to_string())?;
        failures.sort_by_key(|f| f.0);
        if let Some((_, m)) = failures.into_iter().next() {
            return Err(m);
        }
        if let Some(e) = write_err {
            return Err(e);
        }
        let total_chunks = read?;
        if next != total_chunks {
            return Err(format!("internal: wrote {next} of {total_chunks} chunks"));
        }
        for (out, keys) in finals {
            add_keys(keys, &mut keys_bytes)?;
            write_outputs(targets.as_mut(), &out).map_err(|e| e.to_string())?;
        }
        write_keys(targets.as_mut(), &mut keys_bytes).map_err(|e| e.to_string())?;
        let listed = uses.lock().unwrap_or_else(|p| p.into_inner()).listed();
        let mut total = merge(summaries, listed, config.derived_data.len());
        skipped_all.sort_unstable();
        skipped_all.truncate(MAX_LISTED_SKIPS);
        total.skipped_rows = skipped_all;
        Ok((total, bytes_done))
    });
    // The keys handed out must be durable before anything encrypted with
    // them is published; after a failure, the flush still ends the store's
    // open batch (its keys are merely unused).
    let flushed = opts.key_store.flush().map_err(|e| format!("key store: {e}"));
    let lost = commit_err.lock().unwrap_or_else(|p| p.into_inner()).take();
    let (summary, bytes) = result?;
    if let Some(e) = lost {
        return Err(e);
    }
    flushed?;
    let mut outputs = Vec::new();
    if let Some(targets) = targets {
        outputs = targets.paths();
        // Commit: keys first, so no data is ever visible without its keys.
        let Targets { keys, encrypted, derived } = targets;
        keys.commit().map_err(|e| e.to_string())?;
        encrypted.commit().map_err(|e| e.to_string())?;
        for d in derived {
            d.commit().map_err(|e| e.to_string())?;
        }
        // In slices, so the strings exist for one slice at a time.
        let uses = uses.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = Vec::with_capacity(RECORD_USES_BATCH.min(uses.len()));
        for (id, n) in uses.iter() {
            batch.push((uses.link(id), n));
            if batch.len() == RECORD_USES_BATCH {
                opts.key_store.record_uses(&batch).map_err(|e| format!("key store: {e}"))?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            opts.key_store.record_uses(&batch).map_err(|e| format!("key store: {e}"))?;
        }
    }
    Ok(JobReport { job_id: job_id.to_string(), summary, elapsed: t0.elapsed(), bytes, outputs })
}

/// Writes (and clears) the keys rows collected so far.
fn write_keys(t: Option<&mut Targets>, keys: &mut Vec<u8>) -> Result<(), ConnectorError> {
    if let Some(t) = t {
        t.keys.write_all(keys)?;
    }
    keys.clear();
    Ok(())
}

/// A 128-bit id of a key link for de-duplication: the UUID itself for the
/// canonical UUIDs every keylink store issues, else the first 16 bytes of
/// its SHA-256.
fn link_id(link: &str) -> u128 {
    link_id_of(link).0
}

/// [`link_id`], and whether the link is a canonical UUID (the id then
/// gives the link back).
fn link_id_of(link: &str) -> (u128, bool) {
    match uuid::Uuid::try_parse(link) {
        Ok(u) if u.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()) == link => (u.as_u128(), true),
        _ => {
            use sha2::Digest as _;
            let d = sha2::Sha256::digest(link.as_bytes());
            (u128::from_be_bytes(d[..16].try_into().expect("16 bytes")), false)
        }
    }
}

/// Keys this job's engine jobs have been given, shared by all of them. A
/// request for a key another engine job got (each worker runs two), or that
/// an engine's bounded cache forgot, is answered here without a key-store
/// round trip: the store would answer with the same key (one per group,
/// value and window), at the cost of a failed insert and a select.
///
/// Compact: a keyed 128-bit hash of (value, window) to the key link's id,
/// the Tink key id and the 32 bytes of an AES-256-GCM key (~90 bytes a key
/// in all). Other keys (AES-SIV, non-UUID links) are not kept. Past `limit`
/// keys it forgets them all. Material is zeroed when forgotten.
struct Answered {
    hashers: (std::hash::RandomState, std::hash::RandomState),
    known: Mutex<HashMap<u128, Known>>,
    limit: usize,
}

struct Known {
    link: u128,
    key_id: u32,
    material: [u8; 32],
    uses_before: u64,
}

impl Answered {
    fn new(limit: usize) -> Answered {
        Answered {
            hashers: (std::hash::RandomState::new(), std::hash::RandomState::new()),
            known: Mutex::new(HashMap::new()),
            limit: limit.max(1),
        }
    }

    fn id(&self, value: &str, window: i64) -> u128 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let one = |s: &std::hash::RandomState| {
            let mut h = s.build_hasher();
            value.hash(&mut h);
            window.hash(&mut h);
            h.finish()
        };
        (u128::from(one(&self.hashers.0)) << 64) | u128::from(one(&self.hashers.1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Known>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The known keys of `ids`, in order.
    fn get(&self, ids: &[u128]) -> Vec<Option<StoredKey>> {
        let known = self.lock();
        ids.iter()
            .map(|id| {
                known.get(id).map(|k| StoredKey {
                    key_link: uuid::Uuid::from_u128(k.link).hyphenated().to_string(),
                    key: TinkKey {
                        key_id: k.key_id,
                        cipher: CipherKind::Aes256Gcm,
                        material: KeyMaterial::new(k.material.to_vec()),
                    },
                    uses_before: k.uses_before,
                })
            })
            .collect()
    }

    /// Remembers the store's answers.
    fn put(&self, ids: &[u128], keys: &[StoredKey]) {
        let mut known = self.lock();
        for (id, k) in ids.iter().zip(keys) {
            let (link, canonical) = link_id_of(&k.key_link);
            let Ok(material) = <[u8; 32]>::try_from(k.key.material.as_bytes()) else { continue };
            if !canonical || k.key.cipher != CipherKind::Aes256Gcm {
                continue;
            }
            if known.len() >= self.limit && !known.contains_key(id) {
                forget(&mut known);
            }
            known.insert(*id, Known { link, key_id: k.key.key_id, material, uses_before: k.uses_before });
        }
    }
}

fn forget(known: &mut HashMap<u128, Known>) {
    for k in known.values_mut() {
        zeroize::Zeroize::zeroize(&mut k.material);
    }
    known.clear();
}

impl Drop for Answered {
    fn drop(&mut self) {
        forget(&mut self.lock());
    }
}

fn write_outputs(t: Option<&mut Targets>, out: &Outputs) -> Result<(), ConnectorError> {
    let Some(t) = t else { return Ok(()) };
    t.encrypted.write_all(&out.encrypted)?;
    for (f, bytes) in t.derived.iter_mut().zip(&out.derived) {
        f.write_all(bytes)?;
    }
    Ok(())
}

/// Values encrypted per key by this job, across workers and key-cache
/// evictions, and whether the keys output lists it yet: the one per-key
/// record the host keeps (about 40 bytes a key).
#[derive(Default)]
struct KeyUses {
    /// By key-link id, in order of first report: uses, with [`LISTED`] set
    /// once the keys output has the key's row.
    counts: indexmap::IndexMap<u128, u64>,
    /// Key links that are not canonical UUIDs (stores other than keylink's
    /// own may issue them), by id.
    other_links: HashMap<u128, String>,
    listed: u64,
    /// Whether any key has uses yet (until then a provided key needs no lookup).
    any_uses: bool,
}

/// The flag of a listed key in [`KeyUses::counts`] (uses stay below 2^63:
/// the store caps them far lower, at 2^31 a key).
const LISTED: u64 = 1 << 63;

impl KeyUses {
    fn entry(&mut self, link: &str) -> &mut u64 {
        let (id, canonical) = link_id_of(link);
        if !canonical {
            self.other_links.entry(id).or_insert_with(|| link.to_owned());
        }
        self.counts.entry(id).or_insert(0)
    }
    fn add(&mut self, link: &str, n: u64) {
        self.any_uses |= n > 0;
        let c = self.entry(link);
        *c = (*c & LISTED) | (*c & !LISTED).saturating_add(n).min(!LISTED);
    }
    /// Marks the key as listed in the keys output; false if it was already.
    fn list(&mut self, link: &str) -> bool {
        let c = self.entry(link);
        if *c & LISTED != 0 {
            return false;
        }
        *c |= LISTED;
        self.listed += 1;
        true
    }
    /// Keys the keys output lists.
    fn listed(&self) -> u64 {
        self.listed
    }
    fn get(&self, link: &str) -> u64 {
        self.counts.get(&link_id(link)).map_or(0, |c| c & !LISTED)
    }
    fn has_uses(&self) -> bool {
        self.any_uses
    }
    fn len(&self) -> usize {
        self.counts.len()
    }
    /// Keys with uses, and their uses.
    fn iter(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        self.counts.iter().map(|(id, n)| (*id, n & !LISTED)).filter(|&(_, n)| n > 0)
    }
    fn link(&self, id: u128) -> String {
        match self.other_links.get(&id) {
            Some(l) => l.clone(),
            None => uuid::Uuid::from_u128(id).hyphenated().to_string(),
        }
    }
}

/// Key links per `record_uses` call at the end of a job.
const RECORD_USES_BATCH: usize = 65_536;

fn merge(summaries: Vec<Summary>, keys_used: u64, derived: usize) -> Summary {
    let mut t = Summary { derived_rows: vec![0; derived], ..Summary::default() };
    for s in summaries {
        t.rows_read += s.rows_read;
        t.rows_written += s.rows_written;
        t.rows_skipped += s.rows_skipped;
        t.keys_created += s.keys_created;
        t.values_encrypted += s.values_encrypted;
        for (a, b) in t.derived_rows.iter_mut().zip(&s.derived_rows) {
            *a += b;
        }
    }
    // Per-key uses are kept in `KeyUses` and recorded in the key store.
    t.keys_used = keys_used;
    t
}

/// Reads the source and hands chunks to workers round-robin. Returns the
/// number of chunks.
/// A counting semaphore over the chunks in flight between the reader and
/// the writer.
struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    fn new(n: usize) -> Permits {
        Permits { free: Mutex::new(n.max(1)), freed: Condvar::new() }
    }

    /// Waits for a permit; false once `cancel` is set.
    fn take(&self, cancel: &AtomicBool) -> bool {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            if cancel.load(Ordering::SeqCst) {
                return false;
            }
            free = self.freed.wait_timeout(free, Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
        }
        *free -= 1;
        true
    }

    fn give(&self) {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.freed.notify_one();
    }
}

fn read_chunks(
    mut source: std::fs::File,
    mut buf: Vec<u8>,
    header_lines: u64,
    delimiter: u8,
    txs: Vec<SyncSender<Chunk>>,
    cancel: &AtomicBool,
    permits: &Permits,
) -> Result<u64, String> {
    let splitter = Splitter::new(delimiter);
    let mut index = 0u64;
    let mut rows_before = 0u64;
    let mut lines_before = header_lines;
    let mut block = vec![0u8; CHUNK_BYTES];
    let mut eof = false;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Ok(index);
        }
        while !eof && buf.len() < CHUNK_BYTES {
            let n = source.read(&mut block).map_err(|e| format!("cannot read source: {e}"))?;
            if n == 0 {
                eof = true;
            } else {
                buf.extend_from_slice(&block[..n]);
            }
        }
        let (bytes, counts, last) = if eof {
            let (n, mut c) = splitter.cut(&buf);
            let tail = splitter.finish(&buf[n..]);
            c.records += tail.records;
            c.lines += tail.lines;
            (std::mem::take(&mut buf), c, true)
        } else {
            let (n, c) = splitter.cut(&buf);
            if n == 0 {
                // One record longer than a chunk: read on until it ends.
                let more = source.read(&mut block).map_err(|e| format!("cannot read source: {e}"))?;
                if more == 0 {
                    eof = true;
                } else {
                    buf.extend_from_slice(&block[..more]);
                }
                continue;
            }
            let rest = buf.split_off(n);
            (std::mem::replace(&mut buf, rest), c, false)
        };
        if !permits.take(cancel) {
            return Ok(index);
        }
        let chunk = Chunk { index, bytes, rows_before, lines_before, rows: counts.records, lines: counts.lines, last };
        rows_before += counts.records;
        lines_before += counts.lines;
        let w = (index as usize) % txs.len();
        index += 1;
        if txs[w].send(chunk).is_err() {
            return Ok(index - 1);
        }
        if last {
            return Ok(index);
        }
    }
}

/// Engine jobs per worker. A worker pushes a chunk into one lane while the
/// key store answers the previous chunk's requests for the other, so the
/// store's round trips overlap the engine's work instead of adding to it.
pub const LANES: usize = 2;

/// How long a worker's key-store thread waits for a batch before it commits
/// the store's open batch (see [`KeyStore::get_or_create_batched`]).
const IDLE_FLUSH: Duration = Duration::from_millis(100);

/// One engine job of a worker, and what maps its rows back to the file.
struct Lane {
    job: Box<dyn EngineJob>,
    /// (first job row of a chunk, offset to the file's row numbers)
    row_map: Vec<(u64, i64)>,
    job_rows: u64,
    job_lines: u64,
    ended: bool,
    headers_stripped: bool,
}

/// A chunk pushed into a lane, waiting for its keys (if it asked for any).
struct InFlight {
    lane: usize,
    index: u64,
    rows: u64,
    bytes: u64,
    awaiting_keys: bool,
}

/// A chunk's outputs and keys waiting for its turn to be written, with its
/// row and byte counts.
type PendingChunk = (Outputs, Vec<(StoredKey, i64)>, u64, u64);

/// What a lane hands back when its input ends.
type LaneEnd = (Summary, Outputs, Vec<(StoredKey, i64)>);

/// The key store's answer to one batch of requests, with the requests.
type Answer = (Vec<KeyRequest>, Result<Vec<StoredKey>, String>);

#[allow(clippy::too_many_arguments)]
fn worker(
    opts: &RunOptions,
    init: &JobInit,
    lane_keys: u32,
    header: &[u8],
    header_out: &Outputs,
    header_lines: u64,
    group: &str,
    config: &JobConfig,
    rx: Receiver<Chunk>,
    res: &mpsc::Sender<WorkerMsg>,
    cancel: &AtomicBool,
    uses: &Mutex<KeyUses>,
    commit_err: &Mutex<Option<String>>,
    answered: &Answered,
) {
    let fail = |index: u64, message: String| {
        let _ = res.send(WorkerMsg::Failed { index, message });
    };
    let mut lanes = Vec::with_capacity(LANES);
    for l in 0..LANES {
        let mut init = init.clone();
        if l > 0 {
            JobRng::new(init.seed, 100 + l as u64).fill(&mut init.seed);
        }
        let mut job: Box<dyn EngineJob> = match opts.engine.create(&init) {
            Ok(j) => j,
            Err(e) => return fail(0, e.to_string()),
        };
        // The host writes the keys output (one row per key, whichever job
        // used it first).
        job.omit_keys_output();
        job.set_key_cache_limit(lane_keys);
        if let Err(e) = job.push(header) {
            return fail(0, e.to_string());
        }
        lanes.push(Lane { job, row_map: Vec::new(), job_rows: 0, job_lines: header_lines, ended: false, headers_stripped: false });
    }
    let lock_uses = || uses.lock().unwrap_or_else(|p| p.into_inner());
    let report_uses = |list: Vec<(String, u64)>| {
        if !list.is_empty() {
            let mut u = lock_uses();
            for (link, n) in list {
                u.add(&link, n);
            }
        }
    };
    // Answers what the job already knows, asks the store for the rest.
    let fetch = |reqs: &[KeyRequest]| -> Result<Vec<StoredKey>, String> {
        let ask = |reqs: &[KeyRequest]| {
            opts.key_store.get_or_create_batched(group, config.encryption.cipher, reqs).map_err(|e| format!("key store: {e}"))
        };
        let ids: Vec<u128> = reqs.iter().map(|r| answered.id(&r.key_value, r.window)).collect();
        let mut keys = answered.get(&ids);
        let missing: Vec<usize> = (0..reqs.len()).filter(|&i| keys[i].is_none()).collect();
        if missing.len() == reqs.len() {
            let got = ask(reqs)?;
            answered.put(&ids, &got);
            return Ok(got);
        }
        if !missing.is_empty() {
            let asked: Vec<KeyRequest> = missing.iter().map(|&i| reqs[i].clone()).collect();
            let got = ask(&asked)?;
            let missing_ids: Vec<u128> = missing.iter().map(|&i| ids[i]).collect();
            answered.put(&missing_ids, &got);
            for (&i, k) in missing.iter().zip(got) {
                keys[i] = Some(k);
            }
        }
        let keys: Vec<StoredKey> = keys.into_iter().flatten().collect();
        if keys.len() != reqs.len() {
            return Err("internal: the key store answered fewer keys than asked".into());
        }
        Ok(keys)
    };
    // Commits the store's open batch; a failure fails the job (at its end).
    let flush = || {
        if let Err(e) = opts.key_store.flush() {
            let mut slot = commit_err.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(format!("key store: {e}"));
        }
    };
    // Gives a lane the keys it asked for; returns them tagged with their
    // windows for the keys output.
    let provide = |lane: &mut Lane, reqs: Vec<KeyRequest>, keys: Result<Vec<StoredKey>, String>| -> Result<Vec<(StoredKey, i64)>, String> {
        let mut keys = keys?;
        // A key this job used before an eviction comes back with the store's
        // count only: add this job's uses so far (the 2^31 cap).
        {
            let u = lock_uses();
            if u.has_uses() {
                for k in &mut keys {
                    k.uses_before = k.uses_before.saturating_add(u.get(&k.key_link));
                }
            }
        }
        let tagged = keys.iter().cloned().zip(reqs.iter().map(|r| r.window)).collect();
        lane.job.provide_keys(keys).map_err(|e| e.to_string())?;
        Ok(tagged)
    };
    let strip = |lane: &mut Lane, out: &mut Outputs| -> Result<(), String> {
        if lane.headers_stripped || (out.encrypted.is_empty() && out.derived.iter().all(Vec::is_empty)) {
            return Ok(());
        }
        lane.headers_stripped = true;
        strip_prefix(&mut out.encrypted, &header_out.encrypted)?;
        for (o, h) in out.derived.iter_mut().zip(&header_out.derived) {
            strip_prefix(o, h)?;
        }
        Ok(())
    };

    std::thread::scope(|scope| {
        // The key store side of the pipeline: answers batches in order.
        let (req_tx, req_rx) = mpsc::channel::<Vec<KeyRequest>>();
        let (ans_tx, ans_rx) = mpsc::channel::<Answer>();
        scope.spawn(move || {
            loop {
                let reqs = match req_rx.recv_timeout(IDLE_FLUSH) {
                    Ok(r) => r,
                    // Nothing to do: commit what is open rather than hold
                    // the store's write lock while the engine works. An
                    // error stays with the store and surfaces at the next
                    // batch or at the job's final flush.
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        flush();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let keys = fetch(&reqs);
                if ans_tx.send((reqs, keys)).is_err() {
                    break;
                }
            }
            // The worker's chunks are done: release the write lock now
            // (the job store, which shares the file, waits for it).
            flush();
        });
        // Waits for a chunk's keys, drains its lane and sends its output.
        let complete = |lanes: &mut Vec<Lane>, f: InFlight| -> Result<(), String> {
            let lane = &mut lanes[f.lane];
            let keys = if f.awaiting_keys {
                let (reqs, keys) = ans_rx.recv().map_err(|_| "internal: the key store thread stopped".to_string())?;
                provide(lane, reqs, keys)?
            } else {
                Vec::new()
            };
            let mut out = lane.job.drain().map_err(|e| e.to_string())?;
            report_uses(std::mem::take(&mut out.key_uses));
            strip(lane, &mut out)?;
            let _ = res.send(WorkerMsg::Chunk { index: f.index, out, keys, rows: f.rows, bytes: f.bytes });
            Ok(())
        };
        let mut queue: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
        let mut next_lane = 0usize;
        let mut last_index = 0;
        loop {
            // A new chunk if one is ready; otherwise finish the oldest chunk
            // in flight rather than wait with it.
            let chunk = match rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => {
                    if let Some(f) = queue.pop_front() {
                        let index = f.index;
                        if let Err(m) = complete(&mut lanes, f) {
                            return fail(index, m);
                        }
                        continue;
                    }
                    match rx.recv() {
                        Ok(c) => c,
                        Err(_) => break,
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            };
            if cancel.load(Ordering::SeqCst) {
                return;
            }
            // A lane holds one chunk at a time: finish its previous one first.
            while queue.iter().any(|f| f.lane == next_lane) {
                let f = queue.pop_front().expect("queue is not empty");
                let index = f.index;
                if let Err(m) = complete(&mut lanes, f) {
                    return fail(index, m);
                }
            }
            last_index = chunk.index;
            let lane = &mut lanes[next_lane];
            let row_shift = chunk.rows_before as i64 - lane.job_rows as i64;
            let line_shift = chunk.lines_before as i64 - lane.job_lines as i64;
            lane.row_map.push((lane.job_rows + 1, row_shift));
            let pushed = (|| -> Result<Vec<KeyRequest>, String> {
                lane.job.push(&chunk.bytes).map_err(|e| e.shifted(row_shift, line_shift).to_string())?;
                if chunk.last {
                    lane.ended = true;
                    lane.job.end_input().map_err(|e| e.shifted(row_shift, line_shift).to_string())?;
                }
                Ok(lane.job.key_requests())
            })();
            lane.job_rows += chunk.rows;
            lane.job_lines += chunk.lines;
            let reqs = match pushed {
                Ok(r) => r,
                Err(m) => return fail(chunk.index, m),
            };
            let awaiting_keys = !reqs.is_empty();
            if awaiting_keys && req_tx.send(reqs).is_err() {
                return fail(chunk.index, "internal: the key store thread stopped".into());
            }
            queue.push_back(InFlight { lane: next_lane, index: chunk.index, rows: chunk.rows, bytes: chunk.bytes.len() as u64, awaiting_keys });
            next_lane = (next_lane + 1) % LANES;
        }
        while let Some(f) = queue.pop_front() {
            let index = f.index;
            if let Err(m) = complete(&mut lanes, f) {
                return fail(index, m);
            }
        }
        drop(req_tx);
        if cancel.load(Ordering::SeqCst) {
            return;
        }
        for lane in &mut lanes {
            let done = (|| -> Result<LaneEnd, String> {
                if !lane.ended {
                    lane.job.end_input().map_err(|e| e.to_string())?;
                }
                let reqs = lane.job.key_requests();
                let keys = if reqs.is_empty() {
                    Vec::new()
                } else {
                    let k = fetch(&reqs);
                    // Not left open: nothing of this worker commits later.
                    flush();
                    provide(lane, reqs, k)?
                };
                let (mut out, mut summary) = lane.job.finish().map_err(|e| e.to_string())?;
                report_uses(std::mem::take(&mut out.key_uses));
                report_uses(std::mem::take(&mut summary.key_uses));
                strip(lane, &mut out)?;
                Ok((summary, out, keys))
            })();
            match done {
                Ok((summary, out, keys)) => {
                    let skipped = summary
                        .skipped_rows
                        .iter()
                        .map(|&r| {
                            let shift = lane.row_map.iter().rev().find(|(start, _)| *start <= r).map_or(0, |(_, s)| *s);
                            r.saturating_add_signed(shift)
                        })
                        .collect();
                    let _ = res.send(WorkerMsg::Done { summary, out, keys, skipped });
                }
                Err(m) => return fail(last_index, m),
            }
        }
    });
}

/// A key store wrapper for dry runs: looks keys up, never creates them.
pub struct DryRunStore {
    pub inner: Option<Arc<dyn KeyStore>>,
    would_create: Mutex<HashMap<(String, i64), StoredKey>>,
    pub reused: Mutex<HashSet<String>>,
}

impl DryRunStore {
    pub fn new(inner: Option<Arc<dyn KeyStore>>) -> Self {
        DryRunStore { inner, would_create: Mutex::new(HashMap::new()), reused: Mutex::new(HashSet::new()) }
    }
    pub fn created(&self) -> usize {
        self.would_create.lock().map(|m| m.len()).unwrap_or(0)
    }
    pub fn reused_count(&self) -> usize {
        self.reused.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl KeyStore for DryRunStore {
    fn get_or_create(
        &self,
        group: &str,
        _cipher: keylink_core::config::CipherKind,
        requests: &[KeyRequest],
    ) -> Result<Vec<StoredKey>, crate::keystore::KeyStoreError> {
        let found = match &self.inner {
            Some(s) => s.lookup(group, requests)?,
            None => vec![None; requests.len()],
        };
        let mut created = self.would_create.lock().unwrap_or_else(|e| e.into_inner());
        let mut reused = self.reused.lock().unwrap_or_else(|e| e.into_inner());
        Ok(requests
            .iter()
            .zip(found)
            .map(|(r, f)| match f {
                Some(k) => {
                    reused.insert(k.key_link.clone());
                    k
                }
                None => created.entry((r.key_value.clone(), r.window)).or_insert_with(|| r.proposal.clone()).clone(),
            })
            .collect())
    }
    fn lookup(&self, group: &str, requests: &[KeyRequest]) -> Result<Vec<Option<StoredKey>>, crate::keystore::KeyStoreError> {
        match &self.inner {
            Some(s) => s.lookup(group, requests),
            None => Ok(vec![None; requests.len()]),
        }
    }
    fn record_uses(&self, _: &[(String, u64)]) -> Result<(), crate::keystore::KeyStoreError> {
        Ok(())
    }
    fn keys_by_links(&self, _: &[String]) -> Result<Vec<(String, keylink_core::tink::TinkKey)>, crate::keystore::KeyStoreError> {
        Ok(Vec::new())
    }
    fn shred_subject(&self, _: &str, _: &str) -> Result<u64, crate::keystore::KeyStoreError> {
        Ok(0)
    }
    fn shred_key_value(&self, _: &str, _: &str) -> Result<u64, crate::keystore::KeyStoreError> {
        Ok(0)
    }
}

/// What a dry run found.
#[derive(Debug, Clone)]
pub struct PlanReport {
    pub summary: Summary,
    pub keys_to_create: usize,
    pub keys_to_reuse: usize,
}

/// A dry run: reads the source, counts rows, keys that would be created and
/// reused, and rows per derived output. Writes nothing, creates no keys.
///
/// # Errors
/// What a run would fail with.
pub fn plan(job: &LoadedJob, opts: &RunOptions, existing: Option<Arc<dyn KeyStore>>) -> Result<PlanReport, String> {
    let dry = Arc::new(DryRunStore::new(existing));
    let opts = RunOptions {
        engine: opts.engine.clone(),
        workers: opts.workers,
        key_cache: opts.key_cache,
        key_store: dry.clone(),
        overwrite: true,
        heartbeat: opts.heartbeat,
        seed: opts.seed,
        start_retries: 0,
        retry_base_delay: opts.retry_base_delay,
        kek: None,
    };
    let started = start(job, &opts, true)?;
    let report = process(job, "plan", &crate::lifecycle::Silent, &|_| {}, &opts, started)?;
    Ok(PlanReport { summary: report.summary, keys_to_create: dry.created(), keys_to_reuse: dry.reused_count() })
}

fn strip_prefix(buf: &mut Vec<u8>, prefix: &[u8]) -> Result<(), String> {
    if !buf.starts_with(prefix) {
        return Err("internal: a worker's output does not start with the header".into());
    }
    buf.drain(..prefix.len());
    Ok(())
}

/// The column names of the header row, decoded as the job decodes them.
fn header_names(config: &JobConfig, header: &[u8]) -> Result<Vec<String>, String> {
    use keylink_core::csv::{CsvDecoder, DecodeEvent};
    let mut dec = CsvDecoder::new(config.source.delimiter, config.source.charset);
    let mut names = None;
    let mut on = |ev: DecodeEvent<'_>| {
        match ev {
            DecodeEvent::Record(r) if names.is_none() => names = Some(r.fields().map(String::from).collect::<Vec<_>>()),
            DecodeEvent::InvalidEncoding { line } if names.is_none() => {
                return Err(keylink_core::Error::new(keylink_core::ErrorKind::InvalidEncoding {
                    row: 0,
                    line,
                    charset: config.source.charset.name(),
                }));
            }
            _ => {}
        }
        Ok(())
    };
    dec.push(header, &mut on).map_err(|e| e.to_string())?;
    dec.finish(&mut on).map_err(|e| e.to_string())?;
    names.ok_or_else(|| keylink_core::Error::new(keylink_core::ErrorKind::EmptyInput).to_string())
}
