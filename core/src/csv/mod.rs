//! CSV in and out (SPEC sections 2 and 6), over csv-core.
pub mod decode;
pub mod encode;
pub mod split;

pub use decode::{CsvDecoder, DecodeEvent, Record};
pub use encode::CsvEncoder;
