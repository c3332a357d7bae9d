//! The job state machine: push bytes, answer key requests, drain outputs.
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::{JobConfig, SecretRef};
use crate::error::Result;
use crate::keys::{KeyRequest, StoredKey};

/// Bytes produced so far, appended by `drain` and `finish`; the caller takes
/// them (e.g. `core::mem::take`) and writes them out.
#[derive(Debug, Default)]
pub struct Outputs {
    pub encrypted: Vec<u8>,
    pub keys: Vec<u8>,
    pub derived: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_skipped: u64,
    pub skipped_rows: Vec<u64>,
    pub keys_used: u64,
    pub keys_created: u64,
}

pub struct Job {}

impl Job {
    pub fn new(config: &JobConfig, seed: [u8; 32], secrets: &mut dyn FnMut(&SecretRef) -> Result<Vec<u8>, String>) -> Result<Job> {
        let _ = (config, seed, secrets);
        todo!()
    }
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        let _ = chunk;
        todo!()
    }
    pub fn key_requests(&self) -> &[KeyRequest] {
        todo!()
    }
    pub fn provide_keys(&mut self, keys: Vec<StoredKey>) -> Result<()> {
        let _ = keys;
        todo!()
    }
    pub fn drain(&mut self, out: &mut Outputs) -> Result<()> {
        let _ = out;
        todo!()
    }
    pub fn finish(&mut self, out: &mut Outputs) -> Result<Summary> {
        let _ = out;
        todo!()
    }
}
