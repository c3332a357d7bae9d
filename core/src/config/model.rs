//! The typed model of a validated job file (SPEC section 1).
//!
//! Everything here has been checked by [`super::parse`]: a `JobConfig` is
//! always internally consistent (connector references resolve, CUMULATIVE
//! has exactly one level, the timestamp pattern compiles, ...). Column names
//! are checked later, against the header.
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::consent::ConsentLevels;
use crate::time::TimestampFormat;

/// A secret given by reference (`env:NAME`, `file:PATH`) or, where allowed,
/// inline. The core never resolves references itself: the caller does.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Inline(String),
    Env(String),
    File(String),
}

impl core::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SecretRef::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretRef::Env(n) => write!(f, "Env({n})"),
            SecretRef::File(p) => write!(f, "File({p})"),
        }
    }
}

impl SecretRef {
    /// `env:NAME` / `file:PATH`, anything else is an inline value.
    pub fn parse(s: &str) -> SecretRef {
        if let Some(n) = s.strip_prefix("env:") {
            SecretRef::Env(n.into())
        } else if let Some(p) = s.strip_prefix("file:") {
            SecretRef::File(p.into())
        } else {
            SecretRef::Inline(s.into())
        }
    }
}

/// A named location for inputs and outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorConfig {
    Local { root: String },
    S3 {
        bucket_name: String,
        region: Option<String>,
        endpoint: Option<String>,
        access_key_id: Option<SecretRef>,
        secret_access_key: Option<SecretRef>,
        session_token: Option<SecretRef>,
        assume_role_arn: Option<String>,
    },
    Gcs {
        bucket_name: String,
        endpoint: Option<String>,
        credentials_json: Option<SecretRef>,
    },
    Azure {
        storage_account_uri: String,
        container_name: String,
        endpoint: Option<String>,
        /// Shared account key, or a client secret credential.
        account_key: Option<SecretRef>,
        tenant_id: Option<String>,
        client_id: Option<String>,
        client_secret: Option<SecretRef>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataContract {
    /// `handle/name/version`.
    pub reference: String,
    pub key_field: String,
    /// PII column → purpose level, in the order of the job file.
    pub pii_fields: Vec<(String, u32)>,
    pub data_subject_field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Iso8859_1,
}

impl Charset {
    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Iso8859_1 => "ISO-8859-1",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteStyle {
    /// STRM's writer: every field quoted, empty ones as `""`.
    Always,
    /// Only fields that need it (delimiter, quote, CR or LF inside).
    Necessary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    CrLf,
    Lf,
}

/// Where a file is: a connector (None: the local file system relative to the
/// working directory), an optional prefix and a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub connector: Option<String>,
    pub path_prefix: Option<String>,
    pub file_name: String,
}

impl Location {
    /// `path_prefix` and `file_name` joined with `/`.
    pub fn path(&self) -> String {
        match &self.path_prefix {
            Some(p) if !p.is_empty() => {
                let mut s = String::from(p.trim_end_matches('/'));
                s.push('/');
                s.push_str(self.file_name.trim_start_matches('/'));
                s
            }
            _ => self.file_name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub location: Location,
    pub charset: Charset,
    pub delimiter: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// The file name is always set: a missing one is derived from the source.
    pub location: Location,
    pub quote: QuoteStyle,
    pub line_end: LineEnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentExtractor {
    pub field: String,
    /// Exact, case-sensitive value → levels, in job-file order.
    pub field_patterns: Option<Vec<(String, ConsentLevels)>>,
    pub separator: Option<String>,
    /// Path of a consent plugin component (run by the host, SPEC 8).
    pub plugin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentConfig {
    pub default_levels: ConsentLevels,
    pub extractor: Option<ConsentExtractor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherKind {
    /// Randomized, Tink AEAD `AesGcmKey`.
    Aes256Gcm,
    /// Deterministic, Tink Deterministic AEAD `AesSivKey`.
    Aes256Siv,
}

impl CipherKind {
    pub fn name(self) -> &'static str {
        match self {
            CipherKind::Aes256Gcm => "aes-256-gcm",
            CipherKind::Aes256Siv => "aes-256-siv",
        }
    }
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "aes-256-gcm" => Some(CipherKind::Aes256Gcm),
            "aes-256-siv" => Some(CipherKind::Aes256Siv),
            _ => None,
        }
    }
    /// Length of the key material in bytes.
    pub fn key_len(self) -> usize {
        match self {
            CipherKind::Aes256Gcm => 32,
            CipherKind::Aes256Siv => 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssociatedData {
    /// Tink's empty associated data.
    None,
    /// The column name in UTF-8.
    FieldName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampConfig {
    pub field: String,
    pub format: TimestampFormat,
    /// The source text of the format, for messages.
    pub format_text: String,
    pub zone: chrono_tz::Tz,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionConfig {
    pub batch_job_group_id: Option<String>,
    pub cipher: CipherKind,
    pub associated_data: AssociatedData,
    pub timestamp: TimestampConfig,
    pub window_hours: u32,
    pub retention_days: u32,
    pub policy_id: Option<String>,
    /// Key-encryption key for key material at rest and the keys output.
    pub kek: Option<SecretRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentLevelType {
    Granular,
    Cumulative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashType {
    HmacSha256,
    Murmur3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedFields {
    pub hash_type: HashType,
    pub seed: SecretRef,
    /// Columns to mask (from `field_patterns` for this contract, or `fields`).
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedConfig {
    pub target: TargetConfig,
    /// Sorted, de-duplicated; exactly one level for CUMULATIVE.
    pub consent_levels: ConsentLevels,
    pub consent_level_type: ConsentLevelType,
    pub masked_fields: Option<MaskedFields>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    Fail,
    Skip,
}

/// A validated job file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    pub data_connectors: BTreeMap<String, ConnectorConfig>,
    pub data_contract: DataContract,
    pub source: SourceConfig,
    pub consent: ConsentConfig,
    pub encryption: EncryptionConfig,
    pub encrypted_data: TargetConfig,
    pub encryption_keys_data: TargetConfig,
    pub derived_data: Vec<DerivedConfig>,
    pub error_policy: ErrorPolicy,
}

impl JobConfig {
    /// Key window length in milliseconds.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.encryption.window_hours) * 3_600_000
    }
}
