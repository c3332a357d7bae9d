//! What the core asks of a key store, and what it gets back.
use alloc::string::String;

use crate::tink::TinkKey;

/// A key as a store keeps it: its key link, the Tink key, and how many
/// values earlier jobs encrypted with it (for the 2^31 cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// A UUID v4, shared by every row encrypted with this key.
    pub key_link: String,
    pub key: TinkKey,
    pub uses_before: u64,
}

/// A (key-field value, window) combination the job has no key for yet.
///
/// # Security
/// `key_value` and `subject` are plaintext personal data: a store must keep
/// only a keyed hash of them, and never log them.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRequest {
    pub key_value: String,
    pub window: i64,
    pub window_start_ms: i64,
    /// The data-subject value of the first row that needed this key.
    pub subject: Option<String>,
    /// A fresh key the job generated: the store inserts it if it has none
    /// for this combination, and returns whichever key won.
    pub proposal: StoredKey,
}

impl core::fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyRequest")
            .field("key_value", &"<redacted>")
            .field("window", &self.window)
            .field("proposal", &self.proposal)
            .finish()
    }
}
