//! Test harness: drives a job over bytes with an in-memory key store.
#![allow(dead_code)]
use std::collections::HashMap;

use keylink_core::config::JobConfig;
use keylink_core::job::{Job, Outputs, Summary};
use keylink_core::keys::StoredKey;
use keylink_core::Error;

/// A key store in memory: get-or-create by (key value, window).
#[derive(Default)]
pub struct MemoryStore {
    pub keys: HashMap<(String, i64), StoredKey>,
}

impl MemoryStore {
    pub fn answer(&mut self, job: &mut Job) -> Result<(), Error> {
        if job.key_requests().is_empty() {
            return Ok(());
        }
        let keys = job
            .key_requests()
            .iter()
            .map(|r| self.keys.entry((r.key_value.clone(), r.window)).or_insert_with(|| r.proposal.clone()).clone())
            .collect();
        job.provide_keys(keys)
    }
}

pub fn config(json: &str) -> JobConfig {
    JobConfig::from_json(json, &mut |_| Err("no contract files".into())).expect("valid job file")
}

pub struct Run {
    pub out: Outputs,
    pub summary: Summary,
}

impl Run {
    pub fn encrypted(&self) -> String {
        String::from_utf8(self.out.encrypted.clone()).unwrap()
    }
    pub fn keys(&self) -> String {
        String::from_utf8(self.out.keys.clone()).unwrap()
    }
    pub fn derived(&self, i: usize) -> String {
        String::from_utf8(self.out.derived[i].clone()).unwrap()
    }
}

/// Runs a job over `input` cut into pieces of the given sizes (cycled).
pub fn run_chunked(config: &JobConfig, input: &[u8], sizes: &[usize], seed: [u8; 32], store: &mut MemoryStore) -> Result<Run, Error> {
    let mut job = Job::new(config, seed, &mut |_| Ok(b"test-seed".to_vec()))?;
    let mut out = Outputs::default();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].max(1).min(rest.len());
        job.push(&rest[..n])?;
        rest = &rest[n..];
        i += 1;
        store.answer(&mut job)?;
        job.drain(&mut out)?;
    }
    job.end_input()?;
    store.answer(&mut job)?;
    let summary = job.finish(&mut out)?;
    Ok(Run { out, summary })
}

pub fn run(config: &JobConfig, input: &[u8]) -> Result<Run, Error> {
    run_chunked(config, input, &[64 * 1024], [7; 32], &mut MemoryStore::default())
}

/// Parses CSV text into rows of fields (for assertions).
pub fn rows(text: &str) -> Vec<Vec<String>> {
    let mut dec = keylink_core::csv::CsvDecoder::new(b',', keylink_core::config::Charset::Utf8);
    let mut rows = Vec::new();
    let mut on = |ev: keylink_core::csv::DecodeEvent<'_>| {
        if let keylink_core::csv::DecodeEvent::Record(r) = ev {
            rows.push(r.fields().map(String::from).collect());
        }
        Ok(())
    };
    dec.push(text.as_bytes(), &mut on).unwrap();
    dec.finish(&mut on).unwrap();
    rows
}

/// The job used across tests: the SPEC's clickstream contract, local files.
pub fn clickstream_job(extra_encryption: &str) -> String {
    format!(
        r#"{{
  "data_contract": {{ "ref": "acme/clickstream/1.0.0", "key_field": "session_id",
                     "pii_fields": {{ "email": 1, "ip_address": 1, "customer_id": 2 }},
                     "data_subject_field": "customer_id" }},
  "source_data": {{ "file_name": "events.csv" }},
  "consent": {{ "default_consent_levels": [],
               "consent_level_extractor": {{ "field": "consent",
                  "field_patterns": {{ "analytics": {{ "consent_levels": [1] }},
                                      "marketing": {{ "consent_levels": [1, 2] }} }} }} }},
  "encryption": {{ "batch_job_group_id": "g1" {extra_encryption},
                  "timestamp_config": {{ "field": "timestamp", "format": "iso8601" }} }},
  "derived_data": [
    {{ "consent_levels": [1], "consent_level_type": "GRANULAR",
       "masked_fields": {{ "hash_type": "hmac-sha256", "seed": "env:MASK_SEED", "fields": ["customer_id"] }} }},
    {{ "consent_levels": [2], "consent_level_type": "CUMULATIVE" }}
  ]
}}"#
    )
}

pub const CLICKS: &str = "session_id,timestamp,consent,email,customer_id,ip_address,page\n\
s1,2026-03-01T10:00:00.000Z,analytics,a@example.com,C1,10.0.0.1,/\n\
s1,2026-03-01T23:59:59.999Z,marketing,a@example.com,C1,10.0.0.1,/cart\n\
s1,2026-03-02T00:00:00.000Z,marketing,a@example.com,C1,10.0.0.1,\"/search?q=shoes,red\"\n\
s2,2026-03-01T11:00:00+02:00,garbage,,C2,10.0.0.2,/\n\
s3,2026-03-01T12:00:00Z,analytics,\"Doe, \"\"Jane\"\"\",C3,10.0.0.3,\"line1\nline2\"\n";
