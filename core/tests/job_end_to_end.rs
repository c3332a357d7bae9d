//! A job from bytes in to encrypted, keys and derived bytes out.
mod common;

use common::*;
use keylink_core::cipher::CellCipher;
use keylink_core::decrypt::{parse_keys_csv, DecryptOptions, Decryptor};
use keylink_core::job::{Job, Outputs, META_COLUMNS};
use keylink_core::mask::hmac_sha256_hex;
use keylink_core::ErrorKind;

const MAR1: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z
const DAY: i64 = 86_400_000;

fn decrypt_all(run: &Run, text: &str) -> (Vec<Vec<String>>, keylink_core::decrypt::DecryptSummary) {
    let keys = parse_keys_csv(run.keys().as_bytes(), None).unwrap();
    let mut d = Decryptor::new(keys, DecryptOptions::default());
    let mut out = Vec::new();
    d.push(text.as_bytes(), &mut out).unwrap();
    let s = d.finish(&mut out).unwrap();
    (rows(&String::from_utf8(out).unwrap()), s)
}

#[test]
fn encrypted_output_has_input_columns_then_metadata() {
    let run = run(&config(&clickstream_job("")), CLICKS.as_bytes()).unwrap();
    let enc = rows(&run.encrypted());
    let mut header: Vec<String> = "session_id,timestamp,consent,email,customer_id,ip_address,page".split(',').map(String::from).collect();
    header.extend(META_COLUMNS.iter().map(|s| s.to_string()));
    assert_eq!(enc[0], header);
    assert_eq!(enc.len(), 6);
    let r1 = &enc[1];
    assert_eq!(r1[0], "s1", "the key field is not PII here, so it stays");
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(&r1[3]).unwrap();
    assert_eq!(raw[0], 1, "Tink prefix 0x01");
    assert_eq!(raw.len(), 5 + 12 + "a@example.com".len() + 16);
    assert_ne!(r1[3], "a@example.com");
    assert_eq!(r1[7], "acme/clickstream/1.0.0");
    assert_eq!(r1[8], "0");
    assert_eq!(r1[9], (MAR1 + 10 * 3_600_000).to_string());
    assert_eq!(r1[10].len(), 36);
    assert_eq!(r1[11], "");
    assert_eq!(r1[12], "[1]");
    assert_eq!(enc[2][12], "[1,2]");
    assert_eq!(enc[4][12], "[]", "garbage consent gives the default");
    assert_eq!(enc[4][3], "", "an empty PII value stays empty");
    assert_eq!(enc[4][9], (MAR1 + 9 * 3_600_000).to_string(), "offset applied");
    // same session and day share a key link; the next day gets another
    assert_eq!(enc[1][10], enc[2][10]);
    assert_ne!(enc[2][10], enc[3][10]);
    assert_ne!(enc[1][10], enc[4][10]);
    // STRM's dialect: all quoted, CRLF, the billing id absent
    let raw = run.encrypted();
    assert!(raw.starts_with("\"session_id\",\"timestamp\""));
    assert!(raw.contains("\"0\",\""));
    assert!(raw.contains("\",,\"["), "billingId written as nothing: {raw}");
    assert!(raw.ends_with("\r\n"));
    assert_eq!(run.summary.rows_written, 5);
    assert_eq!(run.summary.keys_used, 4);
    assert_eq!(run.summary.keys_created, 4);
    assert_eq!(run.summary.values_encrypted, 14);
}

#[test]
fn keys_output_has_one_tink_keyset_per_key() {
    let run = run(&config(&clickstream_job("")), CLICKS.as_bytes()).unwrap();
    let keys = rows(&run.keys());
    assert_eq!(keys[0], ["keyLink", "encryptionKey", "policyId", "expiresAt"]);
    assert_eq!(keys.len(), 5);
    let enc = rows(&run.encrypted());
    assert_eq!(keys[1][0], enc[1][10], "keys rows in first-use order");
    let v: serde_json::Value = serde_json::from_str(&keys[1][1]).unwrap();
    assert_eq!(v["primaryKeyId"], v["key"][0]["keyId"]);
    assert_eq!(v["key"][0]["status"], "ENABLED");
    assert_eq!(v["key"][0]["outputPrefixType"], "TINK");
    assert_eq!(v["key"][0]["keyData"]["typeUrl"], "type.googleapis.com/google.crypto.tink.AesGcmKey");
    assert_eq!(keys[1][2], "");
    assert_eq!(keys[1][3], (MAR1 + 2556 * DAY).to_string());
    assert_eq!(keys[2][3], (MAR1 + DAY + 2556 * DAY).to_string());
}

#[test]
fn derived_outputs_filter_rows_decrypt_allowed_purposes_and_mask() {
    let run = run(&config(&clickstream_job("")), CLICKS.as_bytes()).unwrap();
    let enc = rows(&run.encrypted());
    let granular = rows(&run.derived(0));
    assert_eq!(granular.len(), 5, "rows 1, 2, 3 and 5 consent to purpose 1");
    assert_eq!(granular[1][3], "a@example.com");
    assert_eq!(granular[1][5], "10.0.0.1");
    let mut h = String::new();
    hmac_sha256_hex(b"test-seed", b"C1", &mut h);
    assert_eq!(granular[1][4], h, "customer_id masked with the seed");
    assert_eq!(granular[4][3], "Doe, \"Jane\"");
    assert_eq!(granular[4][6], "line1\nline2");
    assert_eq!(granular[1][10], enc[1][10]);
    let cumulative = rows(&run.derived(1));
    assert_eq!(cumulative.len(), 3, "rows 2 and 3 have purpose 2");
    assert_eq!(cumulative[1][4], "C1", "level 2 is within CUMULATIVE 2");
    assert_eq!(cumulative[1][3], "a@example.com");
    assert_eq!(run.summary.derived_rows, vec![4, 2]);
}

#[test]
fn fields_of_purposes_not_requested_keep_the_same_ciphertext() {
    let json = clickstream_job("").replace(
        r#""masked_fields": { "hash_type": "hmac-sha256", "seed": "env:MASK_SEED", "fields": ["customer_id"] }"#,
        r#""masked_fields": { "seed": "x", "fields": ["page"] }"#,
    );
    let run = run(&config(&json), CLICKS.as_bytes()).unwrap();
    let enc = rows(&run.encrypted());
    let granular = rows(&run.derived(0));
    assert_eq!(granular[1][4], enc[1][4], "customer_id (purpose 2) stays encrypted, same bytes");
    assert_ne!(granular[1][6], "/");
}

#[test]
fn decryptor_restores_every_pii_value() {
    let run = run(&config(&clickstream_job("")), CLICKS.as_bytes()).unwrap();
    let (plain, summary) = decrypt_all(&run, &run.encrypted());
    let input = rows(CLICKS);
    for (p, i) in plain[1..].iter().zip(&input[1..]) {
        assert_eq!(&p[..7], &i[..]);
    }
    assert_eq!(summary.cells_decrypted, 14);
    assert_eq!(summary.cells_missing_key, 0);
}

#[test]
fn decryptor_leaves_cells_of_missing_keys_encrypted_and_counts_them() {
    let run = run(&config(&clickstream_job("")), CLICKS.as_bytes()).unwrap();
    // shred the key of (s1, 2026-03-01)
    let keys: Vec<_> = parse_keys_csv(run.keys().as_bytes(), None).unwrap().into_iter().skip(1).collect();
    let mut d = Decryptor::new(keys, DecryptOptions::default());
    let mut out = Vec::new();
    d.push(run.out.encrypted.as_slice(), &mut out).unwrap();
    let s = d.finish(&mut out).unwrap();
    assert_eq!(s.cells_missing_key, 6);
    assert_eq!(s.cells_decrypted, 8);
    let plain = rows(&String::from_utf8(out).unwrap());
    assert_eq!(plain[1][3], rows(&run.encrypted())[1][3]);
}

#[test]
fn keys_are_reused_by_a_later_job_of_the_group() {
    let cfg = config(&clickstream_job(""));
    let mut store = MemoryStore::default();
    let a = run_chunked(&cfg, CLICKS.as_bytes(), &[1000], [1; 32], &mut store).unwrap();
    let b = run_chunked(&cfg, CLICKS.as_bytes(), &[1000], [2; 32], &mut store).unwrap();
    let la: Vec<_> = rows(&a.encrypted()).iter().map(|r| r[10].clone()).collect();
    let lb: Vec<_> = rows(&b.encrypted()).iter().map(|r| r[10].clone()).collect();
    assert_eq!(la, lb);
    assert_eq!(b.summary.keys_created, 0);
    assert_eq!(b.summary.keys_used, 4);
    assert_ne!(a.encrypted(), b.encrypted(), "fresh nonces");
}

#[test]
fn a_groups_cipher_is_fixed_at_first_use() {
    let mut store = MemoryStore::default();
    run_chunked(&config(&clickstream_job("")), CLICKS.as_bytes(), &[1000], [1; 32], &mut store).unwrap();
    let siv = config(&clickstream_job(r#", "cipher": "aes-256-siv""#));
    let err = run_chunked(&siv, CLICKS.as_bytes(), &[1000], [1; 32], &mut store).err().unwrap();
    assert!(matches!(err.kind(), ErrorKind::Keys { .. }), "{err}");
    assert!(err.to_string().contains("aes-256-gcm"));
}

#[test]
fn siv_is_deterministic_under_one_key() {
    let run = run(&config(&clickstream_job(r#", "cipher": "aes-256-siv""#)), CLICKS.as_bytes()).unwrap();
    let enc = rows(&run.encrypted());
    assert_eq!(enc[1][3], enc[2][3], "same value, same key");
    assert_ne!(enc[2][3], enc[3][3], "same value, next day's key");
    let (plain, s) = decrypt_all(&run, &run.encrypted());
    assert_eq!(plain[1][3], "a@example.com");
    assert_eq!(s.cells_failed, 0);
}

#[test]
fn gcm_binds_the_column_name() {
    let run = run(&config(&clickstream_job("")), CLICKS.as_bytes()).unwrap();
    let enc = rows(&run.encrypted());
    let keys = parse_keys_csv(run.keys().as_bytes(), None).unwrap();
    let c = CellCipher::new(&keys[0].1);
    assert_eq!(c.open_base64(&enc[1][3], b"email").unwrap(), b"a@example.com");
    let moved = c.open_base64(&enc[1][3], b"ip_address").unwrap_err();
    assert_eq!(moved.kind(), &ErrorKind::Crypto);
    let other = CellCipher::new(&keys[1].1).open_base64(&enc[1][3], b"email").unwrap_err();
    assert_eq!(other.kind(), &ErrorKind::Crypto);
}

#[test]
fn ragged_row_fails_the_job_naming_row_and_line() {
    let input = "session_id,timestamp,consent,email,customer_id,ip_address,page\n\
                 s1,2026-03-01T10:00:00Z,,a@x,C1,1.1.1.1,/\n\
                 s1,2026-03-01T10:00:00Z,,secret@x,C1\n";
    let err = run(&config(&clickstream_job("")), input.as_bytes()).err().unwrap();
    assert_eq!(err.kind(), &ErrorKind::RaggedRow { row: 2, line: 3, expected: 7, found: 5 });
    assert!(!err.to_string().contains("secret"));
}

#[test]
fn skip_policy_leaves_bad_rows_out_and_reports_their_numbers() {
    let json = clickstream_job("").replacen('{', r#"{ "error_policy": "skip","#, 1);
    let input = "session_id,timestamp,consent,email,customer_id,ip_address,page\n\
                 s1,2026-03-01T10:00:00Z,analytics,a@x,C1,1.1.1.1,/\n\
                 s1,2026-03-01T10:00:00Z,,b@x,C1\n\
                 s1,yesterday,,c@x,C1,1.1.1.1,/\n\
                 s1,2026-03-01T11:00:00Z,analytics,d@x,C1,1.1.1.1,/\n";
    let run = run(&config(&json), input.as_bytes()).unwrap();
    assert_eq!(run.summary.rows_read, 4);
    assert_eq!(run.summary.rows_skipped, 2);
    assert_eq!(run.summary.skipped_rows, vec![2, 3]);
    assert_eq!(rows(&run.encrypted()).len(), 3);
    assert_eq!(rows(&run.derived(0)).len(), 3);
}

#[test]
fn bad_timestamp_names_row_column_and_format() {
    let input = "session_id,timestamp,consent,email,customer_id,ip_address,page\ns1,03/01/2026,,a@x,C1,1.1.1.1,/\n";
    let err = run(&config(&clickstream_job("")), input.as_bytes()).err().unwrap();
    assert_eq!(err.row(), Some(1));
    let msg = err.to_string();
    assert!(msg.contains("row 1") && msg.contains("`timestamp`") && msg.contains("iso8601"), "{msg}");
    assert!(!msg.contains("03/01/2026"));
}

#[test]
fn missing_column_is_a_start_error_naming_it() {
    let input = "session_id,timestamp,consent,email,customer_id,page\n";
    let err = run(&config(&clickstream_job("")), input.as_bytes()).err().unwrap();
    assert!(err.is_start_error());
    assert_eq!(err.kind(), &ErrorKind::MissingColumn { column: "ip_address".into(), role: "PII field" });
}

#[test]
fn invalid_utf8_names_the_row() {
    let mut input = b"session_id,timestamp,consent,email,customer_id,ip_address,page\n".to_vec();
    input.extend_from_slice(b"s1,2026-03-01T10:00:00Z,,a@x,C1,1.1.1.1,/\n");
    input.extend_from_slice(b"s1,2026-03-01T10:00:00Z,,caf\xe9,C1,1.1.1.1,/\n");
    let err = run(&config(&clickstream_job("")), &input).err().unwrap();
    assert_eq!(err.kind(), &ErrorKind::InvalidEncoding { row: 2, line: 3, charset: "UTF-8" });
}

#[test]
fn empty_input_is_an_error_and_header_only_gives_empty_outputs() {
    let err = run(&config(&clickstream_job("")), b"").err().unwrap();
    assert_eq!(err.kind(), &ErrorKind::EmptyInput);
    let run = run(&config(&clickstream_job("")), b"session_id,timestamp,consent,email,customer_id,ip_address,page").unwrap();
    assert_eq!(rows(&run.encrypted()).len(), 1);
    assert_eq!(rows(&run.keys()).len(), 1);
    assert_eq!(run.summary.rows_written, 0);
}

#[test]
fn encryption_cap_per_key_trips() {
    let cfg = config(&clickstream_job(""));
    let mut job = Job::new(&cfg, [3; 32], &mut |_| Ok(b"s".to_vec())).unwrap();
    job.set_encryption_cap(4);
    let mut store = MemoryStore::default();
    job.push(CLICKS.as_bytes()).unwrap();
    job.end_input().unwrap();
    store.answer(&mut job).unwrap();
    let err = job.drain(&mut Outputs::default()).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::KeyUsageLimit { .. }), "{err}");
    assert!(job.push(b"x").is_err(), "a failed job refuses further input");
}

#[test]
fn drain_before_answering_is_refused() {
    let cfg = config(&clickstream_job(""));
    let mut job = Job::new(&cfg, [3; 32], &mut |_| Ok(b"s".to_vec())).unwrap();
    job.push(CLICKS.as_bytes()).unwrap();
    assert_eq!(job.key_requests().len(), 4);
    let err = job.drain(&mut Outputs::default()).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::State { .. }));
}

#[test]
fn missing_masking_secret_is_a_start_error_with_its_path() {
    let cfg = config(&clickstream_job(""));
    let err = Job::new(&cfg, [3; 32], &mut |_| Err("environment variable MASK_SEED is not set".into())).unwrap_err();
    assert!(err.is_start_error());
    assert!(err.to_string().starts_with("derived_data[0].masked_fields.seed: "), "{err}");
}

#[test]
fn a_consent_plugin_is_refused_rather_than_ignored() {
    let json = clickstream_job("").replace(r#""field": "consent","#, r#""field": "consent", "plugin": "consent.wasm","#);
    let err = Job::new(&config(&json), [1; 32], &mut |_| Ok(b"s".to_vec())).unwrap_err();
    assert!(err.is_start_error());
    assert!(err.to_string().contains("consent.consent_level_extractor.plugin: consent plugins are not supported"), "{err}");
}

/// Drives a job as the host does with a bounded key cache: keys output
/// omitted, evicted keys' uses collected from every drain.
fn run_with_key_cache(cfg: &keylink_core::config::JobConfig, input: &[u8], limit: Option<usize>, store: &mut MemoryStore) -> (Outputs, keylink_core::job::Summary, usize) {
    run_with_caches(cfg, input, limit, 0, store)
}

fn run_with_caches(cfg: &keylink_core::config::JobConfig, input: &[u8], limit: Option<usize>, answers: usize, store: &mut MemoryStore) -> (Outputs, keylink_core::job::Summary, usize) {
    let mut job = Job::new(cfg, [9; 32], &mut |_| Ok(b"s".to_vec())).unwrap();
    job.omit_keys_output();
    if let Some(l) = limit {
        job.set_key_cache_limit(l);
    }
    job.set_answer_cache_limit(answers);
    let mut out = Outputs::default();
    let mut requests = 0;
    for piece in input.chunks(97) {
        job.push(piece).unwrap();
        requests += job.key_requests().len();
        store.answer(&mut job).unwrap();
        job.drain(&mut out).unwrap();
    }
    job.end_input().unwrap();
    requests += job.key_requests().len();
    store.answer(&mut job).unwrap();
    let summary = job.finish(&mut out).unwrap();
    (out, summary, requests)
}

/// 40 sessions over two days, each coming back many times (80 keys, 400 rows).
fn returning_sessions() -> String {
    let mut input = String::from("session_id,timestamp,consent,email,customer_id,ip_address,page\n");
    for i in 0..400 {
        let s = (i * 7) % 40;
        let day = 1 + (i / 200);
        input.push_str(&format!("s{s},2026-03-0{day}T10:{:02}:00Z,analytics,u{s}@example.com,C{s},10.0.0.{s},/p{i}\n", i % 60));
    }
    input
}

#[test]
fn a_bounded_key_cache_gives_the_same_outputs_and_counts_every_use() {
    let cfg = config(&clickstream_job(""));
    let input = returning_sessions();
    let mut store = MemoryStore::default();
    let (full, full_summary, full_requests) = run_with_key_cache(&cfg, input.as_bytes(), None, &mut store);
    let (bounded, summary, requests) = run_with_key_cache(&cfg, input.as_bytes(), Some(3), &mut store);
    assert!(full.key_uses.is_empty(), "no limit, no evictions");
    assert_eq!(full_requests, 80, "one request per (session, day)");
    assert!(requests > 200, "evicted keys are requested again ({requests})");
    // Nonces come from their own stream in row order and the store answers
    // with the same keys: byte for byte the same outputs.
    assert_eq!(bounded.encrypted, full.encrypted);
    assert_eq!(bounded.derived, full.derived);
    assert!(bounded.keys.is_empty() && full.keys.is_empty());
    assert_eq!(summary.values_encrypted, full_summary.values_encrypted);
    assert_eq!(summary.keys_used as usize, requests, "a key provided again counts again");
    // Every use is reported once: in a drain's evictions or in the summary.
    let mut uses: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for (link, n) in bounded.key_uses.iter().chain(&summary.key_uses) {
        *uses.entry(link.clone()).or_default() += n;
    }
    let expected: std::collections::HashMap<String, u64> = full_summary.key_uses.iter().cloned().collect();
    assert_eq!(uses, expected);
    assert_eq!(uses.values().sum::<u64>(), full_summary.values_encrypted);
}

/// Every (link, uses) pair of a run, summed per link.
fn uses_by_link(out: &Outputs, summary: &keylink_core::job::Summary) -> std::collections::HashMap<String, u64> {
    let mut uses: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for (link, n) in out.key_uses.iter().chain(&summary.key_uses) {
        *uses.entry(link.clone()).or_default() += n;
    }
    uses
}

#[test]
fn an_answer_cache_asks_for_each_key_once_and_counts_every_use() {
    let cfg = config(&clickstream_job(""));
    let input = returning_sessions();
    let mut store = MemoryStore::default();
    let (full, full_summary, _) = run_with_key_cache(&cfg, input.as_bytes(), None, &mut store);
    let expected: std::collections::HashMap<String, u64> = full_summary.key_uses.iter().cloned().collect();
    let (_, _, without) = run_with_caches(&cfg, input.as_bytes(), Some(3), 0, &mut store);
    // Large enough for every key: each (session, day) is requested once.
    let (out, summary, requests) = run_with_caches(&cfg, input.as_bytes(), Some(3), 1000, &mut store);
    assert_eq!(requests, 80);
    assert_eq!(out.encrypted, full.encrypted);
    assert_eq!(out.derived, full.derived);
    assert_eq!(uses_by_link(&out, &summary), expected);
    assert_eq!(summary.values_encrypted, full_summary.values_encrypted);
    // Smaller than the keys: it forgets some, and those are asked again;
    // outputs and counts stay the same.
    let (out, summary, requests) = run_with_caches(&cfg, input.as_bytes(), Some(3), 60, &mut store);
    assert!(requests > 80 && requests < without, "{requests} requests, {without} without the table");
    assert_eq!(out.encrypted, full.encrypted);
    assert_eq!(out.derived, full.derived);
    assert_eq!(uses_by_link(&out, &summary), expected);
}

#[test]
fn an_answer_cache_counts_earlier_uses_toward_the_cap() {
    let cfg = config(&clickstream_job(""));
    // Two sessions, alternating, one day: 3 PII values a row, 60 uses each.
    let mut input = String::from("session_id,timestamp,consent,email,customer_id,ip_address,page\n");
    for i in 0..40 {
        let s = i % 2;
        input.push_str(&format!("s{s},2026-03-01T10:{i:02}:00Z,analytics,u{s}@example.com,C{s},10.0.0.{s},/p{i}\n"));
    }
    let mut store = MemoryStore::default();
    let mut job = Job::new(&cfg, [9; 32], &mut |_| Ok(b"s".to_vec())).unwrap();
    job.omit_keys_output();
    job.set_key_cache_limit(1);
    job.set_answer_cache_limit(100);
    job.set_encryption_cap(50);
    let mut out = Outputs::default();
    let mut err = None;
    for (i, line) in input.lines().enumerate() {
        job.push(format!("{line}\n").as_bytes()).unwrap();
        if i > 2 {
            // The cache forgets both keys every other row; the table answers.
            assert!(job.key_requests().is_empty(), "row {i} asked again");
        }
        store.answer(&mut job).unwrap();
        if let Err(e) = job.drain(&mut out) {
            err = Some((i, e));
            break;
        }
    }
    let (row, e) = err.expect("the cap trips although the cache forgot the key every other row");
    assert_eq!(e.code(), "KEY_USAGE_LIMIT", "{e}");
    // The 17th row of a session brings its key past 50 uses.
    assert!((33..=34).contains(&row), "tripped at row {row}");
}

#[test]
fn a_key_cache_limit_is_ignored_when_the_job_writes_its_keys_output() {
    let cfg = config(&clickstream_job(""));
    let mut store = MemoryStore::default();
    let mut job = Job::new(&cfg, [9; 32], &mut |_| Ok(b"s".to_vec())).unwrap();
    job.set_key_cache_limit(1);
    let mut out = Outputs::default();
    for line in CLICKS.as_bytes().chunks(40) {
        job.push(line).unwrap();
        store.answer(&mut job).unwrap();
        job.drain(&mut out).unwrap();
    }
    job.end_input().unwrap();
    store.answer(&mut job).unwrap();
    let summary = job.finish(&mut out).unwrap();
    assert!(out.key_uses.is_empty());
    assert_eq!(summary.keys_used, 4);
    assert_eq!(rows(&String::from_utf8(out.keys).unwrap()).len(), 5, "each key listed once");
}
