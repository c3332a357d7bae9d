//! AES-256-GCM and AES-256-SIV over Tink's wire format, one instance per key.
//!
//! A cell is the standard padded Base64 of
//!
//! ```text
//! 0x01 ‖ key id (u32, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)    AES-256-GCM
//! 0x01 ‖ key id (u32, big-endian) ‖ SIV (16)   ‖ ciphertext               AES-256-SIV
//! ```
//!
//! which is what Tink's `Aead` (`AesGcmKey`) and `DeterministicAead`
//! (`AesSivKey`) primitives produce with output prefix TINK, so any Tink can
//! open a cell. AES-SIV is RFC 5297 AES-SIV-CMAC-512 with the associated data
//! as the one S2V header (Tink passes it even when empty, which differs from
//! passing no header at all; the SPEC section 9 vector checks this).
//!
//! # Security
//! GCM nonces are 12 random bytes from the job's CSPRNG; the caller passes
//! them and must never reuse one under a key. Every failure to open is the
//! one opaque [`crate::ErrorKind::Crypto`]. The associated data is what binds
//! a cell to its context (the column name for `field-name`): a cell moved to
//! another column, or opened with another key, fails to open.
use alloc::boxed::Box;
use alloc::vec::Vec;

use aes_gcm::aead::array::Array;
use aes_gcm::KeyInit;
use aes_siv::siv::Aes256Siv;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::config::CipherKind;
use crate::error::{Error, ErrorKind, Result};
use crate::tink::{PREFIX_LEN, TINK_START_BYTE, TinkKey, output_prefix};

const GCM_NONCE_LEN: usize = 12;

/// AES-256-GCM over the encrypt-only AES key schedule (GCM never runs the
/// block cipher backwards), sealing a cell in one pass of the block cipher
/// (see [`crate::gcm`]).
use crate::gcm::Gcm as Aes256Gcm;
const TAG_LEN: usize = 16;

enum Engine {
    /// The expanded AES key and the GHASH key (boxed: about 1 KiB, against
    /// 64 bytes for SIV).
    Gcm(Box<Aes256Gcm>),
    /// The 64-byte SIV key (CMAC half ‖ CTR half). `aes_siv::siv::Siv`
    /// needs `&mut self` (its CMAC state), so an instance is keyed per call
    /// instead of shared; `aes_siv::Aes256SivAead` does the same internally.
    Siv(Zeroizing<[u8; 64]>),
}

/// A ready cipher for one key (key schedule done once).
pub struct CellCipher {
    key_id: u32,
    prefix: [u8; PREFIX_LEN],
    engine: Engine,
}

impl core::fmt::Debug for CellCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let cipher = match self.engine {
            Engine::Gcm(_) => "aes-256-gcm",
            Engine::Siv(_) => "aes-256-siv",
        };
        f.debug_struct("CellCipher")
            .field("key_id", &self.key_id)
            .field("cipher", &cipher)
            .finish_non_exhaustive()
    }
}

impl CellCipher {
    /// A cipher for `key`.
    ///
    /// # Panics
    /// If the key material does not have the length of its cipher (32 bytes
    /// for GCM, 64 for SIV). Keys from [`TinkKey::from_keyset_json`] and from
    /// the job's key generation always do; use [`CellCipher::try_new`] for
    /// keys from anywhere else.
    pub fn new(key: &TinkKey) -> Self {
        match Self::try_new(key) {
            Ok(c) => c,
            Err(_) => panic!(
                "key material of key {} has the wrong length for {}",
                key.key_id,
                key.cipher.name()
            ),
        }
    }

    /// A cipher for `key`, checking the material length.
    ///
    /// # Errors
    /// `KeyFormat` if the material is not 32 (GCM) or 64 (SIV) bytes.
    pub fn try_new(key: &TinkKey) -> Result<Self> {
        let material = key.material.as_bytes();
        let bad_len = || {
            Error::new(ErrorKind::KeyFormat {
                message: alloc::format!(
                    "key {} holds {} bytes of key material; {} needs {}",
                    key.key_id,
                    material.len(),
                    key.cipher.name(),
                    key.cipher.key_len()
                ),
            })
        };
        let engine = match key.cipher {
            CipherKind::Aes256Gcm => Engine::Gcm(Box::new(
                Aes256Gcm::new(material).ok_or_else(bad_len)?,
            )),
            CipherKind::Aes256Siv => {
                let mut k = Zeroizing::new([0u8; 64]);
                if material.len() != k.len() {
                    return Err(bad_len());
                }
                k.copy_from_slice(material);
                Engine::Siv(k)
            }
        };
        Ok(CellCipher {
            key_id: key.key_id,
            prefix: output_prefix(key.key_id),
            engine,
        })
    }

    /// Makes this the cipher of `key`, reusing the allocation (a job
    /// re-keys its cached ciphers once per row when keys are many).
    ///
    /// # Panics
    /// As [`CellCipher::new`].
    pub fn rekey(&mut self, key: &TinkKey) {
        match (&mut self.engine, key.cipher) {
            (Engine::Gcm(gcm), CipherKind::Aes256Gcm) => match Aes256Gcm::new(key.material.as_bytes()) {
                Some(fresh) => {
                    **gcm = fresh;
                    self.key_id = key.key_id;
                    self.prefix = output_prefix(key.key_id);
                }
                None => *self = CellCipher::new(key),
            },
            _ => *self = CellCipher::new(key),
        }
    }

    /// The Tink key id of this cipher's key.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Encrypts `plaintext` and appends the standard padded Base64 of the
    /// Tink ciphertext (`0x01 ‖ key id ‖ nonce/SIV ‖ ciphertext ‖ tag`) to
    /// `out`. `nonce` is used by GCM only. `scratch` is reused working space.
    ///
    /// Allocates only when `scratch` or `out` must grow.
    ///
    /// # Security
    /// For GCM, `nonce` must never repeat under this key.
    pub fn seal_base64(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        nonce: &[u8; 12],
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        scratch.clear();
        self.seal(plaintext, aad, nonce, scratch);
        let Some(len) = base64::encoded_len(scratch.len(), true) else {
            return;
        };
        let start = out.len();
        out.resize(start + len, 0);
        // `out[start..]` has exactly the encoded length, so this cannot fail.
        if BASE64
            .encode_slice(scratch.as_slice(), &mut out[start..])
            .is_err()
        {
            out.truncate(start);
        }
    }

    /// Seals the cells of one row under this key and appends each one's raw
    /// Tink ciphertext (as [`Self::seal`] writes it) to `raw`, its range
    /// pushed to `spans`: cell `k` has plaintext `plaintext(k)`, associated
    /// data `aad(k)` and (GCM) nonce `nonces[k]`. For GCM the cells go
    /// through the block cipher together ([`crate::gcm`]), which is where a
    /// row of short cells saves most of its AES work in WebAssembly.
    ///
    /// # Security
    /// For GCM, no nonce may repeat under this key.
    pub(crate) fn seal_row<'a>(
        &self,
        nonces: &[[u8; 12]],
        plaintext: impl Fn(usize) -> &'a [u8],
        aad: impl Fn(usize) -> &'a [u8],
        cells: &mut Vec<crate::gcm::CellAt>,
        raw: &mut Vec<u8>,
        spans: &mut Vec<(usize, usize)>,
    ) -> Result<()> {
        raw.clear();
        spans.clear();
        match &self.engine {
            Engine::Gcm(gcm) => {
                cells.clear();
                for (k, nonce) in nonces.iter().enumerate() {
                    let start = raw.len();
                    raw.extend_from_slice(&self.prefix);
                    raw.extend_from_slice(nonce);
                    let at = raw.len();
                    let p = plaintext(k);
                    raw.extend_from_slice(p);
                    raw.extend_from_slice(&[0u8; TAG_LEN]);
                    cells.push(crate::gcm::CellAt { nonce: *nonce, at, len: p.len() });
                    spans.push((start, raw.len()));
                }
                // Only above GCM's 64 GiB limit, which no cell reaches.
                gcm.seal_cells(raw, cells, &aad).ok_or_else(Error::crypto)?;
            }
            Engine::Siv(_) => {
                for (k, nonce) in nonces.iter().enumerate() {
                    let start = raw.len();
                    raw.extend_from_slice(&self.prefix);
                    self.seal_body(&[aad(k)], plaintext(k), nonce, raw)?;
                    spans.push((start, raw.len()));
                }
            }
        }
        Ok(())
    }

    /// Appends the standard padded Base64 of `raw` to `out`.
    pub fn base64_into(raw: &[u8], out: &mut Vec<u8>) {
        let Some(len) = base64::encoded_len(raw.len(), true) else {
            return;
        };
        let start = out.len();
        out.resize(start + len, 0);
        // `out[start..]` has exactly the encoded length, so this cannot fail.
        if BASE64.encode_slice(raw, &mut out[start..]).is_err() {
            out.truncate(start);
        }
    }

    /// Encrypts `plaintext` and appends the raw Tink ciphertext, prefix
    /// included, to `out` (used to wrap keysets under a key-encryption key).
    ///
    /// The only failure the underlying AEADs report is a GCM plaintext above
    /// 2^36 − 32 bytes (64 GiB), which no cell or keyset reaches; `out` is
    /// then left as it was.
    ///
    /// # Security
    /// For GCM, `nonce` must never repeat under this key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8], nonce: &[u8; 12], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.prefix);
        if self.seal_body(&[aad], plaintext, nonce, out).is_err() {
            out.truncate(start);
        }
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` (GCM) or `SIV ‖ ciphertext` (SIV),
    /// encrypting in place in `out`.
    fn seal_body(
        &self,
        headers: &[&[u8]],
        plaintext: &[u8],
        nonce: &[u8; 12],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        match &self.engine {
            Engine::Gcm(gcm) => {
                let [aad] = headers else {
                    return Err(Error::crypto());
                };
                out.extend_from_slice(nonce);
                let body = out.len();
                out.extend_from_slice(plaintext);
                let tag = gcm.seal(nonce, aad, &mut out[body..]).ok_or_else(Error::crypto)?;
                out.extend_from_slice(&tag);
            }
            Engine::Siv(key) => {
                let mut siv =
                    Aes256Siv::new_from_slice(key.as_slice()).map_err(|_| Error::crypto())?;
                let siv_at = out.len();
                out.extend_from_slice(&[0u8; TAG_LEN]);
                let body = out.len();
                out.extend_from_slice(plaintext);
                let tag = siv
                    .encrypt_inout_detached(headers.iter(), (&mut out[body..]).into())
                    .map_err(|_| Error::crypto())?;
                out[siv_at..body].copy_from_slice(&tag);
            }
        }
        Ok(())
    }

    /// Opens `nonce ‖ ciphertext ‖ tag` (GCM) or `SIV ‖ ciphertext` (SIV).
    fn open_body(&self, headers: &[&[u8]], body: &[u8]) -> Result<Vec<u8>> {
        match &self.engine {
            Engine::Gcm(gcm) => {
                let [aad] = headers else {
                    return Err(Error::crypto());
                };
                if body.len() < GCM_NONCE_LEN + TAG_LEN {
                    return Err(Error::crypto());
                }
                let (nonce, rest) = body.split_at(GCM_NONCE_LEN);
                let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
                let nonce: &[u8; GCM_NONCE_LEN] = nonce.try_into().map_err(|_| Error::crypto())?;
                let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::crypto())?;
                let mut buf = ciphertext.to_vec();
                gcm.open(nonce, aad, &mut buf, tag).ok_or_else(Error::crypto)?;
                Ok(buf)
            }
            Engine::Siv(key) => {
                if body.len() < TAG_LEN {
                    return Err(Error::crypto());
                }
                let (tag, ciphertext) = body.split_at(TAG_LEN);
                let tag = <&Array<u8, _>>::try_from(tag).map_err(|_| Error::crypto())?;
                let mut siv =
                    Aes256Siv::new_from_slice(key.as_slice()).map_err(|_| Error::crypto())?;
                let mut buf = ciphertext.to_vec();
                siv.decrypt_inout_detached(headers.iter(), buf.as_mut_slice().into(), tag)
                    .map_err(|_| Error::crypto())?;
                Ok(buf)
            }
        }
    }

    /// Opens a Tink ciphertext (raw bytes, prefix included).
    ///
    /// # Errors
    /// `Crypto`, whatever the cause: wrong prefix byte, another key id, too
    /// short, wrong key, wrong associated data, or any modified bit.
    pub fn open(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        match ciphertext.split_at_checked(PREFIX_LEN) {
            Some((prefix, body)) if prefix == self.prefix => self.open_body(&[aad], body),
            _ => Err(Error::crypto()),
        }
    }

    /// Opens a Base64 cell.
    ///
    /// # Errors
    /// `Crypto` if the cell is not standard padded Base64, or as [`Self::open`].
    pub fn open_base64(&self, cell: &str, aad: &[u8]) -> Result<Vec<u8>> {
        let raw = BASE64
            .decode(cell.as_bytes())
            .map_err(|_| Error::crypto())?;
        self.open(&raw, aad)
    }

    /// Tink ciphertext body without the output prefix, for known-answer
    /// tests (Wycheproof): GCM `nonce ‖ ciphertext ‖ tag`, SIV `SIV ‖
    /// ciphertext`. Same code path as [`Self::seal`].
    #[doc(hidden)]
    pub fn seal_raw(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        nonce: &[u8; 12],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.seal_body(&[aad], plaintext, nonce, out)
    }

    /// Opens a body as written by [`Self::seal_raw`]. Same code path as
    /// [`Self::open`].
    ///
    /// # Errors
    /// `Crypto` on any failure.
    #[doc(hidden)]
    pub fn open_raw(&self, body: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.open_body(&[aad], body)
    }

    /// SIV with an explicit list of S2V headers (RFC 5297 vectors and the
    /// nonce-based AEAD-AES-SIV-CMAC Wycheproof set pass `[aad, nonce]`).
    /// GCM accepts exactly one header.
    #[doc(hidden)]
    pub fn seal_raw_headers(
        &self,
        headers: &[&[u8]],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.seal_body(headers, plaintext, &[0; 12], out)
    }

    /// Opens a body as written by [`Self::seal_raw_headers`].
    ///
    /// # Errors
    /// `Crypto` on any failure.
    #[doc(hidden)]
    pub fn open_raw_headers(&self, headers: &[&[u8]], body: &[u8]) -> Result<Vec<u8>> {
        self.open_body(headers, body)
    }
}

/// The Tink key id of a Base64 cell with the TINK prefix, if it has one.
///
/// Decodes only the first 8 Base64 characters (6 bytes), enough for the
/// 5-byte prefix; the rest of the cell is not validated.
pub fn key_id_of_cell(cell: &str) -> Option<u32> {
    let head = cell.as_bytes().get(..8)?;
    let mut buf = [0u8; 6];
    let n = BASE64.decode_slice(head, &mut buf).ok()?;
    if n < PREFIX_LEN || buf[0] != TINK_START_BYTE {
        return None;
    }
    Some(u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]))
}
