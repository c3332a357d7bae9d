//! Known-answer vectors and negative tests for the Tink formats, the cell
//! ciphers and the masking hashes. Sources are cited at each vector.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use keylink_core::ErrorKind;
use keylink_core::cipher::{CellCipher, key_id_of_cell};
use keylink_core::config::CipherKind;
use keylink_core::mask::{hmac_sha256_hex, murmur3_hex};
use keylink_core::tink::{KeyMaterial, PREFIX_LEN, TinkKey};

/// SPEC section 9: STRM's published AES-SIV keyset.
const STRM_SIV_KEYSET: &str = r#"{"primaryKeyId":714921229,"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.AesSivKey","value":"EkBKGzBuy9C3UUmWaOzpe7NBEg6QK21FRhZ9MjuD5hpa0+hPJy0kn1HngA9QUT5aGbTNQQyow0V6qJCFoFRQNNTH","keyMaterialType":"SYMMETRIC"},"status":"ENABLED","keyId":714921229,"outputPrefixType":"TINK"}]}"#;

fn strm_siv_key() -> TinkKey {
    let mut keys = TinkKey::from_keyset_json(STRM_SIV_KEYSET).expect("SPEC keyset parses");
    assert_eq!(keys.len(), 1);
    keys.remove(0)
}

fn gcm_key(id: u32, byte: u8) -> TinkKey {
    TinkKey {
        key_id: id,
        cipher: CipherKind::Aes256Gcm,
        material: KeyMaterial::new(vec![byte; 32]),
    }
}

fn siv_key(id: u32, byte: u8) -> TinkKey {
    TinkKey {
        key_id: id,
        cipher: CipherKind::Aes256Siv,
        material: KeyMaterial::new(vec![byte; 64]),
    }
}

fn seal_cell(c: &CellCipher, pt: &[u8], aad: &[u8], nonce: [u8; 12]) -> String {
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    c.seal_base64(pt, aad, &nonce, &mut scratch, &mut out);
    String::from_utf8(out).unwrap()
}

fn kind<T: std::fmt::Debug>(r: keylink_core::error::Result<T>) -> ErrorKind {
    r.expect_err("must fail").into_kind()
}

// ---------------------------------------------------------------- SPEC 9 ---

#[test]
fn spec9_aes_siv_strm_vector_encrypts() {
    let key = strm_siv_key();
    assert_eq!(key.key_id, 714_921_229);
    assert_eq!(key.cipher, CipherKind::Aes256Siv);
    let c = CellCipher::new(&key);
    // Associated data `none` is Tink's empty associated data.
    assert_eq!(
        seal_cell(&c, b"17850", b"", [0; 12]),
        "ASqc1Q0QalDEN+LHeyZSfGHE+s9Lqu4o+jM="
    );
}

#[test]
fn spec9_aes_siv_strm_vector_decrypts() {
    let c = CellCipher::new(&strm_siv_key());
    assert_eq!(
        c.open_base64("ASqc1Q0QalDEN+LHeyZSfGHE+s9Lqu4o+jM=", b"")
            .unwrap(),
        b"17850"
    );
    assert_eq!(
        key_id_of_cell("ASqc1Q0QalDEN+LHeyZSfGHE+s9Lqu4o+jM="),
        Some(714_921_229)
    );
}

#[test]
fn spec9_keyset_reserialises_exactly() {
    assert_eq!(strm_siv_key().to_keyset_json(), STRM_SIV_KEYSET);
}

/// SPEC section 9, STRM's murmur3 masking with seed `hi-there`.
fn murmur(value: &str) -> String {
    let mut s = String::new();
    murmur3_hex(b"hi-there", value.as_bytes(), &mut s);
    s
}

#[test]
fn spec9_murmur3_unique_5() {
    assert_eq!(murmur("unique-5"), "1083e8169d7138e990cc30095578452");
}

#[test]
fn spec9_murmur3_session_273() {
    assert_eq!(murmur("session-273"), "7cc66d130664caa9efacda1026c1c44");
}

#[test]
fn spec9_murmur3_sensitive_0() {
    assert_eq!(murmur("sensitive-0"), "e49bd309eed4a5094437a71ac2bc1cad");
}

#[test]
fn spec9_murmur3_not_sensitive_6() {
    assert_eq!(
        murmur("not-sensitive-6"),
        "538ad30b2aa2781e855c4eb059cf68a3"
    );
}

#[test]
fn masking_appends() {
    let mut s = String::from("x");
    murmur3_hex(b"hi-there", b"unique-5", &mut s);
    hmac_sha256_hex(b"k", b"v", &mut s);
    assert!(s.starts_with("x1083e8169d7138e990cc30095578452"));
    assert_eq!(s.len(), 1 + 31 + 64);
}

// ----------------------------------------------------------- HMAC-SHA256 ---

#[test]
fn hmac_sha256_rfc4231_test_case_2() {
    // RFC 4231 section 4.3, test case 2.
    let mut s = String::new();
    hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?", &mut s);
    assert_eq!(
        s,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn hmac_sha256_rfc4231_test_case_6_long_key() {
    // RFC 4231 section 4.7, test case 6: a key longer than the block size.
    let mut s = String::new();
    hmac_sha256_hex(
        &[0xaa; 131],
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        &mut s,
    );
    assert_eq!(
        s,
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

// ---------------------------------------------------------- keyset JSON ---

#[test]
fn keyset_json_round_trip_gcm() {
    let key = TinkKey {
        key_id: 0xfedc_ba98,
        cipher: CipherKind::Aes256Gcm,
        material: KeyMaterial::new((0u8..32).collect()),
    };
    let json = key.to_keyset_json();
    // AesGcmKey proto: field 3 (key_value), length 32.
    let value = BASE64.encode([&[0x1a, 0x20][..], key.material.as_bytes()].concat());
    assert_eq!(
        json,
        format!(
            r#"{{"primaryKeyId":4275878552,"key":[{{"keyData":{{"typeUrl":"type.googleapis.com/google.crypto.tink.AesGcmKey","value":"{value}","keyMaterialType":"SYMMETRIC"}},"status":"ENABLED","keyId":4275878552,"outputPrefixType":"TINK"}}]}}"#
        )
    );
    assert_eq!(TinkKey::from_keyset_json(&json).unwrap(), vec![key]);
}

#[test]
fn keyset_json_round_trip_siv() {
    let key = TinkKey {
        key_id: 1,
        cipher: CipherKind::Aes256Siv,
        material: KeyMaterial::new((0u8..64).collect()),
    };
    let json = key.to_keyset_json();
    assert!(json.contains("google.crypto.tink.AesSivKey"));
    assert_eq!(TinkKey::from_keyset_json(&json).unwrap(), vec![key]);
}

#[test]
fn keyset_json_accepts_snake_case_and_enum_numbers_and_string_ids() {
    let json = r#"{"primary_key_id":714921229,"key":[{"key_data":{"type_url":"type.googleapis.com/google.crypto.tink.AesSivKey","value":"EkBKGzBuy9C3UUmWaOzpe7NBEg6QK21FRhZ9MjuD5hpa0+hPJy0kn1HngA9QUT5aGbTNQQyow0V6qJCFoFRQNNTH","key_material_type":2},"status":1,"key_id":"714921229","output_prefix_type":1}]}"#;
    assert_eq!(
        TinkKey::from_keyset_json(json).unwrap(),
        vec![strm_siv_key()]
    );
}

#[test]
fn keyset_json_multiple_keys_skips_disabled_raw_and_other_types() {
    let a = gcm_key(11, 1);
    let b = siv_key(22, 2);
    let entry = |k: &TinkKey| {
        let j = k.to_keyset_json();
        let start = j.find("[").unwrap() + 1;
        j[start..j.len() - 2].to_string()
    };
    let disabled = entry(&gcm_key(33, 3)).replace("ENABLED", "DISABLED");
    let raw = entry(&gcm_key(44, 4)).replace("\"TINK\"", "\"RAW\"");
    let hmac = r#"{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.HmacKey","value":"AAAA","keyMaterialType":"SYMMETRIC"},"status":"ENABLED","keyId":55,"outputPrefixType":"TINK"}"#;
    let json = format!(
        r#"{{"primaryKeyId":11,"key":[{},{disabled},{raw},{hmac},{}]}}"#,
        entry(&a),
        entry(&b)
    );
    assert_eq!(TinkKey::from_keyset_json(&json).unwrap(), vec![a, b]);
}

fn key_format_message(json: &str) -> String {
    match kind(TinkKey::from_keyset_json(json)) {
        ErrorKind::KeyFormat { message } => message,
        other => panic!("expected KeyFormat, got {other:?}"),
    }
}

#[test]
fn keyset_json_rejects_aes128_gcm_naming_aes256_only() {
    let material = [0x5au8; 16];
    let value = BASE64.encode([&[0x1a, 0x10][..], &material].concat());
    let json = format!(
        r#"{{"primaryKeyId":9,"key":[{{"keyData":{{"typeUrl":"type.googleapis.com/google.crypto.tink.AesGcmKey","value":"{value}","keyMaterialType":"SYMMETRIC"}},"status":"ENABLED","keyId":9,"outputPrefixType":"TINK"}}]}}"#
    );
    let msg = key_format_message(&json);
    assert!(msg.contains("AES-256"), "{msg}");
    assert!(
        !msg.contains(&value) && !msg.to_lowercase().contains("5a5a5a"),
        "{msg}"
    );
}

#[test]
fn keyset_json_errors_name_the_problem() {
    assert!(key_format_message("{").contains("not valid JSON"));
    assert!(key_format_message("[]").contains("not a JSON object"));
    assert!(key_format_message(r#"{"primaryKeyId":1}"#).contains("`key`"));
    let no_keys = r#"{"primaryKeyId":1,"key":[]}"#;
    assert!(key_format_message(no_keys).contains("no enabled"));
    let bad_b64 = STRM_SIV_KEYSET.replace("EkBKGzBuy9", "EkBKGzBuy!");
    let msg = key_format_message(&bad_b64);
    assert!(
        msg.contains("key[0].keyData.value") && msg.contains("Base64"),
        "{msg}"
    );
    assert!(!msg.contains("EkBKGzBuy"), "{msg}");
    let zero_id = STRM_SIV_KEYSET.replace("\"keyId\":714921229", "\"keyId\":0");
    assert!(key_format_message(&zero_id).contains("keyId"));
    // A truncated AesSivKey proto (length says 64, 63 follow).
    let short = BASE64.encode([&[0x12, 0x40][..], &[1u8; 63]].concat());
    let truncated = STRM_SIV_KEYSET.replace(
        "EkBKGzBuy9C3UUmWaOzpe7NBEg6QK21FRhZ9MjuD5hpa0+hPJy0kn1HngA9QUT5aGbTNQQyow0V6qJCFoFRQNNTH",
        &short,
    );
    assert!(key_format_message(&truncated).contains("malformed"));
    // A 32-byte AesSivKey (AES-128-SIV) is refused.
    let short_siv = BASE64.encode([&[0x12, 0x20][..], &[1u8; 32]].concat());
    let msg = key_format_message(&STRM_SIV_KEYSET.replace(
        "EkBKGzBuy9C3UUmWaOzpe7NBEg6QK21FRhZ9MjuD5hpa0+hPJy0kn1HngA9QUT5aGbTNQQyow0V6qJCFoFRQNNTH",
        &short_siv,
    ));
    assert!(msg.contains("64"), "{msg}");
}

#[test]
fn keyset_json_never_panics_on_garbage() {
    let inputs = [
        "",
        "null",
        "1",
        "\"x\"",
        "{\"key\":null}",
        "{\"key\":[1]}",
        "{\"key\":[{}]}",
        "{\"key\":[{\"status\":\"ENABLED\",\"outputPrefixType\":\"TINK\",\"keyId\":-1}]}",
        "{\"key\":[{\"status\":\"ENABLED\",\"outputPrefixType\":\"TINK\",\"keyId\":99999999999}]}",
        "{\"key\":[{\"status\":7,\"outputPrefixType\":\"TINK\",\"keyId\":1,\"keyData\":{}}]}",
    ];
    for input in inputs {
        assert!(
            matches!(
                kind(TinkKey::from_keyset_json(input)),
                ErrorKind::KeyFormat { .. }
            ),
            "{input}"
        );
    }
}

// ---------------------------------------------------- encrypted keysets ---

#[test]
fn encrypted_keyset_round_trip() {
    let kek_key = gcm_key(0x0102_0304, 0x42);
    let kek = CellCipher::new(&kek_key);
    for key in [gcm_key(77, 7), siv_key(88, 8)] {
        let json = key.encrypted_keyset_json(&kek, &[9; 12]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let info = &v["keysetInfo"];
        assert_eq!(info["primaryKeyId"], key.key_id);
        assert_eq!(info["keyInfo"][0]["keyId"], key.key_id);
        assert_eq!(info["keyInfo"][0]["status"], "ENABLED");
        // Wrapped with the KEK as a Tink AEAD: the KEK's TINK prefix first.
        let sealed = BASE64
            .decode(v["encryptedKeyset"].as_str().unwrap())
            .unwrap();
        assert_eq!(&sealed[..PREFIX_LEN], &[1, 1, 2, 3, 4]);
        // The key material is not in the clear anywhere.
        let material_b64 = BASE64.encode(key.material.as_bytes());
        assert!(!json.contains(&material_b64[..20]));
        assert_eq!(
            TinkKey::from_encrypted_keyset_json(&json, &kek).unwrap(),
            vec![key]
        );
    }
}

/// Written by Google Tink for Python 1.16.1
/// (`tink.json_proto_keyset_format.serialize_encrypted(handle, kek, b"")`,
/// pretty-printed as Tink writes it): an `AesSivKey` (id 12345, material
/// bytes 100..164) wrapped under the `AesGcmKey` KEK below (id 777, 32 bytes
/// of 0x09).
const TINK_PY_ENCRYPTED_KEYSET: &str = r#"{
  "encryptedKeyset": "AQAAAwmMe40a18DGLfMUWW+g5Ph+eM4AQDPjgdNar2TdHisvTajh7JCKWX1YEDJQkdj+kPvdDD5LGcC2jE91Zn0a7pMt/08i2bwsakOGX9toiAY4+gKqcFEt6LDVReiMXwN4ja1QvNHc+tQVdjcRwlE+psTk3f4J7Wt6wRdwGiMuKL8XMsTsvghD0Ts7QIX1uTnbNsLDzigU4pPIoL9zfJp8fDS9mCUf",
  "keysetInfo": {
    "primaryKeyId": 12345,
    "keyInfo": [
      {
        "typeUrl": "type.googleapis.com/google.crypto.tink.AesSivKey",
        "status": "ENABLED",
        "keyId": 12345,
        "outputPrefixType": "TINK"
      }
    ]
  }
}"#;

#[test]
fn reads_encrypted_keyset_written_by_tink_python() {
    let kek = TinkKey {
        key_id: 777,
        cipher: CipherKind::Aes256Gcm,
        material: KeyMaterial::new(vec![9; 32]),
    };
    assert_eq!(
        kek.to_keyset_json(),
        r#"{"primaryKeyId":777,"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.AesGcmKey","value":"GiAJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQ==","keyMaterialType":"SYMMETRIC"},"status":"ENABLED","keyId":777,"outputPrefixType":"TINK"}]}"#
    );
    let keys =
        TinkKey::from_encrypted_keyset_json(TINK_PY_ENCRYPTED_KEYSET, &CellCipher::new(&kek))
            .unwrap();
    let expected = TinkKey {
        key_id: 12345,
        cipher: CipherKind::Aes256Siv,
        material: KeyMaterial::new((100u8..164).collect()),
    };
    assert_eq!(keys, vec![expected]);
}

#[test]
fn encrypted_keyset_under_wrong_kek_is_crypto_error() {
    let kek = CellCipher::new(&gcm_key(5, 1));
    let other = CellCipher::new(&gcm_key(5, 2));
    let json = siv_key(6, 3).encrypted_keyset_json(&kek, &[0; 12]);
    assert_eq!(
        kind(TinkKey::from_encrypted_keyset_json(&json, &other)),
        ErrorKind::Crypto
    );
    assert!(matches!(
        kind(TinkKey::from_encrypted_keyset_json("{}", &kek)),
        ErrorKind::KeyFormat { .. }
    ));
}

// ------------------------------------------------------------ ciphers ---

#[test]
fn gcm_cell_layout_and_round_trip() {
    let c = CellCipher::new(&gcm_key(0xa1b2_c3d4, 1));
    let cell = seal_cell(&c, b"alice@example.com", b"email", [7; 12]);
    let raw = BASE64.decode(&cell).unwrap();
    assert_eq!(&raw[..5], &[1, 0xa1, 0xb2, 0xc3, 0xd4]);
    assert_eq!(&raw[5..17], &[7; 12]);
    assert_eq!(raw.len(), 5 + 12 + 17 + 16);
    assert_eq!(key_id_of_cell(&cell), Some(0xa1b2_c3d4));
    assert_eq!(
        c.open_base64(&cell, b"email").unwrap(),
        b"alice@example.com"
    );
    assert_eq!(c.open(&raw, b"email").unwrap(), b"alice@example.com");
}

#[test]
fn gcm_is_randomized_by_nonce() {
    let c = CellCipher::new(&gcm_key(3, 1));
    let a = seal_cell(&c, b"same", b"col", [1; 12]);
    let b = seal_cell(&c, b"same", b"col", [2; 12]);
    assert_ne!(a, b);
    assert_eq!(
        c.open_base64(&a, b"col").unwrap(),
        c.open_base64(&b, b"col").unwrap()
    );
}

#[test]
fn siv_is_deterministic_and_ignores_nonce() {
    let c = CellCipher::new(&siv_key(3, 1));
    let a = seal_cell(&c, b"same", b"", [1; 12]);
    let b = seal_cell(&c, b"same", b"", [2; 12]);
    assert_eq!(a, b);
    assert_ne!(a, seal_cell(&c, b"other", b"", [1; 12]));
    assert_eq!(BASE64.decode(&a).unwrap().len(), 5 + 16 + 4);
}

#[test]
fn empty_plaintext_round_trips() {
    for key in [gcm_key(1, 1), siv_key(2, 2)] {
        let c = CellCipher::new(&key);
        let cell = seal_cell(&c, b"", b"ad", [0; 12]);
        assert_eq!(c.open_base64(&cell, b"ad").unwrap(), b"");
    }
}

#[test]
fn seal_base64_appends_and_reuses_buffers() {
    let c = CellCipher::new(&gcm_key(1, 1));
    let mut scratch = Vec::new();
    let mut out = b"prefix,".to_vec();
    c.seal_base64(b"one", b"a", &[1; 12], &mut scratch, &mut out);
    out.push(b',');
    c.seal_base64(b"two", b"a", &[2; 12], &mut scratch, &mut out);
    let text = String::from_utf8(out).unwrap();
    let parts: Vec<&str> = text.split(',').collect();
    assert_eq!(parts[0], "prefix");
    assert_eq!(c.open_base64(parts[1], b"a").unwrap(), b"one");
    assert_eq!(c.open_base64(parts[2], b"a").unwrap(), b"two");
}

#[test]
fn seal_matches_seal_base64() {
    let c = CellCipher::new(&siv_key(9, 9));
    let mut raw = Vec::new();
    c.seal(b"v", b"ad", &[0; 12], &mut raw);
    assert_eq!(BASE64.encode(&raw), seal_cell(&c, b"v", b"ad", [0; 12]));
}

#[test]
fn try_new_rejects_wrong_material_length() {
    let bad = TinkKey {
        key_id: 1,
        cipher: CipherKind::Aes256Gcm,
        material: KeyMaterial::new(vec![0; 16]),
    };
    assert!(matches!(
        kind(CellCipher::try_new(&bad)),
        ErrorKind::KeyFormat { .. }
    ));
    let bad = TinkKey {
        key_id: 1,
        cipher: CipherKind::Aes256Siv,
        material: KeyMaterial::new(vec![0; 32]),
    };
    assert!(matches!(
        kind(CellCipher::try_new(&bad)),
        ErrorKind::KeyFormat { .. }
    ));
}

// ------------------------------------------------------------ negatives ---

/// Every way a cell can be wrong gives the one opaque `Crypto` error.
fn assert_all_tampering_fails(key: TinkKey, wrong_key: TinkKey, aad: &[u8]) {
    let c = CellCipher::new(&key);
    let cell = seal_cell(&c, b"secret value", aad, [5; 12]);
    let raw = BASE64.decode(&cell).unwrap();
    assert_eq!(c.open_base64(&cell, aad).unwrap(), b"secret value");

    // Wrong key with the same key id (so the prefix check passes).
    let w = CellCipher::new(&wrong_key);
    assert_eq!(
        kind(w.open_base64(&cell, aad)),
        ErrorKind::Crypto,
        "wrong key"
    );
    // Wrong associated data: another column name.
    assert_eq!(
        kind(c.open_base64(&cell, b"other_column")),
        ErrorKind::Crypto,
        "wrong aad"
    );
    // One flipped bit anywhere.
    for i in 0..raw.len() * 8 {
        let mut t = raw.clone();
        t[i / 8] ^= 1 << (i % 8);
        assert_eq!(kind(c.open(&t, aad)), ErrorKind::Crypto, "bit {i}");
        assert_eq!(
            kind(c.open_base64(&BASE64.encode(&t), aad)),
            ErrorKind::Crypto,
            "bit {i}"
        );
    }
    // Truncated, at every length.
    for n in 0..raw.len() {
        assert_eq!(
            kind(c.open(&raw[..n], aad)),
            ErrorKind::Crypto,
            "truncated to {n}"
        );
    }
    assert_eq!(
        kind(c.open_base64(&cell[..cell.len() - 4], aad)),
        ErrorKind::Crypto
    );
    assert_eq!(
        kind(c.open_base64(&cell[..cell.len() - 1], aad)),
        ErrorKind::Crypto
    );
    // Not Base64.
    for bad in [
        "",
        "!!!!",
        "not base64 at all",
        "ASqc1Q0QalDEN+LHeyZSfGHE+s9Lqu4o+jM",
        "ASqc-Q0Q",
    ] {
        assert_eq!(kind(c.open_base64(bad, aad)), ErrorKind::Crypto, "{bad}");
    }
    // Wrong prefix byte (0x00 is Tink's LEGACY/CRUNCHY prefix).
    let mut t = raw.clone();
    t[0] = 0x00;
    assert_eq!(kind(c.open(&t, aad)), ErrorKind::Crypto);
    // Another key id.
    let mut t = raw.clone();
    t[4] ^= 0x01;
    assert_eq!(kind(c.open(&t, aad)), ErrorKind::Crypto);
    // Extra bytes appended.
    let mut t = raw;
    t.push(0);
    assert_eq!(kind(c.open(&t, aad)), ErrorKind::Crypto);
}

#[test]
fn gcm_tampering_is_crypto_error() {
    assert_all_tampering_fails(gcm_key(42, 1), gcm_key(42, 2), b"email");
}

#[test]
fn siv_tampering_is_crypto_error() {
    assert_all_tampering_fails(siv_key(42, 1), siv_key(42, 2), b"");
    assert_all_tampering_fails(siv_key(43, 1), siv_key(43, 2), b"email");
}

#[test]
fn cipher_key_id_mismatch_is_crypto_error() {
    let a = CellCipher::new(&gcm_key(1, 1));
    let b = CellCipher::new(&gcm_key(2, 1)); // same material, other id
    let cell = seal_cell(&a, b"x", b"", [0; 12]);
    assert_eq!(kind(b.open_base64(&cell, b"")), ErrorKind::Crypto);
}

#[test]
fn key_id_of_cell_edge_cases() {
    assert_eq!(key_id_of_cell(""), None);
    assert_eq!(key_id_of_cell("AQ=="), None);
    assert_eq!(key_id_of_cell("!!!!!!!!!!!!"), None);
    // 0x00 first byte: not a TINK prefix.
    assert_eq!(
        key_id_of_cell(&BASE64.encode([0u8, 0, 0, 0, 1, 0, 0, 0, 0])),
        None
    );
    assert_eq!(
        key_id_of_cell(&BASE64.encode([1u8, 0xff, 0xff, 0xff, 0xfe, 0])),
        Some(0xffff_fffe)
    );
}

#[test]
fn debug_and_errors_never_show_key_bytes() {
    let material: Vec<u8> = (0..64).map(|i| (i * 37 + 11) as u8).collect();
    let key = TinkKey {
        key_id: 5,
        cipher: CipherKind::Aes256Siv,
        material: KeyMaterial::new(material.clone()),
    };
    let hex: String = material.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = BASE64.encode(&material);
    let forbidden = |s: &str| {
        let lower = s.to_lowercase();
        lower.contains(&hex[..16])
            || s.contains(&b64[..16])
            || s.contains(&format!("{:?}", &material[..8]))
    };
    let dbg = format!("{key:?} {:?}", CellCipher::new(&key));
    assert!(!forbidden(&dbg), "{dbg}");
    assert!(dbg.contains("redacted"));

    // Errors from opening and from keysets that hold this key.
    let c = CellCipher::new(&key);
    let e = c
        .open_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAA", b"")
        .unwrap_err();
    assert!(!forbidden(&format!("{e} {e:?}")));
    let json = key.to_keyset_json();
    let broken = json.replace("\"status\":\"ENABLED\"", "\"status\":\"SOMETIMES\"");
    let e = TinkKey::from_keyset_json(&broken).unwrap_err();
    assert!(!forbidden(&format!("{e} {e:?}")), "{e}");
    let wrong_len = TinkKey {
        key_id: 5,
        cipher: CipherKind::Aes256Gcm,
        material: KeyMaterial::new(material.clone()),
    };
    let e = CellCipher::try_new(&wrong_len).unwrap_err();
    assert!(!forbidden(&format!("{e} {e:?}")), "{e}");
}
