//! Google Tink (Python) is the independent client: it must read our keys
//! output and decrypt every PII cell, for both ciphers and both kinds of
//! associated data. Needs `python3` with `tink` (`.ci/run` installs it).
mod common;

use std::process::Command;

use common::*;

fn check(extra: &str, aad: &str) {
    let input = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/clickstream_dirty.csv"))
        .expect("tests/vectors/clickstream_dirty.csv");
    let run = run(&config(&clickstream_job(extra)), input.as_bytes()).unwrap();
    // one folder per call: the tests run in parallel
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("keylink-tink-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keys.csv"), &run.out.keys).unwrap();
    std::fs::write(dir.join("enc.csv"), &run.out.encrypted).unwrap();
    std::fs::write(dir.join("plain.csv"), &input).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/tink_decrypt.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir.join("keys.csv"))
        .arg(dir.join("enc.csv"))
        .arg(dir.join("plain.csv"))
        .arg("email,customer_id,ip_address")
        .arg(aad)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "tink failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn tink_decrypts_aes_gcm_with_field_name() {
    check("", "field-name");
}

#[test]
fn tink_decrypts_aes_gcm_without_associated_data() {
    check(r#", "associated_data": "none""#, "none");
}

#[test]
fn tink_decrypts_aes_siv_without_associated_data() {
    check(r#", "cipher": "aes-256-siv""#, "none");
}

#[test]
fn tink_decrypts_aes_siv_with_field_name() {
    check(r#", "cipher": "aes-256-siv", "associated_data": "field-name""#, "field-name");
}
