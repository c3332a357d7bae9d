//! `keylink`: run privacy-preserving batch jobs.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use keylink_host::engine::component::ComponentEngine;
use keylink_host::engine::native::NativeEngine;
use keylink_host::engine::Engine;
use keylink_host::jobstore::{JobState, SqliteJobStore};
use keylink_host::keystore::sqlite::SqliteKeyStore;
use keylink_host::keystore::{Kek, KeyStore};
use keylink_host::lifecycle::{self, JsonLines, Lifecycle, Reporter, Terminal};
use keylink_host::runner::{self, RunError, RunOptions};

#[derive(Parser)]
#[command(name = "keylink", version, about = "Privacy-preserving batch jobs: encrypt PII per key and time window, write keys and consent-filtered derived data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum EngineKind {
    /// The keylink WebAssembly component in wasmtime.
    Component,
    /// The core linked into this binary.
    Native,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Events {
    /// Progress bar and state lines on stderr.
    Human,
    /// One JSON object per state change / heartbeat on stdout.
    Json,
}

#[derive(clap::Args)]
struct StoreArgs {
    /// Key and job store: `sqlite:PATH` (default: keylink.db beside the job file).
    #[arg(long, env = "KEYLINK_KEY_STORE")]
    key_store: Option<String>,
    /// Key-encryption key (a Tink AES-256-GCM JSON keyset) as `env:NAME` or
    /// `file:PATH` (default: the job file's `encryption.kek`, which must be
    /// the same key when both are given).
    #[arg(long, env = "KEYLINK_KEK")]
    kek: Option<String>,
}

#[derive(clap::Args)]
struct EngineArgs {
    #[arg(long, value_enum, default_value = "component")]
    engine: EngineKind,
    /// Parallel workers (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Keys the job keeps in memory in all, shared out among its workers
    /// (about 300 bytes each); past its share a worker forgets keys and asks
    /// the key store again when needed.
    #[arg(long, default_value_t = runner::DEFAULT_KEY_CACHE)]
    key_cache: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Create a job from a job file and run it.
    Run {
        job: PathBuf,
        /// Replace outputs that already exist.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value = "human")]
        events: Events,
        /// Seconds between RUNNING heartbeats.
        #[arg(long, default_value_t = 10.0)]
        heartbeat: f64,
        /// Fixed CSPRNG seed (64 hex digits). For reproducible tests only: never in production.
        #[arg(long, hide = true)]
        seed: Option<String>,
        /// Base delay of the start retries, in milliseconds (doubles each retry).
        #[arg(long, hide = true, default_value_t = 500)]
        retry_delay_ms: u64,
    },
    /// Validate a job file: every problem with its JSON path.
    Validate { job: PathBuf },
    /// Dry run: rows, keys that would be created or reused, rows per derived output. Writes nothing.
    Plan {
        job: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Jobs in the job store.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Decrypt an encrypted (or derived) file for authorised use.
    Decrypt {
        input: PathBuf,
        output: PathBuf,
        /// A keys output of keylink.
        #[arg(long)]
        keys: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        overwrite: bool,
        /// Field delimiter of the input.
        #[arg(long, default_value = ",")]
        delimiter: String,
    },
    /// Crypto-shredding: delete a subject's or key value's keys in a group.
    Shred {
        #[arg(long)]
        group: String,
        #[arg(long, conflicts_with = "key_value", required_unless_present = "key_value")]
        subject: Option<String>,
        #[arg(long)]
        key_value: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the imports of the embedded component (there must be none).
    ComponentImports,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List jobs, newest first.
    List {
        #[arg(long, env = "KEYLINK_KEY_STORE", default_value = "sqlite:keylink.db")]
        key_store: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Every state of a job, with times and messages.
    Show {
        id: String,
        #[arg(long, env = "KEYLINK_KEY_STORE", default_value = "sqlite:keylink.db")]
        key_store: String,
    },
    /// Start a PENDING job created earlier (`jobs create`).
    Start {
        id: String,
        #[arg(long, env = "KEYLINK_KEY_STORE", default_value = "sqlite:keylink.db")]
        key_store: String,
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long, value_enum, default_value = "human")]
        events: Events,
        /// Key-encryption key of the store (a Tink AES-256-GCM JSON keyset) as `env:NAME` or `file:PATH`.
        #[arg(long, env = "KEYLINK_KEK")]
        kek: Option<String>,
    },
    /// Create a PENDING job from a job file without running it; prints its id.
    Create {
        job: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn main() -> ExitCode {
    tune_allocator();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn store_path(arg: Option<&str>, job_dir: &Path) -> Result<PathBuf> {
    match arg {
        None => Ok(job_dir.join("keylink.db")),
        Some(url) => match url.strip_prefix("sqlite:") {
            Some(p) => Ok(PathBuf::from(p)),
            None if url.starts_with("postgres") => bail!("PostgreSQL key stores are not supported by this build yet; use sqlite:PATH"),
            None => bail!("unknown key store {url}: use sqlite:PATH"),
        },
    }
}

fn kek(arg: Option<&str>) -> Result<Option<Kek>> {
    let Some(r) = arg else { return Ok(None) };
    let secret = keylink_core::config::SecretRef::parse(r);
    if matches!(secret, keylink_core::config::SecretRef::Inline(_)) {
        bail!("--kek takes env:NAME or file:PATH, never the key itself");
    }
    let json = runner::resolve_secret(&secret).map_err(|e| anyhow::anyhow!("--kek: {e}"))?;
    let json = String::from_utf8(json).context("--kek: the keyset is not UTF-8")?;
    Ok(Some(Kek::from_keyset_json(&json).map_err(|e| anyhow::anyhow!("--kek: {e}"))?))
}

/// The KEK of a job: `--kek`, or the job file's `encryption.kek`; given both
/// ways, they must be the same key.
fn job_kek(arg: Option<&str>, config: &keylink_core::config::JobConfig) -> Result<Option<Kek>> {
    let given = kek(arg)?;
    let Some(r) = &config.encryption.kek else { return Ok(given) };
    if matches!(r, keylink_core::config::SecretRef::Inline(v) if v == "<redacted>") {
        // A stored job: its inline secrets were not kept.
        if given.is_some() {
            return Ok(given);
        }
        bail!("encryption.kek: the job's KEK was given inline, and inline secrets are not stored with a job; give it with --kek env:NAME|file:PATH");
    }
    let json = runner::resolve_secret(r).map_err(|e| anyhow::anyhow!("encryption.kek: {e}"))?;
    let json = String::from_utf8(json).context("encryption.kek: the keyset is not UTF-8")?;
    let from_job = Kek::from_keyset_json(&json).map_err(|e| anyhow::anyhow!("encryption.kek: {e}"))?;
    match given {
        Some(g) if g.key_id() != from_job.key_id() || g.fingerprint() != from_job.fingerprint() => bail!(
            "--kek (key id {}) and the job file's encryption.kek (key id {}) are different keys",
            g.key_id(),
            from_job.key_id()
        ),
        _ => Ok(Some(from_job)),
    }
}

fn engine(kind: EngineKind) -> Result<Arc<dyn Engine>> {
    Ok(match kind {
        EngineKind::Native => Arc::new(NativeEngine),
        EngineKind::Component => Arc::new(ComponentEngine::new().context("loading the keylink component")?),
    })
}

fn workers(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
}

fn reporter(events: Events) -> Arc<dyn Reporter> {
    match events {
        Events::Json => Arc::new(JsonLines),
        Events::Human => Arc::new(Terminal::new()),
    }
}

fn parse_seed(s: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s).context("--seed takes 64 hex digits")?;
    v.try_into().map_err(|_| anyhow::anyhow!("--seed takes 64 hex digits"))
}

/// glibc's malloc raises its mmap threshold to the size of the largest
/// block freed (up to 32 MiB); after that the chunk and output buffers (1 to
/// 4 MiB, allocated and freed on different threads) come from per-thread
/// heap arenas and stay resident. A fixed threshold gives them back to the
/// system when they are freed. Measured on a 1M-row native job with one
/// worker: peak RSS 135 MB -> 75 MB.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called once at start,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

fn real_main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { job } => match runner::load_job(&job) {
            Ok(j) => {
                println!(
                    "{}: valid ({} PII fields, {} derived outputs)",
                    job.display(),
                    j.config.data_contract.pii_fields.len(),
                    j.config.derived_data.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(1))
            }
        },
        Command::Run { job, overwrite, engine: eng, store, events, heartbeat, seed, retry_delay_ms } => {
            let Some(loaded) = load_or_report(&job) else { return Ok(ExitCode::from(1)) };
            let db = store_path(store.key_store.as_deref(), &loaded.dir)?;
            let kek = job_kek(store.kek.as_deref(), &loaded.config)?;
            let kek_cipher = kek.as_ref().map(|k| Arc::new(k.cipher()));
            let key_store: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(&db, kek)?);
            let job_store = Arc::new(SqliteJobStore::open(&db)?);
            let id = uuid::Uuid::new_v4().to_string();
            let base = std::env::current_dir()?.display().to_string();
            job_store.create_job(&id, &keylink_core::config::parse::redacted_json(&loaded.json), &base, lifecycle::now_ms())?;
            let reporter = reporter(events);
            reporter.report(&lifecycle::Event::State {
                job_id: id.clone(),
                state: JobState::Pending,
                message: String::new(),
                at_ms: lifecycle::now_ms(),
            });
            let life = Lifecycle { job_id: id, store: job_store, reporter };
            let opts = RunOptions {
                engine: engine(eng.engine)?,
                workers: workers(eng.workers),
                key_cache: eng.key_cache,
                key_store,
                overwrite,
                heartbeat: Duration::from_secs_f64(heartbeat.max(0.05)),
                seed: seed.as_deref().map(parse_seed).transpose()?,
                start_retries: 3,
                retry_base_delay: Duration::from_millis(retry_delay_ms),
                kek: kek_cipher,
            };
            finish_run(runner::run_pending(&loaded, &life, &opts), events)
        }
        Command::Plan { job, engine: eng, store } => {
            let Some(loaded) = load_or_report(&job) else { return Ok(ExitCode::from(1)) };
            let db = store_path(store.key_store.as_deref(), &loaded.dir)?;
            let existing: Option<Arc<dyn KeyStore>> =
                if db.exists() { Some(Arc::new(SqliteKeyStore::open(&db, job_kek(store.kek.as_deref(), &loaded.config)?)?)) } else { None };
            let opts = RunOptions {
                engine: engine(eng.engine)?,
                workers: workers(eng.workers),
                key_cache: eng.key_cache,
                key_store: Arc::new(runner::DryRunStore::new(None)),
                overwrite: true,
                heartbeat: Duration::from_secs(10),
                seed: None,
                start_retries: 0,
                retry_base_delay: Duration::ZERO,
                kek: None,
            };
            match runner::plan(&loaded, &opts, existing) {
                Ok(p) => {
                    let s = &p.summary;
                    println!("rows read:        {}", s.rows_read);
                    println!("rows written:     {}", s.rows_written);
                    println!("rows skipped:     {}", s.rows_skipped);
                    println!("keys to create:   {}", p.keys_to_create);
                    println!("keys to reuse:    {}", p.keys_to_reuse);
                    for (i, (d, n)) in loaded.config.derived_data.iter().zip(&s.derived_rows).enumerate() {
                        println!("derived_data[{i}] {}: {n} rows", d.target.location.path());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("plan failed: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Jobs { command } => jobs(command),
        Command::Decrypt { input, output, keys, store, overwrite, delimiter } => decrypt(input, output, keys, store, overwrite, &delimiter),
        Command::Shred { group, subject, key_value, store } => {
            let db = store_path(store.key_store.as_deref(), Path::new("."))?;
            if !db.exists() {
                bail!("no key store at {}", db.display());
            }
            let ks = SqliteKeyStore::open(&db, kek(store.kek.as_deref())?)?;
            let n = match (subject, key_value) {
                (Some(s), _) => ks.shred_subject(&group, &s)?,
                (None, Some(v)) => ks.shred_key_value(&group, &v)?,
                _ => unreachable!("clap requires one"),
            };
            println!("deleted {n} keys of group {group}");
            Ok(ExitCode::SUCCESS)
        }
        Command::ComponentImports => {
            for i in keylink_host::engine::component::component_imports() {
                println!("{i}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads a job file, printing every problem (with its JSON path) if invalid.
fn load_or_report(job: &Path) -> Option<runner::LoadedJob> {
    runner::load_job(job).map_err(|e| eprintln!("{e}")).ok()
}

fn finish_run(r: Result<runner::JobReport, RunError>, events: Events) -> Result<ExitCode> {
    match r {
        Ok(report) => {
            if events == Events::Human {
                for p in &report.outputs {
                    eprintln!("wrote {}", p.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(RunError::Invalid(e)) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
        Err(RunError::JobStore(e)) => bail!("job store: {e}"),
        Err(_) => Ok(ExitCode::from(1)),
    }
}

fn jobs(command: JobsCommand) -> Result<ExitCode> {
    match command {
        JobsCommand::List { key_store, limit } => {
            let db = store_path(Some(&key_store), Path::new("."))?;
            let store = SqliteJobStore::open(&db)?;
            for (id, created, state, message) in store.list(limit)? {
                println!("{id}  {}  {:<14} {message}", fmt_time(created), state.as_str());
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id, key_store } => {
            let db = store_path(Some(&key_store), Path::new("."))?;
            let store = SqliteJobStore::open(&db)?;
            let Some(job) = store.get(&id)? else {
                eprintln!("no job {id}");
                return Ok(ExitCode::from(1));
            };
            println!("job {}  created {}", job.id, fmt_time(job.created_at_ms));
            for s in &job.states {
                println!("  {}  {:<14} {}", fmt_time(s.at_ms), s.state.as_str(), s.message);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Create { job, store } => {
            let Some(loaded) = load_or_report(&job) else { return Ok(ExitCode::from(1)) };
            let db = store_path(store.key_store.as_deref(), &loaded.dir)?;
            let job_store = SqliteJobStore::open(&db)?;
            let id = uuid::Uuid::new_v4().to_string();
            let base = std::env::current_dir()?.display().to_string();
            job_store.create_job(&id, &keylink_core::config::parse::redacted_json(&loaded.json), &base, lifecycle::now_ms())?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Start { id, key_store, overwrite, engine: eng, events, kek: kek_ref } => {
            // absolute: the job runs in its own working directory
            let db = std::path::absolute(store_path(Some(&key_store), Path::new("."))?)?;
            let job_store = Arc::new(SqliteJobStore::open(&db)?);
            let Some(rec) = job_store.get(&id)? else {
                eprintln!("no job {id}");
                return Ok(ExitCode::from(1));
            };
            let latest = rec.states.last().map(|s| s.state);
            if latest != Some(JobState::Pending) {
                eprintln!("job {id} is {}, not PENDING: a job runs once; create a new job to run again", latest.map_or("unknown", |s| s.as_str()));
                return Ok(ExitCode::from(1));
            }
            std::env::set_current_dir(&rec.base_dir).with_context(|| format!("job's working directory {}", rec.base_dir))?;
            let loaded = runner::load_job_json(rec.config_json.clone(), Path::new(&rec.base_dir)).map_err(|e| anyhow::anyhow!("{e}"))?;
            let kek = job_kek(kek_ref.as_deref(), &loaded.config)?;
            let kek_cipher = kek.as_ref().map(|k| Arc::new(k.cipher()));
            let key_store: Arc<dyn KeyStore> = Arc::new(SqliteKeyStore::open(&db, kek)?);
            let life = Lifecycle { job_id: id, store: job_store, reporter: reporter(events) };
            let opts = RunOptions {
                engine: engine(eng.engine)?,
                workers: workers(eng.workers),
                key_cache: eng.key_cache,
                key_store,
                overwrite,
                heartbeat: Duration::from_secs(10),
                seed: None,
                start_retries: 3,
                retry_base_delay: Duration::from_millis(500),
                kek: kek_cipher,
            };
            finish_run(runner::run_pending(&loaded, &life, &opts), events)
        }
    }
}

fn fmt_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // civil-from-days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", tod / 3600, tod / 60 % 60, tod % 60, ms.rem_euclid(1000))
}

fn decrypt(input: PathBuf, output: PathBuf, keys: Option<PathBuf>, store: StoreArgs, overwrite: bool, delimiter: &str) -> Result<ExitCode> {
    use keylink_core::decrypt::{parse_keys_csv, DecryptOptions, Decryptor};
    use std::io::Read;
    let delim = match delimiter {
        "tab" | "\\t" => b'\t',
        d if d.len() == 1 => d.as_bytes()[0],
        _ => bail!("--delimiter takes one character"),
    };
    let kek = kek(store.kek.as_deref())?;
    let ring = match (&keys, &store.key_store) {
        (Some(path), _) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let kek_cipher = kek.as_ref().map(|k| k.cipher());
            parse_keys_csv(&bytes, kek_cipher.as_ref()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        (None, Some(url)) => {
            let db = store_path(Some(url), Path::new("."))?;
            let ks = SqliteKeyStore::open(&db, kek)?;
            // Collect the key links the input refers to, then fetch those keys.
            let links = collect_links(&input, delim)?;
            ks.keys_by_links(&links)?
        }
        (None, None) => bail!("decrypt needs --keys KEYS.csv or --key-store URL"),
    };
    let mut dec = Decryptor::new(ring, DecryptOptions { delimiter: delim, ..DecryptOptions::default() });
    let mut out = keylink_host::connector::AtomicFile::create(&output, overwrite)?;
    let mut f = std::fs::File::open(&input).with_context(|| format!("opening {}", input.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = Vec::new();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dec.push(&buf[..n], &mut bytes)?;
        out.write_all(&bytes)?;
        bytes.clear();
    }
    let s = dec.finish(&mut bytes)?;
    out.write_all(&bytes)?;
    out.commit()?;
    eprintln!(
        "decrypted {} cells in {} rows; {} cells left encrypted (key missing), {} failed to authenticate",
        s.cells_decrypted, s.rows, s.cells_missing_key, s.cells_failed
    );
    Ok(ExitCode::SUCCESS)
}

fn collect_links(input: &Path, delim: u8) -> Result<Vec<String>> {
    use keylink_core::csv::{CsvDecoder, DecodeEvent};
    use std::io::Read;
    let mut dec = CsvDecoder::new(delim, keylink_core::config::Charset::Utf8);
    let mut col: Option<Option<usize>> = None;
    let mut links = std::collections::BTreeSet::new();
    let mut on = |ev: DecodeEvent<'_>| {
        if let DecodeEvent::Record(r) = ev {
            match col {
                None => col = Some(r.fields().position(|f| f == "strmMeta.keyLink")),
                Some(Some(c)) if c < r.len() => {
                    links.insert(r.get(c).to_string());
                }
                _ => {}
            }
        }
        Ok(())
    };
    let mut f = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dec.push(&buf[..n], &mut on)?;
    }
    dec.finish(&mut on)?;
    if col == Some(None) {
        bail!("{} has no strmMeta.keyLink column: use --keys KEYS.csv", input.display());
    }
    Ok(links.into_iter().collect())
}
