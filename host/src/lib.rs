//! keylink's host library.
pub mod engine;
