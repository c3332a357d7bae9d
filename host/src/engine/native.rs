//! The core linked directly into the host.
use keylink_core::config::{JobConfig, SecretRef};
use keylink_core::job::{Job, Outputs, Summary};
use keylink_core::keys::{KeyRequest, StoredKey};
use keylink_core::Error;

use super::{Engine, EngineJob, JobInit};

pub struct NativeEngine;

struct NativeJob(Job);

/// Parses a job file with contract files taken from `contracts`.
pub fn parse_config(init_json: &str, contracts: &[(String, String)]) -> Result<JobConfig, Error> {
    JobConfig::from_json(init_json, &mut |path| {
        contracts
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| format!("contract file {path} was not provided"))
    })
}

/// The text a secret reference was written as in the job file.
pub fn secret_ref_text(s: &SecretRef) -> String {
    match s {
        SecretRef::Env(n) => format!("env:{n}"),
        SecretRef::File(p) => format!("file:{p}"),
        SecretRef::Inline(v) => v.clone(),
    }
}

impl Engine for NativeEngine {
    fn create(&self, init: &JobInit) -> Result<Box<dyn EngineJob>, Error> {
        let config = parse_config(&init.config_json, &init.contracts)?;
        let job = Job::new(&config, init.seed, &mut |s| {
            let text = secret_ref_text(s);
            init.secrets
                .iter()
                .find(|(k, _)| *k == text)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("secret {text} was not provided"))
        })?;
        Ok(Box::new(NativeJob(job)))
    }
    fn name(&self) -> &'static str {
        "native"
    }
}

impl EngineJob for NativeJob {
    fn omit_keys_output(&mut self) {
        self.0.omit_keys_output();
    }
    fn set_key_cache_limit(&mut self, limit: u32) {
        self.0.set_key_cache_limit(limit as usize);
    }
    fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.0.push(chunk)
    }
    fn end_input(&mut self) -> Result<(), Error> {
        self.0.end_input()
    }
    fn key_requests(&mut self) -> Vec<KeyRequest> {
        self.0.key_requests().to_vec()
    }
    fn provide_keys(&mut self, keys: Vec<StoredKey>) -> Result<(), Error> {
        self.0.provide_keys(keys)
    }
    fn drain(&mut self) -> Result<Outputs, Error> {
        let mut out = Outputs::default();
        self.0.drain(&mut out)?;
        Ok(out)
    }
    fn finish(&mut self) -> Result<(Outputs, Summary), Error> {
        let mut out = Outputs::default();
        let s = self.0.finish(&mut out)?;
        Ok((out, s))
    }
}
