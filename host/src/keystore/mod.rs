//! Key stores: where the keys of every (group, key-field value, window)
//! combination live between jobs (SPEC 4).
//!
//! A job asks for the keys of a batch of combinations at once
//! ([`KeyStore::get_or_create`]); the store inserts the job's proposals for
//! combinations it has no key for and returns whichever key it holds, so that
//! concurrent jobs of one group, on any machine sharing the store, agree on
//! exactly one key per combination.
//!
//! # Security
//! - A store keeps no PII: key-field values and data-subject values are kept
//!   only as HMAC-SHA-256 under a secret of the store (see [`sqlite`] for the
//!   exact definition).
//! - No [`KeyStoreError`] ever carries key material, a key-field value or a
//!   subject value: errors name the group, the key link or the setting instead.
//! - Key material may be wrapped at rest with a key-encryption key ([`Kek`]).
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use keylink_core::cipher::CellCipher;
use keylink_core::config::CipherKind;
use keylink_core::keys::{KeyRequest, StoredKey};
use keylink_core::tink::TinkKey;
use sha2::Sha256;

pub mod sqlite;

pub use sqlite::SqliteKeyStore;

/// A place that holds keys for many jobs.
///
/// Implementations must be safe to share between threads; the SQLite store is
/// also safe to share between processes.
pub trait KeyStore: Send + Sync {
    /// Batched get-or-create in ONE transaction: for each request, the key
    /// the store holds for (group, key_value, window), inserting the
    /// request's proposal if none. Returns keys in request order.
    ///
    /// # Errors
    /// [`KeyStoreError::CipherMismatch`] if the group's cipher (fixed at
    /// first use) differs from `cipher`; [`KeyStoreError::InvalidProposal`]
    /// if a proposal does not fit `cipher`; storage errors.
    fn get_or_create(
        &self,
        group: &str,
        cipher: CipherKind,
        requests: &[KeyRequest],
    ) -> Result<Vec<StoredKey>, KeyStoreError>;

    /// Like [`get_or_create`](Self::get_or_create), but the store may keep
    /// its transaction open when it returns, so that consecutive calls share
    /// one commit (group commit: a batch of new keys lands all over the
    /// store's indexes, and committing fewer, larger batches writes each
    /// dirty page once instead of once per call). The keys returned are
    /// final (the store holds its write lock until it commits, so no other
    /// writer can create a competing key), but they are durable only once
    /// [`flush`](Self::flush) returns: call it before publishing anything
    /// encrypted with them. A store commits on its own every second or so,
    /// and before any other operation. The default is `get_or_create`.
    ///
    /// # Errors
    /// As `get_or_create`; and, after a failure that lost keys returned by
    /// earlier calls since the last commit, [`KeyStoreError::Uncommitted`]
    /// until `flush` has reported it.
    fn get_or_create_batched(
        &self,
        group: &str,
        cipher: CipherKind,
        requests: &[KeyRequest],
    ) -> Result<Vec<StoredKey>, KeyStoreError> {
        self.get_or_create(group, cipher, requests)
    }

    /// Commits what [`get_or_create_batched`](Self::get_or_create_batched)
    /// left open. Cheap when nothing is open. The default does nothing.
    ///
    /// # Errors
    /// Storage errors of the commit; [`KeyStoreError::Uncommitted`] if a
    /// failure since the last flush lost keys already handed out.
    fn flush(&self) -> Result<(), KeyStoreError> {
        Ok(())
    }

    /// Read-only lookup for dry runs: `Some(key)` where one exists, in
    /// request order. Never inserts (proposals are ignored).
    ///
    /// # Errors
    /// Storage errors, or a key that cannot be unwrapped.
    fn lookup(
        &self,
        group: &str,
        requests: &[KeyRequest],
    ) -> Result<Vec<Option<StoredKey>>, KeyStoreError>;

    /// Adds a job's per-key encryption counts (key link → count) to the
    /// stored usage counters. Links the store does not hold (shredded in the
    /// meantime) are ignored.
    ///
    /// # Errors
    /// Storage errors.
    fn record_uses(&self, uses: &[(String, u64)]) -> Result<(), KeyStoreError>;

    /// Keys by key link (for `keylink decrypt --key-store`). Links the store
    /// does not hold are left out of the result; the rest keep their order.
    ///
    /// # Errors
    /// Storage errors, or a key that cannot be unwrapped.
    fn keys_by_links(&self, links: &[String]) -> Result<Vec<(String, TinkKey)>, KeyStoreError>;

    /// Crypto-shredding: deletes every key of data subject `subject` in
    /// `group`. Returns how many were deleted.
    ///
    /// # Errors
    /// Storage errors.
    fn shred_subject(&self, group: &str, subject: &str) -> Result<u64, KeyStoreError>;

    /// Crypto-shredding: deletes every key (all windows) of key-field value
    /// `key_value` in `group`. Returns how many were deleted.
    ///
    /// # Errors
    /// Storage errors.
    fn shred_key_value(&self, group: &str, key_value: &str) -> Result<u64, KeyStoreError>;
}

/// What can go wrong in a key store.
///
/// # Security
/// No variant carries key material, a key-field value or a subject value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The group already uses another cipher (fixed at its first use).
    #[error("batch job group {group:?} uses cipher {} (fixed at its first use); this job asks for {}", stored.name(), requested.name())]
    CipherMismatch {
        group: String,
        stored: CipherKind,
        requested: CipherKind,
    },
    /// A proposal does not fit the requested cipher or is malformed.
    #[error("invalid key proposal for batch job group {group:?}: {message}")]
    InvalidProposal { group: String, message: String },
    /// The store's keys are wrapped with a KEK and none was given.
    #[error(
        "the key store's key material is wrapped with a key-encryption key (KEK key id {kek_key_id}); give that KEK to open it"
    )]
    KekRequired { kek_key_id: u32 },
    /// The given KEK is not the one the store's keys are wrapped with.
    #[error(
        "the given key-encryption key (key id {given}) is not the one this key store was created with (key id {stored})"
    )]
    KekMismatch { stored: u32, given: u32 },
    /// A KEK was given for a store created without one (its keys are raw).
    #[error(
        "this key store was created without a key-encryption key (its key material is stored unwrapped); open it without a KEK"
    )]
    KekNotExpected,
    /// The KEK keyset could not be used.
    #[error("invalid key-encryption key: {message}")]
    InvalidKek { message: String },
    /// A wrapped key did not open under the KEK (tampered or moved row).
    #[error(
        "the key material of key link {key_link} failed to unwrap under the key-encryption key"
    )]
    Unwrap { key_link: String },
    /// The store was created with an external HMAC secret and none was given.
    #[error("this key store was created with an external HMAC secret; give it to open the store")]
    SecretRequired,
    /// An external HMAC secret differs from the one the store was created with.
    #[error("the HMAC secret given does not match the one this key store was created with")]
    SecretMismatch,
    /// The store was created by a newer keylink.
    #[error("unsupported key store schema version {found} (this keylink supports {supported})")]
    UnsupportedSchema { found: String, supported: u32 },
    /// The database holds something this schema does not allow.
    #[error("corrupt key store: {message}")]
    Corrupt { message: String },
    /// The operating system's secure random source failed.
    #[error("secure random source failed: {0}")]
    Random(String),
    /// A batch failed after earlier batched calls had handed out keys that
    /// were not yet committed: those keys are lost, and whatever was
    /// encrypted with them must not be published.
    #[error("keys handed out since the key store's last commit were lost: {message}")]
    Uncommitted { message: String },
    /// SQLite failed (messages name tables and columns, never bound values).
    #[error("key store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// A key-encryption key: an AES-256-GCM Tink key that wraps key material at
/// rest.
///
/// # Security
/// The wrapped form binds the key link as associated data, so wrapped
/// material moved to another row fails to unwrap. Nonces are 12 fresh bytes
/// from the OS for every wrap.
pub struct Kek {
    key: TinkKey,
    cipher: CellCipher,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("key_id", &self.key.key_id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from a Tink JSON keyset holding exactly one enabled AES-256-GCM
    /// key with TINK prefix.
    ///
    /// # Errors
    /// [`KeyStoreError::InvalidKek`] naming what is wrong (never key bytes).
    pub fn from_keyset_json(json: &str) -> Result<Kek, KeyStoreError> {
        let keys = TinkKey::from_keyset_json(json).map_err(|e| KeyStoreError::InvalidKek {
            message: e.to_string(),
        })?;
        let mut keys = keys.into_iter();
        match (keys.next(), keys.next()) {
            (Some(key), None) => Kek::new(key),
            (None, _) => Err(KeyStoreError::InvalidKek {
                message: "the keyset holds no usable key".into(),
            }),
            (Some(_), Some(_)) => Err(KeyStoreError::InvalidKek {
                message: "the keyset holds more than one key; a KEK keyset must hold exactly one"
                    .into(),
            }),
        }
    }

    /// A KEK from one Tink key.
    ///
    /// # Errors
    /// [`KeyStoreError::InvalidKek`] unless the key is AES-256-GCM with 32
    /// bytes of material. (SIV is deterministic: wrapping two equal keys
    /// would show that they are equal.)
    pub fn new(key: TinkKey) -> Result<Kek, KeyStoreError> {
        if key.cipher != CipherKind::Aes256Gcm {
            return Err(KeyStoreError::InvalidKek {
                message: format!(
                    "a KEK must be an aes-256-gcm key, not {}",
                    key.cipher.name()
                ),
            });
        }
        if key.material.as_bytes().len() != CipherKind::Aes256Gcm.key_len() {
            return Err(KeyStoreError::InvalidKek {
                message: "a KEK needs 32 bytes of key material".into(),
            });
        }
        let cipher = CellCipher::new(&key);
        Ok(Kek { key, cipher })
    }

    /// The Tink key id of the KEK.
    pub fn key_id(&self) -> u32 {
        self.key.key_id
    }

    /// A cipher over the KEK, to open Tink encrypted keysets (the keys
    /// output written with a KEK).
    pub fn cipher(&self) -> CellCipher {
        CellCipher::new(&self.key)
    }

    /// A value that identifies this KEK without revealing it:
    /// HMAC-SHA-256(key = KEK material, message = `"keylink kek fingerprint v1"`),
    /// lowercase hex.
    pub fn fingerprint(&self) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.material.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(b"keylink kek fingerprint v1");
        hex::encode(mac.finalize().into_bytes())
    }

    /// `0x01 ‖ KEK key id ‖ nonce ‖ ciphertext ‖ tag` of `material`, bound
    /// to `key_link`.
    ///
    /// # Security
    /// `nonce` must be fresh random bytes, never used before with this KEK.
    pub(crate) fn wrap_with_nonce(
        &self,
        material: &[u8],
        key_link: &str,
        nonce: &[u8; 12],
    ) -> Result<Vec<u8>, KeyStoreError> {
        let mut out = Vec::with_capacity(5 + 12 + material.len() + 16);
        self.cipher
            .seal(material, key_link.as_bytes(), nonce, &mut out);
        if out.is_empty() {
            // `seal` leaves `out` untouched only on an internal AEAD failure.
            return Err(KeyStoreError::Corrupt {
                message: "wrapping key material failed".into(),
            });
        }
        Ok(out)
    }

    /// The material of a wrapped key.
    pub(crate) fn unwrap(&self, wrapped: &[u8], key_link: &str) -> Result<Vec<u8>, KeyStoreError> {
        self.cipher
            .open(wrapped, key_link.as_bytes())
            .map_err(|_| KeyStoreError::Unwrap {
                key_link: key_link.to_owned(),
            })
    }
}
