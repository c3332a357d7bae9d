//! Google Tink formats: JSON keysets holding `AesGcmKey` / `AesSivKey`, and
//! the TINK output prefix `0x01 ‖ key id (big-endian u32)`.
//!
//! # Design note
//! Tink keysets are protobuf messages; Tink's JSON keyset format is the proto3
//! JSON mapping of `google.crypto.tink.Keyset`, whose `keyData.value` is in
//! turn the Base64 of a serialized key proto. The handful of messages we need
//! are tiny, so they are encoded and decoded by hand here (no protobuf crate
//! in a `no_std` wasm build):
//!
//! ```text
//! AesGcmKey   { uint32 version = 1; bytes key_value = 3; }
//! AesSivKey   { uint32 version = 1; bytes key_value = 2; }
//! KeyData     { string type_url = 1; bytes value = 2; KeyMaterialType key_material_type = 3; }
//! Keyset.Key  { KeyData key_data = 1; KeyStatusType status = 2; uint32 key_id = 3;
//!               OutputPrefixType output_prefix_type = 4; }
//! Keyset      { uint32 primary_key_id = 1; repeated Key key = 2; }
//! ```
//! (from `proto/aes_gcm.proto`, `aes_siv.proto` and `tink.proto` of
//! github.com/tink-crypto/tink). Decoding follows protobuf rules: unknown
//! fields are skipped, a repeated scalar field keeps its last value.
//!
//! # Security
//! Key material only ever lives in [`KeyMaterial`] (zeroed on drop, redacted
//! in `Debug`) or in `Zeroizing` buffers while being (de)serialised. Errors
//! name the key's position and what is wrong with it, never its bytes.
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::cipher::CellCipher;
use crate::config::CipherKind;
use crate::error::{Error, ErrorKind, Result};

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

/// First byte of the TINK output prefix.
pub(crate) const TINK_START_BYTE: u8 = 0x01;

const TYPE_URL_AES_GCM: &str = "type.googleapis.com/google.crypto.tink.AesGcmKey";
const TYPE_URL_AES_SIV: &str = "type.googleapis.com/google.crypto.tink.AesSivKey";

// Enum values of tink.proto.
const STATUS_ENABLED: u64 = 1;
const PREFIX_TINK: u64 = 1;
const KEY_MATERIAL_SYMMETRIC: u64 = 2;

impl TinkKey {
    /// The TINK output prefix of this key: `0x01 ‖ key id (big-endian)`.
    pub fn output_prefix(&self) -> [u8; PREFIX_LEN] {
        output_prefix(self.key_id)
    }

    fn type_url(&self) -> &'static str {
        match self.cipher {
            CipherKind::Aes256Gcm => TYPE_URL_AES_GCM,
            CipherKind::Aes256Siv => TYPE_URL_AES_SIV,
        }
    }

    /// The serialized `AesGcmKey` / `AesSivKey` proto (version 0 is the
    /// proto3 default and therefore omitted).
    fn key_proto(&self) -> Zeroizing<Vec<u8>> {
        let field = match self.cipher {
            CipherKind::Aes256Gcm => 3,
            CipherKind::Aes256Siv => 2,
        };
        let mut out = Zeroizing::new(Vec::with_capacity(self.material.as_bytes().len() + 4));
        put_bytes_field(&mut out, field, self.material.as_bytes());
        out
    }

    /// The binary `Keyset` proto holding this one key as primary.
    fn keyset_proto(&self) -> Zeroizing<Vec<u8>> {
        let key_proto = self.key_proto();
        let mut key_data = Zeroizing::new(Vec::with_capacity(key_proto.len() + 64));
        put_bytes_field(&mut key_data, 1, self.type_url().as_bytes());
        put_bytes_field(&mut key_data, 2, &key_proto);
        put_varint_field(&mut key_data, 3, KEY_MATERIAL_SYMMETRIC);

        let mut key = Zeroizing::new(Vec::with_capacity(key_data.len() + 16));
        put_bytes_field(&mut key, 1, &key_data);
        put_varint_field(&mut key, 2, STATUS_ENABLED);
        put_varint_field(&mut key, 3, u64::from(self.key_id));
        put_varint_field(&mut key, 4, PREFIX_TINK);

        let mut keyset = Zeroizing::new(Vec::with_capacity(key.len() + 16));
        put_varint_field(&mut keyset, 1, u64::from(self.key_id));
        put_bytes_field(&mut keyset, 2, &key);
        keyset
    }

    /// A Tink JSON keyset holding this one key (`primaryKeyId` = `keyId`,
    /// status ENABLED, output prefix TINK).
    ///
    /// The output is exactly what Tink's `JsonKeysetWriter` /
    /// `json_proto_keyset_format` writes, compact, in this key order:
    /// `{"primaryKeyId":..,"key":[{"keyData":{"typeUrl":..,"value":..,
    /// "keyMaterialType":"SYMMETRIC"},"status":"ENABLED","keyId":..,
    /// "outputPrefixType":"TINK"}]}`.
    ///
    /// # Security
    /// The result holds the key in the clear (Base64): it is the keys output.
    pub fn to_keyset_json(&self) -> String {
        let value = Zeroizing::new(BASE64.encode(self.key_proto().as_slice()));
        format!(
            concat!(
                r#"{{"primaryKeyId":{id},"key":[{{"keyData":{{"typeUrl":"{url}","value":"{value}","#,
                r#""keyMaterialType":"SYMMETRIC"}},"status":"ENABLED","keyId":{id},"outputPrefixType":"TINK"}}]}}"#
            ),
            id = self.key_id,
            url = self.type_url(),
            value = value.as_str(),
        )
    }

    /// Every enabled AES-GCM / AES-SIV key with TINK prefix of a Tink JSON
    /// keyset.
    ///
    /// Field names are accepted as Tink writes them (`primaryKeyId`,
    /// `keyData`, ...) and in the proto's snake_case; enums as names or
    /// numbers. Keys that are not enabled, not TINK-prefixed, or of another
    /// key type are skipped.
    ///
    /// # Errors
    /// `KeyFormat` naming what is wrong (never echoing key bytes): invalid
    /// JSON, a missing or mistyped field, an `AesGcmKey` that is not 32 bytes
    /// (AES-256 only), an `AesSivKey` that is not 64 bytes, or no usable key.
    pub fn from_keyset_json(json: &str) -> Result<Vec<TinkKey>> {
        let root: Value = serde_json::from_str(json).map_err(|e| {
            key_format(format!(
                "keyset is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let root = root
            .as_object()
            .ok_or_else(|| key_format("keyset is not a JSON object".into()))?;
        let keys = field(root, "key", "key")
            .ok_or_else(|| key_format("keyset has no `key` list".into()))?
            .as_array()
            .ok_or_else(|| key_format("keyset `key` is not a list".into()))?;

        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let at = |what: &str| format!("key[{i}]{what}");
            let key = key
                .as_object()
                .ok_or_else(|| key_format(format!("{} is not an object", at(""))))?;
            let status = enum_field(key, "status", "status", &at(".status"), enum_status)?;
            let prefix = enum_field(
                key,
                "outputPrefixType",
                "output_prefix_type",
                &at(".outputPrefixType"),
                enum_prefix,
            )?;
            let key_id = json_key_id(field(key, "keyId", "key_id"), &at(".keyId"))?;
            let data = field(key, "keyData", "key_data")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    key_format(format!("{} is missing or not an object", at(".keyData")))
                })?;
            let type_url = field(data, "typeUrl", "type_url")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    key_format(format!(
                        "{} is missing or not a string",
                        at(".keyData.typeUrl")
                    ))
                })?;
            let value_b64 = field(data, "value", "value")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    key_format(format!(
                        "{} is missing or not a string",
                        at(".keyData.value")
                    ))
                })?;
            if status != STATUS_ENABLED || prefix != PREFIX_TINK {
                continue;
            }
            let Some(cipher) = cipher_of_type_url(type_url) else {
                continue;
            };
            let value = Zeroizing::new(BASE64.decode(value_b64).map_err(|_| {
                key_format(format!("{} is not valid Base64", at(".keyData.value")))
            })?);
            out.push(key_from_proto(cipher, key_id, &value, &at(""))?);
        }
        if out.is_empty() {
            return Err(no_usable_key());
        }
        Ok(out)
    }

    /// Tink's JSON `EncryptedKeyset` holding this one key, encrypted under
    /// `kek` with empty associated data, as Tink's
    /// `KeysetHandle.write(writer, masterKeyAead)` produces and
    /// `keyset_handle.read(reader, master_key_aead)` reads:
    /// `{"encryptedKeyset":"<base64>","keysetInfo":{"primaryKeyId":..,
    /// "keyInfo":[{"typeUrl":..,"status":"ENABLED","keyId":..,"outputPrefixType":"TINK"}]}}`.
    ///
    /// # Security
    /// `kek` must be an AES-256-GCM key for Tink to read the result (Tink
    /// wraps keysets with an `Aead`; AES-SIV is a deterministic AEAD), and
    /// `nonce` must never repeat under `kek` (draw it from the job's CSPRNG).
    pub fn encrypted_keyset_json(&self, kek: &CellCipher, nonce: &[u8; 12]) -> String {
        let keyset = self.keyset_proto();
        let mut sealed = Vec::with_capacity(keyset.len() + PREFIX_LEN + 12 + 16);
        kek.seal(&keyset, &[], nonce, &mut sealed);
        format!(
            concat!(
                r#"{{"encryptedKeyset":"{enc}","keysetInfo":{{"primaryKeyId":{id},"keyInfo":[{{"#,
                r#""typeUrl":"{url}","status":"ENABLED","keyId":{id},"outputPrefixType":"TINK"}}]}}}}"#
            ),
            enc = BASE64.encode(&sealed),
            id = self.key_id,
            url = self.type_url(),
        )
    }

    /// Every enabled AES-GCM / AES-SIV key with TINK prefix of a Tink JSON
    /// `EncryptedKeyset`, decrypted with `kek` (empty associated data).
    /// `keysetInfo` is informational in Tink and is not consulted.
    ///
    /// # Errors
    /// `KeyFormat` when the JSON or the decrypted keyset is malformed;
    /// `Crypto` (opaque) when the keyset does not decrypt under `kek`.
    pub fn from_encrypted_keyset_json(json: &str, kek: &CellCipher) -> Result<Vec<TinkKey>> {
        let root: Value = serde_json::from_str(json).map_err(|e| {
            key_format(format!(
                "encrypted keyset is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let enc_b64 = root
            .as_object()
            .and_then(|o| field(o, "encryptedKeyset", "encrypted_keyset"))
            .and_then(Value::as_str)
            .ok_or_else(|| key_format("encrypted keyset has no `encryptedKeyset` string".into()))?;
        let sealed = BASE64
            .decode(enc_b64)
            .map_err(|_| key_format("`encryptedKeyset` is not valid Base64".into()))?;
        let keyset = Zeroizing::new(kek.open(&sealed, &[])?);
        keys_from_keyset_proto(&keyset)
    }
}

/// `0x01 ‖ key id (big-endian)`.
pub(crate) fn output_prefix(key_id: u32) -> [u8; PREFIX_LEN] {
    let id = key_id.to_be_bytes();
    [TINK_START_BYTE, id[0], id[1], id[2], id[3]]
}

fn key_format(message: String) -> Error {
    Error::new(ErrorKind::KeyFormat { message })
}

fn no_usable_key() -> Error {
    key_format("keyset holds no enabled AesGcmKey or AesSivKey with output prefix TINK".to_string())
}

fn cipher_of_type_url(type_url: &str) -> Option<CipherKind> {
    match type_url {
        TYPE_URL_AES_GCM => Some(CipherKind::Aes256Gcm),
        TYPE_URL_AES_SIV => Some(CipherKind::Aes256Siv),
        _ => None,
    }
}

/// A field under Tink's camelCase name or the proto's snake_case name (the
/// proto3 JSON mapping accepts both).
fn field<'a>(o: &'a serde_json::Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| o.get(snake))
}

fn enum_status(name: &str) -> Option<u64> {
    match name {
        "UNKNOWN_STATUS" => Some(0),
        "ENABLED" => Some(1),
        "DISABLED" => Some(2),
        "DESTROYED" => Some(3),
        _ => None,
    }
}

fn enum_prefix(name: &str) -> Option<u64> {
    match name {
        "UNKNOWN_PREFIX" => Some(0),
        "TINK" => Some(1),
        "LEGACY" => Some(2),
        "RAW" => Some(3),
        "CRUNCHY" => Some(4),
        _ => None,
    }
}

/// An enum field given by name or number (proto3 JSON allows both).
fn enum_field(
    o: &serde_json::Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
    by_name: fn(&str) -> Option<u64>,
) -> Result<u64> {
    match field(o, camel, snake) {
        Some(Value::String(s)) => {
            by_name(s).ok_or_else(|| key_format(format!("{path} has an unknown value")))
        }
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| key_format(format!("{path} is not a valid enum number"))),
        Some(_) => Err(key_format(format!("{path} is not a string"))),
        None => Err(key_format(format!("{path} is missing"))),
    }
}

/// A `uint32` key id: a JSON number, or a decimal string (proto3 JSON). Tink
/// Java before 1.3 wrote ids above 2^31 as negative `int`s; those are read
/// back as the same 32 bits.
fn json_key_id(v: Option<&Value>, path: &str) -> Result<u32> {
    let n: Option<i64> = match v {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
        None => return Err(key_format(format!("{path} is missing"))),
    };
    let id = match n {
        Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => n as u32,
        Some(n) if (i64::from(i32::MIN)..0).contains(&n) => (n as i32) as u32,
        _ => {
            return Err(key_format(format!(
                "{path} is not a 32-bit unsigned integer"
            )));
        }
    };
    if id == 0 {
        return Err(key_format(format!("{path} is 0; key ids must be non-zero")));
    }
    Ok(id)
}

/// A key from its serialized `AesGcmKey` / `AesSivKey` proto.
fn key_from_proto(cipher: CipherKind, key_id: u32, proto: &[u8], at: &str) -> Result<TinkKey> {
    let key_field = match cipher {
        CipherKind::Aes256Gcm => 3,
        CipherKind::Aes256Siv => 2,
    };
    let type_name = match cipher {
        CipherKind::Aes256Gcm => "AesGcmKey",
        CipherKind::Aes256Siv => "AesSivKey",
    };
    let malformed = || key_format(format!("{at}: the {type_name} proto is malformed"));
    let mut version = 0u64;
    let mut material: Option<&[u8]> = None;
    let mut reader = ProtoReader::new(proto);
    while let Some(f) = reader.next_field().map_err(|()| malformed())? {
        match (f.number, f.value) {
            (1, FieldValue::Varint(v)) => version = v,
            (n, FieldValue::Bytes(b)) if n == key_field => material = Some(b),
            (1, _) => return Err(malformed()),
            (n, _) if n == key_field => return Err(malformed()),
            _ => {}
        }
    }
    if version != 0 {
        return Err(key_format(format!(
            "{at}: {type_name} version {version} is not supported (only 0)"
        )));
    }
    let material =
        material.ok_or_else(|| key_format(format!("{at}: the {type_name} has no key value")))?;
    if material.len() != cipher.key_len() {
        let message = match cipher {
            CipherKind::Aes256Gcm => format!(
                "{at}: AesGcmKey is {} bytes; only AES-256 (32-byte keys) is supported",
                material.len()
            ),
            CipherKind::Aes256Siv => format!(
                "{at}: AesSivKey is {} bytes; only AES-256-SIV (64-byte keys) is supported",
                material.len()
            ),
        };
        return Err(key_format(message));
    }
    Ok(TinkKey {
        key_id,
        cipher,
        material: KeyMaterial::new(material.to_vec()),
    })
}

/// Every usable key of a binary `Keyset` proto.
fn keys_from_keyset_proto(keyset: &[u8]) -> Result<Vec<TinkKey>> {
    let malformed = |what: &str| key_format(format!("the decrypted keyset is malformed ({what})"));
    let mut out = Vec::new();
    let mut reader = ProtoReader::new(keyset);
    let mut index = 0usize;
    while let Some(f) = reader.next_field().map_err(|()| malformed("Keyset"))? {
        let (2, FieldValue::Bytes(key)) = (f.number, f.value) else {
            continue;
        };
        let at = format!("key[{index}]");
        index += 1;
        let mut key_data: &[u8] = &[];
        let (mut status, mut key_id, mut prefix) = (0u64, 0u64, 0u64);
        let mut r = ProtoReader::new(key);
        while let Some(f) = r.next_field().map_err(|()| malformed("Keyset.Key"))? {
            match (f.number, f.value) {
                (1, FieldValue::Bytes(b)) => key_data = b,
                (2, FieldValue::Varint(v)) => status = v,
                (3, FieldValue::Varint(v)) => key_id = v,
                (4, FieldValue::Varint(v)) => prefix = v,
                (1..=4, _) => return Err(malformed("Keyset.Key")),
                _ => {}
            }
        }
        let mut type_url: &[u8] = &[];
        let mut value: &[u8] = &[];
        let mut r = ProtoReader::new(key_data);
        while let Some(f) = r.next_field().map_err(|()| malformed("KeyData"))? {
            match (f.number, f.value) {
                (1, FieldValue::Bytes(b)) => type_url = b,
                (2, FieldValue::Bytes(b)) => value = b,
                (3, FieldValue::Varint(_)) => {}
                (1..=3, _) => return Err(malformed("KeyData")),
                _ => {}
            }
        }
        if status != STATUS_ENABLED || prefix != PREFIX_TINK {
            continue;
        }
        let Some(cipher) = core::str::from_utf8(type_url)
            .ok()
            .and_then(cipher_of_type_url)
        else {
            continue;
        };
        // uint32 on the wire; anything wider is a malformed keyset.
        let key_id = u32::try_from(key_id)
            .ok()
            .filter(|&id| id != 0)
            .ok_or_else(|| {
                key_format(format!(
                    "{at}.keyId is not a non-zero 32-bit unsigned integer"
                ))
            })?;
        out.push(key_from_proto(cipher, key_id, value, &at)?);
    }
    if out.is_empty() {
        return Err(no_usable_key());
    }
    Ok(out)
}

// --- A minimal protobuf wire-format writer and reader. ---

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    // proto3 omits scalar fields holding their default.
    if v != 0 {
        put_varint(out, u64::from(number) << 3);
        put_varint(out, v);
    }
}

fn put_bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

enum FieldValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed 32/64-bit fields: never used by the messages we read, skipped.
    Fixed,
}

struct ProtoField<'a> {
    number: u64,
    value: FieldValue<'a>,
}

/// Walks the fields of one message. Every length is checked against the
/// remaining input, so any byte string is safe to feed it.
struct ProtoReader<'a> {
    rest: &'a [u8],
}

impl<'a> ProtoReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        ProtoReader { rest: bytes }
    }

    fn varint(&mut self) -> core::result::Result<u64, ()> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.rest.split_first().ok_or(())?;
            self.rest = rest;
            // The 10th byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(())
    }

    fn take(&mut self, n: u64) -> core::result::Result<&'a [u8], ()> {
        let n = usize::try_from(n).map_err(|_| ())?;
        if n > self.rest.len() {
            return Err(());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> core::result::Result<Option<ProtoField<'a>>, ()> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 {
            return Err(());
        }
        let value = match tag & 7 {
            0 => FieldValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                FieldValue::Fixed
            }
            2 => {
                let len = self.varint()?;
                FieldValue::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                FieldValue::Fixed
            }
            // Groups (3, 4) are deprecated and not in Tink's protos.
            _ => return Err(()),
        };
        Ok(Some(ProtoField { number, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(ProtoReader::new(&buf).varint(), Ok(v));
        }
    }

    #[test]
    fn reader_rejects_truncated_and_overlong_input() {
        // Length 5, only 2 bytes follow.
        assert!(ProtoReader::new(&[0x12, 0x05, 1, 2]).next_field().is_err());
        // An 11-byte varint.
        let long = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(ProtoReader::new(&long).next_field().is_err());
        // Field number 0.
        assert!(ProtoReader::new(&[0x00, 0x00]).next_field().is_err());
    }

    #[test]
    fn key_proto_layout() {
        let gcm = TinkKey {
            key_id: 7,
            cipher: CipherKind::Aes256Gcm,
            material: KeyMaterial::new(vec![0xaa; 32]),
        };
        let p = gcm.key_proto();
        assert_eq!(&p[..2], &[0x1a, 0x20]);
        assert_eq!(p.len(), 34);
        let siv = TinkKey {
            key_id: 7,
            cipher: CipherKind::Aes256Siv,
            material: KeyMaterial::new(vec![0xbb; 64]),
        };
        let p = siv.key_proto();
        assert_eq!(&p[..2], &[0x12, 0x40]);
        assert_eq!(p.len(), 66);
    }

    #[test]
    fn keyset_proto_round_trip_and_unknown_fields() {
        let key = TinkKey {
            key_id: 0xdead_beef,
            cipher: CipherKind::Aes256Siv,
            material: KeyMaterial::new(vec![3; 64]),
        };
        let mut proto = key.keyset_proto().to_vec();
        // An unknown varint field and an unknown fixed64 field are skipped.
        proto.extend_from_slice(&[0x48, 0x05, 0x51, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(keys_from_keyset_proto(&proto).unwrap(), vec![key]);
    }

    #[test]
    fn key_proto_with_explicit_version_zero_is_accepted() {
        let mut proto = vec![0x08, 0x00, 0x1a, 0x20];
        proto.extend_from_slice(&[9; 32]);
        let k = key_from_proto(CipherKind::Aes256Gcm, 1, &proto, "key[0]").unwrap();
        assert_eq!(k.material.as_bytes(), &[9; 32]);
        proto[1] = 1;
        assert!(key_from_proto(CipherKind::Aes256Gcm, 1, &proto, "key[0]").is_err());
    }
}
