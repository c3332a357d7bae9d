//! Cutting a CSV byte stream into chunks that end on record boundaries, so
//! that workers can process chunks independently: the core's splitter
//! ([`keylink_core::csv::split`]), which finds boundaries exactly as the
//! decoder does, shared with the JS SDK.
pub use keylink_core::csv::split::{SpanCounts, Splitter};
