//! # keylink-core
//!
//! The engine of keylink: everything that defines the *meaning* of a
//! privacy-preserving batch job, with no I/O, no clock, no threads and no OS
//! randomness. A caller (the wasmtime host, the JS SDK, a test) pushes the
//! bytes of a CSV file in, answers the job's key requests from its key store,
//! and collects the bytes of the encrypted, keys and derived outputs.
//!
//! ```
//! use keylink_core::{config::JobConfig, job::{Job, Outputs}};
//! # fn main() -> Result<(), keylink_core::Error> {
//! let job_json = r#"{
//!   "data_contract": { "ref": "acme/clicks/1.0.0", "key_field": "session",
//!                      "pii_fields": { "email": 1 } },
//!   "source_data": { "file_name": "in.csv" },
//!   "consent": { "default_consent_levels": [1] },
//!   "encryption": { "timestamp_config": { "field": "ts", "format": "epoch_millis" } }
//! }"#;
//! let config = JobConfig::from_json(job_json, &mut |_| Err("no contract files here".into()))?;
//! let mut job = Job::new(&config, [7u8; 32], &mut |_| Err("no secrets".into()))?;
//! let mut out = Outputs::default();
//! job.push(b"session,ts,email\ns1,1700000000000,a@example.com\n")?;
//! // A real caller asks its key store; here every proposal is accepted as is.
//! let keys = job.key_requests().iter().map(|r| r.proposal.clone()).collect();
//! job.provide_keys(keys)?;
//! job.drain(&mut out)?;
//! let summary = job.finish(&mut out)?;
//! assert_eq!(summary.rows_written, 1);
//! assert!(String::from_utf8(out.encrypted).unwrap().contains("strmMeta.keyLink"));
//! # Ok(()) }
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod answers;
pub use answers::request_id;
mod gcm;
pub mod cipher;
pub mod config;
pub mod consent;
pub mod csv;
pub mod decrypt;
pub mod error;
pub mod job;
pub mod keys;
pub mod mask;
pub mod rng;
pub mod time;
pub mod tink;
pub mod window;

pub use error::{Error, ErrorKind};
