//! The keylink component in wasmtime.
//!
//! `build.rs` compiles `wasm/component` for `wasm32-unknown-unknown` and
//! encodes it as a component; the bytes are part of this binary. The
//! component imports nothing, so the [`Linker`] is empty: a job inside it can
//! reach no file, clock, network or random source — it only turns the bytes
//! we push into the bytes we drain.
//!
//! One [`wasmtime::Engine`] compiles the component once per process (or loads
//! the machine code a previous run cached on disk, see [`ComponentEngine`]);
//! every job gets its own [`Store`] and instance, so jobs on worker threads
//! share nothing but the compiled code.
//!
//! Both engines must give identical results: every WIT type converts to the
//! core type the native engine returns, and errors keep their [`ErrorKind`].
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use keylink_core::config::CipherKind as CoreCipher;
use keylink_core::error::ConfigProblem as CoreProblem;
use keylink_core::job::{Outputs as CoreOutputs, Summary as CoreSummary};
use keylink_core::keys::{KeyRequest as CoreRequest, StoredKey as CoreKey};
use keylink_core::tink::{KeyMaterial, TinkKey};
use keylink_core::{Error, ErrorKind};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Config, Store, StoreLimits, StoreLimitsBuilder};

use super::{Engine, EngineJob, JobInit};

mod bindings {
    wasmtime::component::bindgen!({
        world: "keylink",
        path: "../wit",
    });
}

use bindings::exports::keylink::batch::types::{CipherKind, JobError, KeyRequest, Outputs, StoredKey, Summary};
use bindings::{Keylink, KeylinkPre};

/// The component, as `build.rs` encoded it.
static COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/keylink.component.wasm"));

/// The wasmtime release this host embeds (from Cargo.lock, by `build.rs`).
const WASMTIME_VERSION: &str = env!("KEYLINK_WASMTIME_VERSION");

/// Memory one job's instance may grow to. The component is our own core, so
/// this is a guard against a runaway job, not a sandbox limit.
const MEMORY_LIMIT: usize = 1 << 30;

/// The message of every error that comes from a trap (a panic or a limit in
/// the guest). It names no guest data.
const TRAPPED: &str = "the engine component trapped";

/// The bytes of the keylink component embedded in this binary.
pub fn component_bytes() -> &'static [u8] {
    COMPONENT
}

/// The names the component imports: none (the component is pure
/// computation). For tests and `keylink component-imports`.
///
/// # Panics
/// When the embedded component does not load (a broken build).
pub fn component_imports() -> Vec<String> {
    ComponentEngine::new().expect("the embedded keylink component loads").imports()
}

fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.strategy(wasmtime::Strategy::Cranelift);
    config
}

/// Runs jobs in instances of the keylink component.
pub struct ComponentEngine {
    engine: wasmtime::Engine,
    component: Component,
    pre: KeylinkPre<HostState>,
    memory_limit: usize,
}

/// What the host keeps per store: only the memory limit (nothing is
/// imported, so there is no host state to share with the guest).
struct HostState {
    limits: StoreLimits,
}

impl ComponentEngine {
    /// An engine that caches the compiled component in the user's cache
    /// directory (`$XDG_CACHE_HOME/keylink` or `~/.cache/keylink`).
    ///
    /// # Errors
    /// When the component does not compile (a broken build).
    pub fn new() -> Result<ComponentEngine, Error> {
        ComponentEngine::with_cache_dir(default_cache_dir().as_deref())
    }

    /// An engine caching compiled code in `cache_dir` (`None`: compile in
    /// memory every time).
    ///
    /// # Errors
    /// When the component does not compile (a broken build).
    pub fn with_cache_dir(cache_dir: Option<&Path>) -> Result<ComponentEngine, Error> {
        let engine = wasmtime::Engine::new(&engine_config()).map_err(|_| setup_error())?;
        let component = load_component(&engine, cache_dir).map_err(|_| setup_error())?;
        // Zero imports: nothing is linked.
        let linker = Linker::<HostState>::new(&engine);
        let pre = linker
            .instantiate_pre(&component)
            .and_then(KeylinkPre::new)
            .map_err(|_| setup_error())?;
        Ok(ComponentEngine { engine, component, pre, memory_limit: MEMORY_LIMIT })
    }

    /// The names the loaded component imports (see [`component_imports`]).
    pub fn imports(&self) -> Vec<String> {
        self.component.component_type().imports(&self.engine).map(|(name, _)| name.to_string()).collect()
    }

    /// Lowers (or raises) the memory each job's instance may use; a job
    /// that needs more traps. The default is 1 GiB.
    pub fn with_memory_limit(mut self, bytes: usize) -> ComponentEngine {
        self.memory_limit = bytes;
        self
    }

    /// A store for one job or call, with the memory limit.
    fn store(&self) -> Store<HostState> {
        let limits = StoreLimitsBuilder::new().memory_size(self.memory_limit).build();
        let mut store = Store::new(&self.engine, HostState { limits });
        store.limiter(|state| &mut state.limits);
        store
    }

    /// The wasmtime engine (shared by every job of this engine).
    pub fn wasmtime_engine(&self) -> &wasmtime::Engine {
        &self.engine
    }
}

fn setup_error() -> Error {
    Error::state("the engine component could not be loaded")
}

/// `$XDG_CACHE_HOME/keylink`, else `~/.cache/keylink`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("keylink"))
}

/// The cache file of the compiled component for this engine: named by a hash
/// of the component bytes, the wasmtime version and the engine's
/// compatibility hash (its settings and the CPU features it compiles for).
pub fn cache_file(engine: &wasmtime::Engine, cache_dir: &Path) -> PathBuf {
    struct DigestHasher<'a>(&'a mut Sha256);
    impl Hasher for DigestHasher<'_> {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut digest = Sha256::new();
    digest.update(COMPONENT);
    digest.update(WASMTIME_VERSION.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut DigestHasher(&mut digest));
    let hash = hex::encode(&digest.finalize()[..16]);
    cache_dir.join(format!("keylink-{hash}-wasmtime-{WASMTIME_VERSION}.cwasm"))
}

/// Loads the compiled component from the cache, or compiles it and fills the
/// cache. A missing, unreadable or stale cache file only costs a compile; a
/// cache directory we cannot write only costs the next run a compile too.
fn load_component(engine: &wasmtime::Engine, cache_dir: Option<&Path>) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, COMPONENT);
    };
    let file = cache_file(engine, dir);
    // Read into memory rather than `Component::deserialize_file`: that maps
    // the file, and a mapped file truncated or rewritten in place by another
    // process (a user clearing the cache, a concurrent writer that does not
    // rename) kills this process with SIGBUS. `deserialize` copies the bytes
    // into wasmtime's own mapping; a few MB read once per process.
    if let Some(compiled) = std::fs::read(&file).ok().and_then(checked) {
        // SAFETY: `deserialize` runs the bytes as machine code without
        // validating them, so they must be the output of
        // `precompile_component`. They are: the file is named by the hash of
        // our own embedded component bytes, the wasmtime version and the
        // engine's settings, lives in the user's own cache directory, and is
        // only ever written by `store_compiled` below (atomically: temporary
        // file, then rename) from `Engine::precompile_component` of those same
        // bytes, behind their SHA-256, which `checked` verified: a damaged
        // or truncated file is recompiled and replaced, never run. wasmtime
        // also checks the artifact's header (its version, the target, the
        // settings) and refuses one of another build. Whoever can write the
        // user's cache directory can already replace the user's binaries, so
        // trusting it adds no exposure.
        if let Ok(component) = unsafe { Component::deserialize(engine, &compiled) } {
            return Ok(component);
        }
    }
    let compiled = engine.precompile_component(COMPONENT)?;
    store_compiled(dir, &file, &compiled);
    // SAFETY: `compiled` was just produced by `precompile_component` of this
    // engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

/// The compiled code of a cache file, if its SHA-256 prefix matches.
fn checked(mut file: Vec<u8>) -> Option<Vec<u8>> {
    if file.len() < 32 || Sha256::digest(&file[32..])[..] != file[..32] {
        return None;
    }
    file.drain(..32);
    Some(file)
}

/// Writes the compiled component, behind its SHA-256, atomically (temporary
/// file, then rename): concurrent writers and readers never see half a file.
/// Failures are ignored: the cache is an optimisation.
fn store_compiled(dir: &Path, file: &Path, compiled: &[u8]) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("keylink");
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed)));
    let mut contents = Sha256::digest(compiled).to_vec();
    contents.extend_from_slice(compiled);
    if std::fs::write(&tmp, &contents).is_ok() && std::fs::rename(&tmp, file).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&tmp);
}

impl Engine for ComponentEngine {
    fn create(&self, init: &JobInit) -> Result<Box<dyn EngineJob>, Error> {
        let mut store = self.store();
        let bindings: Keylink = self.pre.instantiate(&mut store).map_err(|_| trapped())?;
        let job = bindings
            .keylink_batch_engine()
            .job()
            .call_create(&mut store, &init.config_json, &init.contracts, &init.seed, &init.secrets)
            .map_err(|_| trapped())?
            .map_err(core_error)?;
        Ok(Box::new(ComponentJob { store, bindings, job, trapped: false }))
    }

    fn name(&self) -> &'static str {
        "component"
    }
}

/// Validates a job file inside the component (same answer as
/// `JobConfig::from_json` natively).
///
/// # Errors
/// `InvalidConfig` with every problem; a trap as `State`.
pub fn validate(engine: &ComponentEngine, config_json: &str, contracts: &[(String, String)]) -> Result<(), Error> {
    let mut store = engine.store();
    let bindings = engine.pre.instantiate(&mut store).map_err(|_| trapped())?;
    bindings
        .keylink_batch_engine()
        .call_validate(&mut store, config_json, contracts)
        .map_err(|_| trapped())?
        .map_err(core_error)
}

/// One job: its own store, instance and `job` resource.
struct ComponentJob {
    store: Store<HostState>,
    bindings: Keylink,
    job: ResourceAny,
    /// After a trap the instance may not be entered again.
    trapped: bool,
}

impl ComponentJob {
    /// Runs one guest call; a trap poisons the job.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&Keylink, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<Result<R, JobError>>,
    ) -> Result<R, Error> {
        if self.trapped {
            return Err(trapped());
        }
        match f(&self.bindings, &mut self.store, self.job) {
            Ok(r) => r.map_err(core_error),
            Err(_) => {
                self.trapped = true;
                Err(trapped())
            }
        }
    }
}

impl EngineJob for ComponentJob {
    fn omit_keys_output(&mut self) {
        // A trap here shows on the next fallible call.
        let _ = self.call(|b, s, job| b.keylink_batch_engine().job().call_omit_keys_output(s, job).map(Ok));
    }

    fn set_key_cache_limit(&mut self, limit: u32) {
        let _ = self.call(|b, s, job| b.keylink_batch_engine().job().call_set_key_cache_limit(s, job, limit).map(Ok));
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.call(|b, s, job| b.keylink_batch_engine().job().call_push(s, job, chunk))
    }

    fn end_input(&mut self) -> Result<(), Error> {
        self.call(|b, s, job| b.keylink_batch_engine().job().call_end_input(s, job))
    }

    fn key_requests(&mut self) -> Vec<CoreRequest> {
        // A trap here shows on the next fallible call (`provide_keys`,
        // `drain` or `finish`), which then fails with `TRAPPED`.
        self.call(|b, s, job| b.keylink_batch_engine().job().call_key_requests(s, job).map(Ok))
            .map(|requests| requests.into_iter().map(core_request).collect())
            .unwrap_or_default()
    }

    fn provide_keys(&mut self, keys: Vec<CoreKey>) -> Result<(), Error> {
        let keys: Vec<StoredKey> = keys.iter().map(wit_key).collect();
        self.call(|b, s, job| b.keylink_batch_engine().job().call_provide_keys(s, job, &keys))
    }

    fn drain(&mut self) -> Result<CoreOutputs, Error> {
        self.call(|b, s, job| b.keylink_batch_engine().job().call_drain(s, job)).map(core_outputs)
    }

    fn finish(&mut self) -> Result<(CoreOutputs, CoreSummary), Error> {
        self.call(|b, s, job| b.keylink_batch_engine().job().call_finish(s, job))
            .map(|(out, summary)| (core_outputs(out), core_summary(summary)))
    }
}

fn trapped() -> Error {
    Error::state(TRAPPED)
}

// ---- WIT → core ----------------------------------------------------------

fn core_cipher(c: CipherKind) -> CoreCipher {
    match c {
        CipherKind::Aes256Gcm => CoreCipher::Aes256Gcm,
        CipherKind::Aes256Siv => CoreCipher::Aes256Siv,
    }
}

fn wit_cipher(c: CoreCipher) -> CipherKind {
    match c {
        CoreCipher::Aes256Gcm => CipherKind::Aes256Gcm,
        CoreCipher::Aes256Siv => CipherKind::Aes256Siv,
    }
}

fn core_key(k: StoredKey) -> CoreKey {
    CoreKey {
        key_link: k.key_link,
        key: TinkKey { key_id: k.key_id, cipher: core_cipher(k.cipher), material: KeyMaterial::new(k.material) },
        uses_before: k.uses_before,
    }
}

fn wit_key(k: &CoreKey) -> StoredKey {
    StoredKey {
        key_link: k.key_link.clone(),
        key_id: k.key.key_id,
        cipher: wit_cipher(k.key.cipher),
        material: k.key.material.as_bytes().to_vec(),
        uses_before: k.uses_before,
    }
}

fn core_request(r: KeyRequest) -> CoreRequest {
    CoreRequest {
        key_value: r.key_value,
        window: r.window,
        window_start_ms: r.window_start_ms,
        subject: r.subject,
        proposal: core_key(r.proposal),
    }
}

fn core_outputs(o: Outputs) -> CoreOutputs {
    CoreOutputs { encrypted: o.encrypted, keys: o.keys, derived: o.derived, key_uses: o.key_uses }
}

fn core_summary(s: Summary) -> CoreSummary {
    CoreSummary {
        rows_read: s.rows_read,
        rows_written: s.rows_written,
        rows_skipped: s.rows_skipped,
        skipped_rows: s.skipped_rows,
        derived_rows: s.derived_rows,
        keys_used: s.keys_used,
        keys_created: s.keys_created,
        values_encrypted: s.values_encrypted,
        key_uses: s.key_uses,
    }
}

/// The core's `&'static str` fields (column roles, charset names, state
/// messages) come back from the guest as strings. The known ones map to the
/// same literals the native core uses.
const ROLES: [&str; 6] =
    ["key field", "timestamp field", "consent field", "data subject field", "PII field", "masked field"];
const CHARSETS: [&str; 2] = ["UTF-8", "ISO-8859-1"];
const STATE_MESSAGES: [&str; 7] = [
    "push after end_input",
    "finish called twice",
    "the job already failed",
    "the job is finished",
    "drain before the key requests were answered",
    "a row's key was never provided",
    "the job seed must be 32 bytes",
];

/// A `&'static str` for a string from the guest: one of `known`, or else an
/// interned copy. Interning leaks each distinct text once; the guest only
/// sends texts that are literals in its own code, so the set stays small.
fn static_text(text: String, known: &[&'static str]) -> &'static str {
    if let Some(k) = known.iter().find(|k| **k == text) {
        return k;
    }
    static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut set = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = set.get(text.as_str()) {
        return s;
    }
    let s: &'static str = Box::leak(text.into_boxed_str());
    set.insert(s);
    s
}

fn core_error(e: JobError) -> Error {
    Error::new(match e {
        JobError::InvalidConfig(problems) => ErrorKind::InvalidConfig(
            problems.into_iter().map(|p| CoreProblem { path: p.path, message: p.message }).collect(),
        ),
        JobError::MissingColumn(m) => ErrorKind::MissingColumn { column: m.column, role: static_text(m.role, &ROLES) },
        JobError::EmptyInput => ErrorKind::EmptyInput,
        JobError::RaggedRow(r) => {
            ErrorKind::RaggedRow { row: r.row, line: r.line, expected: r.expected as usize, found: r.found as usize }
        }
        JobError::InvalidEncoding(i) => {
            ErrorKind::InvalidEncoding { row: i.row, line: i.line, charset: static_text(i.charset, &CHARSETS) }
        }
        JobError::BadTimestamp(b) => {
            ErrorKind::BadTimestamp { row: b.row, line: b.line, column: b.column, format: b.format }
        }
        JobError::KeyUsageLimit(key_link) => ErrorKind::KeyUsageLimit { key_link },
        JobError::Keys(message) => ErrorKind::Keys { message },
        JobError::KeyFormat(message) => ErrorKind::KeyFormat { message },
        JobError::Crypto => ErrorKind::Crypto,
        JobError::State(message) => ErrorKind::State { message: static_text(message, &STATE_MESSAGES) },
        JobError::Secret((path, message)) => ErrorKind::Secret { path, message },
    })
}
