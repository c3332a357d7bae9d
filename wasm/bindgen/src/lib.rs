//! keylink's engine for JavaScript: thin wasm-bindgen bindings over
//! `keylink-core`, used by the npm package `keylink` (`sdk-js/`).
//!
//! Conversion and error mapping only; every rule of a job lives in the core.
//! The JS side drives a [`Job`] exactly like the host drives the core:
//!
//! ```text
//! const job = new Job(configJson, contracts, secrets)   // seed from crypto.getRandomValues
//! job.push(bigChunk)                                     // batch: push MBs, not rows
//! const reqs = job.keyRequests()                         // plain objects
//! if (reqs.length) job.provideKeys(await store.getOrCreate(group, cipher, reqs))
//! const out = job.drain()                                // { encrypted, keys, derived[], keyUses }
//! ...
//! const { outputs, summary } = job.finish()
//! ```
//!
//! With a bounded key cache (`job.omitKeysOutput(); job.setKeyCacheLimit(n)`,
//! as the CLI's host does), the JS side writes the keys output itself with
//! `job.keysHeader()` and `job.keysRows(keys, windows)` (the core's writers:
//! the same bytes), de-duplicates keys, and merges the use counts of evicted
//! keys (`keyUses` of each drain) as `Job::set_key_cache_limit` describes.
//!
//! Errors are thrown as JS `Error`s carrying `code` (the core's
//! [`Error::code`]), `startError`, and where they apply `problems` (`{path,
//! message}` of an invalid job file), `row`, `line`, `column`. No message
//! ever holds a cell value or key material (the core guarantees it).
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use keylink_core::config::{
    AssociatedData, CipherKind, ConnectorConfig, ConsentLevelType, ErrorPolicy, JobConfig,
    Location, SecretRef,
};
use keylink_core::job::{
    write_keys_header, write_keys_row, Job as CoreJob, Outputs as CoreOutputs,
    Summary as CoreSummary,
};
use keylink_core::keys::{KeyRequest as CoreRequest, StoredKey as CoreKey};
use keylink_core::tink::{KeyMaterial, TinkKey};
use keylink_core::{Error, ErrorKind};

/// The version of this engine build (the crate version).
#[wasm_bindgen(js_name = engineVersion)]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").into()
}

/// Validates a job file and describes it: what the SDK needs to run it
/// (group, cipher, outputs, secrets to resolve). Throws the core's
/// `INVALID_CONFIG` error with every problem and its JSON path.
#[wasm_bindgen(js_name = describeJob)]
pub fn describe_job(config_json: &str, contracts: JsValue) -> Result<JsValue, JsValue> {
    let config = parse_config(config_json, &contracts)?;
    Ok(describe(&config).into())
}

/// A batch job: push input bytes, answer key requests, drain output bytes.
#[wasm_bindgen]
pub struct Job {
    inner: CoreJob,
    out: CoreOutputs,
    /// For the keys output written on the JS side (`keysHeader`, `keysRows`).
    config: JobConfig,
    /// `keyUses` in columns (`packKeyUses`).
    packed_uses: bool,
    /// The key of the requests' ids (`setRequestIdKey`).
    request_id_key: Option<zeroize::Zeroizing<[u8; 16]>>,
}

#[wasm_bindgen]
impl Job {
    /// Creates a job (PENDING) from a job file.
    ///
    /// - `contracts`: `{ [path]: text }` for `data_contract_file`, or undefined;
    /// - `secrets`: `{ [reference as written, e.g. "env:MASK_SEED"]: Uint8Array | string }`;
    /// - `seed`: 32 bytes; leave it out (always, outside tests): the seed then
    ///   comes from `crypto.getRandomValues`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config_json: &str,
        contracts: JsValue,
        secrets: JsValue,
        seed: Option<Vec<u8>>,
    ) -> Result<Job, JsValue> {
        let config = parse_config(config_json, &contracts)?;
        let seed: [u8; 32] = match seed {
            Some(s) => s
                .as_slice()
                .try_into()
                .map_err(|_| js_error(Error::state("the job seed must be 32 bytes")))?,
            None => {
                let mut s = [0u8; 32];
                getrandom::fill(&mut s).map_err(|_| {
                    js_error(Error::state("no secure random source for the job seed"))
                })?;
                s
            }
        };
        let inner =
            CoreJob::new(&config, seed, &mut |s| resolve_secret(&secrets, s)).map_err(js_error)?;
        Ok(Job {
            inner,
            out: CoreOutputs::default(),
            config,
            packed_uses: false,
            request_id_key: None,
        })
    }

    /// From now on `keyRequestsPacked` also gives `ids`: four big-endian
    /// words per request, the 128-bit keyed id of its (key-field value,
    /// window) under `key` (16 bytes, the same for every engine job of a
    /// job, random per job), so the host can remember keys by id rather
    /// than by value.
    #[wasm_bindgen(js_name = setRequestIdKey)]
    pub fn set_request_id_key(&mut self, key: &[u8]) -> Result<(), JsValue> {
        let key: [u8; 16] = key
            .try_into()
            .map_err(|_| js_error(Error::state("the request id key must be 16 bytes")))?;
        self.request_id_key = Some(zeroize::Zeroizing::new(key));
        Ok(())
    }

    /// From now on, `keyUses` (of every drain and of the summary) comes in
    /// columns rather than as `[keyLink, count]` pairs: `{ ids, uses, other }`,
    /// where key `i` of `uses` has the canonical UUID key link whose 128 bits
    /// are `ids[4 i .. 4 i + 4]` (big-endian words), and `other` holds the
    /// `[keyLink, count]` pairs of key links that are not canonical UUIDs.
    /// Cheap to move between threads and to count on the JS side.
    #[wasm_bindgen(js_name = packKeyUses)]
    pub fn pack_key_uses(&mut self) {
        self.packed_uses = true;
    }

    /// Leaves the job's keys output empty: the caller writes it with
    /// `keysHeader` and `keysRows`. Call it before the first `drain`.
    #[wasm_bindgen(js_name = omitKeysOutput)]
    pub fn omit_keys_output(&mut self) {
        self.inner.omit_keys_output();
    }

    /// Bounds the key cache (only with `omitKeysOutput`): after a drain that
    /// leaves more than `limit` keys cached, the job forgets them all and
    /// reports their use counts in that drain's `keyUses`. The caller must
    /// de-duplicate keys for the keys output and add this job's earlier uses
    /// of a key to its `usesBefore` when it provides the key again.
    #[wasm_bindgen(js_name = setKeyCacheLimit)]
    pub fn set_key_cache_limit(&mut self, limit: u32) {
        self.inner.set_key_cache_limit(limit as usize);
    }

    /// Keeps up to `limit` keys the job was given in a compact table behind
    /// the key cache (about 100 bytes a key; only with `omitKeysOutput`; 0
    /// turns it off): a key the cache forgot is then taken from the table
    /// instead of being requested again, so each key is requested about
    /// once. A full table forgets a quarter of its keys and reports their
    /// use counts in that drain's `keyUses`; the summary's `keyUses` holds
    /// the rest. Only AES-256-GCM keys with a canonical UUID key link are kept.
    #[wasm_bindgen(js_name = setAnswerCacheLimit)]
    pub fn set_answer_cache_limit(&mut self, limit: u32) {
        self.inner.set_answer_cache_limit(limit as usize);
    }

    /// The header of the keys output, as the core writes it.
    #[wasm_bindgen(js_name = keysHeader)]
    pub fn keys_header(&self) -> Uint8Array {
        let mut out = Vec::new();
        write_keys_header(&self.config, &mut out);
        Uint8Array::from(&out[..])
    }

    /// Rows of the keys output, as the core writes them: one per key
    /// (objects shaped like a proposal), with the window of the same index.
    #[wasm_bindgen(js_name = keysRows)]
    pub fn keys_rows(&self, keys: Array, windows: Vec<f64>) -> Result<Uint8Array, JsValue> {
        if keys.length() as usize != windows.len() {
            return Err(js_error(Error::state("keysRows needs one window per key")));
        }
        let mut out = Vec::new();
        for (k, w) in keys.iter().zip(windows) {
            write_keys_row(&self.config, &core_key(&k)?, w as i64, &mut out);
        }
        Ok(Uint8Array::from(&out[..]))
    }

    /// `keysRows` in columns, for the keys output of many keys at once: key
    /// `i` has the key link `links` from UTF-16 offset `ends[i - 1]` (0 for
    /// the first) to `ends[i]`, key id `keyIds[i]`, the job's cipher, the
    /// material at `material[i * n .. (i + 1) * n]` (`n` the cipher's key
    /// length) and window `windows[i]`.
    #[wasm_bindgen(js_name = keysRowsPacked)]
    pub fn keys_rows_packed(
        &self,
        links: &str,
        ends: &[u32],
        key_ids: &[u32],
        material: Vec<u8>,
        windows: &[f64],
    ) -> Result<Uint8Array, JsValue> {
        let material = zeroize::Zeroizing::new(material);
        let cipher = self.config.encryption.cipher;
        let n = cipher.key_len();
        let count = ends.len();
        if key_ids.len() != count || windows.len() != count || material.len() != count * n {
            return Err(js_error(Error::state("keysRowsPacked: the columns have different lengths")));
        }
        // The offsets count UTF-16 units, as JS strings do (bytes, for ASCII).
        let ascii = links.is_ascii();
        let wide: Vec<u16> = if ascii { Vec::new() } else { links.encode_utf16().collect() };
        let total = if ascii { links.len() } else { wide.len() };
        let mut out = Vec::with_capacity(count * 240);
        let mut start = 0usize;
        for i in 0..count {
            let end = ends[i] as usize;
            if end < start || end > total {
                return Err(js_error(Error::state("keysRowsPacked: a key link end is out of range")));
            }
            let key_link = if ascii {
                links[start..end].to_string()
            } else {
                String::from_utf16(&wide[start..end])
                    .map_err(|_| js_error(Error::state("keysRowsPacked: a key link is cut inside a character")))?
            };
            let key = CoreKey {
                key_link,
                key: TinkKey {
                    key_id: key_ids[i],
                    cipher,
                    material: KeyMaterial::new(material[i * n..(i + 1) * n].to_vec()),
                },
                uses_before: 0,
            };
            write_keys_row(&self.config, &key, windows[i] as i64, &mut out);
            start = end;
        }
        let rows = Uint8Array::from(&out[..]);
        zeroize::Zeroize::zeroize(&mut out);
        Ok(rows)
    }

    /// Decodes the rows `chunk` completes. Push large chunks (every call
    /// crosses the JS/wasm boundary once).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsValue> {
        self.inner.push(chunk).map_err(js_error)
    }

    /// Marks the end of the input.
    #[wasm_bindgen(js_name = endInput)]
    pub fn end_input(&mut self) -> Result<(), JsValue> {
        self.inner.end_input().map_err(js_error)
    }

    /// `push` for a job that sees only some chunks of a file (one of several
    /// parallel jobs): an error's row and line numbers are moved by
    /// `row_shift` and `line_shift`, so they count from the file's start.
    #[wasm_bindgen(js_name = pushAt)]
    pub fn push_at(&mut self, chunk: &[u8], row_shift: f64, line_shift: f64) -> Result<(), JsValue> {
        self.inner
            .push(chunk)
            .map_err(|e| js_error(e.shifted(row_shift as i64, line_shift as i64)))
    }

    /// `endInput` with an error's row and line numbers moved, as `pushAt`.
    #[wasm_bindgen(js_name = endInputAt)]
    pub fn end_input_at(&mut self, row_shift: f64, line_shift: f64) -> Result<(), JsValue> {
        self.inner
            .end_input()
            .map_err(|e| js_error(e.shifted(row_shift as i64, line_shift as i64)))
    }

    /// Rows read so far (header not counted).
    #[wasm_bindgen(js_name = rowsRead)]
    pub fn rows_read(&self) -> f64 {
        self.inner.rows_read() as f64
    }

    /// The column names, once the header has been read.
    pub fn header(&self) -> Option<Array> {
        self.inner
            .header()
            .map(|h| h.iter().map(|s| JsValue::from_str(s)).collect())
    }

    /// Every (key-field value, window) the pending rows need a key for:
    /// `{ keyValue, window, windowStartMs, subject, proposal: { keyLink,
    /// keyId, cipher, material, usesBefore } }`.
    #[wasm_bindgen(js_name = keyRequests)]
    pub fn key_requests(&self) -> Array {
        self.inner.key_requests().iter().map(key_request).collect()
    }

    /// The current key requests in columns rather than one object each (for
    /// moving them between threads cheaply): `{ values, subjects, windows,
    /// windowStartMs, links, keyIds, material }`; request `i`'s proposal has
    /// key link `links[i]`, key id `keyIds[i]` and the material at
    /// `material[i * n .. (i + 1) * n]`, `n` the cipher's key length.
    #[wasm_bindgen(js_name = keyRequestsPacked)]
    pub fn key_requests_packed(&self) -> Object {
        let reqs = self.inner.key_requests();
        let values: Array = reqs.iter().map(|r| JsValue::from_str(&r.key_value)).collect();
        let subjects: Array = reqs
            .iter()
            .map(|r| r.subject.as_deref().map_or(JsValue::NULL, JsValue::from_str))
            .collect();
        let windows: Vec<f64> = reqs.iter().map(|r| r.window as f64).collect();
        let starts: Vec<f64> = reqs.iter().map(|r| r.window_start_ms as f64).collect();
        let links: Array = reqs.iter().map(|r| JsValue::from_str(&r.proposal.key_link)).collect();
        let ids: Vec<u32> = reqs.iter().map(|r| r.proposal.key.key_id).collect();
        let mut material = Vec::with_capacity(reqs.len() * self.config.encryption.cipher.key_len());
        for r in reqs {
            material.extend_from_slice(r.proposal.key.material.as_bytes());
        }
        let o = Object::new();
        set(&o, "values", &values);
        set(&o, "subjects", &subjects);
        set(&o, "windows", &js_sys::Float64Array::from(&windows[..]));
        set(&o, "windowStartMs", &js_sys::Float64Array::from(&starts[..]));
        set(&o, "links", &links);
        set(&o, "keyIds", &js_sys::Uint32Array::from(&ids[..]));
        set(&o, "material", &Uint8Array::from(&material[..]));
        zeroize::Zeroize::zeroize(&mut material);
        if let Some(key) = &self.request_id_key {
            let mut ids = Vec::with_capacity(4 * reqs.len());
            for r in reqs {
                let id = keylink_core::request_id(key, &r.key_value, r.window);
                for w in 0..4 {
                    ids.push((id >> (96 - 32 * w)) as u32);
                }
            }
            set(&o, "ids", &js_sys::Uint32Array::from(&ids[..]));
        }
        o
    }

    /// `provideKeys` in columns: key `i` has key link `links[i]`, key id
    /// `keyIds[i]`, the job's cipher, the material at `material[i * n ..
    /// (i + 1) * n]` and `usesBefore[i]` earlier uses.
    #[wasm_bindgen(js_name = provideKeysPacked)]
    pub fn provide_keys_packed(
        &mut self,
        links: Array,
        key_ids: Vec<u32>,
        material: Vec<u8>,
        uses_before: Vec<f64>,
    ) -> Result<(), JsValue> {
        let material = zeroize::Zeroizing::new(material);
        let cipher = self.config.encryption.cipher;
        let n = cipher.key_len();
        let count = links.length() as usize;
        if key_ids.len() != count || uses_before.len() != count || material.len() != count * n {
            return Err(js_error(Error::new(ErrorKind::Keys {
                message: "provideKeysPacked: the columns have different lengths".into(),
            })));
        }
        let mut keys = Vec::with_capacity(count);
        for (i, link) in links.iter().enumerate() {
            let key_link = link.as_string().ok_or_else(|| bad_key("keyLink"))?;
            keys.push(CoreKey {
                key_link,
                key: TinkKey {
                    key_id: key_ids[i],
                    cipher,
                    material: KeyMaterial::new(material[i * n..(i + 1) * n].to_vec()),
                },
                uses_before: uses_before[i].max(0.0) as u64,
            });
        }
        self.inner.provide_keys(keys).map_err(js_error)
    }

    /// Answers every current key request, in order, with the store's keys
    /// (objects shaped like a proposal).
    #[wasm_bindgen(js_name = provideKeys)]
    pub fn provide_keys(&mut self, keys: Array) -> Result<(), JsValue> {
        let keys = keys
            .iter()
            .map(|k| core_key(&k))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.provide_keys(keys).map_err(js_error)
    }

    /// Encrypts the pending rows: `{ encrypted, keys, derived: [], keyUses }`:
    /// bytes to append to each output, and `[keyLink, values encrypted]` of
    /// the keys this drain evicted from the key cache (`setKeyCacheLimit`).
    pub fn drain(&mut self) -> Result<Object, JsValue> {
        self.inner.drain(&mut self.out).map_err(js_error)?;
        Ok(self.take_outputs())
    }

    /// Ends the job: `{ outputs, summary }`.
    pub fn finish(&mut self) -> Result<Object, JsValue> {
        let summary = self.inner.finish(&mut self.out).map_err(js_error)?;
        let o = Object::new();
        set(&o, "outputs", &self.take_outputs());
        let js = js_summary(&summary);
        if self.packed_uses {
            set(&js, "keyUses", &packed_key_uses(&summary.key_uses));
        }
        set(&o, "summary", &js);
        Ok(o)
    }
}

impl Job {
    /// Copies the produced bytes out and keeps the buffers' capacity.
    fn take_outputs(&mut self) -> Object {
        let o = Object::new();
        set(&o, "encrypted", &Uint8Array::from(&self.out.encrypted[..]));
        set(&o, "keys", &Uint8Array::from(&self.out.keys[..]));
        let derived: Array = self
            .out
            .derived
            .iter()
            .map(|d| JsValue::from(Uint8Array::from(&d[..])))
            .collect();
        set(&o, "derived", &derived);
        let uses = if self.packed_uses {
            packed_key_uses(&self.out.key_uses)
        } else {
            key_uses(&self.out.key_uses).into()
        };
        set(&o, "keyUses", &uses);
        self.out.key_uses.clear();
        self.out.encrypted.clear();
        self.out.keys.clear();
        for d in &mut self.out.derived {
            d.clear();
        }
        o
    }
}

/// Finds where a CSV byte stream can be cut between records (for parallel
/// jobs), exactly where the engine's decoder ends records.
#[wasm_bindgen]
pub struct RecordSplitter(keylink_core::csv::split::Splitter);

#[wasm_bindgen]
impl RecordSplitter {
    /// A splitter for the source dialect's `delimiter` (a byte).
    #[wasm_bindgen(constructor)]
    pub fn new(delimiter: u8) -> RecordSplitter {
        RecordSplitter(keylink_core::csv::split::Splitter::new(delimiter))
    }

    /// `[end, records, lines]`: the longest prefix of `block` that ends on a
    /// record boundary (end 0: none), with its records and line feeds.
    /// `block` must start on a record boundary.
    pub fn cut(&self, block: &[u8]) -> Vec<f64> {
        let (end, c) = self.0.cut(block);
        vec![end as f64, c.records as f64, c.lines as f64]
    }

    /// `[records, lines]` of the input's final span (its last record ends with the input).
    pub fn finish(&self, tail: &[u8]) -> Vec<f64> {
        let c = self.0.finish(tail);
        vec![c.records as f64, c.lines as f64]
    }

    /// The end of the first record (the header), if complete.
    #[wasm_bindgen(js_name = firstRecordEnd)]
    pub fn first_record_end(&self, bytes: &[u8]) -> Option<f64> {
        self.0.first_record_end(bytes).map(|n| n as f64)
    }
}

fn set(o: &Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(o, &JsValue::from_str(key), value);
}

fn get(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn parse_config(json: &str, contracts: &JsValue) -> Result<JobConfig, JsValue> {
    JobConfig::from_json(json, &mut |path| {
        if contracts.is_object() {
            if let Some(text) = get(contracts, path).as_string() {
                return Ok(text);
            }
        }
        Err(format!("contract file {path} was not provided"))
    })
    .map_err(js_error)
}

/// The text a secret reference was written as: the key of `secrets`.
fn secret_ref_text(s: &SecretRef) -> String {
    match s {
        SecretRef::Env(n) => format!("env:{n}"),
        SecretRef::File(p) => format!("file:{p}"),
        SecretRef::Inline(v) => v.clone(),
    }
}

fn resolve_secret(secrets: &JsValue, s: &SecretRef) -> Result<Vec<u8>, String> {
    let text = secret_ref_text(s);
    let v = if secrets.is_object() {
        get(secrets, &text)
    } else {
        JsValue::UNDEFINED
    };
    if let Some(s) = v.as_string() {
        return Ok(s.into_bytes());
    }
    if v.is_instance_of::<Uint8Array>() {
        return Ok(Uint8Array::from(v).to_vec());
    }
    Err(format!("secret {text} was not provided"))
}

fn location(l: &Location) -> Object {
    let o = Object::new();
    set(
        &o,
        "connector",
        &l.connector
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str),
    );
    set(&o, "path", &JsValue::from_str(&l.path()));
    o
}

fn describe(c: &JobConfig) -> Object {
    let o = Object::new();
    set(
        &o,
        "contractRef",
        &c.data_contract.reference.as_str().into(),
    );
    set(&o, "keyField", &c.data_contract.key_field.as_str().into());
    set(
        &o,
        "groupId",
        &c.encryption
            .batch_job_group_id
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str),
    );
    set(&o, "cipher", &c.encryption.cipher.name().into());
    let aad = match c.encryption.associated_data {
        AssociatedData::None => "none",
        AssociatedData::FieldName => "field-name",
    };
    set(&o, "associatedData", &aad.into());
    set(&o, "windowHours", &c.encryption.window_hours.into());
    set(&o, "retentionDays", &c.encryption.retention_days.into());
    set(
        &o,
        "kek",
        &c.encryption
            .kek
            .as_ref()
            .map_or(JsValue::NULL, |k| secret_ref_text(k).into()),
    );
    let policy = match c.error_policy {
        ErrorPolicy::Fail => "fail",
        ErrorPolicy::Skip => "skip",
    };
    set(&o, "errorPolicy", &policy.into());
    set(&o, "delimiter", &JsValue::from(c.source.delimiter));
    let connectors = Object::new();
    for (name, cfg) in &c.data_connectors {
        let k = Object::new();
        match cfg {
            ConnectorConfig::Local { root } => {
                set(&k, "kind", &"local".into());
                set(&k, "root", &root.as_str().into());
            }
            ConnectorConfig::S3 { .. } => set(&k, "kind", &"s3_bucket".into()),
            ConnectorConfig::Gcs { .. } => set(&k, "kind", &"google_cloud_storage_bucket".into()),
            ConnectorConfig::Azure { .. } => {
                set(&k, "kind", &"azure_blob_storage_container".into())
            }
        }
        set(&connectors, name, &k);
    }
    set(&o, "connectors", &connectors);
    set(&o, "source", &location(&c.source.location));
    set(&o, "encrypted", &location(&c.encrypted_data.location));
    set(&o, "keys", &location(&c.encryption_keys_data.location));
    let derived: Array = c
        .derived_data
        .iter()
        .map(|d| {
            let t = location(&d.target.location);
            let levels: Array = d
                .consent_levels
                .as_slice()
                .iter()
                .map(|l| JsValue::from(*l))
                .collect();
            set(&t, "consentLevels", &levels);
            let ty = match d.consent_level_type {
                ConsentLevelType::Granular => "GRANULAR",
                ConsentLevelType::Cumulative => "CUMULATIVE",
            };
            set(&t, "consentLevelType", &ty.into());
            JsValue::from(t)
        })
        .collect();
    set(&o, "derived", &derived);
    let secrets: Array = c
        .derived_data
        .iter()
        .filter_map(|d| d.masked_fields.as_ref())
        .filter(|m| !matches!(m.seed, SecretRef::Inline(_)))
        .map(|m| JsValue::from(secret_ref_text(&m.seed)))
        .collect();
    set(&o, "secrets", &secrets);
    set(
        &o,
        "consentPlugin",
        &JsValue::from_bool(
            c.consent
                .extractor
                .as_ref()
                .is_some_and(|e| e.plugin.is_some()),
        ),
    );
    o
}

fn cipher_name(c: CipherKind) -> JsValue {
    c.name().into()
}

fn js_key(k: &CoreKey) -> Object {
    let o = Object::new();
    set(&o, "keyLink", &k.key_link.as_str().into());
    set(&o, "keyId", &k.key.key_id.into());
    set(&o, "cipher", &cipher_name(k.key.cipher));
    set(&o, "material", &Uint8Array::from(k.key.material.as_bytes()));
    set(&o, "usesBefore", &(k.uses_before as f64).into());
    o
}

fn key_request(r: &CoreRequest) -> JsValue {
    let o = Object::new();
    set(&o, "keyValue", &r.key_value.as_str().into());
    set(&o, "window", &(r.window as f64).into());
    set(&o, "windowStartMs", &(r.window_start_ms as f64).into());
    set(
        &o,
        "subject",
        &r.subject
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str),
    );
    set(&o, "proposal", &js_key(&r.proposal));
    o.into()
}

fn bad_key(what: &str) -> JsValue {
    js_error(Error::new(ErrorKind::Keys {
        message: format!("a provided key has no valid `{what}`"),
    }))
}

fn core_key(k: &JsValue) -> Result<CoreKey, JsValue> {
    let key_link = get(k, "keyLink")
        .as_string()
        .ok_or_else(|| bad_key("keyLink"))?;
    let key_id = get(k, "keyId")
        .as_f64()
        .filter(|n| n.fract() == 0.0 && *n > 0.0 && *n <= f64::from(u32::MAX));
    let key_id = key_id.ok_or_else(|| bad_key("keyId"))? as u32;
    let cipher = get(k, "cipher")
        .as_string()
        .and_then(|c| CipherKind::from_name(&c))
        .ok_or_else(|| bad_key("cipher"))?;
    let material = get(k, "material");
    if !material.is_instance_of::<Uint8Array>() {
        return Err(bad_key("material"));
    }
    let material = Uint8Array::from(material).to_vec();
    let uses_before = get(k, "usesBefore").as_f64().unwrap_or(0.0).max(0.0) as u64;
    Ok(CoreKey {
        key_link,
        key: TinkKey {
            key_id,
            cipher,
            material: KeyMaterial::new(material),
        },
        uses_before,
    })
}

fn numbers(v: &[u64]) -> Array {
    v.iter().map(|n| JsValue::from(*n as f64)).collect()
}

fn js_summary(s: &CoreSummary) -> Object {
    let o = Object::new();
    set(&o, "rowsRead", &(s.rows_read as f64).into());
    set(&o, "rowsWritten", &(s.rows_written as f64).into());
    set(&o, "rowsSkipped", &(s.rows_skipped as f64).into());
    set(&o, "skippedRows", &numbers(&s.skipped_rows));
    set(&o, "derivedRows", &numbers(&s.derived_rows));
    set(&o, "keysUsed", &(s.keys_used as f64).into());
    set(&o, "keysCreated", &(s.keys_created as f64).into());
    set(&o, "valuesEncrypted", &(s.values_encrypted as f64).into());
    set(&o, "keyUses", &key_uses(&s.key_uses));
    o
}

fn key_uses(uses: &[(String, u64)]) -> Array {
    uses.iter()
        .map(|(link, n)| JsValue::from(Array::of2(&link.as_str().into(), &(*n as f64).into())))
        .collect()
}

/// The 128 bits of a canonical UUID key link (lowercase, hyphenated), as
/// four big-endian words.
fn uuid_words(link: &str) -> Option<[u32; 4]> {
    let b = link.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut words = [0u32; 4];
    let mut digits = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        words[digits / 8] = (words[digits / 8] << 4) | u32::from(v);
        digits += 1;
    }
    Some(words)
}

/// `keyUses` in columns (see `Job::pack_key_uses`).
fn packed_key_uses(uses: &[(String, u64)]) -> JsValue {
    let mut ids = Vec::with_capacity(4 * uses.len());
    let mut counts = Vec::with_capacity(uses.len());
    let other = Array::new();
    for (link, n) in uses {
        match uuid_words(link) {
            Some(w) => {
                ids.extend_from_slice(&w);
                counts.push(*n as f64);
            }
            None => {
                other.push(&Array::of2(&link.as_str().into(), &(*n as f64).into()));
            }
        }
    }
    let o = Object::new();
    set(&o, "ids", &js_sys::Uint32Array::from(&ids[..]));
    set(&o, "uses", &js_sys::Float64Array::from(&counts[..]));
    set(&o, "other", &other);
    o.into()
}

/// The core's error as a JS `Error` with a stable `code` and its positions.
fn js_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    let o: &Object = err.as_ref();
    set(o, "code", &e.code().into());
    set(o, "startError", &e.is_start_error().into());
    if let Some(row) = e.row() {
        set(o, "row", &(row as f64).into());
    }
    match e.kind() {
        ErrorKind::InvalidConfig(problems) => {
            let list: Array = problems
                .iter()
                .map(|p| {
                    let q = Object::new();
                    set(&q, "path", &p.path.as_str().into());
                    set(&q, "message", &p.message.as_str().into());
                    JsValue::from(q)
                })
                .collect();
            set(o, "problems", &list);
        }
        ErrorKind::MissingColumn { column, .. } => set(o, "column", &column.as_str().into()),
        ErrorKind::RaggedRow { line, .. } | ErrorKind::InvalidEncoding { line, .. } => {
            set(o, "line", &(*line as f64).into());
        }
        ErrorKind::BadTimestamp { line, column, .. } => {
            set(o, "line", &(*line as f64).into());
            set(o, "column", &column.as_str().into());
        }
        ErrorKind::Secret { path, .. } => set(o, "path", &path.as_str().into()),
        _ => {}
    }
    err.into()
}
