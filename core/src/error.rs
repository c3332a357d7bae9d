//! The one error type of the core.
//!
//! # Security
//! No variant carries a cell value, a key-field value or key material: errors
//! name the row, the physical line, the column and the JSON path instead. Keep
//! it that way when adding variants; `tests/no_leak.rs` checks it.
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A problem found while validating a job file, at a JSON path such as
/// `derived_data[1].consent_levels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What went wrong. Positions are 1-based: `row` counts data rows (the header
/// is not counted), `line` counts physical lines of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The job file is invalid; every problem found, each with its JSON path.
    InvalidConfig(Vec<ConfigProblem>),
    /// A column the job needs is not in the header.
    MissingColumn { column: String, role: &'static str },
    /// The input has no header row.
    EmptyInput,
    /// A row has a different number of fields than the header.
    RaggedRow { row: u64, line: u64, expected: usize, found: usize },
    /// A row holds bytes that are invalid in the source charset.
    InvalidEncoding { row: u64, line: u64, charset: &'static str },
    /// A timestamp cell could not be parsed with the configured format.
    BadTimestamp { row: u64, line: u64, column: String, format: String },
    /// A key would be used for more encryptions than allowed (2^31).
    KeyUsageLimit { key_link: String },
    /// A key the job needs was not provided, or a provided key does not fit.
    Keys { message: String },
    /// A keyset or key could not be read.
    KeyFormat { message: String },
    /// Decryption or authentication failed. Deliberately opaque.
    Crypto,
    /// The API was called out of order (e.g. `drain` before `provide_keys`).
    State { message: &'static str },
    /// A secret (masking seed, ...) could not be resolved.
    Secret { path: String, message: String },
}

/// The core's error: an [`ErrorKind`] with a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
}

impl Error {
    pub fn new(kind: ErrorKind) -> Self {
        Error { kind }
    }
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
    pub fn into_kind(self) -> ErrorKind {
        self.kind
    }
    pub fn crypto() -> Self {
        Error::new(ErrorKind::Crypto)
    }
    pub fn state(message: &'static str) -> Self {
        Error::new(ErrorKind::State { message })
    }
    /// The stable code of the kind, e.g. for JS `Error.code` or a WIT variant.
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidConfig(_) => "INVALID_CONFIG",
            ErrorKind::MissingColumn { .. } => "MISSING_COLUMN",
            ErrorKind::EmptyInput => "EMPTY_INPUT",
            ErrorKind::RaggedRow { .. } => "RAGGED_ROW",
            ErrorKind::InvalidEncoding { .. } => "INVALID_ENCODING",
            ErrorKind::BadTimestamp { .. } => "BAD_TIMESTAMP",
            ErrorKind::KeyUsageLimit { .. } => "KEY_USAGE_LIMIT",
            ErrorKind::Keys { .. } => "KEYS",
            ErrorKind::KeyFormat { .. } => "KEY_FORMAT",
            ErrorKind::Crypto => "CRYPTO",
            ErrorKind::State { .. } => "STATE",
            ErrorKind::Secret { .. } => "SECRET",
        }
    }
    /// True for errors a job raises before reading any data row (bad job
    /// file, missing column, missing secret): a lifecycle `ERROR_STARTING`.
    pub fn is_start_error(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::InvalidConfig(_)
                | ErrorKind::MissingColumn { .. }
                | ErrorKind::EmptyInput
                | ErrorKind::Secret { .. }
        )
    }
    /// The same error with its row and line moved by the given offsets: a
    /// host that runs parts of a file in separate jobs maps positions back
    /// to the whole file.
    pub fn shifted(self, rows: i64, lines: i64) -> Error {
        let mv = |v: u64, by: i64| v.saturating_add_signed(by);
        let kind = match self.kind {
            ErrorKind::RaggedRow { row, line, expected, found } => {
                ErrorKind::RaggedRow { row: mv(row, rows), line: mv(line, lines), expected, found }
            }
            ErrorKind::InvalidEncoding { row, line, charset } => {
                ErrorKind::InvalidEncoding { row: mv(row, rows), line: mv(line, lines), charset }
            }
            ErrorKind::BadTimestamp { row, line, column, format } => {
                ErrorKind::BadTimestamp { row: mv(row, rows), line: mv(line, lines), column, format }
            }
            other => other,
        };
        Error { kind }
    }
    /// The row this error is about, if any.
    pub fn row(&self) -> Option<u64> {
        match self.kind {
            ErrorKind::RaggedRow { row, .. }
            | ErrorKind::InvalidEncoding { row, .. }
            | ErrorKind::BadTimestamp { row, .. } => Some(row),
            _ => None,
        }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error::new(kind)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidConfig(problems) => {
                write!(f, "invalid job file ({} problem{})", problems.len(), if problems.len() == 1 { "" } else { "s" })?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
            ErrorKind::MissingColumn { column, role } => {
                write!(f, "column `{column}` ({role}) is not in the header")
            }
            ErrorKind::EmptyInput => f.write_str("the input has no header row"),
            ErrorKind::RaggedRow { row, line, expected, found } => write!(
                f,
                "row {row} (line {line}) has {found} fields, the header has {expected}"
            ),
            ErrorKind::InvalidEncoding { row, line, charset } => {
                write!(f, "row {row} (line {line}) is not valid {charset}")
            }
            ErrorKind::BadTimestamp { row, line, column, format } => write!(
                f,
                "row {row} (line {line}): column `{column}` does not match timestamp format `{format}`"
            ),
            ErrorKind::KeyUsageLimit { key_link } => write!(
                f,
                "key {key_link} reached its limit of 2^31 encryptions; use a shorter key window"
            ),
            ErrorKind::Keys { message } => write!(f, "keys: {message}"),
            ErrorKind::KeyFormat { message } => write!(f, "invalid key: {message}"),
            ErrorKind::Crypto => f.write_str("decryption failed"),
            ErrorKind::State { message } => write!(f, "job used out of order: {message}"),
            ErrorKind::Secret { path, message } => write!(f, "{path}: {message}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

pub type Result<T, E = Error> = core::result::Result<T, E>;
