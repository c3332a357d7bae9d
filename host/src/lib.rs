//! keylink's host library.
pub mod engine;
pub mod jobstore;
pub mod keystore;
