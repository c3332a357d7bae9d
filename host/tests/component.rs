//! The component engine against the native one: the same job, seed and key
//! answers must give byte-identical outputs, summaries and errors.
use std::sync::OnceLock;
use std::time::Instant;

use keylink_core::job::{Outputs, Summary};
use keylink_core::{Error, ErrorKind};
use keylink_host::engine::component::{self, ComponentEngine};
use keylink_host::engine::native::NativeEngine;
use keylink_host::engine::{Engine, EngineJob, JobInit};

// ---- the clickstream job of core/tests/common/mod.rs ----------------------

fn clickstream_job(extra_encryption: &str) -> String {
    format!(
        r#"{{
  "data_contract": {{ "ref": "acme/clickstream/1.0.0", "key_field": "session_id",
                     "pii_fields": {{ "email": 1, "ip_address": 1, "customer_id": 2 }},
                     "data_subject_field": "customer_id" }},
  "source_data": {{ "file_name": "events.csv" }},
  "consent": {{ "default_consent_levels": [],
               "consent_level_extractor": {{ "field": "consent",
                  "field_patterns": {{ "analytics": {{ "consent_levels": [1] }},
                                      "marketing": {{ "consent_levels": [1, 2] }} }} }} }},
  "encryption": {{ "batch_job_group_id": "g1" {extra_encryption},
                  "timestamp_config": {{ "field": "timestamp", "format": "iso8601" }} }},
  "derived_data": [
    {{ "consent_levels": [1], "consent_level_type": "GRANULAR",
       "masked_fields": {{ "hash_type": "hmac-sha256", "seed": "env:MASK_SEED", "fields": ["customer_id"] }} }},
    {{ "consent_levels": [2], "consent_level_type": "CUMULATIVE" }}
  ]
}}"#
    )
}

const CLICKS: &str = "session_id,timestamp,consent,email,customer_id,ip_address,page\n\
s1,2026-03-01T10:00:00.000Z,analytics,a@example.com,C1,10.0.0.1,/\n\
s1,2026-03-01T23:59:59.999Z,marketing,a@example.com,C1,10.0.0.1,/cart\n\
s1,2026-03-02T00:00:00.000Z,marketing,a@example.com,C1,10.0.0.1,\"/search?q=shoes,red\"\n\
s2,2026-03-01T11:00:00+02:00,garbage,,C2,10.0.0.2,/\n\
s3,2026-03-01T12:00:00Z,analytics,\"Doe, \"\"Jane\"\"\",C3,10.0.0.3,\"line1\nline2\"\n";

const SIV: &str = r#", "cipher": "aes-256-siv""#;

// ---- harness --------------------------------------------------------------

/// One component engine per test binary, compiled in memory (the disk cache
/// has its own test).
fn component_engine() -> &'static ComponentEngine {
    static ENGINE: OnceLock<ComponentEngine> = OnceLock::new();
    ENGINE.get_or_init(|| ComponentEngine::with_cache_dir(None).expect("the component loads"))
}

fn init(json: &str, seed: u8) -> JobInit {
    JobInit {
        config_json: json.to_string(),
        contracts: Vec::new(),
        seed: [seed; 32],
        secrets: vec![("env:MASK_SEED".to_string(), b"test-seed".to_vec())],
    }
}

/// Accepts every proposal (an empty key store).
fn answer(job: &mut dyn EngineJob) -> Result<(), Error> {
    let requests = job.key_requests();
    if requests.is_empty() {
        return Ok(());
    }
    job.provide_keys(requests.into_iter().map(|r| r.proposal).collect())
}

fn append(all: &mut Outputs, more: Outputs) {
    all.encrypted.extend(more.encrypted);
    all.keys.extend(more.keys);
    if all.derived.len() < more.derived.len() {
        all.derived.resize_with(more.derived.len(), Vec::new);
    }
    for (a, m) in all.derived.iter_mut().zip(more.derived) {
        a.extend(m);
    }
}

/// Runs a job over `input` cut into `chunk`-byte pieces.
fn run(engine: &dyn Engine, init: &JobInit, input: &[u8], chunk: usize) -> Result<(Outputs, Summary), Error> {
    let mut job = engine.create(init)?;
    let mut out = Outputs::default();
    for piece in input.chunks(chunk) {
        job.push(piece)?;
        answer(&mut *job)?;
        append(&mut out, job.drain()?);
    }
    job.end_input()?;
    answer(&mut *job)?;
    let (rest, summary) = job.finish()?;
    append(&mut out, rest);
    Ok((out, summary))
}

fn assert_same_run(init: &JobInit, input: &[u8], chunk: usize) -> (Outputs, Summary) {
    let (n_out, n_sum) = run(&NativeEngine, init, input, chunk).expect("native run");
    let (c_out, c_sum) = run(component_engine(), init, input, chunk).expect("component run");
    assert!(n_out.encrypted == c_out.encrypted, "encrypted outputs differ");
    assert!(n_out.keys == c_out.keys, "keys outputs differ");
    assert_eq!(n_out.derived.len(), c_out.derived.len());
    for (i, (n, c)) in n_out.derived.iter().zip(&c_out.derived).enumerate() {
        assert!(n == c, "derived output {i} differs");
    }
    assert_eq!(n_sum, c_sum);
    (c_out, c_sum)
}

fn error_of(engine: &dyn Engine, init: &JobInit, input: &[u8]) -> Error {
    run(engine, init, input, 64 * 1024).err().unwrap_or_else(|| panic!("{} accepted the job", engine.name()))
}

fn assert_same_error(init: &JobInit, input: &[u8]) -> ErrorKind {
    let native = error_of(&NativeEngine, init, input);
    let comp = error_of(component_engine(), init, input);
    assert_eq!(native.kind(), comp.kind());
    assert_eq!(native.to_string(), comp.to_string());
    comp.into_kind()
}

// ---- (a) the component is pure computation --------------------------------

#[test]
fn component_has_zero_imports() {
    assert_eq!(component_engine().imports(), Vec::<String>::new());
    assert_eq!(component::component_imports(), Vec::<String>::new());
    let bytes = component::component_bytes();
    // `\0asm`, then the component-model layer (not a core module).
    assert_eq!(&bytes[..4], b"\0asm");
    assert_eq!(&bytes[6..8], &[1, 0], "a component, not a core module");
}

#[test]
fn engine_is_named_component() {
    assert_eq!(component_engine().name(), "component");
}

// ---- (b) identical outputs -----------------------------------------------

#[test]
fn clickstream_outputs_are_identical_for_gcm_and_siv() {
    for extra in ["", SIV] {
        let (out, summary) = assert_same_run(&init(&clickstream_job(extra), 7), CLICKS.as_bytes(), 64 * 1024);
        assert_eq!(summary.rows_written, 5);
        assert_eq!(out.derived.len(), 2);
        assert!(String::from_utf8(out.encrypted).unwrap().contains("strmMeta.keyLink"));
    }
}

#[test]
fn identical_for_any_chunking_and_seed() {
    for (seed, chunk) in [(1, 1), (2, 7), (3, 64)] {
        assert_same_run(&init(&clickstream_job(""), seed), CLICKS.as_bytes(), chunk);
    }
}

#[test]
fn keys_from_a_store_are_used_the_same_way() {
    // A second job of the group gets the first job's keys back from the store.
    let first = init(&clickstream_job(""), 1);
    let mut job = NativeEngine.create(&first).unwrap();
    job.push(CLICKS.as_bytes()).unwrap();
    job.end_input().unwrap();
    let stored: Vec<_> = job.key_requests().into_iter().map(|r| r.proposal).collect();

    let second = init(&clickstream_job(""), 2);
    let drive = |engine: &dyn Engine| {
        let mut job = engine.create(&second).unwrap();
        job.push(CLICKS.as_bytes()).unwrap();
        job.end_input().unwrap();
        assert_eq!(job.key_requests().len(), stored.len());
        job.provide_keys(stored.clone()).unwrap();
        job.finish().unwrap()
    };
    let (n_out, n_sum) = drive(&NativeEngine);
    let (c_out, c_sum) = drive(component_engine());
    assert!(n_out.encrypted == c_out.encrypted && n_out.keys == c_out.keys && n_out.derived == c_out.derived);
    assert_eq!(n_sum, c_sum);
    assert_eq!(c_sum.keys_created, 0, "every key came from the store");
}

// ---- (c) identical errors --------------------------------------------------

#[test]
fn ragged_row_is_the_same_error() {
    let input = "session_id,timestamp,consent,email,customer_id,ip_address,page\n\
                 s1,2026-03-01T10:00:00Z,,a@x,C1,1.1.1.1,/\n\
                 s1,2026-03-01T10:00:00Z,,secret@x,C1\n";
    let kind = assert_same_error(&init(&clickstream_job(""), 1), input.as_bytes());
    assert_eq!(kind, ErrorKind::RaggedRow { row: 2, line: 3, expected: 7, found: 5 });
}

#[test]
fn missing_column_is_the_same_error_with_its_role() {
    let input = "session_id,timestamp,consent,email,customer_id,page\n";
    let kind = assert_same_error(&init(&clickstream_job(""), 1), input.as_bytes());
    assert_eq!(kind, ErrorKind::MissingColumn { column: "ip_address".into(), role: "PII field" });
}

#[test]
fn invalid_config_reports_every_problem_alike() {
    let json = clickstream_job(r#", "cipher": "rot13""#)
        .replacen('{', r#"{ "error_policy": "sometimes","#, 1)
        .replace(r#""consent_levels": [2], "consent_level_type": "CUMULATIVE""#, r#""consent_levels": [1, 2], "consent_level_type": "CUMULATIVE""#);
    let kind = assert_same_error(&init(&json, 1), CLICKS.as_bytes());
    match kind {
        ErrorKind::InvalidConfig(problems) => assert!(problems.len() >= 2, "{problems:?}"),
        other => panic!("{other:?}"),
    }
    // `validate` says the same without creating a job.
    let native = keylink_host::engine::native::parse_config(&json, &[]).unwrap_err();
    let comp = component::validate(component_engine(), &json, &[]).unwrap_err();
    assert_eq!(native.kind(), comp.kind());
    assert!(component::validate(component_engine(), &clickstream_job(""), &[]).is_ok());
}

#[test]
fn other_errors_keep_their_kind() {
    let json = clickstream_job("");
    // Empty input, bad timestamp, invalid UTF-8.
    assert_eq!(assert_same_error(&init(&json, 1), b""), ErrorKind::EmptyInput);
    let bad_ts = "session_id,timestamp,consent,email,customer_id,ip_address,page\ns1,03/01/2026,,a@x,C1,1.1.1.1,/\n";
    assert!(matches!(assert_same_error(&init(&json, 1), bad_ts.as_bytes()), ErrorKind::BadTimestamp { .. }));
    let mut latin1 = b"session_id,timestamp,consent,email,customer_id,ip_address,page\n".to_vec();
    latin1.extend_from_slice(b"s1,2026-03-01T10:00:00Z,,caf\xe9,C1,1.1.1.1,/\n");
    assert_eq!(
        assert_same_error(&init(&json, 1), &latin1),
        ErrorKind::InvalidEncoding { row: 1, line: 2, charset: "UTF-8" }
    );
    // A missing secret.
    let mut no_secret = init(&json, 1);
    no_secret.secrets.clear();
    let n = NativeEngine.create(&no_secret).err().unwrap();
    let c = component_engine().create(&no_secret).err().unwrap();
    assert_eq!(n.kind(), c.kind());
    assert!(matches!(c.kind(), ErrorKind::Secret { .. }));
    // Out of order: drain before the key requests are answered.
    let mut job = component_engine().create(&init(&json, 1)).unwrap();
    job.push(CLICKS.as_bytes()).unwrap();
    let err = job.drain().unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::State { message: "drain before the key requests were answered" });
    // A failed job refuses further calls, as natively.
    assert_eq!(job.push(b"x").unwrap_err().kind(), &ErrorKind::State { message: "the job already failed" });
}

#[test]
fn a_trap_is_a_state_error_without_guest_data() {
    // A 4 MiB store cannot take a 16 MiB chunk: the guest's allocator
    // fails, which aborts the instance.
    let engine = ComponentEngine::with_cache_dir(None).unwrap().with_memory_limit(4 << 20);
    let mut job = engine.create(&init(&clickstream_job(""), 1)).unwrap();
    let err = job.push(&vec![b'a'; 16 << 20]).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::State { message: "the engine component trapped" });
    assert!(job.key_requests().is_empty());
    assert_eq!(job.drain().unwrap_err().kind(), err.kind(), "a trapped job stays failed");
}

// ---- (d) a large input ----------------------------------------------------

fn generated_input(rows: usize) -> Vec<u8> {
    let mut s = String::from("session_id,timestamp,consent,email,customer_id,ip_address,page\n");
    let consents = ["analytics", "marketing", "", "garbage"];
    for i in 0..rows {
        let (day, hour, minute) = (1 + (i / 5000) % 28, (i / 200) % 24, i % 60);
        s.push_str(&format!(
            "s{},2026-03-{day:02}T{hour:02}:{minute:02}:00Z,{},user{}@example.com,C{},10.0.{}.{},\"/p?q={},x\"\n",
            i % 700,
            consents[i % consents.len()],
            i % 1300,
            i % 900,
            (i / 256) % 256,
            i % 256,
            i
        ));
    }
    s.into_bytes()
}

#[test]
fn twenty_thousand_rows_in_64k_chunks_match_native() {
    let input = generated_input(20_000);
    assert!(input.len() > 20 * 64 * 1024 / 16, "several chunks");
    for extra in ["", SIV] {
        let (_, summary) = assert_same_run(&init(&clickstream_job(extra), 9), &input, 64 * 1024);
        assert_eq!(summary.rows_read, 20_000);
        assert_eq!(summary.rows_written, 20_000);
    }
}

// ---- the compiled-code cache --------------------------------------------------

#[test]
fn compiled_component_is_cached_on_disk_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let cold = ComponentEngine::with_cache_dir(Some(dir.path())).unwrap();
    let cold_time = t.elapsed();
    let file = component::cache_file(cold.wasmtime_engine(), dir.path());
    assert!(file.is_file(), "the compiled component was written to {}", file.display());

    let t = Instant::now();
    let warm = ComponentEngine::with_cache_dir(Some(dir.path())).unwrap();
    let warm_time = t.elapsed();
    eprintln!("component load: cold (compile) {cold_time:?}, warm (cache) {warm_time:?}");
    assert_same_engine(&warm);

    // A damaged cache file is recompiled and replaced.
    std::fs::write(&file, b"not machine code").unwrap();
    let healed = ComponentEngine::with_cache_dir(Some(dir.path())).unwrap();
    assert_same_engine(&healed);
    assert!(std::fs::metadata(&file).unwrap().len() > 1000, "the cache file was rewritten");
}

fn assert_same_engine(engine: &ComponentEngine) {
    let init = init(&clickstream_job(""), 4);
    let (a, sa) = run(engine, &init, CLICKS.as_bytes(), 100).unwrap();
    let (b, sb) = run(&NativeEngine, &init, CLICKS.as_bytes(), 100).unwrap();
    assert!(a.encrypted == b.encrypted && a.keys == b.keys && a.derived == b.derived);
    assert_eq!(sa, sb);
}

#[test]
fn component_jobs_run_on_worker_threads() {
    let input = generated_input(2_000);
    let expected = run(&NativeEngine, &init(&clickstream_job(""), 5), &input, 8192).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| run(component_engine(), &init(&clickstream_job(""), 5), &input, 8192).unwrap()))
            .collect();
        for h in handles {
            let (out, summary) = h.join().unwrap();
            assert!(out.encrypted == expected.0.encrypted && out.keys == expected.0.keys);
            assert_eq!(summary, expected.1);
        }
    });
}
