//! No error message or Debug output contains a PII value or key material.
mod common;

use base64::Engine;
use common::*;
use keylink_core::job::Job;

const SECRET_EMAIL: &str = "very.private@example.com";
const SECRET_SESSION: &str = "sess-PRIVATE-42";

fn inputs() -> Vec<String> {
    let h = "session_id,timestamp,consent,email,customer_id,ip_address,page\n";
    vec![
        format!("{h}{SECRET_SESSION},2026-03-01T10:00:00Z,,{SECRET_EMAIL},C1\n"),
        format!("{h}{SECRET_SESSION},{SECRET_EMAIL},,{SECRET_EMAIL},C1,1.1.1.1,/\n"),
        format!("{h}{SECRET_SESSION},2026-03-01T10:00:00Z,{SECRET_EMAIL},{SECRET_EMAIL},C1,1.1.1.1,/,extra\n"),
    ]
}

#[test]
fn errors_never_echo_cells() {
    for input in inputs() {
        let err = run(&config(&clickstream_job("")), input.as_bytes()).err().expect("each input is bad");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(SECRET_EMAIL) && !text.contains(SECRET_SESSION), "{text}");
        }
    }
}

#[test]
fn debug_of_job_requests_and_keys_hides_values_and_material() {
    let cfg = config(&clickstream_job(""));
    let mut job = Job::new(&cfg, [5; 32], &mut |_| Ok(b"s".to_vec())).unwrap();
    let input = format!(
        "session_id,timestamp,consent,email,customer_id,ip_address,page\n{SECRET_SESSION},2026-03-01T10:00:00Z,,{SECRET_EMAIL},C1,1.1.1.1,/\n"
    );
    job.push(input.as_bytes()).unwrap();
    let req = &job.key_requests()[0];
    let material = req.proposal.key.material.as_bytes().to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&material);
    let hex: String = material.iter().map(|b| format!("{b:02x}")).collect();
    let dbg = format!("{job:?} {req:?} {:?}", req.proposal);
    assert!(!dbg.contains(SECRET_SESSION) && !dbg.contains(SECRET_EMAIL), "{dbg}");
    assert!(!dbg.contains(&b64) && !dbg.contains(&hex), "{dbg}");
    assert!(!dbg.contains(&format!("{:?}", material)), "{dbg}");
}
