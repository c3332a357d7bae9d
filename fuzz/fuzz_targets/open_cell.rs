//! Opening an arbitrary cell must fail cleanly (an `Err`), never panic: cells
//! come from files anyone can edit.
//!
//! Byte 0 picks the cipher and how the cell is built; byte 1 the length of
//! the associated data; the rest is the cell. Half the time the cell is used
//! as text as is (must be UTF-8); the other half it is wrapped as a Base64
//! Tink ciphertext with the right prefix and key id, so the fuzzer gets past
//! the Base64 and prefix checks into the AEAD itself.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keylink_core::cipher::CellCipher;
use keylink_core::config::CipherKind;
use keylink_core::tink::{KeyMaterial, TinkKey};
use libfuzzer_sys::fuzz_target;

const KEY_ID: u32 = 42;

fn key(cipher: CipherKind) -> TinkKey {
    let len = match cipher {
        CipherKind::Aes256Gcm => 32,
        CipherKind::Aes256Siv => 64,
    };
    TinkKey { key_id: KEY_ID, cipher, material: KeyMaterial::new(vec![7u8; len]) }
}

fuzz_target!(|data: &[u8]| {
    let [pick, aad_len, rest @ ..] = data else { return };
    let cipher = if pick & 1 == 0 { CipherKind::Aes256Gcm } else { CipherKind::Aes256Siv };
    let (aad, body) = rest.split_at(usize::from(*aad_len).min(rest.len()));
    let cell = if pick & 2 == 0 {
        match core::str::from_utf8(body) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        }
    } else {
        let mut raw = vec![0x01];
        raw.extend_from_slice(&KEY_ID.to_be_bytes());
        raw.extend_from_slice(body);
        STANDARD.encode(raw)
    };
    let opened = CellCipher::new(&key(cipher)).open_base64(&cell, aad);
    // Nothing here was sealed with the key, so nothing may open.
    assert!(opened.is_err(), "an unsealed cell opened");
});
