//! keylink's engine as a WebAssembly component: thin wit-bindgen bindings
//! over `keylink-core` (world `keylink` in `wit/keylink.wit`).
//!
//! Conversion and error mapping only; every rule of a job lives in the core.
//! The crate builds for `wasm32-unknown-unknown` and is encoded as a component
//! by the host's build script; it must import nothing (no WASI, no
//! wasm-bindgen, no getrandom): the host passes the seed, the contract files
//! and the secret values in.
//!
//! std on `wasm32-unknown-unknown` only brings the allocator and panics that
//! abort (a trap); it adds no imports.

use std::cell::RefCell;

use keylink_core::config::{CipherKind as CoreCipher, JobConfig, SecretRef};
use keylink_core::job::{Job as CoreJob, Outputs as CoreOutputs, Summary as CoreSummary};
use keylink_core::keys::{KeyRequest as CoreRequest, StoredKey as CoreKey};
use keylink_core::tink::{KeyMaterial, TinkKey};
use keylink_core::{Error, ErrorKind};

// The contract is world `keylink:batch/keylink` (`export engine`). WIT makes
// the `types` interface that `engine` uses an *import* of that world: a
// type-only instance import, which carries no capability but would still be
// an import the host has to see. Exporting `types` as well keeps every type
// inside the component, so it imports nothing at all; hosts generated from
// world `keylink` still find `engine` with the same (structural) types.
wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package keylink:component;

        world keylink-component {
            export keylink:batch/types@0.1.0;
            export keylink:batch/engine@0.1.0;
        }
    ",
    world: "keylink:component/keylink-component",
});

use exports::keylink::batch::engine::{Guest, GuestJob, Job as JobHandle};
use exports::keylink::batch::types::{
    BadTimestamp, CipherKind, ConfigProblem, InvalidEncoding, JobError, KeyRequest, MissingColumn, Outputs, RaggedRow,
    StoredKey, Summary,
};

struct Component;

export!(Component);

impl Guest for Component {
    type Job = Job;

    fn validate(config_json: String, contracts: Vec<(String, String)>) -> Result<(), JobError> {
        parse_config(&config_json, &contracts).map(|_| ()).map_err(job_error)
    }
}

/// A running job. The resource's methods take `&self`, hence the cell; a
/// component instance is single-threaded and calls never nest.
struct Job(RefCell<CoreJob>);

impl GuestJob for Job {
    fn create(
        config_json: String,
        contracts: Vec<(String, String)>,
        seed: Vec<u8>,
        secrets: Vec<(String, Vec<u8>)>,
    ) -> Result<JobHandle, JobError> {
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| job_error(Error::state("the job seed must be 32 bytes")))?;
        let config = parse_config(&config_json, &contracts).map_err(job_error)?;
        let job = CoreJob::new(&config, seed, &mut |s| {
            let text = secret_ref_text(s);
            secrets
                .iter()
                .find(|(k, _)| *k == text)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("secret {text} was not provided"))
        })
        .map_err(job_error)?;
        Ok(JobHandle::new(Job(RefCell::new(job))))
    }

    fn omit_keys_output(&self) {
        self.0.borrow_mut().omit_keys_output();
    }

    fn set_key_cache_limit(&self, limit: u32) {
        self.0.borrow_mut().set_key_cache_limit(limit as usize);
    }

    fn push(&self, chunk: Vec<u8>) -> Result<(), JobError> {
        self.0.borrow_mut().push(&chunk).map_err(job_error)
    }

    fn end_input(&self) -> Result<(), JobError> {
        self.0.borrow_mut().end_input().map_err(job_error)
    }

    fn key_requests(&self) -> Vec<KeyRequest> {
        self.0.borrow().key_requests().iter().map(key_request).collect()
    }

    fn provide_keys(&self, keys: Vec<StoredKey>) -> Result<(), JobError> {
        let keys = keys.into_iter().map(core_key).collect();
        self.0.borrow_mut().provide_keys(keys).map_err(job_error)
    }

    fn drain(&self) -> Result<Outputs, JobError> {
        let mut out = CoreOutputs::default();
        self.0.borrow_mut().drain(&mut out).map_err(job_error)?;
        Ok(outputs(out))
    }

    fn finish(&self) -> Result<(Outputs, Summary), JobError> {
        let mut out = CoreOutputs::default();
        let summary = self.0.borrow_mut().finish(&mut out).map_err(job_error)?;
        Ok((outputs(out), wit_summary(summary)))
    }
}

/// Parses a job file; contract files come from `contracts` (same messages as
/// the host's native engine, so both engines fail alike).
fn parse_config(json: &str, contracts: &[(String, String)]) -> Result<JobConfig, Error> {
    JobConfig::from_json(json, &mut |path| {
        contracts
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| format!("contract file {path} was not provided"))
    })
}

/// The text a secret reference was written as in the job file: the key of
/// the host's `secrets` list.
fn secret_ref_text(s: &SecretRef) -> String {
    match s {
        SecretRef::Env(n) => format!("env:{n}"),
        SecretRef::File(p) => format!("file:{p}"),
        SecretRef::Inline(v) => v.clone(),
    }
}

fn cipher_kind(c: CoreCipher) -> CipherKind {
    match c {
        CoreCipher::Aes256Gcm => CipherKind::Aes256Gcm,
        CoreCipher::Aes256Siv => CipherKind::Aes256Siv,
    }
}

fn stored_key(k: &CoreKey) -> StoredKey {
    StoredKey {
        key_link: k.key_link.clone(),
        key_id: k.key.key_id,
        cipher: cipher_kind(k.key.cipher),
        material: k.key.material.as_bytes().to_vec(),
        uses_before: k.uses_before,
    }
}

fn core_key(k: StoredKey) -> CoreKey {
    let cipher = match k.cipher {
        CipherKind::Aes256Gcm => CoreCipher::Aes256Gcm,
        CipherKind::Aes256Siv => CoreCipher::Aes256Siv,
    };
    CoreKey {
        key_link: k.key_link,
        key: TinkKey { key_id: k.key_id, cipher, material: KeyMaterial::new(k.material) },
        uses_before: k.uses_before,
    }
}

fn key_request(r: &CoreRequest) -> KeyRequest {
    KeyRequest {
        key_value: r.key_value.clone(),
        window: r.window,
        window_start_ms: r.window_start_ms,
        subject: r.subject.clone(),
        proposal: stored_key(&r.proposal),
    }
}

fn outputs(o: CoreOutputs) -> Outputs {
    Outputs { encrypted: o.encrypted, keys: o.keys, derived: o.derived, key_uses: o.key_uses }
}

fn wit_summary(s: CoreSummary) -> Summary {
    Summary {
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

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn job_error(e: Error) -> JobError {
    match e.into_kind() {
        ErrorKind::InvalidConfig(problems) => JobError::InvalidConfig(
            problems.into_iter().map(|p| ConfigProblem { path: p.path, message: p.message }).collect(),
        ),
        ErrorKind::MissingColumn { column, role } => JobError::MissingColumn(MissingColumn { column, role: role.into() }),
        ErrorKind::EmptyInput => JobError::EmptyInput,
        ErrorKind::RaggedRow { row, line, expected, found } => {
            JobError::RaggedRow(RaggedRow { row, line, expected: count(expected), found: count(found) })
        }
        ErrorKind::InvalidEncoding { row, line, charset } => {
            JobError::InvalidEncoding(InvalidEncoding { row, line, charset: charset.into() })
        }
        ErrorKind::BadTimestamp { row, line, column, format } => {
            JobError::BadTimestamp(BadTimestamp { row, line, column, format })
        }
        ErrorKind::KeyUsageLimit { key_link } => JobError::KeyUsageLimit(key_link),
        ErrorKind::Keys { message } => JobError::Keys(message),
        ErrorKind::KeyFormat { message } => JobError::KeyFormat(message),
        ErrorKind::Crypto => JobError::Crypto,
        ErrorKind::State { message } => JobError::State(message.into()),
        ErrorKind::Secret { path, message } => JobError::Secret((path, message)),
        // A kind added to the core after this crate: keep its code, which
        // names no data.
        _ => JobError::State(String::from("unmapped core error kind")),
    }
}
