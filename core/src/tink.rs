//! Google Tink formats: JSON keysets holding `AesGcmKey` / `AesSivKey`, and
//! the TINK output prefix `0x01 ‖ key id (big-endian u32)`.
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::CipherKind;
use crate::error::Result;

/// Raw key material. Zeroed on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(zeroize::Zeroizing<Vec<u8>>);

impl KeyMaterial {
    pub fn new(bytes: Vec<u8>) -> Self {
        KeyMaterial(zeroize::Zeroizing::new(bytes))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyMaterial(<{} bytes redacted>)", self.0.len())
    }
}

/// One Tink key: its id, its primitive and its material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinkKey {
    /// Non-zero.
    pub key_id: u32,
    pub cipher: CipherKind,
    pub material: KeyMaterial,
}

/// Length of the TINK output prefix.
pub const PREFIX_LEN: usize = 5;

impl TinkKey {
    /// A Tink JSON keyset holding this one key (`primaryKeyId` = `keyId`,
    /// status ENABLED, output prefix TINK).
    pub fn to_keyset_json(&self) -> String {
        todo!()
    }

    /// Every enabled AES-GCM / AES-SIV key with TINK prefix of a Tink JSON
    /// keyset.
    ///
    /// # Errors
    /// `KeyFormat` naming what is wrong (never echoing key bytes).
    pub fn from_keyset_json(json: &str) -> Result<Vec<TinkKey>> {
        let _ = json;
        todo!()
    }

    /// Stub until the crypto work lands.
    pub fn from_encrypted_keyset_json(json: &str, kek: &crate::cipher::CellCipher) -> Result<Vec<TinkKey>> {
        let _ = (json, kek);
        todo!()
    }
}
