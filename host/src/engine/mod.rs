//! Engines run the core: `native` links it directly, `component` runs the
//! WebAssembly component in wasmtime. Both give identical outputs for the
//! same seed and keys.
use keylink_core::job::{Outputs, Summary};
use keylink_core::keys::{KeyRequest, StoredKey};
use keylink_core::Error;

pub mod component;
pub mod native;

/// Everything a job needs besides the source bytes.
#[derive(Clone)]
pub struct JobInit {
    pub config_json: String,
    /// (path, contents) of `data_contract_file`, if the job file names one.
    pub contracts: Vec<(String, String)>,
    pub seed: [u8; 32],
    /// Secret reference as written in the job file (`env:MASK_SEED`) → value.
    pub secrets: Vec<(String, Vec<u8>)>,
}

/// One running job inside an engine (mirrors `keylink_core::job::Job`).
pub trait EngineJob: Send {
    /// See `keylink_core::job::Job::omit_keys_output`.
    fn omit_keys_output(&mut self);
    /// See `keylink_core::job::Job::set_key_cache_limit`.
    fn set_key_cache_limit(&mut self, limit: u32);
    fn push(&mut self, chunk: &[u8]) -> Result<(), Error>;
    fn end_input(&mut self) -> Result<(), Error>;
    fn key_requests(&mut self) -> Vec<KeyRequest>;
    fn provide_keys(&mut self, keys: Vec<StoredKey>) -> Result<(), Error>;
    fn drain(&mut self) -> Result<Outputs, Error>;
    fn finish(&mut self) -> Result<(Outputs, Summary), Error>;
}

/// A factory of jobs; shared by the worker threads.
pub trait Engine: Send + Sync {
    fn create(&self, init: &JobInit) -> Result<Box<dyn EngineJob>, Error>;
    fn name(&self) -> &'static str;
}
