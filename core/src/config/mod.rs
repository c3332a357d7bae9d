//! The job file: its typed model ([`model`]) and the parser that validates a
//! JSON job file completely, reporting every problem with its JSON path
//! ([`parse`]).
pub mod model;
pub mod parse;

pub use model::*;
