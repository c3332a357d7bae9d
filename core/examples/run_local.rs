//! Runs a job file over local files natively, with an in-memory key store:
//! the core on its own, before any host. Paths in the job file are relative
//! to the working directory; `local` connectors resolve against their root.
//!
//! usage: cargo run -p keylink-core --example run_local -- JOB.json
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use keylink_core::config::{ConnectorConfig, JobConfig, Location, SecretRef};
use keylink_core::job::{Job, Outputs};
use keylink_core::keys::StoredKey;

fn resolve(config: &JobConfig, loc: &Location) -> Result<PathBuf, String> {
    match loc.connector.as_ref().and_then(|c| config.data_connectors.get(c)) {
        Some(ConnectorConfig::Local { root }) => Ok(PathBuf::from(root).join(loc.path())),
        Some(_) => Err("this example handles local connectors only".into()),
        None => Ok(PathBuf::from(loc.path())),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: run_local JOB.json")?;
    let json = std::fs::read_to_string(&path)?;
    let config = JobConfig::from_json(&json, &mut |p| std::fs::read_to_string(p).map_err(|e| e.to_string()))?;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let mut secrets = |s: &SecretRef| match s {
        SecretRef::Env(n) => std::env::var(n).map(String::into_bytes).map_err(|_| format!("environment variable {n} is not set")),
        SecretRef::File(p) => std::fs::read(p).map_err(|e| e.to_string()),
        SecretRef::Inline(v) => Ok(v.clone().into_bytes()),
    };
    let mut job = Job::new(&config, seed, &mut secrets)?;
    let mut store: HashMap<(String, i64), StoredKey> = HashMap::new();
    let mut out = Outputs::default();
    let mut input = std::fs::File::open(resolve(&config, &config.source.location)?)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut enc = Vec::new();
    let mut derived = vec![Vec::new(); config.derived_data.len()];
    let mut keys = Vec::new();
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            job.end_input()?;
        } else {
            job.push(&buf[..n])?;
        }
        let answers: Vec<StoredKey> = job
            .key_requests()
            .iter()
            .map(|r| store.entry((r.key_value.clone(), r.window)).or_insert_with(|| r.proposal.clone()).clone())
            .collect();
        if !answers.is_empty() {
            job.provide_keys(answers)?;
        }
        job.drain(&mut out)?;
        enc.append(&mut out.encrypted);
        keys.append(&mut out.keys);
        for (d, o) in derived.iter_mut().zip(out.derived.iter_mut()) {
            d.append(o);
        }
        if n == 0 {
            break;
        }
    }
    let summary = job.finish(&mut out)?;
    let write = |loc: &Location, bytes: &[u8]| -> std::io::Result<()> {
        let p = resolve(&config, loc).map_err(std::io::Error::other)?;
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::File::create(&p)?.write_all(bytes)?;
        println!("wrote {}", p.display());
        Ok(())
    };
    write(&config.encryption_keys_data.location, &keys)?;
    write(&config.encrypted_data.location, &enc)?;
    for (d, bytes) in config.derived_data.iter().zip(&derived) {
        write(&d.target.location, bytes)?;
    }
    println!("{} rows, {} keys, {} skipped", summary.rows_written, summary.keys_used, summary.rows_skipped);
    Ok(())
}
