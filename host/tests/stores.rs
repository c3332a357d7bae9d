//! Key store and job store on real SQLite files: reuse, no PII at rest,
//! cipher pinning, races between threads and processes, KEK wrapping,
//! shredding, job lifecycle.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use keylink_core::config::CipherKind;
use keylink_core::keys::{KeyRequest, StoredKey};
use keylink_core::tink::{KeyMaterial, TinkKey};
use keylink_host::jobstore::{JobState, JobStoreError, SqliteJobStore};
use keylink_host::keystore::{Kek, KeyStore, KeyStoreError, SqliteKeyStore};

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).unwrap();
    b
}

fn random_key(cipher: CipherKind) -> TinkKey {
    let id = loop {
        let b = random_bytes(4);
        let id = u32::from_be_bytes(b.try_into().unwrap());
        if id != 0 {
            break id;
        }
    };
    TinkKey {
        key_id: id,
        cipher,
        material: KeyMaterial::new(random_bytes(cipher.key_len())),
    }
}

fn proposal(cipher: CipherKind) -> StoredKey {
    StoredKey {
        key_link: uuid::Uuid::new_v4().to_string(),
        key: random_key(cipher),
        uses_before: 0,
    }
}

fn req(value: &str, window: i64, subject: Option<&str>, cipher: CipherKind) -> KeyRequest {
    KeyRequest {
        key_value: value.to_owned(),
        window,
        window_start_ms: window * 3_600_000,
        subject: subject.map(str::to_owned),
        proposal: proposal(cipher),
    }
}

const GCM: CipherKind = CipherKind::Aes256Gcm;
const SIV: CipherKind = CipherKind::Aes256Siv;

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("keylink.db")
}

/// The bytes of the database and its WAL, where recent writes live.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(w) = std::fs::read(PathBuf::from(wal)) {
        bytes.extend(w);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn count_keys(path: &Path, group: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM keys WHERE group_id = ?1",
        [group],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn get_or_create_creates_then_reuses_in_request_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKeyStore::open(&db(&dir), None).unwrap();
    let requests = vec![
        req("alice", 1, None, GCM),
        req("bob", 1, None, GCM),
        req("alice", 2, None, GCM),
        req("", 1, None, GCM),
    ];
    let first = store.get_or_create("g", GCM, &requests).unwrap();
    assert_eq!(first.len(), 4);
    for (k, r) in first.iter().zip(&requests) {
        assert_eq!(k, &r.proposal, "a new combination gets the proposal");
    }
    // Different windows, values and the empty value: all distinct keys.
    let links: HashSet<_> = first.iter().map(|k| &k.key_link).collect();
    assert_eq!(links.len(), 4);

    // Same combinations, new proposals, another order: the stored keys come back.
    let again = vec![
        req("", 1, None, GCM),
        req("alice", 2, None, GCM),
        req("alice", 1, None, GCM),
        req("bob", 1, None, GCM),
    ];
    let second = store.get_or_create("g", GCM, &again).unwrap();
    assert_eq!(
        second,
        vec![
            first[3].clone(),
            first[2].clone(),
            first[0].clone(),
            first[1].clone()
        ]
    );

    // Reopening the file gives the same keys.
    drop(store);
    let store = SqliteKeyStore::open(&db(&dir), None).unwrap();
    let third = store.get_or_create("g", GCM, &requests).unwrap();
    assert_eq!(third, first);

    // Another group: other keys for the same values.
    let fresh: Vec<_> = requests
        .iter()
        .map(|r| req(&r.key_value, r.window, None, GCM))
        .collect();
    let other = store.get_or_create("h", GCM, &fresh).unwrap();
    for (a, b) in other.iter().zip(&first) {
        assert_ne!(a.key_link, b.key_link);
        assert_ne!(a.key.material, b.key.material);
    }
}

#[test]
fn duplicate_requests_in_one_batch_share_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKeyStore::open(&db(&dir), None).unwrap();
    let keys = store
        .get_or_create("g", SIV, &[req("x", 0, None, SIV), req("x", 0, None, SIV)])
        .unwrap();
    assert_eq!(keys[0], keys[1]);
    assert_eq!(count_keys(&db(&dir), "g"), 1);
}

#[test]
fn lookup_finds_existing_keys_and_inserts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKeyStore::open(&db(&dir), None).unwrap();
    let created = store
        .get_or_create("g", GCM, &[req("a", 1, None, GCM)])
        .unwrap();
    let found = store
        .lookup(
            "g",
            &[
                req("b", 1, None, GCM),
                req("a", 1, None, GCM),
                req("a", 2, None, GCM),
            ],
        )
        .unwrap();
    assert_eq!(found, vec![None, Some(created[0].clone()), None]);
    assert_eq!(
        store.lookup("other", &[req("a", 1, None, GCM)]).unwrap(),
        vec![None]
    );
    assert_eq!(count_keys(&db(&dir), "g"), 1);
}

#[test]
fn the_file_holds_no_plaintext_key_or_subject_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = SqliteKeyStore::open(&path, None).unwrap();
    let values = ["alice.wonderland@example.com", "bob-the-builder-4711"];
    let subjects = ["subject-carol-0123456789", "subject-dave-9876543210"];
    let requests: Vec<_> = values
        .iter()
        .zip(&subjects)
        .map(|(v, s)| req(v, 7, Some(s), GCM))
        .collect();
    let keys = store.get_or_create("pii-group", GCM, &requests).unwrap();
    let bytes = file_bytes(&path);
    for v in values.iter().chain(&subjects) {
        assert!(!contains(&bytes, v.as_bytes()), "{v} is in the file");
    }
    // The search does find what is there: the group id and, without a KEK,
    // the raw material.
    assert!(contains(&bytes, b"pii-group"));
    assert!(contains(&bytes, keys[0].key.material.as_bytes()));

    // Equal values in different groups do not link: their HMACs differ.
    let requests = [req(values[0], 7, Some(subjects[0]), GCM)];
    store.get_or_create("other-group", GCM, &requests).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let hmacs: Vec<Vec<u8>> = conn
        .prepare("SELECT key_value_hmac FROM keys WHERE key_link IN (?1, ?2)")
        .unwrap()
        .query_map(
            [
                &keys[0].key_link,
                &store.lookup("other-group", &requests[..1]).unwrap()[0]
                    .as_ref()
                    .unwrap()
                    .key_link,
            ],
            |r| r.get(0),
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(hmacs.len(), 2);
    assert_eq!(hmacs[0].len(), 32);
    assert_ne!(hmacs[0], hmacs[1]);
}

#[test]
fn a_group_keeps_the_cipher_of_its_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKeyStore::open(&db(&dir), None).unwrap();
    store
        .get_or_create("g", GCM, &[req("a", 1, None, GCM)])
        .unwrap();
    let err = store
        .get_or_create("g", SIV, &[req("a", 1, None, SIV)])
        .unwrap_err();
    match err {
        KeyStoreError::CipherMismatch {
            group,
            stored,
            requested,
        } => {
            assert_eq!((group.as_str(), stored, requested), ("g", GCM, SIV));
        }
        other => panic!("expected CipherMismatch, got {other:?}"),
    }
    // Nothing was inserted by the refused batch, and an empty batch is refused too.
    assert_eq!(count_keys(&db(&dir), "g"), 1);
    assert!(matches!(
        store.get_or_create("g", SIV, &[]),
        Err(KeyStoreError::CipherMismatch { .. })
    ));
    // A proposal whose key link another key already has is refused.
    let mut reused = req("c", 1, None, GCM);
    reused.proposal.key_link = store.lookup("g", &[req("a", 1, None, GCM)]).unwrap()[0]
        .as_ref()
        .unwrap()
        .key_link
        .clone();
    assert!(matches!(
        store.get_or_create("g", GCM, &[reused]),
        Err(KeyStoreError::InvalidProposal { .. })
    ));
    // A proposal that does not fit the requested cipher is refused.
    assert!(matches!(
        store.get_or_create("g", GCM, &[req("b", 1, None, SIV)]),
        Err(KeyStoreError::InvalidProposal { .. })
    ));
}

#[test]
fn record_uses_adds_up_and_keys_by_links_finds_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKeyStore::open(&db(&dir), None).unwrap();
    let requests = [req("a", 1, None, GCM), req("b", 1, None, GCM)];
    let keys = store.get_or_create("g", GCM, &requests).unwrap();
    let (a, b) = (keys[0].key_link.clone(), keys[1].key_link.clone());
    store
        .record_uses(&[(a.clone(), 5), (b.clone(), 1)])
        .unwrap();
    store
        .record_uses(&[
            (a.clone(), 7),
            ("00000000-0000-4000-8000-000000000000".into(), 3),
        ])
        .unwrap();
    let again = store
        .get_or_create("g", GCM, &[req("a", 1, None, GCM), req("b", 1, None, GCM)])
        .unwrap();
    assert_eq!((again[0].uses_before, again[1].uses_before), (12, 1));

    let unknown = "11111111-1111-4111-8111-111111111111".to_string();
    let found = store
        .keys_by_links(&[b.clone(), unknown, a.clone()])
        .unwrap();
    assert_eq!(
        found,
        vec![(b, keys[1].key.clone()), (a, keys[0].key.clone())]
    );
}

#[test]
fn shredding_deletes_exactly_the_keys_of_a_subject_or_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = SqliteKeyStore::open(&path, None).unwrap();
    let requests = [
        req("k1", 1, Some("alice"), GCM),
        req("k1", 2, Some("alice"), GCM),
        req("k2", 1, Some("bob"), GCM),
        req("k3", 1, Some("alice"), GCM),
        req("k4", 1, None, GCM),
    ];
    let keys = store.get_or_create("g", GCM, &requests).unwrap();
    // Same subject and value in another group: untouched.
    let other = store
        .get_or_create("h", GCM, &[req("k1", 1, Some("alice"), GCM)])
        .unwrap();

    assert_eq!(store.shred_subject("g", "alice").unwrap(), 3);
    assert_eq!(store.shred_subject("g", "alice").unwrap(), 0);
    let left = store.lookup("g", &requests).unwrap();
    assert_eq!(
        left,
        vec![
            None,
            None,
            Some(keys[2].clone()),
            None,
            Some(keys[4].clone())
        ]
    );

    assert_eq!(store.shred_key_value("g", "k4").unwrap(), 1);
    assert_eq!(store.lookup("g", &requests).unwrap()[4], None);
    assert_eq!(
        store.lookup("h", &[req("k1", 1, None, GCM)]).unwrap(),
        vec![Some(other[0].clone())]
    );

    // The shredded material is gone from the file (and its WAL), not just unlinked.
    let bytes = file_bytes(&path);
    for i in [0, 1, 3, 4] {
        assert!(
            !contains(&bytes, keys[i].key.material.as_bytes()),
            "material of shredded key {i} still in the file"
        );
    }
    assert!(contains(&bytes, keys[2].key.material.as_bytes()));

    // A shredded combination gets a new key.
    let fresh = store
        .get_or_create("g", GCM, &[req("k1", 1, Some("alice"), GCM)])
        .unwrap();
    assert_ne!(fresh[0].key_link, keys[0].key_link);
}

#[test]
fn an_external_secret_stays_out_of_the_file_and_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let secret = [7u8; 32];
    let store = SqliteKeyStore::open_with_secret(&path, None, &secret).unwrap();
    let keys = store
        .get_or_create("g", GCM, &[req("a", 1, None, GCM)])
        .unwrap();
    drop(store);
    assert!(!contains(&file_bytes(&path), &secret));
    assert!(matches!(
        SqliteKeyStore::open(&path, None),
        Err(KeyStoreError::SecretRequired)
    ));
    assert!(matches!(
        SqliteKeyStore::open_with_secret(&path, None, &[8u8; 32]),
        Err(KeyStoreError::SecretMismatch)
    ));
    let store = SqliteKeyStore::open_with_secret(&path, None, &secret).unwrap();
    assert_eq!(
        store.lookup("g", &[req("a", 1, None, GCM)]).unwrap(),
        vec![Some(keys[0].clone())]
    );

    // A store with its own secret refuses an external one.
    let path2 = dir.path().join("own.db");
    drop(SqliteKeyStore::open(&path2, None).unwrap());
    assert!(matches!(
        SqliteKeyStore::open_with_secret(&path2, None, &secret),
        Err(KeyStoreError::SecretMismatch)
    ));
}

fn kek() -> (TinkKey, Kek) {
    let key = random_key(GCM);
    let kek = Kek::from_keyset_json(&key.to_keyset_json()).unwrap();
    (key, kek)
}

#[test]
fn kek_wraps_material_at_rest_and_must_be_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let (kek_key, kek1) = kek();
    let store = SqliteKeyStore::open(&path, Some(kek1)).unwrap();
    let requests = [req("a", 1, Some("s"), GCM), req("b", 1, None, GCM)];
    let keys = store.get_or_create("g", GCM, &requests).unwrap();
    let bytes = file_bytes(&path);
    for k in &keys {
        assert!(
            !contains(&bytes, k.key.material.as_bytes()),
            "raw material in a KEK store"
        );
    }
    assert!(
        !contains(&bytes, kek_key.material.as_bytes()),
        "KEK material in the file"
    );
    // The stored material is the Tink ciphertext under the KEK.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (wrapped, flag): (Vec<u8>, i64) = conn
        .query_row(
            "SELECT material, wrapped FROM keys WHERE key_link = ?1",
            [&keys[0].key_link],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(flag, 1);
    assert_eq!(wrapped.len(), 5 + 12 + 32 + 16);
    assert_eq!(wrapped[0], 1);
    assert_eq!(&wrapped[1..5], &kek_key.key_id.to_be_bytes());
    drop(store);

    // Without the KEK, or with another one: refused, without key bytes in the message.
    let err = SqliteKeyStore::open(&path, None).unwrap_err();
    assert!(
        matches!(err, KeyStoreError::KekRequired { kek_key_id } if kek_key_id == kek_key.key_id),
        "{err:?}"
    );
    let (_, other) = kek();
    let err = SqliteKeyStore::open(&path, Some(other)).unwrap_err();
    assert!(matches!(err, KeyStoreError::KekMismatch { .. }), "{err:?}");
    // Same key id, other material: still refused (fingerprint).
    let impostor = Kek::new(TinkKey {
        material: KeyMaterial::new(random_bytes(32)),
        ..kek_key.clone()
    })
    .unwrap();
    let err = SqliteKeyStore::open(&path, Some(impostor)).unwrap_err();
    assert!(matches!(err, KeyStoreError::KekMismatch { .. }), "{err:?}");
    assert!(
        !err.to_string()
            .contains(&hex::encode(kek_key.material.as_bytes()))
    );

    // Round trip with the right KEK.
    let store = SqliteKeyStore::open(&path, Some(Kek::new(kek_key.clone()).unwrap())).unwrap();
    let again = store
        .get_or_create("g", GCM, &[req("a", 1, None, GCM), req("b", 1, None, GCM)])
        .unwrap();
    assert_eq!(again, keys);
    assert_eq!(
        store.keys_by_links(&[keys[1].key_link.clone()]).unwrap(),
        vec![(keys[1].key_link.clone(), keys[1].key.clone())]
    );

    // A wrapped row moved to another key link fails to unwrap (AAD binds it).
    conn.execute(
        "UPDATE keys SET material = (SELECT material FROM keys WHERE key_link = ?1) WHERE key_link = ?2",
        [&keys[0].key_link, &keys[1].key_link],
    )
    .unwrap();
    let err = store
        .keys_by_links(&[keys[1].key_link.clone()])
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::Unwrap { .. }), "{err:?}");

    // A raw store refuses a KEK (its material is not wrapped).
    let raw = dir.path().join("raw.db");
    drop(SqliteKeyStore::open(&raw, None).unwrap());
    let err = SqliteKeyStore::open(&raw, Some(Kek::new(kek_key).unwrap())).unwrap_err();
    assert!(matches!(err, KeyStoreError::KekNotExpected), "{err:?}");
}

#[test]
fn a_kek_must_be_one_aes_gcm_key() {
    assert!(matches!(
        Kek::new(random_key(SIV)),
        Err(KeyStoreError::InvalidKek { .. })
    ));
    assert!(matches!(
        Kek::from_keyset_json("{}"),
        Err(KeyStoreError::InvalidKek { .. })
    ));
}

// ---------------------------------------------------------------------------
// Races: threads and processes on one file.

const RACE_GROUP: &str = "race";
const RACE_COMBOS: usize = 200;
const ENV_RACE_DB: &str = "KEYLINK_STORES_TEST_RACE_DB";
#[test]
fn a_batched_get_or_create_holds_the_lock_until_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let a = SqliteKeyStore::open(&path, None).unwrap();
    let requests: Vec<_> = (0..50).map(|i| req(&format!("v{i}"), 1, None, GCM)).collect();
    let keys = a.get_or_create_batched("g", GCM, &requests).unwrap();
    let more = a.get_or_create_batched("g", GCM, &[req("v0", 1, None, GCM), req("w", 1, None, GCM)]).unwrap();
    assert_eq!(more[0], keys[0], "a later batch of the same transaction sees the earlier keys");
    // Not yet durable, and invisible to other connections.
    assert_eq!(count_keys(&path, "g"), 0);
    // Another store on the file waits for the lock, then gets A's keys.
    let (tx, rx) = std::sync::mpsc::channel();
    let other = {
        let path = path.clone();
        let requests: Vec<_> = (0..50).map(|i| req(&format!("v{i}"), 1, None, GCM)).collect();
        thread::spawn(move || {
            let b = SqliteKeyStore::open(&path, None).unwrap();
            let got = b.get_or_create("g", GCM, &requests).unwrap();
            tx.send(()).unwrap();
            got
        })
    };
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(),
        "another writer must wait while a batch is open"
    );
    a.flush().unwrap();
    assert_eq!(other.join().unwrap(), keys, "the waiting writer gets the committed keys");
    assert_eq!(count_keys(&path, "g"), 51);
    a.flush().unwrap();

    // Any other operation commits an open batch first.
    let late = a.get_or_create_batched("g", GCM, &[req("late", 1, None, GCM)]).unwrap();
    assert_eq!(count_keys(&path, "g"), 51);
    assert_eq!(a.keys_by_links(&[late[0].key_link.clone()]).unwrap().len(), 1);
    assert_eq!(count_keys(&path, "g"), 52);
}

#[test]
fn a_failed_batch_loses_its_open_keys_and_says_so_until_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = SqliteKeyStore::open(&path, None).unwrap();
    let first = store.get_or_create_batched("g", GCM, &[req("a", 1, None, GCM), req("b", 1, None, GCM)]).unwrap();
    // A proposal reusing a key link fails inside the open batch.
    let mut clash = req("c", 1, None, GCM);
    clash.proposal.key_link = first[0].key_link.clone();
    let err = store.get_or_create_batched("g", GCM, &[clash]).unwrap_err();
    assert!(matches!(err, KeyStoreError::Uncommitted { .. }), "{err}");
    assert!(err.to_string().contains("key link"), "{err}");
    // The keys of the whole batch are gone, and every batched call and the
    // flush say so until the flush has reported it.
    assert_eq!(count_keys(&path, "g"), 0);
    assert!(matches!(
        store.get_or_create_batched("g", GCM, &[req("d", 1, None, GCM)]),
        Err(KeyStoreError::Uncommitted { .. })
    ));
    assert!(matches!(store.flush(), Err(KeyStoreError::Uncommitted { .. })));
    store.flush().unwrap();
    // Then the store works again; a clash in a fresh transaction is the
    // plain error (nothing earlier was lost).
    let again = store.get_or_create_batched("g", GCM, &[req("a", 1, None, GCM)]).unwrap();
    store.flush().unwrap();
    assert_eq!(count_keys(&path, "g"), 1);
    let mut clash = req("e", 1, None, GCM);
    clash.proposal.key_link = again[0].key_link.clone();
    assert!(matches!(store.get_or_create("g", GCM, &[clash]), Err(KeyStoreError::InvalidProposal { .. })));
}

const ENV_RACE_OUT: &str = "KEYLINK_STORES_TEST_RACE_OUT";
const ENV_RACE_ORDER: &str = "KEYLINK_STORES_TEST_RACE_ORDER";

/// One racer: its own store, the 200 combinations in batches of 20 in an
/// order of its own, fresh proposals. Returns "index link material-hex" lines.
fn race_keys(path: &Path, order: u64) -> Vec<String> {
    let store = SqliteKeyStore::open(path, None).unwrap();
    let mut indices: Vec<usize> = (0..RACE_COMBOS).collect();
    // A cheap deterministic shuffle per racer so that batches overlap differently.
    let mut x = order.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..indices.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        indices.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut out = vec![String::new(); RACE_COMBOS];
    for batch in indices.chunks(20) {
        let requests: Vec<_> = batch
            .iter()
            .map(|&i| req(&format!("value-{}", i / 4), (i % 4) as i64, None, GCM))
            .collect();
        // Odd racers use the batched form (one commit for many batches).
        let keys = if order % 2 == 1 {
            store.get_or_create_batched(RACE_GROUP, GCM, &requests).unwrap()
        } else {
            store.get_or_create(RACE_GROUP, GCM, &requests).unwrap()
        };
        for (&i, k) in batch.iter().zip(keys) {
            out[i] = format!(
                "{i} {} {}",
                k.key_link,
                hex::encode(k.key.material.as_bytes())
            );
        }
    }
    store.flush().unwrap();
    out
}

/// Helper mode for `racing_threads_and_processes_agree_on_one_key`: does
/// nothing unless that test runs this binary as a child process.
#[test]
fn race_helper_keys() {
    let (Ok(path), Ok(out)) = (std::env::var(ENV_RACE_DB), std::env::var(ENV_RACE_OUT)) else {
        return;
    };
    let order = std::env::var(ENV_RACE_ORDER).unwrap().parse().unwrap();
    std::fs::write(out, race_keys(Path::new(&path), order).join("\n")).unwrap();
}

fn spawn_helper(test: &str, envs: &[(&str, String)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

#[test]
fn racing_threads_and_processes_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    // Processes and threads all start on a file that does not exist yet,
    // so schema creation races too.
    let processes: Vec<_> = (0..4)
        .map(|p| {
            let out = dir.path().join(format!("out-{p}.txt"));
            let child = spawn_helper(
                "race_helper_keys",
                &[
                    (ENV_RACE_DB, path.display().to_string()),
                    (ENV_RACE_OUT, out.display().to_string()),
                    (ENV_RACE_ORDER, (100 + p).to_string()),
                ],
            );
            (child, out)
        })
        .collect();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (path, barrier) = (path.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                race_keys(&path, t)
            })
        })
        .collect();
    let mut results: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (mut child, out) in processes {
        assert!(child.wait().unwrap().success(), "a racing process failed");
        results.push(
            std::fs::read_to_string(out)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect(),
        );
    }
    assert_eq!(results.len(), 8);
    assert_eq!(results[0].len(), RACE_COMBOS);
    for r in &results[1..] {
        assert_eq!(r, &results[0], "racers disagree on a key");
    }
    assert_eq!(count_keys(&path, RACE_GROUP), RACE_COMBOS as i64);
    // And the store holds exactly those keys.
    let store = SqliteKeyStore::open(&path, None).unwrap();
    let links: Vec<String> = results[0]
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(store.keys_by_links(&links).unwrap().len(), RACE_COMBOS);
}

// ---------------------------------------------------------------------------
// Job store.

const JOB: &str = "0b0c6f0e-7b0a-4d3e-9a57-3f1c2b4d5e6f";

#[test]
fn job_lifecycle_is_append_only_and_starts_once() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = SqliteJobStore::open(&db(&dir)).unwrap();
    jobs.create_job(JOB, r#"{"name":"x"}"#, "/data", 1000)
        .unwrap();
    assert!(matches!(
        jobs.create_job(JOB, "{}", "/", 1001),
        Err(JobStoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        jobs.create_job("not-a-uuid", "{}", "/", 1001),
        Err(JobStoreError::InvalidId { .. })
    ));

    let rec = jobs.get(JOB).unwrap().unwrap();
    assert_eq!(
        (
            rec.id.as_str(),
            rec.created_at_ms,
            rec.config_json.as_str(),
            rec.base_dir.as_str()
        ),
        (JOB, 1000, r#"{"name":"x"}"#, "/data")
    );
    assert_eq!(rec.states.len(), 1);
    assert_eq!(rec.states[0].state, JobState::Pending);

    jobs.claim_start(JOB, 2000).unwrap();
    match jobs.claim_start(JOB, 2001) {
        Err(JobStoreError::NotPending { id, state }) => {
            assert_eq!((id.as_str(), state), (JOB, JobState::Started))
        }
        other => panic!("expected NotPending, got {other:?}"),
    }
    jobs.append_state(JOB, JobState::Running, "100 rows", 3000)
        .unwrap();
    jobs.append_state(JOB, JobState::Running, "200 rows", 3000)
        .unwrap();
    jobs.append_state(JOB, JobState::Finished, "Processed 200 records", 4000)
        .unwrap();
    let states: Vec<_> = jobs
        .get(JOB)
        .unwrap()
        .unwrap()
        .states
        .into_iter()
        .map(|s| (s.at_ms, s.state, s.message))
        .collect();
    assert_eq!(
        states,
        vec![
            (1000, JobState::Pending, String::new()),
            (2000, JobState::Started, String::new()),
            (3000, JobState::Running, "100 rows".into()),
            (3000, JobState::Running, "200 rows".into()),
            (4000, JobState::Finished, "Processed 200 records".into()),
        ]
    );
    assert!(matches!(
        jobs.claim_start(JOB, 5000),
        Err(JobStoreError::NotPending {
            state: JobState::Finished,
            ..
        })
    ));

    // ERROR_STARTING may be retried.
    let retry = "5d7c3b1a-0000-4000-8000-00000000abcd";
    jobs.create_job(retry, "{}", "/", 500).unwrap();
    jobs.claim_start(retry, 600).unwrap();
    jobs.append_state(retry, JobState::ErrorStarting, "source not found", 700)
        .unwrap();
    jobs.claim_start(retry, 800).unwrap();

    assert!(matches!(
        jobs.append_state(
            "6d7c3b1a-0000-4000-8000-00000000abcd",
            JobState::Running,
            "",
            1
        ),
        Err(JobStoreError::NotFound { .. })
    ));
    assert!(matches!(
        jobs.claim_start("6d7c3b1a-0000-4000-8000-00000000abcd", 1),
        Err(JobStoreError::NotFound { .. })
    ));
    assert_eq!(
        jobs.get("6d7c3b1a-0000-4000-8000-00000000abcd").unwrap(),
        None
    );

    // Newest first, with the latest state.
    let list = jobs.list(10).unwrap();
    assert_eq!(
        list,
        vec![
            (
                JOB.to_string(),
                1000,
                JobState::Finished,
                "Processed 200 records".to_string()
            ),
            (retry.to_string(), 500, JobState::Started, String::new())
        ]
    );
    assert_eq!(jobs.list(1).unwrap().len(), 1);

    // The database itself refuses to rewrite history.
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    assert!(
        conn.execute("UPDATE job_states SET state = 'PENDING'", [])
            .is_err()
    );
    assert!(conn.execute("DELETE FROM job_states", []).is_err());
}

#[test]
fn key_store_and_job_store_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let jobs = SqliteJobStore::open(&path).unwrap();
    let keys = SqliteKeyStore::open(&path, None).unwrap();
    jobs.create_job(JOB, "{}", "/", 1).unwrap();
    let k = keys
        .get_or_create(JOB, GCM, &[req("a", 1, None, GCM)])
        .unwrap();
    drop((jobs, keys));
    let keys = SqliteKeyStore::open(&path, None).unwrap();
    let jobs = SqliteJobStore::open(&path).unwrap();
    assert_eq!(
        keys.lookup(JOB, &[req("a", 1, None, GCM)]).unwrap(),
        vec![Some(k[0].clone())]
    );
    assert_eq!(jobs.list(5).unwrap().len(), 1);
}

const ENV_CLAIM_DB: &str = "KEYLINK_STORES_TEST_CLAIM_DB";
const ENV_CLAIM_OUT: &str = "KEYLINK_STORES_TEST_CLAIM_OUT";

/// Helper mode for `racing_processes_claim_a_job_once`.
#[test]
fn race_helper_claim() {
    let (Ok(path), Ok(out)) = (std::env::var(ENV_CLAIM_DB), std::env::var(ENV_CLAIM_OUT)) else {
        return;
    };
    let jobs = SqliteJobStore::open(Path::new(&path)).unwrap();
    let result = match jobs.claim_start(JOB, 42) {
        Ok(()) => "won",
        Err(JobStoreError::NotPending { .. }) => "lost",
        Err(e) => panic!("{e}"),
    };
    std::fs::write(out, result).unwrap();
}

#[test]
fn racing_processes_claim_a_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    SqliteJobStore::open(&path)
        .unwrap()
        .create_job(JOB, "{}", "/", 1)
        .unwrap();
    let racers: Vec<_> = (0..6)
        .map(|p| {
            let out = dir.path().join(format!("claim-{p}.txt"));
            let child = spawn_helper(
                "race_helper_claim",
                &[
                    (ENV_CLAIM_DB, path.display().to_string()),
                    (ENV_CLAIM_OUT, out.display().to_string()),
                ],
            );
            (child, out)
        })
        .collect();
    let mut won = 0;
    for (mut child, out) in racers {
        assert!(child.wait().unwrap().success());
        if std::fs::read_to_string(out).unwrap() == "won" {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    let states = SqliteJobStore::open(&path)
        .unwrap()
        .get(JOB)
        .unwrap()
        .unwrap()
        .states;
    assert_eq!(
        states
            .iter()
            .filter(|s| s.state == JobState::Started)
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------

/// Not a check, a measurement: `cargo test --release -p keylink-host --test
/// stores -- --ignored --nocapture batch_of_10k`.
#[test]
#[ignore]
fn batch_of_10k_requests_timing() {
    for kek in [None, Some(kek().1)] {
        let dir = tempfile::tempdir().unwrap();
        let wrapped = kek.is_some();
        let store = SqliteKeyStore::open(&db(&dir), kek).unwrap();
        let requests: Vec<_> = (0..10_000)
            .map(|i| req(&format!("user-{i}"), i % 24, Some("s"), GCM))
            .collect();
        let t = Instant::now();
        store.get_or_create("g", GCM, &requests).unwrap();
        let create = t.elapsed();
        let t = Instant::now();
        store.get_or_create("g", GCM, &requests).unwrap();
        let reuse = t.elapsed();
        let t = Instant::now();
        store.lookup("g", &requests).unwrap();
        let lookup = t.elapsed();
        println!(
            "10k batch (kek: {wrapped}): create {create:?}, reuse {reuse:?}, lookup {lookup:?}"
        );
    }
}
