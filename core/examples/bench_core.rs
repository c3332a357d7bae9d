//! Raw speed of the core: a job over an in-memory file with an in-memory key
//! store, outputs discarded. usage: bench_core JOB.json [PASSES]
use std::collections::HashMap;
use std::time::Instant;

use keylink_core::config::{JobConfig, SecretRef};
use keylink_core::job::{Job, Outputs};
use keylink_core::keys::StoredKey;

fn main() {
    let path = std::env::args().nth(1).expect("usage: bench_core JOB.json");
    let passes: usize = std::env::args().nth(2).map_or(1, |p| p.parse().unwrap());
    let json = std::fs::read_to_string(&path).unwrap();
    let config = JobConfig::from_json(&json, &mut |p| std::fs::read_to_string(p).map_err(|e| e.to_string())).unwrap();
    let src = match config.source.location.connector.as_ref().and_then(|c| config.data_connectors.get(c)) {
        Some(keylink_core::config::ConnectorConfig::Local { root }) => std::path::Path::new(root).join(config.source.location.path()),
        _ => config.source.location.path().into(),
    };
    let input = std::fs::read(src).unwrap();
    let mut store: HashMap<(String, i64), StoredKey> = HashMap::new();
    for pass in 0..passes {
        let t = Instant::now();
        let mut job = Job::new(&config, [pass as u8; 32], &mut |_: &SecretRef| Ok(b"seed".to_vec())).unwrap();
        let mut out = Outputs::default();
        let (mut bytes_out, mut t_keys) = (0usize, 0f64);
        for chunk in input.chunks(1 << 20) {
            job.push(chunk).unwrap();
            let tk = Instant::now();
            let keys: Vec<StoredKey> = job
                .key_requests()
                .iter()
                .map(|r| store.entry((r.key_value.clone(), r.window)).or_insert_with(|| r.proposal.clone()).clone())
                .collect();
            if !keys.is_empty() {
                job.provide_keys(keys).unwrap();
            }
            t_keys += tk.elapsed().as_secs_f64();
            job.drain(&mut out).unwrap();
            bytes_out += out.encrypted.len();
            out.encrypted.clear();
            out.keys.clear();
            out.derived.iter_mut().for_each(Vec::clear);
        }
        job.end_input().unwrap();
        let s = job.finish(&mut out).unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "pass {pass}: {} rows in {secs:.2} s ({:.0} rows/s, {:.0} MB/s in), {} keys ({} new), key answers {t_keys:.2} s, {bytes_out} bytes out",
            s.rows_written,
            s.rows_written as f64 / secs,
            input.len() as f64 / secs / 1e6,
            s.keys_used,
            s.keys_created
        );
    }
}
