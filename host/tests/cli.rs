//! End-to-end tests of the `keylink` CLI on real files, a real SQLite store
//! and real processes.
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn keylink() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keylink"))
}

const HEADER: &str = "event_id,session_id,timestamp,consent,email,customer_id,ip_address,page";

/// A clickstream CSV of `rows` rows (deterministic).
fn clicks(rows: usize) -> String {
    let mut s = String::with_capacity(rows * 110);
    s.push_str(HEADER);
    s.push('\n');
    let consents = ["analytics", "marketing", "[1,2]", "", "garbage", "analytics|marketing"];
    for i in 0..rows {
        let sess = (i * 7919) % (rows / 10 + 1);
        s.push_str(&format!(
            "{i},sess-{sess:06},2026-03-0{}T{:02}:{:02}:{:02}.{:03}Z,\"{}\",user{sess}@example.com,C{:06},10.0.{}.{},\"/p?q=a,b\"\n",
            1 + i % 3,
            i % 24,
            i % 60,
            (i / 60) % 60,
            i % 1000,
            consents[i % consents.len()],
            sess * 13 % 100000,
            sess % 256,
            i % 256
        ));
    }
    s
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(csv: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        std::fs::write(dir.path().join("in/events.csv"), csv).unwrap();
        std::fs::write(dir.path().join("seed.txt"), "test-masking-seed\n").unwrap();
        let f = Fixture { dir };
        f.write_job("job.json", "", "out");
        f
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    /// A job file; `extra` is spliced into the top-level object.
    fn write_job(&self, name: &str, extra: &str, out: &str) -> PathBuf {
        let json = format!(
            r#"{{ {extra}
  "data_connectors": {{ "in": {{ "local": {{ "root": "in" }} }}, "out": {{ "local": {{ "root": "{out}" }} }} }},
  "data_contract": {{ "ref": "acme/clickstream/1.0.0", "key_field": "session_id",
                     "pii_fields": {{ "email": 1, "ip_address": 1, "customer_id": 2 }}, "data_subject_field": "customer_id" }},
  "source_data": {{ "data_connector_ref": {{ "name": "in" }}, "file_name": "events.csv" }},
  "consent": {{ "default_consent_levels": [],
               "consent_level_extractor": {{ "field": "consent", "separator": "|",
                 "field_patterns": {{ "analytics": {{ "consent_levels": [1] }}, "marketing": {{ "consent_levels": [1, 2] }},
                                     "[1,2]": {{ "consent_levels": [1, 2] }} }} }} }},
  "encryption": {{ "batch_job_group_id": "clicks", "timestamp_config": {{ "field": "timestamp", "format": "iso8601" }} }},
  "encrypted_data": {{ "target": {{ "data_connector_ref": {{ "name": "out" }}, "file_name": "encrypted.csv" }} }},
  "encryption_keys_data": {{ "target": {{ "data_connector_ref": {{ "name": "out" }}, "file_name": "keys.csv" }} }},
  "derived_data": [
    {{ "target": {{ "data_connector_ref": {{ "name": "out" }}, "file_name": "analytics.csv" }},
      "consent_levels": [1], "consent_level_type": "GRANULAR",
      "masked_fields": {{ "seed": "file:seed.txt", "fields": ["customer_id"] }} }}
  ]
}}"#
        );
        let p = self.path(name);
        std::fs::write(&p, json).unwrap();
        p
    }
    /// `keylink ARGS` in the fixture's directory.
    fn run(&self, args: &[&str]) -> Output {
        keylink().current_dir(self.dir.path()).args(args).env_remove("KEYLINK_KEY_STORE").output().unwrap()
    }
    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }
    fn files(&self, dir: &str) -> Vec<String> {
        match std::fs::read_dir(self.path(dir)) {
            Ok(rd) => {
                let mut v: Vec<String> = rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn events(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn states(o: &Output) -> Vec<String> {
    events(o).iter().filter(|e| e["event"] == "state").map(|e| e["state"].as_str().unwrap().to_string()).collect()
}

fn messages(o: &Output) -> Vec<String> {
    events(o).iter().filter(|e| e["event"] == "state").map(|e| e["message"].as_str().unwrap().to_string()).collect()
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut dec = keylink_core::csv::CsvDecoder::new(b',', keylink_core::config::Charset::Utf8);
    let mut rows = Vec::new();
    let mut on = |ev: keylink_core::csv::DecodeEvent<'_>| {
        if let keylink_core::csv::DecodeEvent::Record(r) = ev {
            rows.push(r.fields().map(String::from).collect());
        }
        Ok(())
    };
    dec.push(text.as_bytes(), &mut on).unwrap();
    dec.finish(&mut on).unwrap();
    rows
}

/// Google Tink (Python) decrypts every PII cell of `out/encrypted.csv` back
/// to the input, with the keys of `out/keys.csv`.
fn tink_decrypts(f: &Fixture, extra: &[String]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/tink_decrypt.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(f.path("out/keys.csv"))
        .arg(f.path("out/encrypted.csv"))
        .arg(f.path("in/events.csv"))
        .arg("email,customer_id,ip_address")
        .arg("field-name")
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
}

const RETRY: &str = "--retry-delay-ms=5";

#[test]
fn run_writes_every_output_and_the_lifecycle() {
    let f = Fixture::new(&clicks(3000));
    let o = f.run(&["run", "job.json", "--events", "json", "--workers", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(states(&o), ["PENDING", "STARTED", "FINISHED"]);
    let done = messages(&o).pop().unwrap();
    assert!(done.starts_with("Processed 3000 records in ") && done.ends_with(" records/s)"), "{done}");
    assert_eq!(f.files("out"), ["analytics.csv", "encrypted.csv", "keys.csv"]);
    let enc = csv_rows(&f.read("out/encrypted.csv"));
    assert_eq!(enc.len(), 3001);
    assert_eq!(enc[0][8], "strmMeta.eventContractRef");
    assert_eq!(enc.iter().filter(|r| r[0] == "event_id").count(), 1, "one header");
    let ids: Vec<&str> = enc[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, (0..3000).map(|i| i.to_string()).collect::<Vec<_>>(), "rows in input order");
    // one keys row per key link used
    let keys = csv_rows(&f.read("out/keys.csv"));
    let mut links: Vec<&str> = enc[1..].iter().map(|r| r[11].as_str()).collect();
    links.sort();
    links.dedup();
    assert_eq!(keys.len() - 1, links.len());
    // the job store has it
    let id = events(&o)[0]["job_id"].as_str().unwrap().to_string();
    let show = f.run(&["jobs", "show", &id, "--key-store", "sqlite:keylink.db"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("PENDING") && text.contains("STARTED") && text.contains("FINISHED"), "{text}");
}

#[test]
fn google_tink_decrypts_cli_outputs() {
    let f = Fixture::new(&clicks(500));
    assert!(f.run(&["run", "job.json"]).status.success());
    tink_decrypts(&f, &[]);
}

#[test]
fn decrypt_restores_the_input_values() {
    let f = Fixture::new(&clicks(400));
    assert!(f.run(&["run", "job.json"]).status.success());
    let o = f.run(&["decrypt", "--keys", "out/keys.csv", "out/encrypted.csv", "plain.csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("decrypted 1200 cells in 400 rows"), "{}", stderr(&o));
    let plain = csv_rows(&f.read("plain.csv"));
    let input = csv_rows(&f.read("in/events.csv"));
    for (p, i) in plain.iter().zip(&input) {
        assert_eq!(&p[..8], &i[..]);
    }
    // the same from the key store
    let o = f.run(&["decrypt", "--key-store", "sqlite:keylink.db", "out/encrypted.csv", "plain2.csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(f.read("plain.csv"), f.read("plain2.csv"));
}

#[test]
fn shredding_a_subject_makes_its_cells_unreadable() {
    let f = Fixture::new(&clicks(400));
    assert!(f.run(&["run", "job.json"]).status.success());
    let input = csv_rows(&f.read("in/events.csv"));
    let subject = input[1][5].clone();
    let o = f.run(&["shred", "--group", "clicks", "--subject", &subject, "--key-store", "sqlite:keylink.db"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = f.run(&["decrypt", "--key-store", "sqlite:keylink.db", "out/encrypted.csv", "plain.csv"]);
    assert!(o.status.success());
    let plain = csv_rows(&f.read("plain.csv"));
    for (p, i) in plain[1..].iter().zip(&input[1..]) {
        if i[5] == subject {
            assert_ne!(p[4], i[4], "the shredded subject's email stays encrypted");
        } else {
            assert_eq!(p[4], i[4]);
        }
    }
    assert!(!std::fs::read(f.path("keylink.db")).unwrap().windows(subject.len()).any(|w| w == subject.as_bytes()));
}

#[test]
fn invalid_job_file_reports_every_path_and_creates_no_job() {
    let f = Fixture::new(&clicks(10));
    std::fs::write(
        f.path("bad.json"),
        r#"{ "data_contract": { "ref": "x", "key_field": "session_id", "pii_fields": { "email": -1 } },
            "source_data": { "file_name": "in/events.csv", "data_type": { "csv": { "delimiter": "::" } } },
            "encryption": { "cipher": "rot13", "timestamp_config": { "field": "timestamp", "format": "iso8601" } },
            "derived_data": [ { "consent_levels": [1, 2], "consent_level_type": "CUMULATIVE" } ],
            "colour": "blue" }"#,
    )
    .unwrap();
    for cmd in ["validate", "run"] {
        let o = f.run(&[cmd, "bad.json"]);
        assert_eq!(o.status.code(), Some(1));
        let e = stderr(&o);
        for path in [
            "data_contract.ref",
            "data_contract.pii_fields.email",
            "source_data.data_type.csv.delimiter",
            "encryption.cipher",
            "derived_data[0].consent_levels: CUMULATIVE needs exactly one level",
            "colour",
        ] {
            assert!(e.contains(path), "{cmd}: `{path}` missing in:\n{e}");
        }
    }
    assert!(!f.path("keylink.db").exists(), "no job was created");
}

#[test]
fn missing_column_fails_to_start_after_three_retries() {
    let f = Fixture::new("event_id,session_id,timestamp,consent,email,customer_id,page\n1,s,2026-03-01T00:00:00Z,,a@x,C1,/\n");
    let o = f.run(&["run", "job.json", "--events", "json", RETRY]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(states(&o), ["PENDING", "ERROR_STARTING", "ERROR_STARTING", "ERROR_STARTING", "ERROR_STARTING"]);
    let m = messages(&o);
    assert!(m[1].contains("column `ip_address` (PII field) is not in the header"), "{m:?}");
    assert!(m[4].contains("attempt 4 of 4; giving up"), "{m:?}");
    assert!(f.files("out").is_empty());
}

#[test]
fn unreadable_source_is_a_start_error_with_retries() {
    let f = Fixture::new("");
    std::fs::remove_file(f.path("in/events.csv")).unwrap();
    let o = f.run(&["run", "job.json", "--events", "json", RETRY]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(states(&o).iter().filter(|s| *s == "ERROR_STARTING").count(), 4);
    assert!(messages(&o)[1].contains("cannot open source in/events.csv"), "{:?}", messages(&o));
}

#[test]
fn bad_timestamp_fails_the_job_naming_row_and_format() {
    let mut csv = clicks(50);
    csv.push_str("50,sess-1,01/03/2026 10:00,analytics,secret@example.com,C1,10.0.0.1,/\n");
    let f = Fixture::new(&csv);
    let o = f.run(&["run", "job.json", "--events", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(states(&o), ["PENDING", "STARTED", "ERROR"]);
    let m = messages(&o).pop().unwrap();
    assert!(m.contains("row 51 (line 52)") && m.contains("`timestamp`") && m.contains("iso8601"), "{m}");
    assert!(!m.contains("secret@example.com") && !m.contains("01/03/2026"));
    assert!(f.files("out").is_empty(), "nothing partial: {:?}", f.files("out"));
}

#[test]
fn ragged_row_fails_under_fail_and_is_skipped_under_skip() {
    let mut csv = clicks(30);
    csv.push_str("30,sess-1,2026-03-01T10:00:00Z,analytics,secret@example.com\n");
    csv.push_str(&clicks(5)[HEADER.len() + 1..].replace("\n0,", "\n99,"));
    let f = Fixture::new(&csv);
    let o = f.run(&["run", "job.json", "--events", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let m = messages(&o).pop().unwrap();
    assert_eq!(m, "row 31 (line 32) has 5 fields, the header has 8");
    f.write_job("skip.json", r#""error_policy": "skip","#, "out2");
    let o = f.run(&["run", "skip.json", "--events", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = messages(&o).pop().unwrap();
    assert!(m.contains("Processed 35 records") && m.contains("skipped 1 rows: 31"), "{m}");
    assert_eq!(csv_rows(&f.read("out2/encrypted.csv")).len(), 36);
}

#[test]
fn existing_targets_are_refused_without_overwrite() {
    let f = Fixture::new(&clicks(20));
    assert!(f.run(&["run", "job.json"]).status.success());
    let before = f.read("out/encrypted.csv");
    let o = f.run(&["run", "job.json", "--events", "json", RETRY]);
    assert_eq!(o.status.code(), Some(1));
    assert!(messages(&o)[1].contains("target out/keys.csv already exists (use --overwrite to replace it)"), "{:?}", messages(&o));
    assert_eq!(f.read("out/encrypted.csv"), before);
    let o = f.run(&["run", "job.json", "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(f.read("out/encrypted.csv"), before, "fresh nonces");
}

#[test]
fn a_job_that_is_not_pending_cannot_be_started() {
    let f = Fixture::new(&clicks(20));
    let o = f.run(&["jobs", "create", "job.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let o = f.run(&["jobs", "start", &id, "--events", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(states(&o), ["STARTED", "FINISHED"]);
    let o = f.run(&["jobs", "start", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is FINISHED, not PENDING"), "{}", stderr(&o));
    let list = f.run(&["jobs", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
}

#[test]
fn plan_counts_without_writing_or_creating_keys() {
    let f = Fixture::new(&clicks(300));
    let o = f.run(&["plan", "job.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("rows read:        300"), "{text}");
    assert!(text.contains("keys to reuse:    0"), "{text}");
    assert!(f.files("out").is_empty());
    assert!(!f.path("keylink.db").exists());
    assert!(f.run(&["run", "job.json"]).status.success());
    let keys = csv_rows(&f.read("out/keys.csv")).len() - 1;
    let text = String::from_utf8_lossy(&f.run(&["plan", "job.json"]).stdout).into_owned();
    assert!(text.contains("keys to create:   0") && text.contains(&format!("keys to reuse:    {keys}")), "{text}");
    let derived = csv_rows(&f.read("out/analytics.csv")).len() - 1;
    assert!(text.contains(&format!("analytics.csv: {derived} rows")), "{text}");
}

fn run_with_seed(f: &Fixture, job: &str, engine: &str, workers: &str) -> Output {
    let seed = "11".repeat(32);
    f.run(&["run", job, "--engine", engine, "--workers", workers, "--seed", &seed, "--overwrite"])
}

#[test]
fn component_and_native_engines_give_identical_outputs() {
    let f = Fixture::new(&clicks(20_000));
    f.write_job("native.json", "", "native");
    f.write_job("component.json", "", "component");
    // keys first exist, then both engines reuse the same ones
    assert!(run_with_seed(&f, "native.json", "native", "2").status.success());
    for (job, engine) in [("native.json", "native"), ("component.json", "component")] {
        let o = run_with_seed(&f, job, engine, "2");
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
    }
    for file in ["encrypted.csv", "keys.csv", "analytics.csv"] {
        assert!(f.read(&format!("native/{file}")) == f.read(&format!("component/{file}")), "{file} differs");
    }
}

/// Per key link, the values the store says were encrypted with it.
fn store_uses(f: &Fixture) -> std::collections::HashMap<String, i64> {
    let db = rusqlite::Connection::open(f.path("keylink.db")).unwrap();
    let mut st = db.prepare("SELECT key_link, uses FROM keys").unwrap();
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn a_tiny_key_cache_changes_nothing_written_and_counts_every_use() {
    let f = Fixture::new(&clicks(20_000));
    f.write_job("small.json", "", "small");
    // A fresh store, keys created while workers keep evicting theirs:
    // Tink opens every cell with the keys output, which lists each key once.
    let o = f.run(&["run", "job.json", "--engine", "component", "--workers", "2", "--key-cache", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    tink_decrypts(&f, &[]);
    let keys = csv_rows(&f.read("out/keys.csv"));
    let links: std::collections::HashSet<&String> = keys[1..].iter().map(|k| &k[0]).collect();
    assert_eq!(links.len(), keys.len() - 1, "no key listed twice");
    let first = store_uses(&f);
    let values: i64 = first.values().sum();
    assert_eq!(values, 3 * 20_000, "three PII values a row, none empty");
    assert_eq!(first.len(), keys.len() - 1);
    // Same seed, keys now reused: byte for byte what the default cache writes.
    assert!(run_with_seed(&f, "job.json", "native", "1").status.success());
    let o = f.run(&["run", "small.json", "--engine", "native", "--workers", "1", "--seed", &"11".repeat(32), "--key-cache", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for file in ["encrypted.csv", "keys.csv", "analytics.csv"] {
        assert!(f.read(&format!("out/{file}")) == f.read(&format!("small/{file}")), "{file} differs");
    }
    let after = store_uses(&f);
    for (link, n) in &first {
        assert_eq!(after[link], 3 * n, "{link}: every job's uses recorded once");
    }
}

#[test]
fn worker_count_does_not_change_what_is_written_but_nonces() {
    let f = Fixture::new(&clicks(20_000));
    f.write_job("one.json", "", "one");
    f.write_job("four.json", "", "four");
    assert!(run_with_seed(&f, "one.json", "native", "1").status.success());
    assert!(run_with_seed(&f, "four.json", "component", "4").status.success());
    let a = csv_rows(&f.read("one/encrypted.csv"));
    let b = csv_rows(&f.read("four/encrypted.csv"));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x[..4], y[..4]);
        assert_eq!(x[11], y[11], "same key link");
    }
    assert_eq!(f.read("one/keys.csv"), f.read("four/keys.csv"));
}

#[test]
fn quotes_inside_unquoted_fields_do_not_move_the_workers_chunk_cuts() {
    // `5'10"` is data to the CSV reader (a quote counts only at a field's
    // start). A splitter counting quotes would, after that one stray quote,
    // take every quoted line feed below for a record end: it would cut
    // inside records and glue halves of records from different chunks.
    let mut text = clicks(20_000).replace("/p?q=a,b", "/p\nq");
    let at = text.match_indices("@example.com").nth(100).unwrap().0;
    text.insert_str(at, "5'10\"");
    let f = Fixture::new(&text);
    f.write_job("one.json", "", "one");
    f.write_job("two.json", "", "two");
    assert!(run_with_seed(&f, "one.json", "native", "1").status.success());
    let o = run_with_seed(&f, "two.json", "native", "2");
    assert!(o.status.success(), "{}", stderr(&o));
    let a = csv_rows(&f.read("one/encrypted.csv"));
    let b = csv_rows(&f.read("two/encrypted.csv"));
    assert_eq!(a.len(), 20_001);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x[..4], y[..4]);
        assert_eq!(x[7], y[7]);
        assert_eq!(x[11], y[11], "same key link");
    }
}

#[test]
fn concurrent_jobs_in_one_group_share_keys() {
    let f = Fixture::new(&clicks(20_000));
    f.write_job("a.json", "", "a");
    f.write_job("b.json", "", "b");
    let spawn = |job: &str| keylink().current_dir(f.dir.path()).args(["run", job, "--workers", "2"]).stderr(Stdio::piped()).spawn().unwrap();
    let (pa, pb) = (spawn("a.json"), spawn("b.json"));
    let (oa, ob) = (pa.wait_with_output().unwrap(), pb.wait_with_output().unwrap());
    assert!(oa.status.success() && ob.status.success(), "{} {}", stderr(&oa), stderr(&ob));
    let a = csv_rows(&f.read("a/encrypted.csv"));
    let b = csv_rows(&f.read("b/encrypted.csv"));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x[11], y[11], "one key link per (value, window)");
    }
}

#[test]
fn sigkill_mid_run_leaves_no_output_files() {
    let f = Fixture::new(&clicks(400_000));
    let mut child = keylink()
        .current_dir(f.dir.path())
        .args(["run", "job.json", "--events", "json", "--heartbeat", "0.05", "--workers", "1", "--engine", "native"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let t0 = Instant::now();
    let mut running = false;
    while let Some(Ok(line)) = lines.next() {
        if line.contains("\"RUNNING\"") {
            running = true;
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120));
    }
    assert!(running, "the job reported RUNNING before it ended");
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<String> = f.files("out");
    assert!(left.is_empty(), "files left after SIGKILL: {left:?}");
    let _ = std::io::stdout().flush();
}

#[test]
fn frequent_heartbeats_while_keys_are_created_finish_the_job() {
    // Heartbeats write to the job store, which shares its file (and its
    // write lock) with the key store's open batches: neither may wait for
    // the other for good.
    let f = Fixture::new(&clicks(60_000));
    let mut child = keylink()
        .current_dir(f.dir.path())
        .args(["run", "job.json", "--events", "json", "--heartbeat", "0.02", "--workers", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("the job stalled");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("\"RUNNING\""), "{out}");
    assert!(out.lines().last().unwrap().contains("\"FINISHED\""), "{out}");
    assert_eq!(csv_rows(&f.read("out/encrypted.csv")).len(), 60_001);
}

#[test]
fn component_has_no_imports() {
    let o = keylink().arg("component-imports").output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
}

#[test]
fn with_a_kek_the_keys_output_holds_encrypted_keysets_that_tink_opens() {
    use keylink_core::config::CipherKind;
    use keylink_core::tink::{KeyMaterial, TinkKey};
    let f = Fixture::new(&clicks(300));
    let kek = TinkKey { key_id: 0x1234_5678, cipher: CipherKind::Aes256Gcm, material: KeyMaterial::new((0..32u8).map(|b| b.wrapping_mul(37)).collect()) };
    std::fs::write(f.path("kek.json"), kek.to_keyset_json()).unwrap();
    let o = f.run(&["run", "job.json", "--kek", "file:kek.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let keys = f.read("out/keys.csv");
    assert!(keys.contains("encryptedKeyset") && !keys.contains("AesGcmKey\\\",\\\"value"), "{}", &keys[..300]);
    let o = f.run(&["decrypt", "--keys", "out/keys.csv", "out/encrypted.csv", "plain.csv"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("key-encryption key is needed"), "{}", stderr(&o));
    let o = f.run(&["decrypt", "--keys", "out/keys.csv", "--kek", "file:kek.json", "out/encrypted.csv", "plain.csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("decrypted 900 cells"), "{}", stderr(&o));
    let o = f.run(&["run", "job.json", "--overwrite"]);
    assert!(!o.status.success(), "a wrapped store refuses to open without its KEK");
    tink_decrypts(&f, &["--kek-keyset".into(), f.path("kek.json").display().to_string()]);
}

#[test]
fn the_job_files_kek_is_used_without_the_flag_and_must_agree_with_it() {
    use keylink_core::config::CipherKind;
    use keylink_core::tink::{KeyMaterial, TinkKey};
    let f = Fixture::new(&clicks(300));
    let key = |id: u32, m: u8| TinkKey { key_id: id, cipher: CipherKind::Aes256Gcm, material: KeyMaterial::new((0..32u8).map(|b| b.wrapping_mul(m)).collect()) };
    std::fs::write(f.path("kek.json"), key(0x1234_5678, 37).to_keyset_json()).unwrap();
    std::fs::write(f.path("other.json"), key(0x0bad_cafe, 11).to_keyset_json()).unwrap();
    let job = std::fs::read_to_string(f.path("job.json")).unwrap();
    let with_kek = job.replace(r#""batch_job_group_id": "clicks","#, r#""batch_job_group_id": "clicks", "kek": "file:kek.json","#);
    assert_ne!(job, with_kek);
    std::fs::write(f.path("kek-job.json"), with_kek).unwrap();

    let o = f.run(&["run", "kek-job.json", "--kek", "file:other.json"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("different keys"), "{}", stderr(&o));
    assert!(f.files("out").is_empty(), "nothing written");

    let o = f.run(&["run", "kek-job.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let keys = f.read("out/keys.csv");
    assert!(keys.contains("encryptedKeyset") && !keys.contains("AesGcmKey\\\",\\\"value"), "{}", &keys[..300]);
    tink_decrypts(&f, &["--kek-keyset".into(), f.path("kek.json").display().to_string()]);
    // The store was created wrapped: a job without the KEK cannot open it,
    // the same KEK by flag can.
    let o = f.run(&["run", "job.json", "--overwrite"]);
    assert!(!o.status.success(), "a wrapped store refuses to open without its KEK");
    let o = f.run(&["run", "kek-job.json", "--overwrite", "--kek", "file:kek.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
