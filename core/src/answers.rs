//! The job's memory of keys it was given, kept compactly after its key cache
//! forgot them ([`crate::job::Job::set_answer_cache_limit`]).
//!
//! A bounded key cache forgets all its keys at once, and on data without
//! locality (key-field values spread over the whole file) almost every
//! forgotten key is needed again soon. Asking the host again costs a round
//! trip with a fresh proposal, strings and objects on both sides of the
//! boundary, and a store lookup. This table answers those repeats inside the
//! job: ~100 bytes a key (a keyed 128-bit hash of the value and window, the
//! key link and Tink key id, the 32 bytes of an AES-256-GCM key and two
//! counts), against several hundred for a cached key with its cipher.
//!
//! # Security
//! - The table holds no key-field value: entries are found by SipHash-1-3
//!   (128-bit output) under a key drawn from the job's seed, so inputs cannot
//!   be crafted to collide, and a collision by chance (2^-64 for a billion
//!   keys) is negligible.
//! - Key material is zeroed when an entry is forgotten and when the table is
//!   dropped.
use alloc::string::String;
use alloc::vec::Vec;
use core::hash::Hasher as _;

use hashbrown::HashMap;
use siphasher::sip128::{Hasher128 as _, SipHasher13};
use zeroize::Zeroize as _;

use crate::config::CipherKind;
use crate::keys::StoredKey;
use crate::rng::{JobRng, uuid_text};
use crate::tink::{KeyMaterial, TinkKey};

/// The RNG stream of the job's seed that keys the table's hash (streams 0
/// and 1 give nonces and keys, see [`JobRng`]).
const HASH_KEY_STREAM: u64 = 2;

struct Answer {
    link: [u8; 16],
    key_id: u32,
    material: [u8; 32],
    /// As the host gave it (store's count plus this job's earlier uses).
    uses_before: u64,
    /// This job's uses since the host gave it, from forgotten cache slots.
    uses: u64,
}

/// SipHash-1-3 (128-bit) of a (key-field value, window), under `hash_key`.
fn id_with(hash_key: (u64, u64), value: &str, window: i64) -> u128 {
    let mut h = SipHasher13::new_with_keys(hash_key.0, hash_key.1);
    h.write(&(value.len() as u64).to_le_bytes());
    h.write(value.as_bytes());
    h.write(&window.to_le_bytes());
    h.finish128().as_u128()
}

/// A 128-bit id of a (key-field value, window) under a secret 16-byte
/// `key` (SipHash-1-3, the answer table's id): for a host that remembers the
/// keys it gave several engine jobs without keeping the values themselves.
/// With a random key per job, two different combinations share an id with
/// probability about 2^-128 per pair, and the ids reveal nothing of the
/// values without the key.
pub fn request_id(key: &[u8; 16], value: &str, window: i64) -> u128 {
    let (a, b) = key.split_at(8);
    id_with((u64::from_le_bytes(a.try_into().expect("8 bytes")), u64::from_le_bytes(b.try_into().expect("8 bytes"))), value, window)
}

pub(crate) struct Answers {
    hash_key: (u64, u64),
    map: HashMap<u128, Answer>,
    limit: usize,
    /// Which quarter of the table the next trim forgets.
    round: u8,
}

impl Answers {
    pub(crate) fn new(seed: [u8; 32], limit: usize) -> Answers {
        let mut rng = JobRng::new(seed, HASH_KEY_STREAM);
        let mut k = [0u8; 16];
        rng.fill(&mut k);
        let (a, b) = k.split_at(8);
        let hash_key = (u64::from_le_bytes(a.try_into().expect("8 bytes")), u64::from_le_bytes(b.try_into().expect("8 bytes")));
        k.zeroize();
        Answers { hash_key, map: HashMap::new(), limit: limit.max(1), round: 0 }
    }

    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The entry id of a (key-field value, window).
    pub(crate) fn id(&self, value: &str, window: i64) -> u128 {
        id_with(self.hash_key, value, window)
    }

    /// The key remembered under `id`, with this job's uses so far added to
    /// its `uses_before`.
    pub(crate) fn get(&self, id: u128) -> Option<StoredKey> {
        let a = self.map.get(&id)?;
        Some(StoredKey {
            key_link: uuid_text(&a.link),
            key: TinkKey { key_id: a.key_id, cipher: CipherKind::Aes256Gcm, material: KeyMaterial::new(a.material.to_vec()) },
            uses_before: a.uses_before.saturating_add(a.uses),
        })
    }

    /// Remembers a key the host gave. Keys that do not fit the compact form
    /// (AES-SIV, a key link that is not a canonical UUID) are not kept: they
    /// are simply asked for again.
    pub(crate) fn put(&mut self, id: u128, key: &StoredKey) {
        if key.key.cipher != CipherKind::Aes256Gcm {
            return;
        }
        let (Some(link), Ok(material)) = (parse_uuid(&key.key_link), <[u8; 32]>::try_from(key.key.material.as_bytes())) else {
            return;
        };
        let old = self.map.insert(id, Answer { link, key_id: key.key.key_id, material, uses_before: key.uses_before, uses: 0 });
        if let Some(mut old) = old {
            // Not expected (a key in the table is not requested), but its
            // uses must not be lost.
            old.material.zeroize();
            if let Some(a) = self.map.get_mut(&id) {
                a.uses = a.uses.saturating_add(old.uses);
            }
        }
    }

    /// Adds a forgotten cache slot's uses to its entry; false if the entry
    /// itself was forgotten (the caller reports the uses).
    pub(crate) fn add_uses(&mut self, id: u128, uses: u64) -> bool {
        match self.map.get_mut(&id) {
            Some(a) => {
                a.uses = a.uses.saturating_add(uses);
                true
            }
            None => false,
        }
    }

    /// Forgets a quarter of the entries at a time until the table is within
    /// its limit, reporting their uses (`(key link, uses)`, uses > 0).
    pub(crate) fn trim(&mut self, report: &mut Vec<(String, u64)>) {
        while self.map.len() > self.limit {
            let round = u128::from(self.round);
            self.round = (self.round + 1) & 3;
            self.map.retain(|id, a| {
                if id & 3 != round {
                    return true;
                }
                if a.uses > 0 {
                    report.push((uuid_text(&a.link), a.uses));
                }
                a.material.zeroize();
                false
            });
        }
    }

    pub(crate) fn contains(&self, id: u128) -> bool {
        self.map.contains_key(&id)
    }

    /// Reports every entry's uses (`(key link, uses)`, uses > 0), with the
    /// uses in `extra` added, for the summary.
    pub(crate) fn report(&self, extra: &HashMap<u128, u64>, report: &mut Vec<(String, u64)>) {
        for (id, a) in &self.map {
            let uses = a.uses.saturating_add(extra.get(id).copied().unwrap_or(0));
            if uses > 0 {
                report.push((uuid_text(&a.link), uses));
            }
        }
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        for a in self.map.values_mut() {
            a.material.zeroize();
        }
    }
}

/// The 16 bytes of a UUID in canonical text form (lowercase, hyphenated);
/// None for any other text.
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b[i] != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let hex = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[n] = (hex(b[i])? << 4) | hex(b[i + 1])?;
        n += 1;
        i += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(link: &str, uses_before: u64) -> StoredKey {
        StoredKey {
            key_link: link.into(),
            key: TinkKey { key_id: 7, cipher: CipherKind::Aes256Gcm, material: KeyMaterial::new(alloc::vec![9; 32]) },
            uses_before,
        }
    }

    #[test]
    fn uuid_text_round_trips_and_other_text_is_refused() {
        let mut rng = JobRng::new([3; 32], 1);
        for _ in 0..100 {
            let u = rng.uuid_v4();
            assert_eq!(uuid_text(&parse_uuid(&u).unwrap()), u);
        }
        assert!(parse_uuid("0E1A2B3C-0000-4000-8000-000000000000").is_none());
        assert!(parse_uuid("0e1a2b3c00000-4000-8000-000000000000").is_none());
        assert!(parse_uuid("not a uuid").is_none());
    }

    #[test]
    fn request_ids_depend_on_the_value_the_window_and_the_key() {
        let k = [5u8; 16];
        let id = super::request_id(&k, "sess-1", 20_000);
        assert_eq!(id, super::request_id(&k, "sess-1", 20_000));
        assert_ne!(id, super::request_id(&k, "sess-1", 20_001));
        assert_ne!(id, super::request_id(&k, "sess-2", 20_000));
        assert_ne!(id, super::request_id(&[6u8; 16], "sess-1", 20_000));
        // Length-prefixed: no value/window boundary to slide.
        assert_ne!(super::request_id(&k, "a", 1), super::request_id(&k, "a\u{1}", 0));
    }

    #[test]
    fn ids_separate_values_and_windows_and_depend_on_the_seed() {
        let a = Answers::new([1; 32], 10);
        assert_ne!(a.id("ab", 1), a.id("a", 1));
        assert_ne!(a.id("a", 1), a.id("a", 2));
        assert_eq!(a.id("a", 1), a.id("a", 1));
        assert_ne!(Answers::new([2; 32], 10).id("a", 1), a.id("a", 1));
    }

    #[test]
    fn remembers_keys_adds_this_jobs_uses_and_trims_to_its_limit() {
        let mut a = Answers::new([1; 32], 8);
        let mut rng = JobRng::new([4; 32], 1);
        let links: Vec<String> = (0..40).map(|_| rng.uuid_v4()).collect();
        for (i, l) in links.iter().enumerate() {
            a.put(a.id("v", i as i64), &key(l, 5));
        }
        assert!(a.add_uses(a.id("v", 39), 3));
        assert_eq!(a.get(a.id("v", 39)).unwrap(), key(&links[39], 8));
        let mut report = Vec::new();
        a.trim(&mut report);
        assert!(a.len() <= 8);
        let kept = (0..40).filter(|&i| a.get(a.id("v", i)).is_some()).count();
        assert_eq!(kept, a.len());
        // The one entry with uses was reported if it was forgotten.
        let reported = report == alloc::vec![(links[39].clone(), 3)];
        assert!(reported || (report.is_empty() && a.get(a.id("v", 39)).is_some()));
        assert!(!a.add_uses(a.id("other", 0), 1));
        // AES-SIV keys and non-canonical links are not kept.
        let mut siv = key(&links[0], 0);
        siv.key.cipher = CipherKind::Aes256Siv;
        a.put(a.id("siv", 0), &siv);
        a.put(a.id("upper", 0), &key(&links[0].to_uppercase(), 0));
        assert!(a.get(a.id("siv", 0)).is_none() && a.get(a.id("upper", 0)).is_none());
    }
}
