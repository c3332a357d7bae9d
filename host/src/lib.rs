//! keylink's host: runs batch jobs with the keylink engine (the WebAssembly
//! component in wasmtime, or the core linked natively), with a persistent
//! key store, a job store, local connectors and lifecycle reporting.
pub mod connector;
pub mod engine;
pub mod jobstore;
pub mod keystore;
pub mod lifecycle;
pub mod runner;
pub mod split;
