//! The job state machine: push bytes, answer key requests, drain outputs.
//!
//! # Design
//! The core never calls out. A caller drives a job like this:
//!
//! ```text
//! job = Job::new(config, seed, secrets)
//! for each chunk { job.push(chunk) ; answer(job) }    // any chunking, down to one byte
//! job.end_input() ; answer(job)
//! job.finish(out)
//! where answer(job) = { if !job.key_requests().is_empty() { job.provide_keys(store.get_or_create(..)) } ; job.drain(out) }
//! ```
//!
//! `push` decodes rows into a pending batch and notes every (key-field value,
//! window) it has no key for; `provide_keys` answers all of them at once (one
//! key store round trip per batch, not per row); `drain` encrypts the pending
//! rows and appends the encrypted and derived rows to the caller's buffers.
//!
//! Outputs are byte-identical for any split of the input into chunks, for a
//! fixed seed and key store: key proposals are drawn (from their own RNG
//! stream) in the order keys are first needed, nonces (from another stream)
//! in row order, and keys rows are written in the order keys are first needed.
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use hashbrown::{Equivalent, HashMap};

use crate::answers::Answers;
use crate::cipher::CellCipher;
use crate::config::{AssociatedData, CipherKind, ErrorPolicy, HashType, JobConfig, LineEnd, QuoteStyle, SecretRef};
use crate::consent::{self, ConsentLevels};
use crate::csv::{CsvDecoder, CsvEncoder, DecodeEvent, Record};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{KeyRequest, StoredKey};
use crate::mask;
use crate::rng::JobRng;
use crate::tink::{KeyMaterial, TinkKey};
use crate::window::KeyWindow;

/// The most values one key may encrypt (SPEC 4): with random 96-bit nonces
/// this keeps the chance of a repeated nonce negligible.
pub const MAX_ENCRYPTIONS_PER_KEY: u64 = 1 << 31;

/// How many skipped row numbers a summary lists (all are counted).
pub const MAX_LISTED_SKIPS: usize = 1000;

/// The metadata columns appended to the encrypted and derived outputs, named
/// as STRM wrote them.
pub const META_COLUMNS: [&str; 6] = [
    "strmMeta.eventContractRef",
    "strmMeta.nonce",
    "strmMeta.timestamp",
    "strmMeta.keyLink",
    "strmMeta.billingId",
    "strmMeta.consentLevels",
];

/// Header of the keys output.
pub const KEYS_HEADER: [&str; 4] = ["keyLink", "encryptionKey", "policyId", "expiresAt"];

/// Direct-mapped cache of ready ciphers: key schedules are cheap to redo,
/// but one per key for hundreds of thousands of keys is not cheap to keep.
const CIPHER_CACHE: usize = 4096;

/// Consent cells and consent sets are interned per batch; the tables are
/// cleared after a drain once they grow past this, so memory stays bounded
/// whatever the input holds.
const CONSENT_TABLE_LIMIT: usize = 4096;

/// Bytes produced so far, appended by `drain` and `finish`; the caller takes
/// them (e.g. `core::mem::take`) and writes them out.
#[derive(Debug, Default)]
pub struct Outputs {
    pub encrypted: Vec<u8>,
    pub keys: Vec<u8>,
    pub derived: Vec<Vec<u8>>,
    /// Per key link, the values encrypted with keys this drain evicted from
    /// the job's key cache ([`Job::set_key_cache_limit`]); the summary lists
    /// the keys still cached at the end. Empty unless a limit is set.
    pub key_uses: Vec<(String, u64)>,
}

/// What a finished job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Data rows read (header not counted), skipped ones included.
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_skipped: u64,
    /// The first [`MAX_LISTED_SKIPS`] skipped row numbers (1-based).
    pub skipped_rows: Vec<u64>,
    /// Rows written to each derived output, in job-file order.
    pub derived_rows: Vec<u64>,
    /// Keys used by this job (rows of the keys output). With a key cache
    /// limit, a key evicted and provided again counts again.
    pub keys_used: u64,
    /// Of those, the keys this job proposed and the store accepted.
    pub keys_created: u64,
    /// PII values encrypted.
    pub values_encrypted: u64,
    /// Per key link, the values encrypted with it by this job (for stores
    /// that keep usage counts toward the 2^31 cap), in keys-output order.
    pub key_uses: Vec<(String, u64)>,
}

/// The key cache's key: a key-field value and a window.
#[derive(PartialEq, Eq)]
struct KeyId {
    value: String,
    window: i64,
}

#[derive(Hash)]
struct KeyIdRef<'a> {
    value: &'a str,
    window: i64,
}

impl Equivalent<KeyId> for KeyIdRef<'_> {
    fn equivalent(&self, key: &KeyId) -> bool {
        self.value == key.value && self.window == key.window
    }
}

// `KeyIdRef` must hash like `KeyId`: both derive Hash over (str, i64).
impl core::hash::Hash for KeyId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        KeyIdRef { value: &self.value, window: self.window }.hash(state)
    }
}

struct KeySlot {
    /// None until the store answered.
    key: Option<StoredKey>,
    uses: u64,
    /// Its entry id in the job's answer table, when there is one.
    answer: Option<u128>,
}

/// Column roles, resolved from the header.
struct Columns {
    names: Vec<String>,
    key: usize,
    timestamp: usize,
    consent: Option<usize>,
    subject: Option<usize>,
    /// Per column: the purpose level if it is a PII column.
    pii: Vec<Option<u32>>,
    /// Per derived output, per column: what to write.
    derived: Vec<Vec<Cell>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// The plaintext value.
    Plain,
    /// The value as in the encrypted output (ciphertext for PII).
    AsEncrypted,
    /// A keyed hash of the plaintext.
    Mask,
}

struct RowMeta {
    /// Index of the row's first field end in `Pending::ends`.
    first_field: u32,
    epoch_ms: i64,
    slot: u32,
    consent: u32,
}

/// Rows decoded but not yet drained, in one text buffer (no per-field
/// allocation).
#[derive(Default)]
struct Pending {
    text: String,
    ends: Vec<u32>,
    rows: Vec<RowMeta>,
}

struct Interned {
    levels: ConsentLevels,
    text: String,
}

/// Everything but the decoder, so the decoder's callback can borrow it.
struct State {
    config: JobConfig,
    columns: Option<Columns>,
    row: u64,
    rows_skipped: u64,
    skipped_rows: Vec<u64>,
    rows_written: u64,
    derived_rows: Vec<u64>,
    values_encrypted: u64,
    key_rng: JobRng,
    nonce_rng: JobRng,
    key_index: HashMap<KeyId, u32>,
    slots: Vec<KeySlot>,
    requests: Vec<KeyRequest>,
    request_slots: Vec<u32>,
    /// Slots in the order their keys rows were written.
    used_slots: Vec<u32>,
    keys_created: u64,
    keys_out: Vec<u8>,
    pending: Pending,
    consent_cells: HashMap<String, u32>,
    consent_sets: HashMap<ConsentLevels, u32>,
    interned: Vec<Interned>,
    default_consent: u32,
    mask_seeds: Vec<Vec<u8>>,
    encryption_cap: u64,
    ciphers: CipherCache,
    /// False when the host writes the keys output itself.
    write_keys: bool,
    /// Most keys kept between drains (only with `write_keys` off).
    key_cache_limit: usize,
    /// Keys provided to this job, counting a key again after an eviction.
    keys_provided: u64,
    /// Keys given earlier, kept compactly (only with `write_keys` off).
    answers: Option<Answers>,
    seed: [u8; 32],
}

/// A running batch job. See the module docs for the calling protocol.
pub struct Job {
    decoder: CsvDecoder,
    state: State,
    input_ended: bool,
    headers_written: bool,
    failed: bool,
    finished: bool,
    scratch: Scratch,
}

#[derive(Default)]
struct Scratch {
    sealed: Vec<u8>,
    /// The row's sealed cells: their columns, nonces and ranges in `sealed`.
    sealed_cols: Vec<usize>,
    nonces: Vec<[u8; 12]>,
    spans: Vec<(usize, usize)>,
    gcm_cells: Vec<crate::gcm::CellAt>,
    cells: Vec<u8>,
    cell_ends: Vec<usize>,
    mask: String,
    number: String,
}

impl core::fmt::Debug for Job {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Job")
            .field("rows_read", &self.state.row)
            .field("keys", &self.state.slots.len())
            .field("pending_rows", &self.state.pending.rows.len())
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A job for a validated config. `seed` seeds the job's CSPRNG and must
    /// come from the platform's secure random source (a fixed seed is for
    /// tests only); `secrets` resolves `env:`/`file:` references (masking
    /// seeds).
    ///
    /// # Errors
    /// `Secret` when a masking seed cannot be resolved.
    pub fn new(config: &JobConfig, seed: [u8; 32], secrets: &mut dyn FnMut(&SecretRef) -> Result<Vec<u8>, String>) -> Result<Job> {
        if config.consent.extractor.as_ref().is_some_and(|e| e.plugin.is_some()) {
            // Running with the default consent instead would silently
            // widen or narrow what derived outputs hold: refuse.
            return Err(ErrorKind::InvalidConfig(alloc::vec![crate::error::ConfigProblem {
                path: "consent.consent_level_extractor.plugin".into(),
                message: "consent plugins are not supported by this version of keylink".into(),
            }])
            .into());
        }
        let mut mask_seeds = Vec::with_capacity(config.derived_data.len());
        for (i, d) in config.derived_data.iter().enumerate() {
            let seed = match &d.masked_fields {
                Some(m) => match &m.seed {
                    SecretRef::Inline(s) => s.as_bytes().to_vec(),
                    other => secrets(other).map_err(|message| {
                        Error::new(ErrorKind::Secret { path: alloc::format!("derived_data[{i}].masked_fields.seed"), message })
                    })?,
                },
                None => Vec::new(),
            };
            mask_seeds.push(seed);
        }
        let mut state = State {
            config: config.clone(),
            columns: None,
            row: 0,
            rows_skipped: 0,
            skipped_rows: Vec::new(),
            rows_written: 0,
            derived_rows: alloc::vec![0; config.derived_data.len()],
            values_encrypted: 0,
            key_rng: JobRng::new(seed, JobRng::KEYS),
            nonce_rng: JobRng::new(seed, JobRng::NONCES),
            key_index: HashMap::new(),
            slots: Vec::new(),
            requests: Vec::new(),
            request_slots: Vec::new(),
            used_slots: Vec::new(),
            keys_created: 0,
            keys_out: Vec::new(),
            pending: Pending::default(),
            consent_cells: HashMap::new(),
            consent_sets: HashMap::new(),
            interned: Vec::new(),
            default_consent: 0,
            mask_seeds,
            encryption_cap: MAX_ENCRYPTIONS_PER_KEY,
            ciphers: CipherCache::default(),
            write_keys: true,
            key_cache_limit: usize::MAX,
            keys_provided: 0,
            answers: None,
            seed,
        };
        state.reset_consent_tables();
        Ok(Job {
            decoder: CsvDecoder::new(config.source.delimiter, config.source.charset),
            state,
            input_ended: false,
            headers_written: false,
            failed: false,
            finished: false,
            scratch: Scratch::default(),
        })
    }

    /// Leaves the keys output empty (no header, no rows). For hosts that
    /// write the keys output themselves, e.g. merging the keys of several
    /// jobs that share a file ([`write_keys_header`], [`write_keys_row`]):
    /// the job then skips serialising a Tink keyset per key. Call it before
    /// the first [`Job::drain`].
    pub fn omit_keys_output(&mut self) {
        self.state.write_keys = false;
    }

    /// Bounds the job's key cache: after a drain that leaves more than
    /// `limit` keys cached, the job forgets them all (their use counts go
    /// to [`Outputs::key_uses`]), so memory stays bounded however many
    /// distinct keys the input needs. A key needed again is requested
    /// again; the store answers with the same key.
    ///
    /// Takes effect only with [`Job::omit_keys_output`]: a job writing its
    /// own keys output would list a key twice. The host that sets it must
    /// de-duplicate keys and add this job's earlier uses of a key to its
    /// `uses_before` when it provides the key again (the 2^31 cap).
    pub fn set_key_cache_limit(&mut self, limit: usize) {
        self.state.key_cache_limit = limit.max(1);
    }

    /// Keeps up to `limit` keys the job was given in a compact table
    /// (about 100 bytes a key) behind the key cache: a key the cache forgot
    /// is then taken from the table instead of being requested again, so
    /// the host sees each key about once however small the key cache is.
    /// The table forgets a quarter of its keys at a time when it is full
    /// (their uses go to [`Outputs::key_uses`], as the cache's do); the
    /// summary's `key_uses` lists the uses it still holds. It keeps only
    /// AES-256-GCM keys whose key link is a canonical UUID; others are
    /// requested again as without it. `0` turns it off (the default).
    ///
    /// Takes effect only with [`Job::omit_keys_output`], like
    /// [`Job::set_key_cache_limit`]: a key the table answers is not
    /// provided again, so the host lists it once, when it provided it.
    pub fn set_answer_cache_limit(&mut self, limit: usize) {
        let s = &mut self.state;
        match (limit, s.answers.as_mut()) {
            (0, _) => s.answers = None,
            (n, Some(a)) => a.set_limit(n),
            (n, None) => s.answers = Some(Answers::new(s.seed, n)),
        }
    }

    /// Lowers the per-key encryption cap, so tests can prove it trips.
    #[doc(hidden)]
    pub fn set_encryption_cap(&mut self, cap: u64) {
        self.state.encryption_cap = cap;
    }

    /// Decodes the rows `chunk` completes into the pending batch.
    ///
    /// # Errors
    /// `MissingColumn` / `EmptyInput` for the header (start errors); under
    /// error policy `fail`, `RaggedRow`, `InvalidEncoding`, `BadTimestamp`.
    /// After an error the job is failed and refuses further calls.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.check_usable()?;
        if self.input_ended {
            return Err(Error::state("push after end_input"));
        }
        let state = &mut self.state;
        let r = self.decoder.push(chunk, &mut |ev| state.on_event(ev));
        self.guard(r)
    }

    /// Marks the end of the input: decodes a last row without a line end.
    ///
    /// # Errors
    /// As [`Job::push`]; `EmptyInput` when there was no header at all.
    pub fn end_input(&mut self) -> Result<()> {
        self.check_usable()?;
        if self.input_ended {
            return Ok(());
        }
        self.input_ended = true;
        let state = &mut self.state;
        let r = self.decoder.finish(&mut |ev| state.on_event(ev));
        let r = r.and_then(|()| if self.state.columns.is_none() { Err(ErrorKind::EmptyInput.into()) } else { Ok(()) });
        self.guard(r)
    }

    /// The column names of the input, once the header has been read.
    pub fn header(&self) -> Option<&[String]> {
        self.state.columns.as_ref().map(|c| c.names.as_slice())
    }

    /// Every (key-field value, window) the pending rows need a key for and
    /// the job has none, each with a proposed fresh key.
    pub fn key_requests(&self) -> &[KeyRequest] {
        &self.state.requests
    }

    /// Answers every current key request, in the order of
    /// [`Job::key_requests`]: the key the store holds for each combination
    /// (the proposal itself if the store had none).
    ///
    /// # Errors
    /// `Keys` when the count does not match, a key's cipher is not the
    /// job's (a group's cipher is fixed at first use), or its material has
    /// the wrong length.
    pub fn provide_keys(&mut self, keys: Vec<StoredKey>) -> Result<()> {
        self.check_usable()?;
        let r = self.state.provide_keys(keys);
        self.guard(r)
    }

    /// Encrypts the pending rows and appends them to `out` (headers first).
    ///
    /// # Errors
    /// `State` if key requests are unanswered; `KeyUsageLimit`.
    pub fn drain(&mut self, out: &mut Outputs) -> Result<()> {
        self.check_usable()?;
        let r = self.drain_inner(out);
        self.guard(r)
    }

    /// Ends the job: drains what is left and returns its summary.
    ///
    /// # Errors
    /// As [`Job::end_input`] and [`Job::drain`]; `State` if key requests
    /// are still unanswered (answer them, then call `finish` again).
    pub fn finish(&mut self, out: &mut Outputs) -> Result<Summary> {
        if self.finished {
            return Err(Error::state("finish called twice"));
        }
        self.end_input()?;
        self.drain(out)?;
        self.finished = true;
        let s = &self.state;
        Ok(Summary {
            rows_read: s.row,
            rows_written: s.rows_written,
            rows_skipped: s.rows_skipped,
            skipped_rows: s.skipped_rows.clone(),
            derived_rows: s.derived_rows.clone(),
            keys_used: s.keys_provided,
            keys_created: s.keys_created,
            values_encrypted: s.values_encrypted,
            key_uses: s.final_key_uses(),
        })
    }

    /// Rows read so far (header not counted).
    pub fn rows_read(&self) -> u64 {
        self.state.row
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            Err(Error::state("the job already failed"))
        } else if self.finished {
            Err(Error::state("the job is finished"))
        } else {
            Ok(())
        }
    }

    fn guard<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn drain_inner(&mut self, out: &mut Outputs) -> Result<()> {
        let state = &mut self.state;
        if !state.requests.is_empty() {
            return Err(Error::state("drain before the key requests were answered"));
        }
        if out.derived.len() < state.config.derived_data.len() {
            out.derived.resize_with(state.config.derived_data.len(), Vec::new);
        }
        if !self.headers_written {
            if state.columns.is_none() {
                return Ok(());
            }
            state.write_headers(out);
            self.headers_written = true;
        }
        out.keys.extend_from_slice(&state.keys_out);
        state.keys_out.clear();
        let pending = core::mem::take(&mut state.pending);
        let mut ciphers = core::mem::take(&mut state.ciphers);
        let mut r = Ok(());
        for meta in &pending.rows {
            r = state.write_row(&pending, meta, &mut ciphers, &mut self.scratch, out);
            if r.is_err() {
                break;
            }
        }
        state.ciphers = ciphers;
        r?;
        if !state.write_keys && state.slots.len() > state.key_cache_limit {
            state.evict_keys(out);
        }
        if let Some(a) = state.answers.as_mut().filter(|a| a.len() > a.limit()) {
            a.trim(&mut out.key_uses);
        }
        // Reuse the buffers' capacity for the next batch.
        let mut pending = pending;
        pending.text.clear();
        pending.ends.clear();
        pending.rows.clear();
        state.pending = pending;
        if state.interned.len() > CONSENT_TABLE_LIMIT || state.consent_cells.len() > CONSENT_TABLE_LIMIT {
            state.reset_consent_tables();
        }
        Ok(())
    }
}

/// Ready ciphers, direct-mapped by key slot (slots are never reused, so an
/// entry stays valid for the whole job).
#[derive(Default)]
struct CipherCache {
    entries: Vec<Option<(u32, CellCipher)>>,
}

impl CipherCache {
    fn get(&mut self, slot: u32, key: &TinkKey) -> &CellCipher {
        if self.entries.is_empty() {
            self.entries.resize_with(CIPHER_CACHE, || None);
        }
        let e = &mut self.entries[slot as usize % CIPHER_CACHE];
        match e {
            Some((s, _)) if *s == slot => {}
            Some((s, c)) => {
                c.rekey(key);
                *s = slot;
            }
            None => *e = Some((slot, CellCipher::new(key))),
        }
        match e {
            Some((_, c)) => c,
            None => unreachable!("entry was just filled"),
        }
    }
}

impl State {
    /// Forgets every cached key (no row is pending and no request is open:
    /// called at the end of a drain), reporting their use counts (to the
    /// answer table where it holds the key).
    fn evict_keys(&mut self, out: &mut Outputs) {
        for &i in &self.used_slots {
            let slot = &self.slots[i as usize];
            if let Some(k) = &slot.key {
                let kept = match (slot.answer, self.answers.as_mut()) {
                    (Some(id), Some(a)) => a.add_uses(id, slot.uses),
                    _ => false,
                };
                if !kept {
                    out.key_uses.push((k.key_link.clone(), slot.uses));
                }
            }
        }
        self.used_slots.clear();
        self.slots.clear();
        self.key_index.clear();
        self.key_index.shrink_to(self.key_cache_limit.min(1 << 16));
        // Entries are keyed by slot number, and numbers start again at 0.
        self.ciphers = CipherCache::default();
    }

    /// Every use not yet reported: the cached keys' (in the order they were
    /// provided), then the answer table's.
    fn final_key_uses(&self) -> Vec<(String, u64)> {
        let mut held: hashbrown::HashMap<u128, u64> = hashbrown::HashMap::new();
        let mut list = Vec::new();
        for &i in &self.used_slots {
            let slot = &self.slots[i as usize];
            let Some(k) = &slot.key else { continue };
            match (slot.answer, self.answers.as_ref()) {
                // Merged with the table's entry: one pair per key.
                (Some(id), Some(a)) if a.contains(id) => *held.entry(id).or_insert(0) += slot.uses,
                _ => list.push((k.key_link.clone(), slot.uses)),
            }
        }
        if let Some(a) = &self.answers {
            a.report(&held, &mut list);
        }
        list
    }

    fn reset_consent_tables(&mut self) {
        self.consent_cells.clear();
        self.consent_sets.clear();
        self.interned.clear();
        let default = self.config.consent.default_levels.clone();
        self.default_consent = self.intern(default);
    }

    fn intern(&mut self, levels: ConsentLevels) -> u32 {
        if let Some(&id) = self.consent_sets.get(&levels) {
            return id;
        }
        let id = self.interned.len() as u32;
        self.interned.push(Interned { text: levels.to_text(), levels: levels.clone() });
        self.consent_sets.insert(levels, id);
        id
    }

    fn on_event(&mut self, ev: DecodeEvent<'_>) -> Result<()> {
        match ev {
            DecodeEvent::Record(rec) if self.columns.is_none() => self.read_header(rec),
            DecodeEvent::InvalidEncoding { line } if self.columns.is_none() => {
                Err(ErrorKind::InvalidEncoding { row: 0, line, charset: self.config.source.charset.name() }.into())
            }
            DecodeEvent::Record(rec) => {
                self.row += 1;
                match self.read_row(rec) {
                    Ok(()) => Ok(()),
                    Err(e) => self.apply_policy(e),
                }
            }
            DecodeEvent::InvalidEncoding { line } => {
                self.row += 1;
                let e = ErrorKind::InvalidEncoding { row: self.row, line, charset: self.config.source.charset.name() };
                self.apply_policy(e.into())
            }
        }
    }

    fn apply_policy(&mut self, e: Error) -> Result<()> {
        match self.config.error_policy {
            ErrorPolicy::Fail => Err(e),
            ErrorPolicy::Skip => {
                self.rows_skipped += 1;
                if self.skipped_rows.len() < MAX_LISTED_SKIPS {
                    self.skipped_rows.push(self.row);
                }
                Ok(())
            }
        }
    }

    fn read_header(&mut self, rec: &Record) -> Result<()> {
        let names: Vec<String> = rec.fields().map(String::from).collect();
        let find = |name: &str, role: &'static str| -> Result<usize> {
            names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| ErrorKind::MissingColumn { column: name.into(), role }.into())
        };
        let cfg = &self.config;
        let key = find(&cfg.data_contract.key_field, "key field")?;
        let timestamp = find(&cfg.encryption.timestamp.field, "timestamp field")?;
        let consent = match &cfg.consent.extractor {
            Some(ex) if ex.plugin.is_none() => Some(find(&ex.field, "consent field")?),
            _ => None,
        };
        let subject = match &cfg.data_contract.data_subject_field {
            Some(f) => Some(find(f, "data subject field")?),
            None => None,
        };
        let mut pii = alloc::vec![None; names.len()];
        for (name, level) in &cfg.data_contract.pii_fields {
            pii[find(name, "PII field")?] = Some(*level);
        }
        let mut derived = Vec::with_capacity(cfg.derived_data.len());
        for d in &cfg.derived_data {
            let mut cells: Vec<Cell> = pii
                .iter()
                .map(|p| match p {
                    Some(level) if !consent::field_decrypted(d.consent_level_type, &d.consent_levels, *level) => Cell::AsEncrypted,
                    _ => Cell::Plain,
                })
                .collect();
            if let Some(m) = &d.masked_fields {
                for f in &m.fields {
                    cells[find(f, "masked field")?] = Cell::Mask;
                }
            }
            derived.push(cells);
        }
        self.columns = Some(Columns { names, key, timestamp, consent, subject, pii, derived });
        Ok(())
    }

    fn read_row(&mut self, rec: &Record) -> Result<()> {
        let cols = self.columns.as_ref().expect("header read first");
        if rec.len() != cols.names.len() {
            return Err(ErrorKind::RaggedRow { row: self.row, line: rec.line(), expected: cols.names.len(), found: rec.len() }.into());
        }
        let ts = &self.config.encryption.timestamp;
        let epoch_ms = ts.format.epoch_millis(rec.get(cols.timestamp), ts.zone).ok_or_else(|| {
            Error::new(ErrorKind::BadTimestamp {
                row: self.row,
                line: rec.line(),
                column: ts.field.clone(),
                format: ts.format_text.clone(),
            })
        })?;
        let consent_col = cols.consent;
        let key_col = cols.key;
        let subject_col = cols.subject;
        let consent = match consent_col {
            Some(c) => self.consent_of(rec.get(c)),
            None => self.default_consent,
        };
        let window = KeyWindow::of(epoch_ms, self.config.window_ms());
        let slot = self.slot_for(rec.get(key_col), window, subject_col.map(|c| rec.get(c)));
        let p = &mut self.pending;
        let first_field = p.ends.len() as u32;
        for field in rec.fields() {
            p.text.push_str(field);
            p.ends.push(p.text.len() as u32);
        }
        p.rows.push(RowMeta { first_field, epoch_ms, slot, consent });
        Ok(())
    }

    fn consent_of(&mut self, cell: &str) -> u32 {
        let cell = cell.trim();
        if let Some(&id) = self.consent_cells.get(cell) {
            return id;
        }
        let levels = consent::record_levels(&self.config.consent, Some(cell));
        let id = self.intern(levels);
        self.consent_cells.insert(String::from(cell), id);
        id
    }

    fn slot_for(&mut self, value: &str, window: KeyWindow, subject: Option<&str>) -> u32 {
        if let Some(&slot) = self.key_index.get(&KeyIdRef { value, window: window.0 }) {
            return slot;
        }
        let slot = self.slots.len() as u32;
        let answer = if self.write_keys { None } else { self.answers.as_ref().map(|a| a.id(value, window.0)) };
        if let Some(key) = answer.and_then(|id| self.answers.as_ref()?.get(id)) {
            // Given earlier and forgotten by the cache: no request.
            self.slots.push(KeySlot { key: Some(key), uses: 0, answer });
            self.key_index.insert(KeyId { value: value.into(), window: window.0 }, slot);
            self.used_slots.push(slot);
            self.keys_provided += 1;
            return slot;
        }
        self.slots.push(KeySlot { key: None, uses: 0, answer });
        self.key_index.insert(KeyId { value: value.into(), window: window.0 }, slot);
        let proposal = self.propose_key();
        self.requests.push(KeyRequest {
            key_value: value.into(),
            window: window.0,
            window_start_ms: window.start_ms(self.config.window_ms()),
            subject: subject.map(String::from),
            proposal,
        });
        self.request_slots.push(slot);
        slot
    }

    fn propose_key(&mut self) -> StoredKey {
        let cipher = self.config.encryption.cipher;
        let mut material = alloc::vec![0u8; cipher.key_len()];
        self.key_rng.fill(&mut material);
        let key_id = loop {
            let id = self.key_rng.next_u32();
            if id != 0 {
                break id;
            }
        };
        let key_link = self.key_rng.uuid_v4();
        StoredKey { key_link, key: TinkKey { key_id, cipher, material: KeyMaterial::new(material) }, uses_before: 0 }
    }

    fn provide_keys(&mut self, keys: Vec<StoredKey>) -> Result<()> {
        if keys.len() != self.requests.len() {
            return Err(ErrorKind::Keys {
                message: alloc::format!("{} keys provided for {} requests", keys.len(), self.requests.len()),
            }
            .into());
        }
        let want = self.config.encryption.cipher;
        for k in &keys {
            if k.key.cipher != want {
                return Err(ErrorKind::Keys {
                    message: alloc::format!(
                        "the key store holds {} keys for this group, the job asks for {}; a group's cipher is fixed at first use",
                        k.key.cipher.name(),
                        want.name()
                    ),
                }
                .into());
            }
            if k.key.material.as_bytes().len() != want.key_len() || k.key.key_id == 0 {
                return Err(ErrorKind::Keys { message: alloc::format!("key {} is malformed", k.key_link) }.into());
            }
        }
        let requests = core::mem::take(&mut self.requests);
        let slots = core::mem::take(&mut self.request_slots);
        for ((req, slot), key) in requests.into_iter().zip(slots).zip(keys) {
            if key.key_link == req.proposal.key_link {
                self.keys_created += 1;
            }
            if self.write_keys {
                self.write_keys_row(&key, req.window);
            }
            self.used_slots.push(slot);
            self.keys_provided += 1;
            let s = &mut self.slots[slot as usize];
            if let (Some(id), Some(a)) = (s.answer, self.answers.as_mut()) {
                a.put(id, &key);
            }
            s.key = Some(key);
        }
        Ok(())
    }

    fn write_keys_row(&mut self, key: &StoredKey, window: i64) {
        write_keys_row(&self.config, key, window, &mut self.keys_out);
    }

    fn write_headers(&self, out: &mut Outputs) {
        let cols = self.columns.as_ref().expect("header read first");
        write_data_headers(&self.config, &cols.names, out);
        if self.write_keys {
            write_keys_header(&self.config, &mut out.keys);
        }
    }

    fn write_row(&mut self, pending: &Pending, meta: &RowMeta, ciphers: &mut CipherCache, s: &mut Scratch, out: &mut Outputs) -> Result<()> {
        let cols = self.columns.as_ref().expect("header read first");
        let n = cols.names.len();
        let field = |i: usize| -> &str {
            let idx = meta.first_field as usize + i;
            let start = if idx == 0 { 0 } else { pending.ends[idx - 1] as usize };
            &pending.text[start..pending.ends[idx] as usize]
        };
        let slot = &mut self.slots[meta.slot as usize];
        let key = slot.key.as_ref().ok_or_else(|| Error::state("a row's key was never provided"))?;
        let cipher = ciphers.get(meta.slot, &key.key);
        let gcm = key.key.cipher == CipherKind::Aes256Gcm;
        let field_aad = self.config.encryption.associated_data == AssociatedData::FieldName;

        // Encrypted cells of this row, kept for the derived outputs: sealed
        // together (one run of the block cipher for the row), then laid out
        // in column order.
        s.sealed_cols.clear();
        s.nonces.clear();
        let mut nonce = [0u8; 12];
        for i in 0..n {
            if cols.pii[i].is_some() && !field(i).is_empty() {
                if slot.uses + key.uses_before >= self.encryption_cap {
                    return Err(ErrorKind::KeyUsageLimit { key_link: key.key_link.clone() }.into());
                }
                slot.uses += 1;
                self.values_encrypted += 1;
                if gcm {
                    self.nonce_rng.fill(&mut nonce);
                }
                s.sealed_cols.push(i);
                s.nonces.push(nonce);
            }
        }
        let sealed_cols = &s.sealed_cols;
        let names = &cols.names;
        cipher.seal_row(
            &s.nonces,
            |k| field(sealed_cols[k]).as_bytes(),
            |k| if field_aad { names[sealed_cols[k]].as_bytes() } else { &[] },
            &mut s.gcm_cells,
            &mut s.sealed,
            &mut s.spans,
        )?;
        s.cells.clear();
        s.cell_ends.clear();
        let mut next = 0;
        for i in 0..n {
            if next < s.sealed_cols.len() && s.sealed_cols[next] == i {
                let (from, to) = s.spans[next];
                CellCipher::base64_into(&s.sealed[from..to], &mut s.cells);
                next += 1;
            } else {
                s.cells.extend_from_slice(field(i).as_bytes());
            }
            s.cell_ends.push(s.cells.len());
        }
        let cell = |i: usize| -> &[u8] {
            let start = if i == 0 { 0 } else { s.cell_ends[i - 1] };
            &s.cells[start..s.cell_ends[i]]
        };

        s.number.clear();
        let _ = write!(s.number, "{}", meta.epoch_ms);
        let consent = &self.interned[meta.consent as usize];
        let delim = self.config.source.delimiter;
        let write_meta = |enc: &CsvEncoder, buf: &mut Vec<u8>| {
            enc.field(buf, self.config.data_contract.reference.as_bytes(), false);
            enc.field(buf, b"0", false);
            enc.field(buf, s.number.as_bytes(), false);
            enc.field(buf, key.key_link.as_bytes(), false);
            enc.missing(buf, false);
            enc.field(buf, consent.text.as_bytes(), false);
            enc.end_record(buf);
        };

        let e = &self.config.encrypted_data;
        let enc = CsvEncoder::new(delim, e.quote, e.line_end);
        for i in 0..n {
            enc.field(&mut out.encrypted, cell(i), i == 0);
        }
        write_meta(&enc, &mut out.encrypted);
        self.rows_written += 1;

        for (d, dc) in self.config.derived_data.iter().enumerate() {
            if !consent::row_allowed(dc.consent_level_type, &dc.consent_levels, &consent.levels) {
                continue;
            }
            self.derived_rows[d] += 1;
            let enc = CsvEncoder::new(delim, dc.target.quote, dc.target.line_end);
            let buf = &mut out.derived[d];
            for (i, how) in cols.derived[d].iter().enumerate() {
                match how {
                    Cell::Plain => enc.field(buf, field(i).as_bytes(), i == 0),
                    Cell::AsEncrypted => enc.field(buf, cell(i), i == 0),
                    Cell::Mask => {
                        let v = field(i);
                        s.mask.clear();
                        if !v.is_empty() {
                            let seed = &self.mask_seeds[d];
                            match dc.masked_fields.as_ref().map(|m| m.hash_type) {
                                Some(HashType::Murmur3) => mask::murmur3_hex(seed, v.as_bytes(), &mut s.mask),
                                _ => mask::hmac_sha256_hex(seed, v.as_bytes(), &mut s.mask),
                            }
                        }
                        enc.field(buf, s.mask.as_bytes(), i == 0);
                    }
                }
            }
            write_meta(&enc, buf);
        }
        Ok(())
    }
}

/// Appends the header of the keys output. Hosts that merge the keys of
/// several jobs (parallel workers) write the keys output with this and
/// [`write_keys_row`] themselves.
pub fn write_keys_header(config: &JobConfig, out: &mut Vec<u8>) {
    let k = &config.encryption_keys_data;
    let enc = CsvEncoder::new(b',', k.quote, k.line_end);
    for (i, name) in KEYS_HEADER.iter().enumerate() {
        enc.field(out, name.as_bytes(), i == 0);
    }
    enc.end_record(out);
}

/// Appends one row of the keys output: key link, a Tink JSON keyset holding
/// the key, the policy id, and the expiry (window start + retention).
pub fn write_keys_row(config: &JobConfig, key: &StoredKey, window: i64, out: &mut Vec<u8>) {
    write_keys_row_with(config, key, window, &key.key.to_keyset_json(), out);
}

/// As [`write_keys_row`], with the key as a Tink *encrypted* keyset under a
/// key-encryption key (an AES-GCM Tink key; `nonce` must be fresh).
pub fn write_keys_row_encrypted(config: &JobConfig, key: &StoredKey, window: i64, kek: &CellCipher, nonce: &[u8; 12], out: &mut Vec<u8>) {
    write_keys_row_with(config, key, window, &key.key.encrypted_keyset_json(kek, nonce), out);
}

fn write_keys_row_with(config: &JobConfig, key: &StoredKey, window: i64, keyset: &str, out: &mut Vec<u8>) {
    let k = &config.encryption_keys_data;
    let enc = CsvEncoder::new(b',', k.quote, k.line_end);
    let expires = window
        .saturating_mul(config.window_ms())
        .saturating_add(i64::from(config.encryption.retention_days) * 86_400_000);
    enc.field(out, key.key_link.as_bytes(), true);
    enc.field(out, keyset.as_bytes(), false);
    enc.field(out, config.encryption.policy_id.as_deref().unwrap_or("").as_bytes(), false);
    let mut n = String::new();
    let _ = write!(n, "{expires}");
    enc.field(out, n.as_bytes(), false);
    enc.end_record(out);
}

/// Appends the header rows of the encrypted and derived outputs (the input's
/// column names, then [`META_COLUMNS`]) to `out`. A job writes them itself
/// with its first drain; a host that runs a file in several jobs writes them
/// once with this and removes them from each job's first output.
pub fn write_data_headers(config: &JobConfig, names: &[String], out: &mut Outputs) {
    if out.derived.len() < config.derived_data.len() {
        out.derived.resize_with(config.derived_data.len(), Vec::new);
    }
    let d = config.source.delimiter;
    let write = |buf: &mut Vec<u8>, quote: QuoteStyle, line_end: LineEnd| {
        let enc = CsvEncoder::new(d, quote, line_end);
        let mut first = true;
        for name in names.iter().map(String::as_str).chain(META_COLUMNS) {
            enc.field(buf, name.as_bytes(), first);
            first = false;
        }
        enc.end_record(buf);
    };
    let e = &config.encrypted_data;
    write(&mut out.encrypted, e.quote, e.line_end);
    for (i, dc) in config.derived_data.iter().enumerate() {
        write(&mut out.derived[i], dc.target.quote, dc.target.line_end);
    }
}
